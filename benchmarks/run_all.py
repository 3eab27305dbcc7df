"""The performance suite in one command: our trainer, evaluator and exports against Keras 3.

For lenet (digits records), vgg_16, inception_v3, resnet_v1_50, mobilenet_v2,
inception_resnet_v2 and nasnet_mobile (JPEG photo records) it measures, in
one run, and prints as one table with ratios:

* training images/sec of `train_image_classifier.py` (the command users run:
  records, tf.data pipeline, preprocessing, net, momentum optimizer) against
  Keras `fit()` on the same architecture, records, pipeline, batch and image
  size (`keras_jobs.py`), in float32 and in bf16 (our `--precision=bf16`
  against Keras's `mixed_bfloat16` policy). Each side is its own process;
  the rate is that of the steady windows of `log_every` steps, start-up left
  out, from the trainer's metrics.jsonl and from a Keras callback;
* CPU milliseconds per image of the same windows: on a machine shared with
  other work, CPU time per image holds far steadier than images/sec;
* the forward FLOPs per image of both sides, each counted by TensorFlow's
  profiler on its own graph (ours as training builds it, Keras's model
  traced in training mode), and the training FLOP/s of ours over Keras's:
  the keras.applications builds differ from ours in detail (ResNet50 strides
  at the start of a block, ours at its end; no auxiliary heads; NASNet's
  drop path), so the images/sec ratio alone can mislead;
* peak resident memory (VmHWM) of each training process;
* the achieved floating-point rate of our training step (profiler FLOPs of
  the forward graph x 3, times images/sec) as a fraction of a large matrix
  multiply's rate measured in the same run, in float32 and bfloat16;
* our input pipeline's images/sec, as the trainer builds it, against what our
  training step consumes; and our tf.data pipeline against the original
  queue-based one (`bench_input_pipeline.py`);
* evaluation and exported-graph inference images/sec against Keras
  `evaluate()` and `predict()` (`inference_jobs.py`), in each precision;
* and, each in its own process, its goals read from its JSON report (see
  `--companions`): the deployment benchmark (`bench_deploy.py`: every export
  kind, quantization, sizes, batch prediction), the cost of evaluating while
  training (`bench_train_eval.py`), repeated evaluation against Keras
  (`bench_repeated_eval.py`) and batch prediction decoding beside a TFLite or
  ONNX model (`bench_batch_prediction.py`). A companion that fails is reported as such; the
  rest of the suite stands.

Each net's plan holds its goals: our images/sec over Keras's, in float32 and
in bf16, for training (and, for the nets of issue 14, evaluation and
inference); where set, our bf16 over our float32 and the float32 training
rate over the matmul peak.

The table is written to --output as JSON too, with every timed window, the
companions' reports and the load average around each run; a --quick run
writes to its own report (results/run_all_quick.json), never over the full
one (results/run_all.json), unless --output names it. The work directory
needs about 3 GB per round (VGG-16 checkpoints).

    python benchmarks/run_all.py                    # about 45 minutes on 2 cores
    python benchmarks/run_all.py --quick            # LeNet only, companions small: minutes
    python benchmarks/run_all.py --nets lenet --companions    # no companion
    python benchmarks/run_all.py --nets inception_v3 --precisions float32 --rounds 3
    python benchmarks/run_all.py --nets mobilenet_v2 --steps_scale 0.5   # a smoke run
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import common  # before the project's imports: it puts the repository on sys.path
import tensorflow.compat.v1 as tf

import bench_input_pipeline
import bench_nets
import compute
from datasets import dataset_factory, input_pipeline
from nets import nets_factory
from slim_classifier.runtime import session_config
from slim_classifier.runtime.batches import training_batches

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCHMARKS)
DEFAULT_OUTPUT = os.path.join(BENCHMARKS, 'results', 'run_all.json')
QUICK_OUTPUT = os.path.join(BENCHMARKS, 'results', 'run_all_quick.json')

# Training settings shared by both sides; speed does not depend on them, but
# a diverging loss would stop our trainer.
LEARNING_RATE = 1e-4
MOMENTUM = 0.9
# Our trainer's defaults, which keras_jobs.py uses too.
NUM_READERS = 4
NUM_PREPROCESSING_THREADS = 4
PHOTO_RECORDS = 256
PHOTO_SHARDS = 4

# The goals of the performance issues.
SPEED_GOAL = 1.2  # our training images/sec over Keras's, same precision
BF16_GOAL = 1.6  # our bf16 images/sec over our float32
PEAK_GOAL = 0.70  # inception_v3 float32 training rate over the float32 matmul peak
PIPELINE_GOAL = 3.0  # input pipeline over training consumption
QUEUES_GOAL = 2.0  # tf.data pipeline over the queue-based one
MEMORY_GOAL = 1.0  # our peak resident memory over Keras's, at most
# Issue 14's nets: our images/sec over Keras's, training and inference.
ISSUE_14_FLOAT32_GOAL = 1.1
ISSUE_14_BF16_GOAL = 1.2


@dataclasses.dataclass(frozen=True)
class NetPlan:
    """How one net is benchmarked."""
    model_name: str
    dataset_name: str  # 'digits' or 'photos'
    batch_size: int
    steps: int  # training steps of each run
    log_every: int  # steps per timed window
    warmup_windows: int  # first windows left out: graph building, tracing, caches
    eval_split: str
    eval_batch_size: int
    eval_batches: int
    # Our images/sec over Keras's that the net is held to, in float32 and bf16.
    float32_goal: float = SPEED_GOAL
    bf16_goal: float = SPEED_GOAL
    inference_goal: bool = False  # evaluation and inference are held to them too
    bf16_speed_up_goal: float | None = BF16_GOAL  # our bf16 over our float32
    peak_goal: float | None = None  # float32 training rate over the matmul peak

    def speed_goal(self, precision: str) -> float:
        return {'float32': self.float32_goal, 'bf16': self.bf16_goal}[precision]


def _issue_14_plan(model_name: str, batch_size: int, steps: int, log_every: int) -> NetPlan:
    return NetPlan(model_name, 'photos', batch_size=batch_size, steps=steps,
                   log_every=log_every, warmup_windows=1, eval_split='train',
                   eval_batch_size=batch_size, eval_batches=4, float32_goal=ISSUE_14_FLOAT32_GOAL,
                   bf16_goal=ISSUE_14_BF16_GOAL, inference_goal=True, bf16_speed_up_goal=None)


PLANS = {plan.model_name: plan for plan in (
    NetPlan('lenet', 'digits', batch_size=64, steps=300, log_every=25, warmup_windows=2,
            eval_split='test', eval_batch_size=100, eval_batches=3),
    NetPlan('vgg_16', 'photos', batch_size=4, steps=12, log_every=3, warmup_windows=1,
            eval_split='train', eval_batch_size=4, eval_batches=4),
    NetPlan('inception_v3', 'photos', batch_size=8, steps=24, log_every=4, warmup_windows=1,
            eval_split='train', eval_batch_size=8, eval_batches=4, peak_goal=PEAK_GOAL),
    _issue_14_plan('resnet_v1_50', batch_size=8, steps=16, log_every=4),
    _issue_14_plan('mobilenet_v2', batch_size=16, steps=24, log_every=6),
    _issue_14_plan('inception_resnet_v2', batch_size=4, steps=12, log_every=3),
    _issue_14_plan('nasnet_mobile', batch_size=16, steps=24, log_every=6),
)}
QUICK_PLANS = {'lenet': dataclasses.replace(PLANS['lenet'], steps=120, log_every=20,
                                            eval_batches=2)}


@dataclasses.dataclass(frozen=True)
class Companion:
    """A benchmark script the suite runs too, as its own process, and reads the report of."""
    script: str
    arguments: tuple[str, ...]  # its settings in the full suite
    quick_arguments: tuple[str, ...]  # with --quick: its smallest honest size
    reads_digits: bool  # takes --dataset_dir=<digits records>


COMPANIONS = {
    'deploy': Companion('bench_deploy.py', (), (
        '--quick', '--batch_sizes', '1', '--repeats=3', '--pipeline_rounds=1',
        '--train_steps=60'), reads_digits=False),
    'train_eval': Companion('bench_train_eval.py', (), (
        '--steps=100', '--eval_every=50', '--rounds=1', '--passes=2'), reads_digits=True),
    'repeated_eval': Companion('bench_repeated_eval.py', (), (
        '--passes=3', '--checkpoints=2'), reads_digits=True),
    'batch_prediction': Companion('bench_batch_prediction.py', (), (
        '--batch_sizes', '8', '--rounds=3', '--copies=4', '--train_steps=60'),
        reads_digits=False),
}


@dataclasses.dataclass
class TrainRun:
    """One side's training run: its steady windows and its peak memory."""
    side: str
    model_name: str
    precision: str
    windows: list[dict]  # images, wall_seconds, cpu_seconds of every window
    warmup_windows: int
    peak_rss_mb: float
    load_average: tuple[float, float]  # 1-minute load before and after

    @property
    def steady(self) -> list[dict]:
        return self.windows[self.warmup_windows:]

    @property
    def images_per_sec(self) -> float:
        """Images over wall-clock seconds of the steady windows together."""
        return (sum(w['images'] for w in self.steady)
                / sum(w['wall_seconds'] for w in self.steady))

    @property
    def best_window_images_per_sec(self) -> float:
        return max(w['images'] / w['wall_seconds'] for w in self.steady)

    @property
    def cpu_ms_per_image(self) -> float:
        return (1000.0 * sum(w['cpu_seconds'] for w in self.steady)
                / sum(w['images'] for w in self.steady))


