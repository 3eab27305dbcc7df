"""Deployment, measured: every export kind of a net side by side, its size, and batch prediction.

For each net of `--nets` (the digits LeNet, trained here for `--train_steps`;
mobilenet_v2, resnet_v1_50 and inception_v3 with random weights, a checkpoint
of the freshly initialised net with 1000 classes) the project's exporter
(`serving/exporter.py`) writes the frozen graph, the SavedModel, the TFLite
model in the quantization modes none, dynamic_range, float16 and int8, and the
ONNX model. int8 is calibrated on the digits training split (LeNet) or on
generated photos converted with `download_and_convert_data.py --image_dir`
(the other nets). Then, in one run:

* latency, the median milliseconds per batch of `--repeats` calls, and
  images/sec, at each of `--batch_sizes`. Every export runs through
  `classifier.load_model(...).predict_batch` on encoded images held in
  memory, so decoding and the net's evaluation preprocessing are in the time
  of every kind: inside the graph for the SavedModel, in a session in front of
  the model for the others. Keras `predict()` (keras.applications
  MobileNetV2, ResNet50 and InceptionV3 with weights=None; LeNet's layers) is
  fed by the same decoding and preprocessing session; so is a plain (eager)
  call of the Keras model, shown beside it because predict() adds a fixed cost
  to every call (it sets up a dataset and an iterator), which dominates a
  small net; the eager call runs op by op instead. The TFLite float and int8
  models are also timed alone ("interpreter only": set the preprocessed batch,
  invoke, read the output), to show int8's speed-up without the decoding and
  preprocessing every kind shares. The kinds alternate call by call, so a slow
  spell of the shared machine hits them all;
* model sizes on disk (a SavedModel's whole directory, Keras's .keras file);
* on the digits LeNet, the accuracy of each export on the digits test split,
  through predict_batch, against that of the checkpoint (the untrained Keras
  LeNet has none);
* batch prediction: `prediction.predict` (predict_image_classifier.py's
  library: the image files -> a CSV file) against the raw throughput of the
  model it runs, `predict_batch` on the same images' bytes in memory, in
  batches of the largest of `--batch_sizes`. predict() starts its clock once
  the model is loaded, so the raw side too runs a freshly loaded model and
  counts its first call; its steady (warmed-up) rate is shown beside. Best of
  `--pipeline_rounds` rounds, the two sides alternating.

Threads: TensorFlow sessions and Keras keep their default pools (every core),
ONNX Runtime its default (every physical core). TFLite's interpreter runs on
one thread unless told otherwise, and load_model does not tell it, so the
interpreters load_model builds here are given num_threads = the core count.

Goals, printed with pass/fail: TFLite int8 at least 2x the images/sec of
TFLite float (through predict_batch, and alone) and 4x smaller, losing at
most 1 point of LeNet's test accuracy; batch prediction at least 0.8x the raw
throughput of the model it runs. The tables go to `--output` as JSON too,
with the load average at the start and the end, and every failure with its
error.

    python benchmarks/bench_deploy.py                   # about 10 minutes on 2 cores
    python benchmarks/bench_deploy.py --quick           # LeNet only, under a minute
    python benchmarks/bench_deploy.py --nets mobilenet_v2 --batch_sizes 1 --repeats 5
"""

import argparse
import contextlib
import dataclasses
import datetime
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from unittest import mock

import numpy as np
from PIL import Image

import common  # before the project's imports: it puts the repository on sys.path
import keras
import tensorflow as tf
from sklearn.datasets import load_sample_images

from bench_nets import KERAS_NETS, keras_model
from nets import nets_factory
from slim_classifier.serving import classifier, exporter, inference, prediction
from slim_classifier.serving.config import ExportConfig, PredictOptions
from slim_classifier.training import trainer
from slim_classifier.training.config import TrainConfig

tf1 = tf.compat.v1
BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCHMARKS)
DEFAULT_OUTPUT = os.path.join(BENCHMARKS, 'results', 'bench_deploy.json')
DEFAULT_NETS = ['lenet', 'mobilenet_v2', 'resnet_v1_50', 'inception_v3']
CORES = len(os.sched_getaffinity(0))

