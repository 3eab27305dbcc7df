"""Repeated evaluation in one process, ours against Keras 3 `evaluate()` called again and again.

Pass after pass over the same split (by default the whole digits test split,
359 images, LeNet, batch 100), each pass on other weights:

* ours: one `evaluation.evaluator.Evaluator`, its graph, session and input
  pipeline built once, then `evaluate(checkpoint)` of the next of
  `--checkpoints` checkpoints: the checkpoint checked and restored, the
  pipeline's iterator restarted, the pass, every metric of
  `metrics.evaluation_summary`, and metrics.json, the pictures and the
  TensorBoard summary written. That is what eval_image_classifier.py does for
  each checkpoint in its loop mode (`evaluate_new_checkpoints`) and the
  trainer for each `--eval_every_n_steps` evaluation. Three settings:
  eval_image_classifier.py's defaults (the 36 most confident mistakes drawn),
  the in-training evaluation's (no mistakes drawn), and `measure()`, the same
  pass without writing anything;
* Keras: one compiled model (loss, accuracy and top-5 accuracy), then per
  pass `load_weights` of the next of as many .weights.h5 files, and
  `evaluate()` on the same records through the same tf.data pipeline and
  preprocessing (`evaluation_batches`), which starts a new iterator on every
  call.

The sides alternate pass by pass, so a slow spell of the shared machine hits
both; the first pass of each (graph building, tracing) is left out and timed
on its own; the steady passes give medians, in wall-clock time and in the
process's CPU time (all threads), which holds far steadier on a shared
machine. Where our time per pass goes (restore, the pipeline restarted and
run with the net, the metrics, the writing) is measured on our passes by
wrapping those functions (`call_timer.py`); the input pipeline alone, on
copies of it, restarted each pass (the evaluator's way) against kept across
passes (one iterator over the batches and an end-of-pass batch, repeated: see
`pipeline_passes_ms`). Weights are random: speed does not depend on them.

    python benchmarks/bench_repeated_eval.py
    python benchmarks/bench_repeated_eval.py --dataset_dir=/tmp/digits --passes 20
"""

import argparse
import dataclasses
import os
import statistics
import tempfile
import time

import numpy as np

import common  # sets sys.path and logging first
import keras
import tensorflow as tf

from bench_nets import keras_model
from call_timer import CallTimer
from datasets import dataset_factory, input_pipeline
from nets import nets_factory
from slim_classifier.evaluation import evaluator, metrics
from slim_classifier.runtime import checkpoints, session_config
from slim_classifier.runtime.batches import evaluation_batches

tf1 = tf.compat.v1
BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(BENCHMARKS, 'results', 'bench_repeated_eval.json')
# eval_image_classifier.py's defaults, which Keras's pipeline gets too.
NUM_READERS = 4
NUM_PREPROCESSING_THREADS = 4
TOP_K = 5
# Our settings: label -> (what differs from eval_image_classifier.py's defaults, whether the
# results are written).
OUR_SETTINGS = {
    'ours evaluate() (eval_image_classifier defaults)': ({}, True),
    'ours evaluate() (in-training settings: no mistakes drawn)': ({'num_mistakes_shown': 0},
                                                                   True),
    'ours measure() (nothing written)': ({'num_mistakes_shown': 0}, False),
}
KERAS = 'keras load_weights() + evaluate()'
# Where a pass of ours spends its time.
PROFILED = {
    'restore (check + Saver.restore)': (checkpoints.CheckpointRestorer, 'restore'),
    'global step read': (checkpoints, 'checkpoint_global_step'),
    'pipeline restart + pass': (evaluator.Evaluator, '_one_pass'),
    'metrics (evaluation_summary)': (metrics, 'evaluation_summary'),
    'writing (metrics.json, pictures, events)': (evaluator.ResultWriter, 'write'),
}


@dataclasses.dataclass
class Side:
    """One side's passes: `run(index)` does pass `index` and returns the examples it saw."""
    label: str
    run: object
    seconds: list = dataclasses.field(default_factory=list)
    cpu_seconds: list = dataclasses.field(default_factory=list)
    first_pass_seconds: float = 0.0
    examples: int = 0