class BenchmarkError(Exception):
    """A benchmark job failed; the message names it and ends with its output."""


def _child_env() -> dict:
    return {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'PYTHONUNBUFFERED': '1'}


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process, all its threads."""
    with open('/proc/%d/stat' % pid) as stat_file:
        fields = stat_file.read().rsplit(')', 1)[1].split()
    # Fields 14 and 15 of proc(5), counted after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process: the high-water mark of its resident memory.

    Unlike ru_maxrss, it starts afresh at exec, so it does not count the
    parent's memory that the child shared between fork and exec.
    """
    with open('/proc/%d/status' % pid) as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


class _MemoryWatch(threading.Thread):
    """Follows a child's VmHWM until it exits; it only grows, so the last reading is the peak."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_mb = 0.0
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(self.interval):
            try:
                self.peak_mb = max(self.peak_mb, _peak_rss_mb(self.pid))
            except OSError:  # exited between two readings
                return

    def stop(self):
        self._done.set()
        self.join()


def run_job(command: list[str], on_line=None) -> tuple[list[str], float]:
    """Runs a child to the end, passing each output line to `on_line(line, pid)`.

    Returns:
      (its output lines, stdout and stderr together; its peak resident memory in MB).

    Raises:
      BenchmarkError: if it exits with an error.
    """
    process = subprocess.Popen(command, cwd=REPO, env=_child_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    memory = _MemoryWatch(process.pid)
    memory.start()
    lines = []
    for line in process.stdout:
        lines.append(line)
        if on_line is not None:
            on_line(line, process.pid)
    process.wait()
    memory.stop()
    if process.returncode != 0:
        raise BenchmarkError('%s exited with %d:\n%s' % (' '.join(command[1:3]),
                                                         process.returncode,
                                                         ''.join(lines[-30:])))
    return lines, memory.peak_mb


def _json_line(lines: list[str]) -> dict:
    return json.loads([line for line in lines if line.startswith('{')][-1])


def train_ours(plan: NetPlan, precision: str, dataset_dir: str, train_dir: str) -> TrainRun:
    """Runs train_image_classifier.py; the windows come from its metrics.jsonl.

    The trainer appends a record to metrics.jsonl just before it logs a step,
    so each output line is the moment to read the new records and the
    process's CPU time.
    """
    windows = []
    cpu_marks = [0.0]  # the process's CPU seconds at each logged step, from its start
    metrics_path = os.path.join(train_dir, 'metrics.jsonl')

    def on_line(line, pid):
        del line
        if not os.path.exists(metrics_path):
            return
        with open(metrics_path) as metrics_file:
            records = [json.loads(row) for row in metrics_file if row.strip()]
        for record in records[len(windows):]:
            cpu_marks.append(_cpu_seconds(pid))
            images = plan.log_every * plan.batch_size
            windows.append({'images': images, 'wall_seconds': images / record['images_per_sec'],
                            'cpu_seconds': cpu_marks[-1] - cpu_marks[-2]})
    command = [sys.executable, os.path.join(REPO, 'train_image_classifier.py'),
               '--model_name=' + plan.model_name, '--dataset_name=' + plan.dataset_name,
               '--dataset_dir=' + dataset_dir, '--train_dir=' + train_dir,
               '--batch_size=%d' % plan.batch_size, '--max_number_of_steps=%d' % plan.steps,
               '--log_every_n_steps=%d' % plan.log_every, '--precision=' + precision,
               '--optimizer=momentum', '--momentum=%g' % MOMENTUM,
               '--learning_rate=%g' % LEARNING_RATE, '--learning_rate_decay_type=fixed',
               '--weight_decay=0', '--num_readers=%d' % NUM_READERS,
               '--num_preprocessing_threads=%d' % NUM_PREPROCESSING_THREADS,
               '--save_interval_secs=86400', '--save_summaries_secs=86400']
    load_before = os.getloadavg()[0]
    _, peak_rss_mb = run_job(command, on_line)
    return TrainRun('ours', plan.model_name, precision, windows, plan.warmup_windows,
                    peak_rss_mb, (load_before, os.getloadavg()[0]))


def train_keras(plan: NetPlan, precision: str, dataset_dir: str) -> TrainRun:
    command = [sys.executable, os.path.join(BENCHMARKS, 'keras_jobs.py'),
               '--model_name=' + plan.model_name, '--dataset_name=' + plan.dataset_name,
               '--dataset_dir=' + dataset_dir, '--batch_size=%d' % plan.batch_size,
               '--image_size=%d' % _image_size(plan), '--steps=%d' % plan.steps,
               '--log_every=%d' % plan.log_every, '--precision=' + precision,
               '--learning_rate=%g' % LEARNING_RATE, '--momentum=%g' % MOMENTUM]
    load_before = os.getloadavg()[0]
    lines, peak_rss_mb = run_job(command)
    return TrainRun('keras', plan.model_name, precision, _json_line(lines)['windows'],
                    plan.warmup_windows, peak_rss_mb, (load_before, os.getloadavg()[0]))


def measure_inference(plan: NetPlan, precision: str, checkpoint: str, dataset_dir: str,
                      work_dir: str) -> dict:
    command = [sys.executable, os.path.join(BENCHMARKS, 'inference_jobs.py'),
               '--model_name=' + plan.model_name, '--checkpoint=' + checkpoint,
               '--dataset_name=' + plan.dataset_name, '--dataset_dir=' + dataset_dir,
               '--split=' + plan.eval_split, '--batch_size=%d' % plan.eval_batch_size,
               '--num_batches=%d' % plan.eval_batches, '--work_dir=' + work_dir,
               '--precision=' + precision]
    lines, _ = run_job(command)
    return _json_line(lines)


def pipeline_images_per_sec(plan: NetPlan, dataset_dir: str, min_seconds: float) -> float:
    """Our trainer's input pipeline alone (same call, same threads), in images/sec."""
    with tf.Graph().as_default() as graph:
        dataset = dataset_factory.get_dataset(plan.dataset_name, 'train', dataset_dir)
        batches = training_batches(dataset, plan.model_name, _image_size(plan),
                                           plan.batch_size, num_readers=NUM_READERS,
                                           num_parallel_calls=NUM_PREPROCESSING_THREADS)
        images, labels = input_pipeline.one_shot_batch(batches)
        # A small fetch: the iterator still makes whole batches, but none is copied out.
        consumed = tf.reduce_sum(images[:, 0, 0, 0]) + tf.cast(tf.reduce_sum(labels), tf.float32)
    with tf.Session(graph=graph, config=session_config.make_session_config()) as session:
        for _ in range(3):
            session.run(consumed)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            session.run(consumed)
            steps += 1
        return steps * plan.batch_size / (time.perf_counter() - start)


