"""Peak resident memory of training: our train_image_classifier.py against Keras 3 `fit()`.

For every net of run_all.py's suite, on the same records, batch, image size
and optimizer as run_all.py (its plans, a few steps each), each side trains in
a fresh process and the parent follows the child's VmHWM (the high-water mark
of its resident memory, `run_all.run_job`). The sides alternate within a
round; the table gives the median peak over the rounds and our peak over
Keras's (the goal: at most 1).

To say where the memory goes, `--variants` adds, per net, runs of ours that
each change one thing (the reader and preprocessing threads at 1, which
shrinks the tf.data buffers; oneDNN off, TF_ENABLE_ONEDNN_OPTS=0), and the peak of a process that only imports each side's
modules, which every run carries.

    python benchmarks/bench_memory.py                        # the suite, 2 rounds
    python benchmarks/bench_memory.py --nets lenet --rounds 1 --windows 2
"""

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

import common  # before the project's imports: it puts the repository on sys.path

import run_all

# Imports only, on each side: the memory every training process starts with.
IMPORTS = {
    'ours': ('from slim_classifier.cli import runner; runner.import_tensorflow_silently(); '
             'from slim_classifier.training import trainer'),
    'keras': 'import keras; import tensorflow',
}
# Runs of ours that each change one thing: flags, and the environment.
VARIANTS = {
    'one reader and preprocessing thread': (['--num_readers=1',
                                             '--num_preprocessing_threads=1'], {}),
    'oneDNN off': ([], {'TF_ENABLE_ONEDNN_OPTS': '0'}),
}