# The random-weight nets: ImageNet's class count, as keras.applications builds them.
PHOTO_NET_CLASSES = 1000
# Generated photos: int8's calibration images, and the images every model is timed on.
PHOTO_COUNT = 32
PHOTO_CLASSES = 2
PHOTO_HEIGHT, PHOTO_WIDTH = 375, 500
PHOTO_CALIBRATION_STEPS = 8
DIGITS_CALIBRATION_STEPS = 64
ACCURACY_BATCH_SIZE = 100
WARMUP_CALLS = 2


@dataclasses.dataclass(frozen=True)
class ExportKind:
    """One way of exporting a net (see serving/exporter.py)."""
    label: str
    export_format: str
    quantization: str = 'none'

    def file_name(self, net_name: str) -> str:
        suffix = {'graphdef': '.pb', 'saved_model': '', 'tflite': '.tflite', 'onnx': '.onnx'}
        return '%s_%s_%s%s' % (net_name, self.export_format, self.quantization,
                               suffix[self.export_format])


EXPORT_KINDS = (
    ExportKind('frozen graph', 'graphdef'),
    ExportKind('SavedModel', 'saved_model'),
    ExportKind('TFLite float', 'tflite'),
    ExportKind('TFLite dynamic_range', 'tflite', 'dynamic_range'),
    ExportKind('TFLite float16', 'tflite', 'float16'),
    ExportKind('TFLite int8', 'tflite', 'int8'),
    ExportKind('ONNX Runtime', 'onnx'),
)
KERAS = 'Keras predict()'
KERAS_CALL = 'Keras call'
KERAS_KINDS = (KERAS, KERAS_CALL)
# The TFLite models alone, on preprocessed images (timed apart from predict_batch).
INTERPRETER_KINDS = {'TFLite float, interpreter only': 'TFLite float',
                     'TFLite int8, interpreter only': 'TFLite int8'}
KINDS = [kind.label for kind in EXPORT_KINDS] + list(KERAS_KINDS) + list(INTERPRETER_KINDS)
KERAS_FILE = 'Keras (.keras file)'
# The models batch prediction is measured with: the default export and the deployment one.
PIPELINE_KINDS = ('frozen graph', 'TFLite int8')

INT8_SPEEDUP_GOAL = 2.0
# (int8, float) kinds compared, through predict_batch and alone.
INT8_SPEEDUP_KINDS = (('TFLite int8', 'TFLite float'),
                      ('TFLite int8, interpreter only', 'TFLite float, interpreter only'))
INT8_SHRINK_GOAL = 4.0
INT8_ACCURACY_POINTS_GOAL = 1.0
PIPELINE_GOAL = 0.8


@dataclasses.dataclass
class NetData:
    """A net's weights and the images it is measured on.

    Attributes:
      name: the net.
      checkpoint: its weights (a checkpoint file or training directory).
      class_names: names by output; their number is the class count.
      dataset_name, dataset_dir, calibration_steps: what calibrates int8.
      images: encoded images, in memory.
      image_dir: the same images as files, for batch prediction.
      labels: the true label of each image (LeNet's test split), or None.
    """
    name: str
    checkpoint: str
    class_names: list[str]
    dataset_name: str
    dataset_dir: str
    calibration_steps: int
    images: list[bytes]
    image_dir: str
    labels: list[int] | None = None


class Failures:
    """What could not be exported or measured, with the error; the run goes on without it."""

    def __init__(self):
        self.records: list[dict] = []

    def attempt(self, net: str, kind: str, stage: str, call: Callable[[], object]
                ) -> tuple[bool, object]:
        """(True, call's value), or (False, None) with the failure recorded."""
        try:
            return True, call()
        # Any failure of one kind (a converter, a runtime) must not end the others' run.
        except Exception as error:  # pylint: disable=broad-except
            reason = ' '.join(str(error).split()) or 'no message'
            self.records.append({'net': net, 'kind': kind, 'stage': stage,
                                 'error': '%s: %s' % (type(error).__name__, reason)})
            _log('FAILED %s %s %s: %s' % (stage, net, kind, self.records[-1]['error'][:300]))
            return False, None


# The nets and their images.