def tf_data_against_queues(dataset_dir: str, rounds: int, num_batches: int) -> dict:
    """bench_input_pipeline's comparison: Inception training input at 299 from JPEG records."""
    dataset = dataset_factory.get_dataset('photos', 'train', dataset_dir)
    threads = os.cpu_count()
    batch_size = 32
    sides = {}
    for name, build in (('tf.data', bench_input_pipeline.tf_data_batches),
                        ('queues', bench_input_pipeline.queue_batches)):
        graph = tf.Graph()
        with graph.as_default():
            sides[name] = (graph, build(dataset, batch_size, 299, threads))
    results = {name: {'images_per_sec': 0.0, 'cpu_ms_per_image': float('inf')} for name in sides}
    for _ in range(rounds):
        for name, (graph, batch) in sides.items():
            rate, cpu_cost = bench_input_pipeline.measure(graph, batch, batch_size, threads,
                                                          warmup=3, num_batches=num_batches)
            results[name]['images_per_sec'] = max(results[name]['images_per_sec'], rate)
            results[name]['cpu_ms_per_image'] = min(results[name]['cpu_ms_per_image'], cpu_cost)
    return results


def _image_size(plan: NetPlan) -> int:
    return nets_factory.get_network_spec(plan.model_name).default_image_size


@dataclasses.dataclass(frozen=True)
class ForwardFlops:
    """Float operations of one image's forward pass on each side, from the profiler."""
    ours: int
    keras: int