def plan_of(model_name: str, windows: int) -> run_all.NetPlan:
    """run_all.py's plan for the net, cut to `windows` logging windows of steps."""
    plan = run_all.PLANS[model_name]
    return dataclasses.replace(plan, steps=windows * plan.log_every,
                               warmup_windows=min(plan.warmup_windows, windows - 1))


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """The parent's environment with `values` set, which run_all's children inherit."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ours_peak_mb(plan: run_all.NetPlan, dataset_dir: str, train_dir: str,
                 extra_flags: list[str], env: dict[str, str]) -> float:
    """Our trainer's peak resident memory, with run_all.py's flags and `extra_flags` after them.

    A flag given twice takes its last value.
    """
    command = [sys.executable, os.path.join(run_all.REPO, 'train_image_classifier.py'),
               '--model_name=' + plan.model_name, '--dataset_name=' + plan.dataset_name,
               '--dataset_dir=' + dataset_dir, '--train_dir=' + train_dir,
               '--batch_size=%d' % plan.batch_size, '--max_number_of_steps=%d' % plan.steps,
               '--log_every_n_steps=%d' % plan.log_every, '--optimizer=momentum',
               '--momentum=%g' % run_all.MOMENTUM, '--learning_rate=%g' % run_all.LEARNING_RATE,
               '--learning_rate_decay_type=fixed', '--weight_decay=0',
               '--num_readers=%d' % run_all.NUM_READERS,
               '--num_preprocessing_threads=%d' % run_all.NUM_PREPROCESSING_THREADS,
               '--save_interval_secs=86400', '--save_summaries_secs=86400', *extra_flags]
    with environment(env):
        return run_all.run_job(command)[1]


def keras_peak_mb(plan: run_all.NetPlan, dataset_dir: str) -> float:
    return run_all.train_keras(plan, 'float32', dataset_dir).peak_rss_mb


def imports_peak_mb(side: str) -> float:
    return run_all.run_job([sys.executable, '-c', IMPORTS[side]])[1]


def measure_net(plan: run_all.NetPlan, dataset_dir: str, rounds: int, work_dir: str,
                variants: bool) -> dict:
    """Peaks of both sides, `rounds` times, alternating which side goes first."""
    peaks = {'ours': [], 'keras': []}
    for round_index in range(rounds):
        sides = ('ours', 'keras') if round_index % 2 == 0 else ('keras', 'ours')
        for side in sides:
            if side == 'ours':
                train_dir = os.path.join(work_dir, '%s_%d' % (plan.model_name, round_index))
                peaks[side].append(ours_peak_mb(plan, dataset_dir, train_dir, [], {}))
            else:
                peaks[side].append(keras_peak_mb(plan, dataset_dir))
            _log('%s %s: %.0f MB' % (plan.model_name, side, peaks[side][-1]))
    result = {'peaks_mb': peaks, 'load_average': os.getloadavg(), 'variants_mb': {}}
    if variants:
        for index, (name, (flags, env)) in enumerate(VARIANTS.items()):
            train_dir = os.path.join(work_dir, '%s_variant_%d' % (plan.model_name, index))
            result['variants_mb'][name] = ours_peak_mb(plan, dataset_dir, train_dir, flags, env)
            _log('%s ours, %s: %.0f MB' % (plan.model_name, name,
                                           result['variants_mb'][name]))
    return result


def rows_of(model_name: str, plan: run_all.NetPlan, result: dict) -> list[list[object]]:
    ours = statistics.median(result['peaks_mb']['ours'])
    keras = statistics.median(result['peaks_mb']['keras'])
    rows = [[model_name, plan.batch_size, 'ours / keras', ours, keras, ours / keras,
             'yes' if ours <= keras * run_all.MEMORY_GOAL else 'NO']]
    for name, peak in result['variants_mb'].items():
        rows.append([model_name, plan.batch_size, 'ours, %s / keras' % name, peak, keras,
                     peak / keras, ''])
    return rows


def run(nets: list[str], rounds: int, windows: int, work_dir: str, variants: bool) -> dict:
    plans = [plan_of(name, windows) for name in nets]
    directories = run_all.prepare_data(plans, work_dir)
    report = {'started': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
              'load_average_at_start': os.getloadavg(), 'rounds': rounds, 'nets': {},
              'plans': {plan.model_name: dataclasses.asdict(plan) for plan in plans}}
    if variants:
        report['imports_mb'] = {side: imports_peak_mb(side) for side in IMPORTS}
    for plan in plans:
        report['nets'][plan.model_name] = measure_net(
            plan, directories[plan.dataset_name], rounds, work_dir, variants)
    report['load_average_at_end'] = os.getloadavg()
    return report


def print_report(report: dict) -> None:
    rows = []
    for model_name, result in report['nets'].items():
        plan = run_all.NetPlan(**report['plans'][model_name])
        rows += rows_of(model_name, plan, result)
    common.print_table(['net', 'batch', 'peak RSS', 'ours MB', 'keras MB', 'ratio',
                        'goal <= 1 met'], rows)
    if 'imports_mb' in report:
        print('imports only: %s' % ', '.join('%s %.0f MB' % item
                                             for item in report['imports_mb'].items()))
    print('started %s; load average %s at the start, %s at the end' % (
        report.get('started', '?'),
        '/'.join('%.1f' % load for load in report['load_average_at_start']),
        '/'.join('%.1f' % load for load in report['load_average_at_end'])))


def _log(message: str) -> None:
    print('[%s] %s' % (time.strftime('%H:%M:%S'), message), flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nets', nargs='+', choices=sorted(run_all.PLANS),
                        default=list(run_all.PLANS))
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--windows', type=int, default=3,
                        help="logging windows of steps per run (run_all.py's log_every each)")
    parser.add_argument('--variants', action='store_true',
                        help='add the runs of ours that each change one thing, and the '
                             'imports-only peaks')
    parser.add_argument('--output', default=None, help='where the JSON report goes, if set')
    parser.add_argument('--work_dir', default=None)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error('--rounds must be >= 1; got %d' % args.rounds)
    if args.windows < 1:
        parser.error('--windows must be >= 1; got %d' % args.windows)
    return args


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = args.work_dir or temporary
        os.makedirs(work_dir, exist_ok=True)
        report = run(args.nets, args.rounds, args.windows, work_dir, args.variants)
    print_report(report)
    if args.output:
        with open(args.output, 'w') as output:
            json.dump(report, output, indent=1)


if __name__ == '__main__':
    main()
