"""Evaluation and exported-graph inference of a trained checkpoint, ours against Keras 3.

Evaluation: `evaluation.evaluator` (restore, input pipeline, net, confusion
matrix, metrics.json, summaries) for `--num_batches` batches of a split,
against Keras `evaluate()` of the same architecture on the same batches of
the same records through the same pipeline. Inference: the frozen GraphDef
that `evaluation.exporter` writes, run batch by batch in a Session on
preprocessed images, against Keras `predict()` on the same images. The Keras
weights are random: speed does not depend on them.

`--precision=bf16` runs our evaluator and frozen graph with the oneDNN
bfloat16 rewrite (`--precision=bf16` of eval_image_classifier.py) and builds
the Keras model under the `mixed_bfloat16` policy.

Both sides live in this one process and alternate round by round, so a slow
spell of the shared machine hits both; the best round of each is kept. The
job prints one JSON line of images/sec.

    python benchmarks/inference_jobs.py --model_name=lenet --checkpoint=/tmp/train/model.ckpt-100 \\
        --dataset_name=digits --dataset_dir=/tmp/digits --split=test --batch_size=100 \\
        --num_batches=3 --work_dir=/tmp/inference --precision=bf16
"""

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np

import common  # noqa: F401  (sets sys.path and logging first)
import keras
import tensorflow as tf

from bench_nets import KERAS_POLICIES, keras_model
from datasets import dataset_factory
from slim_classifier.evaluation import evaluator
from slim_classifier.runtime.batches import evaluation_batches
from slim_classifier.serving import exporter
from nets import nets_factory
from slim_classifier.runtime import session_config

tf1 = tf.compat.v1
# The readers and preprocessing threads of eval_image_classifier.py's defaults.
NUM_READERS = 4
NUM_PREPROCESSING_THREADS = 4
TOP_K = 5


def eval_batches(args: argparse.Namespace) -> tf.data.Dataset:
    """The evaluator's batches, built by the same pipeline call."""
    dataset = dataset_factory.get_dataset(args.dataset_name, args.split, args.dataset_dir)
    image_size = nets_factory.get_network_spec(args.model_name).default_image_size
    batches = evaluation_batches(dataset, args.model_name, image_size, args.batch_size,
                                 num_readers=NUM_READERS,
                                 num_parallel_calls=NUM_PREPROCESSING_THREADS)
    return batches.take(args.num_batches)


def keras_classifier(args: argparse.Namespace, num_classes: int) -> keras.Model:
    spec = nets_factory.get_network_spec(args.model_name)
    size = spec.default_image_size
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[args.precision])
    input_shape = (size, size, spec.num_channels)
    model = keras_model(args.model_name, input_shape, num_classes)
    if model.compute_dtype != 'float32':
        # Keras's top-k accuracy takes float32 logits only (in_top_k); a float32
        # output layer is the mixed precision guide's advice anyway.
        images = keras.Input(input_shape)
        logits = keras.layers.Activation('linear', dtype='float32')(model(images))
        model = keras.Model(images, logits)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['sparse_categorical_accuracy',
                           keras.metrics.SparseTopKCategoricalAccuracy(k=min(TOP_K,
                                                                             num_classes))])
    return model


def best_rates(sides: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Images/sec of each side's best round; each call returns the images it handled."""
    for run in sides.values():
        run()  # warm-up: builds functions, fills caches
    rates = dict.fromkeys(sides, 0.0)
    for _ in range(rounds):
        for name, run in sides.items():
            start = time.perf_counter()
            images = run()
            rates[name] = max(rates[name], images / (time.perf_counter() - start))
    return rates


def evaluation_rates(args: argparse.Namespace, model: keras.Model) -> dict[str, float]:
    config = evaluator.EvalConfig(
        checkpoint_path=args.checkpoint, eval_dir=os.path.join(args.work_dir, 'eval'),
        dataset_dir=args.dataset_dir, dataset_name=args.dataset_name,
        dataset_split_name=args.split, model_name=args.model_name,
        batch_size=args.batch_size, max_num_batches=args.num_batches,
        num_readers=NUM_READERS, num_preprocessing_threads=NUM_PREPROCESSING_THREADS,
        precision=args.precision,
        session_config=session_config.make_session_config(args.precision,
                                                          model_name=args.model_name))
    batches = eval_batches(args)
    num_images = sum(int(images.shape[0]) for images, _ in batches)

    def keras_evaluate():
        model.evaluate(batches, verbose=0)
        return num_images
    with evaluator.Evaluator(config) as ours:
        return best_rates({'ours': lambda: ours.evaluate(args.checkpoint)['num_examples'],
                           'keras': keras_evaluate}, args.rounds)


def inference_rates(args: argparse.Namespace, model: keras.Model, class_names: list[str]
                    ) -> dict[str, float]:
    export = exporter.export(exporter.ExportConfig(
        model_name=args.model_name, output_file=os.path.join(args.work_dir, 'frozen_graph.pb'),
        class_names=class_names,
        checkpoint_path=args.checkpoint))
    images = np.concatenate([batch.numpy() for batch, _ in eval_batches(args)])
    graph_def = tf1.GraphDef()
    with open(export.path, 'rb') as graph_file:
        graph_def.ParseFromString(graph_file.read())
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name='')
    # Not a `with` block: that would make the graph the default one and put
    # Keras's predict() in graph mode.
    session = tf1.Session(graph=graph,
                          config=session_config.make_session_config(
                              args.precision, model_name=args.model_name))

    def frozen_graph():
        for start in range(0, len(images), args.batch_size):
            session.run(export.output_name,
                        {export.input_name: images[start:start + args.batch_size]})
        return len(images)

    def keras_predict():
        model.predict(images, batch_size=args.batch_size, verbose=0)
        return len(images)
    try:
        return best_rates({'ours': frozen_graph, 'keras': keras_predict}, args.rounds)
    finally:
        session.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model_name', required=True)
    parser.add_argument('--checkpoint', required=True, help='a checkpoint of our trainer')
    parser.add_argument('--dataset_name', required=True)
    parser.add_argument('--dataset_dir', required=True)
    parser.add_argument('--split', required=True)
    parser.add_argument('--batch_size', type=int, required=True)
    parser.add_argument('--num_batches', type=int, required=True)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--precision', choices=sorted(KERAS_POLICIES), default='float32')
    parser.add_argument('--work_dir', required=True, help='where the eval and export files go')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    dataset = dataset_factory.get_dataset(args.dataset_name, args.split, args.dataset_dir)
    class_names = [str(label) for label in range(dataset.num_classes)]
    model = keras_classifier(args, dataset.num_classes)
    results = {'evaluation': evaluation_rates(args, model),
               'inference': inference_rates(args, model, class_names)}
    print(json.dumps(results), flush=True)


if __name__ == '__main__':
    main()