def forward_flops(plan: NetPlan, num_classes: int) -> ForwardFlops:
    size = _image_size(plan)
    channels = nets_factory.get_network_spec(plan.model_name).num_channels
    return ForwardFlops(
        compute.forward_flops_per_image(plan.model_name, num_classes, size),
        bench_nets.keras_forward_flops_per_image(plan.model_name, (size, size, channels),
                                                 num_classes))


def scale_steps(plan: NetPlan, scale: float) -> NetPlan:
    """The plan with `scale` times its training steps and evaluation batches.

    Whole windows only, and at least one steady window after the warm-up ones.
    """
    windows = max(plan.warmup_windows + 1, round(scale * plan.steps / plan.log_every))
    return dataclasses.replace(plan, steps=windows * plan.log_every,
                               eval_batches=max(1, round(scale * plan.eval_batches)))


def prepare_data(plans: list[NetPlan], work_dir: str) -> dict[str, str]:
    """Writes the records the plans need; returns dataset name -> directory."""
    directories = {}
    if any(plan.dataset_name == 'digits' for plan in plans):
        directories['digits'] = os.path.join(work_dir, 'digits')
        run_job([sys.executable, os.path.join(REPO, 'download_and_convert_data.py'),
                 '--dataset_name=digits', '--dataset_dir=' + directories['digits']])
    directories['photos'] = os.path.join(work_dir, 'photos')
    os.makedirs(directories['photos'])
    bench_input_pipeline.write_photo_records(directories['photos'], PHOTO_RECORDS,
                                             PHOTO_SHARDS, seed=0)
    return directories