def run_command(script: str, *args: str) -> None:
    result = subprocess.run([sys.executable, os.path.join(REPO, script), *args],
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError('%s failed (%d): %s' % (script, result.returncode,
                                                   result.stderr[-2000:]))


def lenet_data(work_dir: str, train_steps: int) -> NetData:
    """Trains LeNet on digits for `train_steps`; its images are the digits test split."""
    dataset_dir = os.path.join(work_dir, 'digits')
    run_command('download_and_convert_data.py', '--dataset_name=digits',
                '--dataset_dir=' + dataset_dir)
    train_dir = os.path.join(work_dir, 'lenet_train')
    trainer.train(TrainConfig(
        train_dir=train_dir, dataset_dir=dataset_dir, dataset_name='digits', model_name='lenet',
        batch_size=32, optimizer='momentum', learning_rate=0.01,
        learning_rate_decay_type='fixed', weight_decay=0.0, max_number_of_steps=train_steps,
        num_readers=2, num_preprocessing_threads=2, log_every_n_steps=100,
        save_interval_secs=3600, save_summaries_secs=3600, seed=1))
    image_dir = os.path.join(work_dir, 'digits_test_images')
    os.makedirs(image_dir)
    images, labels = [], []
    for item in prediction.record_source('digits', 'test', dataset_dir).items():
        with open(os.path.join(image_dir, '%04d.png' % item.record), 'wb') as image_file:
            image_file.write(item.encoded)
        images.append(item.encoded)
        labels.append(item.label)
    return NetData('lenet', train_dir, [str(digit) for digit in range(10)], 'digits',
                   dataset_dir, DIGITS_CALIBRATION_STEPS, images, image_dir, labels)


def write_photos(image_dir: str, count: int, seed: int) -> list[bytes]:
    """JPEG crops of scikit-learn's sample photos in class folders; returns their bytes."""
    photos = load_sample_images().images
    rng = np.random.RandomState(seed)
    encoded = []
    for index in range(count):
        photo = photos[index % len(photos)]
        top = rng.randint(photo.shape[0] - PHOTO_HEIGHT + 1)
        left = rng.randint(photo.shape[1] - PHOTO_WIDTH + 1)
        class_dir = os.path.join(image_dir, 'class_%d' % (index % PHOTO_CLASSES))
        os.makedirs(class_dir, exist_ok=True)
        path = os.path.join(class_dir, 'photo_%03d.jpg' % index)
        Image.fromarray(photo[top:top + PHOTO_HEIGHT, left:left + PHOTO_WIDTH]).save(
            path, quality=90)
        with open(path, 'rb') as image_file:
            encoded.append(image_file.read())
    return encoded


def photo_data(work_dir: str) -> tuple[str, str, list[bytes]]:
    """(the photo folder, its converted records, the photos' bytes), written once."""
    image_dir = os.path.join(work_dir, 'photos')
    dataset_dir = os.path.join(work_dir, 'photo_records')
    images = write_photos(image_dir, PHOTO_COUNT, seed=0)
    run_command('download_and_convert_data.py', '--dataset_name=photos',
                '--image_dir=' + image_dir, '--dataset_dir=' + dataset_dir, '--num_shards=1')
    return image_dir, dataset_dir, images


def random_checkpoint(name: str, num_classes: int, directory: str) -> str:
    """Saves the freshly initialised net; returns the checkpoint path."""
    spec = nets_factory.get_network_spec(name)
    size = spec.default_image_size
    os.makedirs(directory)
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn(name, num_classes)
        network_fn(tf1.placeholder(tf.float32, [1, size, size, spec.num_channels]))
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(session, os.path.join(directory, 'model.ckpt'))


# Exports and models.

def export_all(net: NetData, directory: str, failures: Failures,
               kinds: tuple[ExportKind, ...] = EXPORT_KINDS
               ) -> tuple[dict[str, str], dict[str, float]]:
    """({kind: path}, {kind: export seconds}) of the `kinds` that exported."""
    paths, seconds = {}, {}
    for kind in kinds:
        path = os.path.join(directory, kind.file_name(net.name))

        def export(kind=kind, path=path):
            return exporter.export(ExportConfig(
                model_name=net.name, output_file=path, class_names=net.class_names,
                export_format=kind.export_format, quantization=kind.quantization,
                checkpoint_path=net.checkpoint, dataset_name=net.dataset_name,
                dataset_dir=net.dataset_dir, calibration_steps=net.calibration_steps))
        start = time.perf_counter()
        exported, _ = failures.attempt(net.name, kind.label, 'export', export)
        if exported:
            paths[kind.label] = path
            seconds[kind.label] = time.perf_counter() - start
            _log('exported %s %s in %.1f s' % (net.name, kind.label, seconds[kind.label]))
    return paths, seconds


@contextlib.contextmanager
def tflite_threads(num_threads: int) -> Iterator[None]:
    """The TFLite interpreters that load_model builds in the block run on `num_threads`."""
    interpreter = classifier.tf.lite.Interpreter
    with mock.patch.object(classifier.tf.lite, 'Interpreter',
                           functools.partial(interpreter, num_threads=num_threads)):
        yield


def load(path: str, net_name: str) -> classifier.LoadedModel:
    with tflite_threads(CORES):
        return classifier.load_model(path, net_name)


def preprocessor(net_name: str) -> tuple[Callable[[list[bytes]], np.ndarray], tf1.Session]:
    """(encoded images -> the net's input, as load_model prepares it; the session to close)."""
    spec = nets_factory.get_network_spec(net_name)
    graph = tf.Graph()
    with graph.as_default():
        encoded = tf1.placeholder(tf.string, [None])
        images = inference.decode_and_preprocess(
            encoded, net_name, spec.default_image_size,
            use_grayscale=spec.num_channels == inference.GRAYSCALE_CHANNELS)
    # Not a `with` block: that would make the graph the default one and put
    # Keras's predict() in graph mode.
    session = tf1.Session(graph=graph)
    return lambda batch: session.run(images, {encoded: list(batch)}), session


def keras_classifiers(net_name: str, num_classes: int
                      ) -> tuple[dict[str, classifier.LoadedModel], keras.Model]:
    """Keras `predict()` and a plain call behind our decoding and preprocessing, as
    LoadedModels ({KERAS: ..., KERAS_CALL: ...}), and the Keras model."""
    spec = nets_factory.get_network_spec(net_name)
    size = spec.default_image_size
    model = keras_model(net_name, (size, size, spec.num_channels), num_classes)
    preprocess, session = preprocessor(net_name)

    def predict_batch(batch: list[bytes]) -> np.ndarray:
        return model.predict(preprocess(batch), batch_size=len(batch), verbose=0)

    def call_batch(batch: list[bytes]) -> np.ndarray:
        return model(preprocess(batch), training=False).numpy()
    return {KERAS: classifier.LoadedModel('keras', net_name, predict_batch, session.close,
                                          num_classes),
            KERAS_CALL: classifier.LoadedModel('keras', net_name, call_batch, lambda: None,
                                               num_classes)}, model


def interpreter_call(path: str, images: np.ndarray) -> Callable[[], np.ndarray]:
    """The TFLite model alone on preprocessed `images`: set the input, invoke, read the output.

    The quantization modes measured here all keep a float input and output.
    """
    interpreter = tf.lite.Interpreter(model_path=path, num_threads=CORES)
    input_index = interpreter.get_input_details()[0]['index']
    output_index = interpreter.get_output_details()[0]['index']
    interpreter.resize_tensor_input(input_index, images.shape)
    interpreter.allocate_tensors()

    def invoke() -> np.ndarray:
        interpreter.set_tensor(input_index, images)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)
    return invoke