def our_checkpoints(model_name: str, num_classes: int, count: int, directory: str
                    ) -> list[str]:
    """`count` checkpoints of the net, each with other random weights, as training names them."""
    spec = nets_factory.get_network_spec(model_name)
    size = spec.default_image_size
    paths = []
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn(model_name, num_classes)
        network_fn(tf1.placeholder(tf.float32, [1, size, size, spec.num_channels]))
        saver = tf1.train.Saver()
        with tf1.Session() as session:
            for step in range(1, count + 1):
                session.run(tf1.global_variables_initializer())
                paths.append(saver.save(session, os.path.join(directory, 'model.ckpt'),
                                        global_step=step))
    return paths


def keras_side(model_name: str, num_classes: int, batches: tf.data.Dataset, count: int,
               directory: str) -> Side:
    """The compiled Keras model and `count` weight files of it, random weights each."""
    spec = nets_factory.get_network_spec(model_name)
    size = spec.default_image_size
    model = keras_model(model_name, (size, size, spec.num_channels), num_classes)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['sparse_categorical_accuracy',
                           keras.metrics.SparseTopKCategoricalAccuracy(
                               k=min(TOP_K, num_classes))])
    random = np.random.RandomState(0)
    paths = []
    for index in range(count):
        model.set_weights([random.normal(0, 0.05, weight.shape).astype(np.float32)
                           for weight in model.get_weights()])
        paths.append(os.path.join(directory, 'keras_%d.weights.h5' % index))
        model.save_weights(paths[-1])
    num_examples = sum(int(labels.shape[0]) for _, labels in batches)

    def run(index):
        model.load_weights(paths[index % count])
        model.evaluate(batches, verbose=0)
        return num_examples
    return Side(KERAS, run)


def our_config(args: argparse.Namespace, eval_dir: str, **changes) -> evaluator.EvalConfig:
    return evaluator.EvalConfig(
        checkpoint_path=None, eval_dir=eval_dir, dataset_dir=args.dataset_dir,
        dataset_name=args.dataset_name, dataset_split_name=args.split,
        model_name=args.model_name, batch_size=args.batch_size,
        num_readers=NUM_READERS, num_preprocessing_threads=NUM_PREPROCESSING_THREADS,
        session_config=session_config.make_session_config(), **changes)


def pipeline_passes_ms(args: argparse.Namespace, passes: int) -> dict[str, float]:
    """Median ms of one pass of the evaluation pipeline alone (no net), on copies of the
    evaluator's pipeline (the same call and settings), two ways:

    'restarted': the evaluator's way, the iterator's initializer run before each pass, which
    reads until OutOfRangeError; 'initializer' is the initializer's share of it.
    'kept': one iterator over the batches followed by an empty end-of-pass batch, repeated;
    each pass reads until that batch. The split is still read exactly once per pass, but
    the pipeline is never restarted, and it prefetches the next pass while the last runs.
    """
    dataset = dataset_factory.get_dataset(args.dataset_name, args.split, args.dataset_dir)
    size = nets_factory.get_network_spec(args.model_name).default_image_size
    times = {'restarted': [], 'initializer': [], 'kept': []}
    for way in ('restarted', 'kept'):
        with tf.Graph().as_default() as graph:
            batches = evaluation_batches(dataset, args.model_name, size, args.batch_size,
                                         num_readers=NUM_READERS,
                                         num_parallel_calls=NUM_PREPROCESSING_THREADS)
            if way == 'kept':
                batches = _with_end_of_pass(batches).repeat()
                images, labels, end = tf1.data.make_one_shot_iterator(batches).get_next()
                fetch = [tf.reduce_sum(images), labels, end]
            else:
                images, labels, initializer = input_pipeline.initializable_batch(batches)
                fetch = [tf.reduce_sum(images), labels]
        with tf1.Session(graph=graph, config=session_config.make_session_config()) as session:
            for index in range(passes + 1):
                start = time.perf_counter()
                if way == 'restarted':
                    session.run(initializer)
                    initialized = time.perf_counter() - start
                    _read_until(lambda: session.run(fetch))
                else:
                    while not session.run(fetch)[2]:
                        pass
                if index:
                    times[way].append(time.perf_counter() - start)
                    if way == 'restarted':
                        times['initializer'].append(initialized)
    return {name: 1000.0 * statistics.median(values) for name, values in times.items()}


