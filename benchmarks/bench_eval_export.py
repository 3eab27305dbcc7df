"""Evaluation throughput and exported-model latency against Keras 3 on the same net.

Evaluation: `evaluation.evaluator` (one pass over a split: restore, input
pipeline, net, confusion matrix, metrics.json, summaries) against Keras
`evaluate()` of the same architecture on the same batches from the same
records and input pipeline, in images/sec. Latency: the frozen GraphDef
(Session.run) and the SavedModel (`tf.saved_model.load`, `images` signature)
against Keras `predict()` and a plain Keras call, median milliseconds per
batch. Weights are random: speed does not depend on them. Measurements
alternate sides in one process, with the same thread pools.

    python benchmarks/bench_eval_export.py --dataset_dir=/tmp/digits
    python benchmarks/bench_eval_export.py --dataset_dir=/tmp/digits --nets inception_v3 \\
        --batch_size=8 --max_num_batches=4 --latency_batches 1 8
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import common  # noqa: F401  (sets sys.path and logging first)
import keras
import tensorflow as tf

from bench_nets import keras_model
from datasets import dataset_factory
from slim_classifier.evaluation import evaluator
from slim_classifier.runtime.batches import evaluation_batches
from slim_classifier.serving import exporter
from nets import nets_factory

tf1 = tf.compat.v1
NUM_CLASSES = 10


def random_checkpoint(name, directory):
    """Saves the net with random weights; returns the checkpoint path."""
    spec = nets_factory.get_network_spec(name)
    size = spec.default_image_size
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn(name, NUM_CLASSES)
        network_fn(tf1.placeholder(tf.float32, [1, size, size, spec.num_channels]))
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(session, os.path.join(directory, 'model.ckpt'))


def keras_classifier(name):
    spec = nets_factory.get_network_spec(name)
    size = spec.default_image_size
    model = keras_model(name, (size, size, spec.num_channels), NUM_CLASSES)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['sparse_categorical_accuracy',
                           keras.metrics.SparseTopKCategoricalAccuracy(k=5)])
    return model


def keras_batches(name, args):
    """The evaluator's batches, from the same records through the same pipeline."""
    dataset = dataset_factory.get_dataset(args.dataset_name, args.split, args.dataset_dir)
    batches = evaluation_batches(dataset, name,
                                 nets_factory.get_network_spec(name).default_image_size,
                                 args.batch_size, num_readers=2)
    if args.max_num_batches:
        batches = batches.take(args.max_num_batches)
    return batches


def evaluation_rates(name, checkpoint, args, threads):
    """{'ours': images/sec, 'keras': images/sec}, the best of `args.repeats` passes each."""
    config = evaluator.EvalConfig(
        checkpoint_path=checkpoint, eval_dir=os.path.join(os.path.dirname(checkpoint), 'eval'),
        dataset_dir=args.dataset_dir, dataset_name=args.dataset_name,
        dataset_split_name=args.split, model_name=name, batch_size=args.batch_size,
        max_num_batches=args.max_num_batches, num_readers=2,
        session_config=common.session_config(*threads))
    model = keras_classifier(name)
    batches = keras_batches(name, args)
    rates = {'ours': 0.0, 'keras': 0.0}
    with evaluator.Evaluator(config) as ours:
        num_examples = ours.evaluate(checkpoint)['num_examples']  # warm-up
        model.evaluate(batches, verbose=0)  # warm-up: traces the test function
        for _ in range(args.repeats):
            start = time.perf_counter()
            ours.evaluate(checkpoint)
            rates['ours'] = max(rates['ours'], num_examples / (time.perf_counter() - start))
            start = time.perf_counter()
            model.evaluate(batches, verbose=0)
            rates['keras'] = max(rates['keras'], num_examples / (time.perf_counter() - start))
    return rates


def median_ms(call, warmup, steps):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def latency_runners(name, checkpoint, directory, threads):
    """{method: fn(images) -> probabilities} for the exports and the Keras model."""
    graph_path = os.path.join(directory, 'frozen.pb')
    saved_model_path = os.path.join(directory, 'saved_model')
    names = [str(i) for i in range(NUM_CLASSES)]
    exporter.export(exporter.ExportConfig(model_name=name, output_file=graph_path,
                                          class_names=names, checkpoint_path=checkpoint))
    exporter.export(exporter.ExportConfig(model_name=name, output_file=saved_model_path, class_names=names,
                                          export_format='saved_model',
                                          checkpoint_path=checkpoint))
    graph_def = tf1.GraphDef()
    with open(graph_path, 'rb') as graph_file:
        graph_def.ParseFromString(graph_file.read())
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name='')
    session = tf1.Session(graph=graph, config=common.session_config(*threads))
    signature = tf.saved_model.load(saved_model_path).signatures[exporter.IMAGES_SIGNATURE]
    model = keras_classifier(name)
    return {
        'frozen graph': lambda x: session.run('output:0', {'input:0': x}),
        'SavedModel': lambda x: signature(images=tf.constant(x))['probabilities'],
        'keras predict()': lambda x: model.predict(x, verbose=0),
        'keras call': lambda x: model(x, training=False),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset_dir', required=True,
                        help='a converted dataset, e.g. from download_and_convert_data.py '
                             '--dataset_name=digits')
    parser.add_argument('--dataset_name', default='digits')
    parser.add_argument('--split', default='train')
    parser.add_argument('--nets', nargs='+', default=['lenet'])
    parser.add_argument('--batch_size', type=int, default=32)
    parser.add_argument('--max_num_batches', type=int, default=None)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--latency_batches', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--latency_steps', type=int, default=20)
    parser.add_argument('--intra_op_threads', type=int, default=2)
    parser.add_argument('--inter_op_threads', type=int, default=2)
    args = parser.parse_args()
    threads = (args.intra_op_threads, args.inter_op_threads)
    common.configure_threads(*threads)
    eval_rows, latency_rows = [], []
    for name in args.nets:
        with tempfile.TemporaryDirectory() as directory:
            checkpoint = random_checkpoint(name, directory)
            rates = evaluation_rates(name, checkpoint, args, threads)
            eval_rows.append([name, args.batch_size, rates['ours'], rates['keras'],
                              rates['ours'] / rates['keras']])
            runners = latency_runners(name, checkpoint, directory, threads)
            spec = nets_factory.get_network_spec(name)
            for batch in args.latency_batches:
                images = np.random.RandomState(0).uniform(-1, 1, [
                    batch, spec.default_image_size, spec.default_image_size,
                    spec.num_channels]).astype(np.float32)
                latency_rows.append([name, batch] + [
                    median_ms(lambda run=run: run(images), 3, args.latency_steps)
                    for run in runners.values()])
        print('measured', name, flush=True)
    print('\nEvaluation, images/sec (one pass, best of %d)' % args.repeats)
    common.print_table(['net', 'batch', 'eval_image_classifier', 'keras evaluate()', 'ratio'],
                       eval_rows)
    print('\nLatency, median ms per batch')
    common.print_table(['net', 'batch', *runners], latency_rows)


if __name__ == '__main__':
    main()