def size_bytes(path: str) -> int:
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


# Measurements.

def median_latencies(calls: dict[str, Callable[[], object]], repeats: int, net: str,
                     stage: str, failures: Failures) -> dict[str, float]:
    """{kind: median ms per call}; the kinds alternate call by call after their warm-up."""
    warm = {kind: call for kind, call in calls.items()
            if all(failures.attempt(net, kind, stage, call)[0] for _ in range(WARMUP_CALLS))}
    times = {kind: [] for kind in warm}
    for _ in range(repeats):
        for kind, call in warm.items():
            start = time.perf_counter()
            call()
            times[kind].append(time.perf_counter() - start)
    return {kind: 1000.0 * statistics.median(seconds) for kind, seconds in times.items()}


def accuracy(model: classifier.LoadedModel, images: list[bytes], labels: list[int]) -> float:
    probabilities = np.concatenate([
        model.predict_batch(images[start:start + ACCURACY_BATCH_SIZE])
        for start in range(0, len(images), ACCURACY_BATCH_SIZE)])
    return float(np.mean(probabilities.argmax(1) == np.asarray(labels)))


def raw_rates(path: str, net: NetData, batch_size: int) -> tuple[float, float]:
    """(images/sec from the first call, steady images/sec) of predict_batch on a fresh model."""
    model = load(path, net.name)
    try:
        rates = []
        for _ in range(2):
            start = time.perf_counter()
            for begin in range(0, len(net.images), batch_size):
                model.predict_batch(net.images[begin:begin + batch_size])
            rates.append(len(net.images) / (time.perf_counter() - start))
        return rates[0], rates[1]
    finally:
        model.close()