@dataclasses.dataclass
class Row:
    """One line of the table: a measurement of ours against a reference."""
    net: str
    precision: str
    measurement: str
    ours: float | None
    reference: float | None  # None where the measurement is itself a ratio
    ratio: float | None  # None where the measurement failed
    goal: str = ''
    met: bool | None = None

    def cells(self) -> list[str]:
        met = '' if self.met is None else ('yes' if self.met else 'NO')
        return [self.net, self.precision, self.measurement, _number(self.ours, '%.4g'),
                _number(self.reference, '%.4g'), _number(self.ratio, '%.2fx'), self.goal, met]


def _number(value: float | None, fmt: str) -> str:
    return '-' if value is None else fmt % value


def _goal_cells(goal: float | None, ratio: float, fmt: str = '>= %.1fx'
                ) -> tuple[str, bool | None]:
    """The goal and met cells of a ratio that should reach `goal`; blank without one."""
    if goal is None:
        return '', None
    return fmt % goal, ratio >= goal


def flops_row(net: str, flops: ForwardFlops) -> Row:
    return Row(net, '-', 'forward GFLOP/image (profiler): ours / keras', flops.ours / 1e9,
               flops.keras / 1e9, flops.ours / flops.keras)


def training_rows(plan: NetPlan, ours: TrainRun, keras: TrainRun, flops: ForwardFlops,
                  peak: compute.Peak) -> list[Row]:
    net, precision = ours.model_name, ours.precision
    speed = ours.images_per_sec / keras.images_per_sec
    cpu_saving = keras.cpu_ms_per_image / ours.cpu_ms_per_image
    memory = ours.peak_rss_mb / keras.peak_rss_mb
    flops_per_image = compute.TRAINING_TO_FORWARD_FLOPS * flops.ours
    achieved = flops_per_image * ours.images_per_sec / 1e9
    keras_achieved = compute.TRAINING_TO_FORWARD_FLOPS * flops.keras * keras.images_per_sec / 1e9
    # A CPU second of the step against a CPU second of the multiply: the
    # share of the machine's reach the step uses while it holds the cores.
    achieved_per_cpu = flops_per_image / (ours.cpu_ms_per_image / 1000.0) / 1e9
    share = achieved / peak.gflops
    cpu_share = achieved_per_cpu / peak.gflops_per_cpu_second
    speed_goal = plan.speed_goal(precision)
    peak_goal = plan.peak_goal if precision == 'float32' else None
    return [
        Row(net, precision, 'train images/sec: ours / keras fit()', ours.images_per_sec,
            keras.images_per_sec, speed, *_goal_cells(speed_goal, speed)),
        Row(net, precision, 'train best window images/sec: ours / keras',
            ours.best_window_images_per_sec, keras.best_window_images_per_sec,
            ours.best_window_images_per_sec / keras.best_window_images_per_sec),
        Row(net, precision, 'train CPU ms/image: keras / ours', ours.cpu_ms_per_image,
            keras.cpu_ms_per_image, cpu_saving, *_goal_cells(speed_goal, cpu_saving)),
        Row(net, precision, 'train GFLOP/s (profiler x %d): ours / keras'
            % compute.TRAINING_TO_FORWARD_FLOPS, achieved, keras_achieved,
            achieved / keras_achieved),
        Row(net, precision, 'train peak RSS MB: ours / keras', ours.peak_rss_mb,
            keras.peak_rss_mb, memory, '<= %.1fx' % MEMORY_GOAL, memory <= MEMORY_GOAL),
        Row(net, precision, 'train GFLOP/s / %s matmul GFLOP/s' % peak.precision, achieved,
            peak.gflops, share, *_goal_cells(peak_goal, share, '>= %.2fx')),
        Row(net, precision, 'train GFLOP per CPU-s / matmul\'s', achieved_per_cpu,
            peak.gflops_per_cpu_second, cpu_share, *_goal_cells(peak_goal, cpu_share,
                                                                 '>= %.2fx')),
    ]


def precision_rows(plan: NetPlan, runs: dict[tuple[str, str], TrainRun]) -> list[Row]:
    """bf16 against float32, for each side."""
    net = plan.model_name
    rows = []
    for side, goal in (('ours', plan.bf16_speed_up_goal), ('keras', None)):
        fast, slow = runs[side, 'bf16'], runs[side, 'float32']
        speed_up = fast.images_per_sec / slow.images_per_sec
        cpu_speed_up = slow.cpu_ms_per_image / fast.cpu_ms_per_image
        rows += [
            Row(net, 'bf16', '%s bf16 / float32 images/sec' % side, fast.images_per_sec,
                slow.images_per_sec, speed_up, *_goal_cells(goal, speed_up)),
            Row(net, 'bf16', '%s float32 / bf16 CPU ms/image' % side, fast.cpu_ms_per_image,
                slow.cpu_ms_per_image, cpu_speed_up, *_goal_cells(goal, cpu_speed_up)),
        ]
    return rows