def _with_end_of_pass(batches: tf.data.Dataset) -> tf.data.Dataset:
    """(images, labels, False) of each batch, then an empty batch with True."""
    image_spec, label_spec = batches.element_spec
    empty = tf.data.Dataset.from_tensors((
        tf.zeros([0] + image_spec.shape.as_list()[1:], image_spec.dtype),
        tf.zeros([0], label_spec.dtype), True))
    return batches.map(lambda images, labels: (images, labels, False)).concatenate(empty)


def _read_until(read) -> None:
    try:
        while True:
            read()
    except tf.errors.OutOfRangeError:
        pass


def measure(args: argparse.Namespace, work_dir: str) -> dict:
    """Every side's passes, alternating; returns the report."""
    dataset = dataset_factory.get_dataset(args.dataset_name, args.split, args.dataset_dir)
    num_classes = dataset.num_classes
    checkpoint_paths = our_checkpoints(args.model_name, num_classes, args.checkpoints, work_dir)
    size = nets_factory.get_network_spec(args.model_name).default_image_size
    batches = evaluation_batches(dataset, args.model_name, size, args.batch_size,
                                 num_readers=NUM_READERS,
                                 num_parallel_calls=NUM_PREPROCESSING_THREADS)
    evaluators = {label: evaluator.Evaluator(our_config(
        args, os.path.join(work_dir, 'eval_%d' % index), **changes))
        for index, (label, (changes, _)) in enumerate(OUR_SETTINGS.items())}
    sides = [Side(label, _our_run(evaluators[label], checkpoint_paths, writes))
             for label, (_, writes) in OUR_SETTINGS.items()]
    sides.append(keras_side(args.model_name, num_classes, batches, args.checkpoints, work_dir))
    timer = CallTimer(PROFILED)
    profile = {label: {name: [] for name in PROFILED} for label in OUR_SETTINGS}
    try:
        with timer:
            for index in range(args.passes + 1):
                order = sides if index % 2 == 0 else sides[::-1]
                for side in order:
                    timer.take()
                    start, cpu_start = time.perf_counter(), time.process_time()
                    side.examples = side.run(index)
                    seconds = time.perf_counter() - start
                    if index == 0:
                        side.first_pass_seconds = seconds
                        continue
                    side.seconds.append(seconds)
                    side.cpu_seconds.append(time.process_time() - cpu_start)
                    if side.label in profile:
                        for name, spent in timer.take().items():
                            profile[side.label][name].append(spent)
    finally:
        for ours in evaluators.values():
            ours.__exit__(None, None, None)
    return report(args, sides, profile, pipeline_passes_ms(args, args.passes))


def _our_run(ours: evaluator.Evaluator, checkpoint_paths: list[str], writes: bool):
    def run(index):
        checkpoint = checkpoint_paths[index % len(checkpoint_paths)]
        if writes:
            return ours.evaluate(checkpoint)['num_examples']
        return ours.measure(checkpoint).results['num_examples']
    return run


def report(args: argparse.Namespace, sides: list[Side], profile: dict, pipeline: dict
           ) -> dict:
    keras = sides[-1]
    rows = [{'side': side.label, 'examples': side.examples,
             'median_ms_per_pass': 1000.0 * statistics.median(side.seconds),
             'median_cpu_ms_per_pass': 1000.0 * statistics.median(side.cpu_seconds),
             'first_pass_ms': 1000.0 * side.first_pass_seconds,
             'images_per_sec': _rate(side), 'over_keras': _rate(side) / _rate(keras),
             'keras_cpu_over_ours': (statistics.median(keras.cpu_seconds)
                                     / statistics.median(side.cpu_seconds))}
            for side in sides]
    breakdown = {label: {name: {
        'ms': 1000.0 * statistics.median(spent.seconds for spent in values),
        'cpu_ms': 1000.0 * statistics.median(spent.cpu_seconds for spent in values)}
        for name, values in parts.items()} for label, parts in profile.items()}
    return {'settings': {name: value for name, value in vars(args).items()
                         if name not in ('output', 'work_dir')},
            'rows': rows, 'our_pass_breakdown_ms': breakdown,
            'pipeline_pass_ms': pipeline,
            'goal': {'ratio': rows[0]['over_keras'], 'cpu_ratio': rows[0]['keras_cpu_over_ours'],
                     'target': 1.0, 'met': rows[0]['over_keras'] >= 1.0,
                     'cpu_met': rows[0]['keras_cpu_over_ours'] >= 1.0}}