def predict_rate(path: str, net: NetData, batch_size: int, output: str) -> float:
    """Images/sec of prediction.predict over the image files, into a CSV file."""
    options = PredictOptions(model_path=path, model_name=net.name, input=net.image_dir,
                             output=output, batch_size=batch_size)
    with tflite_threads(CORES):
        summary = prediction.predict(options, names_dataset=False, explicit=set(),
                                     progress_stream=None)
    if summary.rejected:
        raise RuntimeError('%d of %d images rejected' % (summary.rejected, summary.rows))
    return summary.rows / summary.seconds


def pipeline_rates(path: str, net: NetData, batch_size: int, rounds: int, work_dir: str
                   ) -> dict[str, float]:
    """The best of `rounds` of raw predict_batch and of predict(), alternating."""
    best = {'raw_first_call': 0.0, 'raw_steady': 0.0, 'predict': 0.0}
    output = os.path.join(work_dir, 'predictions.csv')
    for _ in range(rounds):
        first_call, steady = raw_rates(path, net, batch_size)
        rates = {'raw_first_call': first_call, 'raw_steady': steady,
                 'predict': predict_rate(path, net, batch_size, output)}
        best = {name: max(best[name], rates[name]) for name in best}
    return best


def load_all(net: NetData, paths: dict[str, str], export_dir: str, failures: Failures
             ) -> tuple[dict[str, classifier.LoadedModel], list[dict]]:
    """({kind: model} of every export and Keras, [the Keras model's size row])."""
    models = {}
    for kind, path in paths.items():
        loaded, model = failures.attempt(net.name, kind, 'load',
                                         lambda path=path: load(path, net.name))
        if loaded:
            models[kind] = model
    built, keras_side = failures.attempt(net.name, KERAS, 'build', lambda: keras_classifiers(
        net.name, len(net.class_names)))
    if not built:
        return models, []
    keras_models, keras_net = keras_side
    models.update(keras_models)
    keras_file = os.path.join(export_dir, net.name + '.keras')
    if not failures.attempt(net.name, KERAS, 'save', lambda: keras_net.save(keras_file))[0]:
        return models, []
    return models, [{'net': net.name, 'kind': KERAS_FILE, 'bytes': size_bytes(keras_file),
                     'export_seconds': None}]


def accuracy_rows(net: NetData, models: dict[str, classifier.LoadedModel],
                  failures: Failures) -> list[dict]:
    """The test accuracy of the checkpoint and of each export (not of the untrained Keras net)."""
    checkpoint = classifier.load_model(net.checkpoint, net.name,
                                       num_classes=len(net.class_names))
    scored = {'checkpoint': checkpoint,
              **{kind: model for kind, model in models.items() if kind not in KERAS_KINDS}}
    rows = []
    try:
        for kind, model in scored.items():
            done, value = failures.attempt(net.name, kind, 'accuracy', lambda model=model:
                                           accuracy(model, net.images, net.labels))
            if done:
                rows.append({'net': net.name, 'kind': kind, 'accuracy': value,
                             'images': len(net.images)})
    finally:
        checkpoint.close()
    return rows


def latency_rows(net: NetData, models: dict[str, classifier.LoadedModel],
                 paths: dict[str, str], args: argparse.Namespace, failures: Failures
                 ) -> list[dict]:
    """Every model's predict_batch, and the TFLite float and int8 interpreters alone."""
    rows = []
    preprocess, session = preprocessor(net.name)
    try:
        for batch_size in args.batch_sizes:
            batch = [net.images[index % len(net.images)] for index in range(batch_size)]
            calls = {kind: functools.partial(model.predict_batch, batch)
                     for kind, model in models.items()}
            images = preprocess(batch)
            for kind, source in INTERPRETER_KINDS.items():
                if source in paths:
                    made, call = failures.attempt(net.name, kind, 'load', lambda source=source:
                                                  interpreter_call(paths[source], images))
                    if made:
                        calls[kind] = call
            medians = median_latencies(calls, args.repeats, net.name, 'batch %d' % batch_size,
                                       failures)
            rows.extend({'net': net.name, 'batch': batch_size, 'kind': kind, 'ms': ms,
                         'images_per_sec': 1000.0 * batch_size / ms}
                        for kind, ms in medians.items())
            _log('timed %s at batch %d' % (net.name, batch_size))
    finally:
        session.close()
    return rows