def inference_rows(plan: NetPlan, precision: str, rates: dict) -> list[Row]:
    goal = plan.speed_goal(precision) if plan.inference_goal else None
    rows = []
    for kind, measurement in (('evaluation', 'eval images/sec: ours / keras evaluate()'),
                              ('inference', 'frozen graph images/sec: ours / keras predict()')):
        ours, keras = rates[kind]['ours'], rates[kind]['keras']
        rows.append(Row(plan.model_name, precision, measurement, ours, keras, ours / keras,
                        *_goal_cells(goal, ours / keras)))
    return rows


def print_table(rows: list[Row]) -> None:
    common.print_table(['net', 'precision', 'measurement', 'ours', 'reference', 'ratio',
                        'goal', 'met'], [row.cells() for row in rows])


def train_both_sides(plan: NetPlan, precisions: list[str], rounds: int, dataset_dir: str,
                     work_dir: str) -> tuple[dict[tuple[str, str], TrainRun], list[TrainRun], str]:
    """Trains each side `rounds` times per precision, alternating which side goes first.

    Returns:
      (the fastest run of each (side, precision), every run, a checkpoint of
      our first run).
    """
    best, every = {}, []
    checkpoint = None
    schedule = [(precision, round_index) for precision in precisions
                for round_index in range(rounds)]
    for index, (precision, round_index) in enumerate(schedule):
        for side in ('ours', 'keras') if index % 2 == 0 else ('keras', 'ours'):
            if side == 'ours':
                train_dir = os.path.join(work_dir, 'train_%s_%s_%d' % (
                    plan.model_name, precision, round_index))
                run = train_ours(plan, precision, dataset_dir, train_dir)
                checkpoint = checkpoint or tf.train.latest_checkpoint(train_dir)
            else:
                run = train_keras(plan, precision, dataset_dir)
            _log('%s %s %s: %.2f images/sec, %.1f CPU ms/image, %.0f MB' % (
                plan.model_name, precision, side, run.images_per_sec, run.cpu_ms_per_image,
                run.peak_rss_mb))
            every.append(run)
            if (side, precision) not in best or (run.images_per_sec
                                                 > best[side, precision].images_per_sec):
                best[side, precision] = run
    return best, every, checkpoint


def run_suite(plans: list[NetPlan], precisions: list[str], rounds: int, work_dir: str,
              quick: bool, companions: list[str]) -> dict:
    """Runs every measurement; returns the JSON report."""
    started = time.time()
    load_at_start = os.getloadavg()
    peaks = {precision: compute.matmul_peak(precision, min_seconds=1.0 if quick else 2.0)
             for precision in ('float32', 'bf16')}
    _log('matmul peak: %s' % ', '.join('%s %.0f GFLOP/s' % (p, peak.gflops)
                                       for p, peak in peaks.items()))
    directories = prepare_data(plans, work_dir)
    rows, runs_report, flops_report = [], [], {}
    for plan in plans:
        dataset_dir = directories[plan.dataset_name]
        num_classes = dataset_factory.get_dataset(plan.dataset_name, 'train',
                                                  dataset_dir).num_classes
        flops = forward_flops(plan, num_classes)
        flops_report[plan.model_name] = dataclasses.asdict(flops)
        _log('%s forward GFLOP/image: ours %.3f, keras %.3f' % (
            plan.model_name, flops.ours / 1e9, flops.keras / 1e9))
        rows.append(flops_row(plan.model_name, flops))
        runs, all_runs, checkpoint = train_both_sides(plan, precisions, rounds, dataset_dir,
                                                      work_dir)
        for precision in precisions:
            rows += training_rows(plan, runs['ours', precision], runs['keras', precision],
                                  flops, peaks[precision])
        if {'float32', 'bf16'} <= set(precisions):
            rows += precision_rows(plan, runs)
        fastest = max(run.images_per_sec for (side, _), run in runs.items() if side == 'ours')
        pipeline = pipeline_images_per_sec(plan, dataset_dir, min_seconds=3.0)
        rows.append(Row(plan.model_name, 'float32', 'pipeline / training images/sec', pipeline,
                        fastest, pipeline / fastest, '>= %.0fx' % PIPELINE_GOAL,
                        pipeline / fastest >= PIPELINE_GOAL))
        for precision in precisions:
            rates = measure_inference(plan, precision, checkpoint, dataset_dir, os.path.join(
                work_dir, 'inference_%s_%s' % (plan.model_name, precision)))
            rows += inference_rows(plan, precision, rates)
        _log('%s: evaluation and inference measured' % plan.model_name)
        runs_report += [dataclasses.asdict(run) for run in all_runs]
    queues = tf_data_against_queues(directories['photos'], rounds=1 if quick else 2,
                                    num_batches=4 if quick else 10)
    rows += _queue_rows(queues)
    rows += [Row('-', peak.precision, 'matmul %d GFLOP/s (wall; per CPU-s)' % peak.size,
                 peak.gflops, peak.gflops_per_cpu_second,
                 peak.gflops / peak.gflops_per_cpu_second) for peak in peaks.values()]
    companion_rows, companion_reports, failures = run_companions(companions, quick,
                                                                 directories, work_dir)
    rows += companion_rows
    return {
        'machine': {'cpu': _cpu_model(), 'cores': os.cpu_count(),
                    'load_average_at_start': load_at_start,
                    'load_average_at_end': os.getloadavg()},
        'settings': {'plans': [dataclasses.asdict(plan) for plan in plans],
                     'precisions': precisions, 'rounds': rounds, 'quick': quick,
                     'companions': {name: [COMPANIONS[name].script, *(
                         COMPANIONS[name].quick_arguments if quick
                         else COMPANIONS[name].arguments)] for name in companions},
                     'learning_rate': LEARNING_RATE,
                     'momentum': MOMENTUM, 'num_readers': NUM_READERS,
                     'num_preprocessing_threads': NUM_PREPROCESSING_THREADS,
                     'flops': 'tf.compat.v1.profiler float_operation of the forward graph '
                              '(ours: built for training; keras: the model traced with '
                              'training=True) x %d' % compute.TRAINING_TO_FORWARD_FLOPS},
        'peaks': {name: dataclasses.asdict(peak) for name, peak in peaks.items()},
        'forward_flops_per_image': flops_report,
        'rows': [dataclasses.asdict(row) for row in rows],
        'training_runs': runs_report,
        'input_pipelines': queues,
        'companions': companion_reports,
        'failures': failures,
        'seconds': time.time() - started,
    }


