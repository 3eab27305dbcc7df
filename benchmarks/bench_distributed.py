"""Training images/sec: one process, clones, and a parameter-server cluster on this machine.

Every run is the real command: train_image_classifier.py alone, or
launch_local_cluster.py (1 ps and N workers on 127.0.0.1), training the same
net on the same data with the same batch per worker. Each worker logs every
step with its images/sec; a worker's figure is the harmonic mean of those (its
images over its step time), the first steps (start-up) left out, and a run's
figure is the sum over its workers. The rows:

* local: one process, variables on its CPU;
* 2 CPU clones: one process, two clones of the batch (`--num_clones=2 --clone_on_cpu`);
* 1 ps + 1 worker: the same step as `local`, its variables read and updated
  through a parameter server; the difference in ms/step is the round-trip
  overhead of the parameter server;
* 1 ps + 2 workers, async and sync (`--sync_replicas`);
* with `--gpu_clones=N` on a GPU machine, also N clones, one per GPU
  (`--num_clones=N`; add `--split_gpu` to split one GPU into N logical ones
  with `--virtual_gpus=N`). `local` then runs on the first GPU.

All processes share this machine's cores, so extra workers add throughput only
where cores sit idle: on a 2-core machine expect little or none.

    python benchmarks/bench_distributed.py
    python benchmarks/bench_distributed.py --dataset_dir=/tmp/digits --steps=1000 --batch_size=16
    python benchmarks/bench_distributed.py --gpu_clones=2 --model_name=inception_v1 --batch_size=32
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

import common  # noqa: F401  (puts the repository on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RATE = re.compile(r'^(?:\[worker (\d+)\] )?.*train: step \d+: .*, ([\d.]+) images/sec')


def train_flags(args: argparse.Namespace, train_dir: str) -> list[str]:
    return ['--dataset_name=digits', '--dataset_dir=' + args.dataset_dir,
            '--model_name=' + args.model_name, '--train_dir=' + train_dir,
            '--batch_size=%d' % args.batch_size, '--optimizer=momentum',
            '--learning_rate=0.01', '--learning_rate_decay_type=fixed',
            '--max_number_of_steps=%d' % args.steps, '--log_every_n_steps=1',
            '--save_interval_secs=3600', '--save_summaries_secs=3600']


def run(command: list[str]) -> str:
    """Runs a command of the repository; returns its output, or raises with its tail."""
    result = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError('%s failed:\n%s' % (' '.join(command[:3]), output[-3000:]))
    return output


def images_per_sec(output: str, skip_steps: int) -> tuple[float, int]:
    """The workers' summed images/sec over the steps they logged; and how many workers."""
    rates = {}
    for line in output.splitlines():
        match = _RATE.match(line)
        if match:
            rates.setdefault(match.group(1) or '0', []).append(float(match.group(2)))
    kept = {worker: values[skip_steps:] for worker, values in rates.items()}
    if not kept or not all(kept.values()):
        raise RuntimeError('too few logged steps to measure: raise --steps')
    return sum(statistics.harmonic_mean(values) for values in kept.values()), len(kept)


def measure(args: argparse.Namespace, name: str, extra: list[str],
            cluster: tuple[int, int] | None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as train_dir:
        flags = train_flags(args, train_dir) + extra
        if cluster is None:
            output = run(['train_image_classifier.py', *flags])
        else:
            num_ps, num_workers = cluster
            output = run(['launch_local_cluster.py', '--num_ps=%d' % num_ps,
                          '--num_workers=%d' % num_workers, '--', *flags])
    rate, workers = images_per_sec(output, args.skip_steps)
    print('%-22s %8.1f images/sec' % (name, rate), flush=True)
    return rate, workers


def _clones(flags: list[str]) -> int:
    """The --num_clones among a run's flags (1 if absent)."""
    values = [int(flag.split('=', 1)[1]) for flag in flags if flag.startswith('--num_clones=')]
    return values[-1] if values else 1


def convert_digits(directory: str) -> str:
    run(['download_and_convert_data.py', '--dataset_name=digits',
         '--dataset_dir=' + directory])
    return directory


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset_dir', default=None,
                        help='A converted digits dataset; converted to a temporary '
                             'directory if unset.')
    parser.add_argument('--model_name', default='lenet')
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--steps', type=int, default=1000,
                        help='Global steps of each run.')
    parser.add_argument('--skip_steps', type=int, default=50,
                        help='Steps left out at the start of each worker.')
    parser.add_argument('--gpu_clones', type=int, default=0,
                        help='Also measure this many clones, one per GPU (0: no GPU row).')
    parser.add_argument('--split_gpu', action='store_true',
                        help='Place the --gpu_clones on logical GPUs split from the first one.')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.dataset_dir is None:
            args.dataset_dir = convert_digits(os.path.join(scratch, 'digits'))
        runs = [('local', [], None),
                ('2 CPU clones', ['--num_clones=2', '--clone_on_cpu'], None),
                ('1 ps + 1 worker', [], (1, 1)),
                ('1 ps + 2 workers async', [], (1, 2)),
                ('1 ps + 2 workers sync', ['--sync_replicas'], (1, 2))]
        if args.gpu_clones:
            flags = ['--num_clones=%d' % args.gpu_clones]
            if args.split_gpu:
                flags.append('--virtual_gpus=%d' % args.gpu_clones)
            runs.append(('%d GPU clones' % args.gpu_clones, flags, None))
        results = [(name, _clones(extra), *measure(args, name, extra, cluster))
                   for name, extra, cluster in runs]
    local_rate = results[0][2]
    rows = []
    for name, clones, rate, workers in results:
        images_per_worker_step = args.batch_size * clones
        ms_per_step = 1000.0 * images_per_worker_step * workers / rate
        rows.append([name, rate, rate / local_rate, ms_per_step])
    print('\n%s, batch %d per clone, %d steps, %d CPU cores\n'
          % (args.model_name, args.batch_size, args.steps, os.cpu_count()))
    common.print_table(['run', 'images/sec', 'x local', 'ms/step per worker'], rows)
    overhead = rows[2][3] - rows[0][3]
    print('\nparameter-server round trip: %+.1f ms per step (%.2fx the local step)'
          % (overhead, rows[2][3] / rows[0][3]))


if __name__ == '__main__':
    main()