def pipeline_rows(net: NetData, paths: dict[str, str], args: argparse.Namespace,
                  work_dir: str, failures: Failures) -> list[dict]:
    rows = []
    batch_size = max(args.batch_sizes)
    for kind in PIPELINE_KINDS:
        if kind not in paths:
            continue
        done, rates = failures.attempt(net.name, kind, 'batch prediction', lambda kind=kind:
                                       pipeline_rates(paths[kind], net, batch_size,
                                                      args.pipeline_rounds, work_dir))
        if done:
            rows.append({'net': net.name, 'kind': kind, 'batch': batch_size,
                         'images': len(net.images), **rates})
    return rows


def measure_net(net: NetData, args: argparse.Namespace, work_dir: str, failures: Failures
                ) -> dict[str, list[dict]]:
    """The rows of every table for one net."""
    export_dir = os.path.join(work_dir, net.name + '_exports')
    os.makedirs(export_dir)
    paths, export_seconds = export_all(net, export_dir, failures)
    sizes = [{'net': net.name, 'kind': kind, 'bytes': size_bytes(path),
              'export_seconds': export_seconds[kind]} for kind, path in paths.items()]
    models, keras_size = load_all(net, paths, export_dir, failures)
    try:
        accuracies = accuracy_rows(net, models, failures) if net.labels is not None else []
        latency = latency_rows(net, models, paths, args, failures)
    finally:
        for model in models.values():
            model.close()
    pipeline = pipeline_rows(net, paths, args, work_dir, failures)
    _log('measured %s' % net.name)
    return {'latency': latency, 'sizes': sizes + keras_size, 'accuracy': accuracies,
            'pipeline': pipeline}


# Goals and tables.

def _find(rows: list[dict], **match) -> dict | None:
    return next((row for row in rows if all(row.get(key) == value
                                           for key, value in match.items())), None)


def _goal(goal: str, net: str, setting: str, measured: float | None, target: str,
          met: Callable[[float], bool]) -> dict:
    return {'goal': goal, 'net': net, 'setting': setting, 'measured': measured,
            'target': target, 'met': None if measured is None else bool(met(measured))}


def goals(report: dict, nets: list[str], batch_sizes: list[int]) -> list[dict]:
    """Each goal of issue 15 per net (and batch), measured or None where a kind failed."""
    rows = []
    for net in nets:
        for batch, (int8, float_) in itertools.product(batch_sizes, INT8_SPEEDUP_KINDS):
            float_row = _find(report['latency'], net=net, batch=batch, kind=float_)
            int8_row = _find(report['latency'], net=net, batch=batch, kind=int8)
            speedup = float_row['ms'] / int8_row['ms'] if float_row and int8_row else None
            rows.append(_goal('TFLite int8 images/sec over TFLite float', net,
                              'batch %d, %s' % (batch, 'interpreter only' if int8
                                                in INTERPRETER_KINDS else 'predict_batch'),
                              speedup, '>= %.1fx' % INT8_SPEEDUP_GOAL,
                              lambda value: value >= INT8_SPEEDUP_GOAL))
        float_size = _find(report['sizes'], net=net, kind='TFLite float')
        int8_size = _find(report['sizes'], net=net, kind='TFLite int8')
        shrink = float_size['bytes'] / int8_size['bytes'] if float_size and int8_size else None
        rows.append(_goal('TFLite float size over TFLite int8 size', net, '', shrink,
                          '>= %.1fx' % INT8_SHRINK_GOAL, lambda value: value >= INT8_SHRINK_GOAL))
        checkpoint = _find(report['accuracy'], net=net, kind='checkpoint')
        int8 = _find(report['accuracy'], net=net, kind='TFLite int8')
        if checkpoint:
            lost = 100.0 * (checkpoint['accuracy'] - int8['accuracy']) if int8 else None
            rows.append(_goal('test accuracy lost by TFLite int8 (points)', net,
                              'vs checkpoint', lost, '<= %.1f' % INT8_ACCURACY_POINTS_GOAL,
                              lambda value: value <= INT8_ACCURACY_POINTS_GOAL))
        for kind in PIPELINE_KINDS:
            row = _find(report['pipeline'], net=net, kind=kind)
            rows.append(_goal('predict() images/sec over raw predict_batch', net,
                              '%s, batch %d' % (kind, max(batch_sizes)),
                              row['predict'] / row['raw_first_call'] if row else None,
                              '>= %.1fx' % PIPELINE_GOAL, lambda value: value >= PIPELINE_GOAL))
    return rows