def run_companions(names: list[str], quick: bool, directories: dict[str, str],
                   work_dir: str) -> tuple[list[Row], dict, list[str]]:
    """Runs each named companion benchmark; returns (its rows, its reports, its failures).

    A companion that fails is logged and recorded; the rest of the suite stands.
    """
    rows, reports, failures = [], {}, []
    for name in names:
        companion = COMPANIONS[name]
        output = os.path.join(work_dir, '%s.json' % name)
        command = [sys.executable, os.path.join(BENCHMARKS, companion.script),
                   '--output=' + output, '--work_dir=' + os.path.join(work_dir, name),
                   *(companion.quick_arguments if quick else companion.arguments)]
        if companion.reads_digits and 'digits' in directories:
            command.append('--dataset_dir=' + directories['digits'])
        try:
            run_job(command)
        except BenchmarkError as error:
            _log('%s failed: %s' % (companion.script, error))
            failures.append('%s: %s' % (companion.script, str(error).splitlines()[0]))
            continue
        with open(output) as report_file:
            reports[name] = json.load(report_file)
        rows += COMPANION_ROWS[name](reports[name])
        failures += ['%s: %s' % (companion.script, failure)
                     for failure in reports[name].get('failures', [])]
        _log('%s measured' % companion.script)
    return rows, reports, failures


def deploy_rows(report: dict) -> list[Row]:
    """bench_deploy.py's goals; each measurement is itself a ratio (or points of accuracy)."""
    return [Row(goal['net'], '-', 'deploy: %s%s' % (goal['goal'], ', ' + goal['setting']
                                                   if goal['setting'] else ''),
                goal['measured'], None, goal['measured'], goal['target'], goal['met'])
            for goal in report['goals']]


def train_eval_rows(report: dict) -> list[Row]:
    """bench_train_eval.py: an in-training evaluation against the standalone pass."""
    summary = report['summary']
    every = report['settings']['eval_every']
    cost = summary['cost_per_evaluation_seconds']
    return [
        Row('lenet', 'float32', 'train images/sec: evaluating every %d steps / not' % every,
            summary['evaluating_images_per_sec'], summary['plain_images_per_sec'],
            summary['evaluating_images_per_sec'] / summary['plain_images_per_sec']),
        Row('lenet', 'float32', 'in-training eval ms each / standalone warm pass ms',
            1000 * cost, 1000 * summary['standalone_warm_seconds'],
            summary['cost_over_warm_pass'], '<= %.1fx' % summary['goal']['target'],
            summary['goal']['met']),
        Row('lenet', 'float32', 'in-training eval CPU ms each / warm pass CPU ms',
            1000 * summary['cost_per_evaluation_cpu_seconds'],
            1000 * summary['standalone_warm_cpu_seconds'], summary['cost_over_warm_pass_cpu'],
            '<= %.1fx' % summary['goal']['target'], summary['goal']['cpu_met']),
        Row('lenet', 'float32', 'in-training eval ms each / standalone cold evaluate() ms',
            1000 * cost, 1000 * summary['standalone_cold_seconds'],
            summary['cost_over_cold_pass']),
    ]


def repeated_eval_rows(report: dict) -> list[Row]:
    """bench_repeated_eval.py: each of our settings against Keras, per pass."""
    *ours, keras = report['rows']
    rows = []
    for index, row in enumerate(ours):
        goal = report['goal'] if index == 0 else None
        rows += [
            Row('lenet', 'float32', 'repeated eval images/sec: %s / keras' % row['side'],
                row['images_per_sec'], keras['images_per_sec'], row['over_keras'],
                '>= %.1fx' % goal['target'] if goal else '', goal['met'] if goal else None),
            Row('lenet', 'float32', 'repeated eval CPU ms/pass: keras / %s' % row['side'],
                row['median_cpu_ms_per_pass'], keras['median_cpu_ms_per_pass'],
                row['keras_cpu_over_ours'], '>= %.1fx' % goal['target'] if goal else '',
                goal['cpu_met'] if goal else None)]
    return rows