def _rate(side: Side) -> float:
    return side.examples / statistics.median(side.seconds)


def print_report(result: dict) -> None:
    print('\nRepeated evaluation, %d passes each (medians; first pass apart)'
          % result['settings']['passes'])
    common.print_table(['side', 'examples', 'ms/pass', 'CPU ms/pass', 'first pass ms',
                        'images/sec', 'over keras', 'CPU: keras / ours'],
                       [[row['side'], row['examples'], row['median_ms_per_pass'],
                         row['median_cpu_ms_per_pass'], row['first_pass_ms'],
                         row['images_per_sec'], row['over_keras'], row['keras_cpu_over_ours']]
                        for row in result['rows']])
    print('\nWhere a pass of ours goes, median wall ms / CPU ms (the pass includes the metrics)')
    breakdown = result['our_pass_breakdown_ms']
    common.print_table(['part'] + ['%d' % (index + 1) for index in range(len(breakdown))],
                       [[name] + ['%.1f / %.1f' % (parts[name]['ms'], parts[name]['cpu_ms'])
                                  for parts in breakdown.values()] for name in PROFILED])
    print('(%s)' % '; '.join('%d: %s' % (index + 1, label)
                             for index, label in enumerate(breakdown)))
    pipeline = result['pipeline_pass_ms']
    print('\nThe input pipeline alone, median ms per pass: restarted %.1f (the initializer '
          '%.1f of it), kept across passes %.1f' % (pipeline['restarted'],
                                                    pipeline['initializer'], pipeline['kept']))
    goal = result['goal']
    print('Goal: ours (eval_image_classifier defaults) >= %.1fx Keras: %.2fx images/sec (%s), '
          '%.2fx CPU per pass (%s)' % (goal['target'], goal['ratio'], _met(goal['met']),
                                       goal['cpu_ratio'], _met(goal['cpu_met'])))


def _met(met: bool) -> str:
    return 'met' if met else 'NOT met'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset_dir', default=None,
                        help='converted digits records; converted into the work directory if '
                             'unset')
    parser.add_argument('--dataset_name', default='digits')
    parser.add_argument('--split', default='test')
    parser.add_argument('--model_name', default='lenet', choices=['lenet'])
    parser.add_argument('--batch_size', type=int, default=100)
    parser.add_argument('--checkpoints', type=int, default=4,
                        help='checkpoints (and Keras weight files) evaluated in turn')
    parser.add_argument('--passes', type=int, default=12,
                        help='timed passes of each side, after one untimed')
    parser.add_argument('--output', default=DEFAULT_OUTPUT, help='where the JSON report goes')
    parser.add_argument('--work_dir', default=None,
                        help='where records and checkpoints go; a temporary directory if unset')
    args = parser.parse_args(argv)
    for name in ('batch_size', 'checkpoints', 'passes'):
        if getattr(args, name) < 1:
            parser.error('--%s must be >= 1; got %d' % (name, getattr(args, name)))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started, load_at_start = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = args.work_dir or temporary
        os.makedirs(work_dir, exist_ok=True)
        if args.dataset_dir is None:
            args.dataset_dir = common.convert_digits(os.path.join(work_dir, 'digits'))
        result = measure(args, work_dir)
    print_report(result)
    return common.finish_report(result, args.output, started, load_at_start)


if __name__ == '__main__':
    main()