def print_tables(report: dict) -> None:
    print('\nLatency: predict_batch on encoded images (decode + preprocess + model; '
          '"interpreter only": the TFLite model alone), median of %d calls; TFLite on %d '
          'threads' % (report['settings']['repeats'], CORES))
    frozen = {(row['net'], row['batch']): row['ms'] for row in report['latency']
              if row['kind'] == 'frozen graph'}
    common.print_table(
        ['net', 'batch', 'kind', 'ms/batch', 'images/s', 'speed vs frozen graph'],
        [[row['net'], row['batch'], row['kind'], row['ms'], row['images_per_sec'],
          _ratio(frozen.get((row['net'], row['batch'])), row['ms'])]
         for row in report['latency']])
    print('\nModel sizes')
    floats = {row['net']: row['bytes'] for row in report['sizes']
              if row['kind'] == 'TFLite float'}
    common.print_table(
        ['net', 'kind', 'MB', 'TFLite float / this', 'export s'],
        [[row['net'], row['kind'], row['bytes'] / 1e6, _ratio(floats.get(row['net']),
                                                              row['bytes']),
          '' if row['export_seconds'] is None else '%.1f' % row['export_seconds']]
         for row in report['sizes']])
    if report['accuracy']:
        print('\nAccuracy on the digits test split (LeNet, %d steps)'
              % report['settings']['train_steps'])
        reference = {row['net']: row['accuracy'] for row in report['accuracy']
                     if row['kind'] == 'checkpoint'}
        common.print_table(
            ['net', 'kind', 'images', 'accuracy %', 'points vs checkpoint'],
            [[row['net'], row['kind'], row['images'], 100.0 * row['accuracy'],
              '%+.2f' % (100.0 * (row['accuracy'] - reference[row['net']]))]
             for row in report['accuracy']])
    print('\nBatch prediction: prediction.predict (files -> CSV) against predict_batch on the '
          'same bytes in memory, images/s, best of %d' % report['settings']['pipeline_rounds'])
    common.print_table(
        ['net', 'kind', 'batch', 'images', 'raw (from 1st call)', 'raw (steady)', 'predict()',
         'predict() / raw'],
        [[row['net'], row['kind'], row['batch'], row['images'], row['raw_first_call'],
          row['raw_steady'], row['predict'], _ratio(row['predict'], row['raw_first_call'])]
         for row in report['pipeline']])
    print('\nGoals')
    common.print_table(
        ['goal', 'net', 'setting', 'measured', 'target', 'result'],
        [[row['goal'], row['net'], row['setting'],
          'n/a' if row['measured'] is None else '%.2f' % row['measured'], row['target'],
          {True: 'pass', False: 'FAIL', None: 'not measured'}[row['met']]]
         for row in report['goals']])
    if report['failures']:
        print('\nFailures')
        for failure in report['failures']:
            print('  %(net)s %(kind)s (%(stage)s): %(error)s' % failure)


def _ratio(numerator: float | None, denominator: float) -> str:
    return '' if not numerator else '%.2fx' % (numerator / denominator)


def _cpu_model() -> str:
    with open('/proc/cpuinfo') as cpuinfo:
        for line in cpuinfo:
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return 'unknown CPU'


def _log(message: str) -> None:
    print('[%s] %s' % (time.strftime('%H:%M:%S'), message), flush=True)


# The run.