def batch_prediction_rows(report: dict) -> list[Row]:
    """bench_batch_prediction.py: decoding beside a TFLite/ONNX model against in its thread."""
    return [Row('lenet', 'float32' if 'int8' not in row['kind'] else 'int8',
                "batch prediction images/sec, %s batch %d: decoding beside / in the model's "
                'thread' % (row['kind'], row['batch']), row['beside'],
                row["in the model's thread"], row['beside'] / row["in the model's thread"])
            for row in report['rows']]


COMPANION_ROWS = {'deploy': deploy_rows, 'train_eval': train_eval_rows,
                  'repeated_eval': repeated_eval_rows, 'batch_prediction': batch_prediction_rows}


def _queue_rows(queues: dict) -> list[Row]:
    ours, original = queues['tf.data'], queues['queues']
    speed = ours['images_per_sec'] / original['images_per_sec']
    saving = original['cpu_ms_per_image'] / ours['cpu_ms_per_image']
    goal = '>= %.0fx' % QUEUES_GOAL
    return [
        Row('inception', 'float32', 'JPEG input images/sec: tf.data / queues',
            ours['images_per_sec'], original['images_per_sec'], speed, goal,
            speed >= QUEUES_GOAL),
        Row('inception', 'float32', 'JPEG input CPU ms/image: queues / tf.data',
            ours['cpu_ms_per_image'], original['cpu_ms_per_image'], saving, goal,
            saving >= QUEUES_GOAL),
    ]


def _cpu_model() -> str:
    with open('/proc/cpuinfo') as cpuinfo:
        for line in cpuinfo:
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return 'unknown'


def _log(message: str) -> None:
    print('[%s] %s' % (time.strftime('%H:%M:%S'), message), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='a short smoke run: LeNet only, the companions at their smallest '
                             'size, reported to its own file')
    parser.add_argument('--nets', nargs='+', choices=sorted(PLANS), default=None,
                        help='nets to run; all by default (lenet alone with --quick)')
    parser.add_argument('--precisions', nargs='+', choices=list(compute.DTYPES),
                        default=list(compute.DTYPES))
    parser.add_argument('--rounds', type=int, default=1,
                        help='training runs of each side per net and precision; the fastest '
                             'is kept (a shared machine is noisy)')
    parser.add_argument('--steps_scale', type=float, default=1.0,
                        help="multiplies each plan's training steps (whole windows, at least "
                             'one after the warm-up) and evaluation batches; below 1 for a '
                             'smoke run')
    parser.add_argument('--companions', nargs='*', choices=list(COMPANIONS),
                        default=list(COMPANIONS),
                        help='the other benchmarks the suite runs and reports: bench_deploy.py, '
                             'bench_train_eval.py and bench_repeated_eval.py, at their smallest '
                             'size with --quick; all by default, none with the flag alone')
    parser.add_argument('--output', default=None,
                        help='where the JSON report goes; by default %s, or %s with --quick '
                             '(a quick run never replaces the full report)'
                             % (os.path.relpath(DEFAULT_OUTPUT, REPO),
                                os.path.relpath(QUICK_OUTPUT, REPO)))
    parser.add_argument('--work_dir', default=None,
                        help='where records, checkpoints and exports go; a temporary '
                             'directory, removed at the end, if unset')
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT
    if args.rounds < 1:
        parser.error('--rounds must be >= 1; got %d' % args.rounds)
    if args.steps_scale <= 0:
        parser.error('--steps_scale must be > 0; got %g' % args.steps_scale)
    return args


def main() -> None:
    args = parse_args()
    plans = QUICK_PLANS if args.quick else PLANS
    names = args.nets or list(plans)
    selected = [scale_steps(plans.get(name) or PLANS[name], args.steps_scale)
                for name in names]
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = args.work_dir or temporary
        os.makedirs(work_dir, exist_ok=True)
        report = run_suite(selected, args.precisions, args.rounds, work_dir, args.quick,
                           args.companions)
    print_table([Row(**row) for row in report['rows']])
    for failure in report['failures']:
        print('FAILED: ' + failure)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, 'w') as output:
        json.dump(report, output, indent=1)
    print('\n%s; load average %s at the start, %s at the end; %.0f s. Report: %s' % (
        report['machine']['cpu'], _loads(report['machine']['load_average_at_start']),
        _loads(report['machine']['load_average_at_end']), report['seconds'], args.output))


def _loads(loads) -> str:
    return '/'.join('%.1f' % load for load in loads)


if __name__ == '__main__':
    main()