def run(args: argparse.Namespace, work_dir: str) -> dict:
    load_at_start = os.getloadavg()
    start = time.perf_counter()
    failures = Failures()
    tables = {'latency': [], 'sizes': [], 'accuracy': [], 'pipeline': []}
    photos = None
    for name in args.nets:
        if name == 'lenet':
            net = lenet_data(work_dir, args.train_steps)
            _log('trained lenet for %d steps' % args.train_steps)
        else:
            if photos is None:
                photos = photo_data(work_dir)
            image_dir, dataset_dir, images = photos
            net = NetData(name, random_checkpoint(name, PHOTO_NET_CLASSES,
                                                  os.path.join(work_dir, name + '_checkpoint')),
                          ['class_%d' % index for index in range(PHOTO_NET_CLASSES)], 'photos',
                          dataset_dir, PHOTO_CALIBRATION_STEPS, images, image_dir)
        for table, rows in measure_net(net, args, work_dir, failures).items():
            tables[table].extend(rows)
    report = {
        'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        'machine': {'cpu': _cpu_model(), 'cores': CORES, 'tflite_threads': CORES,
                    'load_average_at_start': load_at_start,
                    'load_average_at_end': os.getloadavg()},
        'settings': {'nets': args.nets, 'batch_sizes': args.batch_sizes,
                     'repeats': args.repeats, 'warmup_calls': WARMUP_CALLS,
                     'pipeline_rounds': args.pipeline_rounds,
                     'train_steps': args.train_steps, 'photo_net_classes': PHOTO_NET_CLASSES,
                     'photos': PHOTO_COUNT, 'photo_size': [PHOTO_HEIGHT, PHOTO_WIDTH],
                     'calibration_steps': {'photos': PHOTO_CALIBRATION_STEPS,
                                           'digits': DIGITS_CALIBRATION_STEPS},
                     'pipeline_kinds': list(PIPELINE_KINDS),
                     'versions': _versions()},
        **tables,
        'failures': failures.records,
        'seconds': time.perf_counter() - start,
    }
    report['goals'] = goals(report, args.nets, args.batch_sizes)
    return report


def _versions() -> dict[str, str]:
    versions = {'tensorflow': tf.__version__, 'keras': keras.__version__}
    for module in ('onnxruntime', 'tf2onnx'):
        with contextlib.suppress(ImportError):
            versions[module] = __import__(module).__version__
    return versions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='a short smoke run: LeNet only (overrides --nets)')
    parser.add_argument('--nets', nargs='+', default=DEFAULT_NETS,
                        choices=KERAS_NETS, metavar='NET',
                        help='of %s; lenet is trained on digits and also measured for '
                             'accuracy, the others get random weights' % ', '.join(KERAS_NETS))
    parser.add_argument('--batch_sizes', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed calls per kind and batch size; the median is kept')
    parser.add_argument('--pipeline_rounds', type=int, default=3,
                        help='rounds of batch prediction and of raw predict_batch; the best '
                             'of each is kept')
    parser.add_argument('--train_steps', type=int, default=300,
                        help="LeNet's training steps on digits")
    parser.add_argument('--output', default=DEFAULT_OUTPUT, help='where the JSON report goes')
    parser.add_argument('--work_dir', default=None,
                        help='keep the records, checkpoints and exports in a new directory '
                             'here; by default they go to a temporary one, removed at the end')
    args = parser.parse_args(argv)
    for name in ('repeats', 'pipeline_rounds', 'train_steps'):
        if getattr(args, name) < 1:
            parser.error('--%s must be >= 1; got %d' % (name, getattr(args, name)))
    if min(args.batch_sizes) < 1:
        parser.error('--batch_sizes must be >= 1; got %s' % args.batch_sizes)
    if args.quick:
        args.nets = ['lenet']
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = tempfile.mkdtemp(prefix='bench_deploy_', dir=args.work_dir or temporary)
        report = run(args, work_dir)
    print_tables(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, 'w') as output:
        json.dump(report, output, indent=1)
    machine = report['machine']
    print('\n%s, %d cores; load average %s at the start, %s at the end; %s; %.0f s. Report: %s'
          % (machine['cpu'], machine['cores'], _loads(machine['load_average_at_start']),
             _loads(machine['load_average_at_end']), report['date'], report['seconds'],
             args.output))
    return report


def _loads(loads) -> str:
    return '/'.join('%.1f' % load for load in loads)


if __name__ == '__main__':
    main()
