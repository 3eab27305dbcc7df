"""Evaluates a checkpoint on one pass over a dataset split, as a library.

`evaluate(config)` restores the checkpoint, reads every example of the split
exactly once (the last partial batch included) and collects each example's
label, top-1 class and probabilities ([examples, classes] float32 in memory:
the splits evaluated are small enough), the top-k hits and the most confident
mistakes' images. From them `metrics.evaluation_summary` derives the figures
(accuracy, per-class rates, F-beta, Matthews correlation, kappa, ROC AUC,
average precision, log loss, calibration), written to
`<eval_dir>/metrics.json`, with PNGs of the confusion matrix, the ROC and
precision-recall curves, the reliability diagram and the most confident
mistakes, TensorBoard summaries and, if asked, a CSV of every prediction; a
device too full for one of them is one line naming it.
`evaluate_new_checkpoints(config)` does the same for each checkpoint a
training job writes, like the original `evaluation_loop`.
An export is evaluated by `export_evaluation`, which writes its results with
the same `ResultWriter`.
"""

import csv
import dataclasses
import io
import itertools
import json
import logging
import math
import os
from collections.abc import Iterator

import numpy as np
import tensorflow.compat.v1 as tf

from datasets import dataset_factory, input_pipeline
from nets import nets_factory
from slim_classifier.compat import slim
from slim_classifier.errors import DiskFullError, UserError
from slim_classifier.evaluation import confusion_image, curves, metrics
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.runtime import checkpoints
from slim_classifier.runtime.batches import evaluation_batches
from slim_classifier.runtime.files import disk_full_named, write_atomically
from slim_classifier.serving import image_sources
from slim_classifier.serving.labels import names_by_output

log = logging.getLogger('eval')

METRICS_FILENAME = 'metrics.json'
CONFUSION_FILENAME = 'confusion_matrix.png'
ROC_FILENAME = 'roc_curves.png'
PRECISION_RECALL_FILENAME = 'precision_recall_curves.png'
RELIABILITY_FILENAME = 'reliability_diagram.png'
MISTAKES_FILENAME = 'mistakes.png'
_PROGRESS_LINES = 10  # progress lines logged per pass
_NO_SPACE_ADVICE = 'free space there or choose another --eval_dir'


class EvaluationError(UserError):
    """A problem the user can act on; its message is one line."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What one pass measured.

    Attributes:
      results: the metrics (see `evaluate`).
      confusion: the confusion matrix [classes, classes], rows true classes.
      labels, predictions: the true and the top-1 class of each example, in
        record order where the pass read the records in order.
      probabilities: [examples, classes] float32, in the same order.
      mistakes: the most confident mistakes, most confident first.
      records, file_names: each example's record index and the file name its
        record keeps ('' if none); None where the pass did not read the
        records in order.
    """
    results: dict
    confusion: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    mistakes: list[curves.Mistake] = dataclasses.field(default_factory=list)
    records: np.ndarray | None = None
    file_names: list[str] | None = None


def evaluate(config: EvalConfig) -> dict:
    """Evaluates `config.checkpoint_path` (a file, or a directory's latest) once.

    With `config.model_path` set, evaluates that export instead (see
    `export_evaluation.evaluate_export`, which says what it returns and raises).

    Returns:
      The metrics, as written to metrics.json (see `metrics.summarize`), plus
      `checkpoint`, `global_step`, `model_name`, `dataset_name` and
      `dataset_split_name`.

    Raises:
      CheckpointMismatch: no checkpoint, or one that does not fit the net.
      EvaluationError: a label outside the net's classes.
      DataError: a record that cannot be read.
      DiskFullError: no space left for metrics.json, the image or the events.
      ValueError, FileNotFoundError: unknown dataset, split, net or directory.
    """
    if config.model_path is not None:
        # Imported here: export_evaluation builds on this module.
        from slim_classifier.evaluation import export_evaluation
        return export_evaluation.evaluate_export(config)
    with Evaluator(config) as evaluator:
        return evaluator.evaluate(config.checkpoint_path)


def evaluate_new_checkpoints(config: EvalConfig) -> Iterator[dict]:
    """Evaluates the latest checkpoint in a directory, then each new one as it appears.

    Waits at least `config.eval_interval_secs` between evaluations and stops
    after waiting `config.timeout` seconds for a new checkpoint (None: never).

    Yields:
      The metrics of each evaluation, as `evaluate` returns them.

    Raises:
      ValueError: if `config.checkpoint_path` is a checkpoint or a file rather
        than a directory (which may not exist yet).
      And what `evaluate` raises.
    """
    path = config.checkpoint_path
    if tf.io.gfile.exists(path + '.index') or (tf.io.gfile.exists(path)
                                                and not tf.io.gfile.isdir(path)):
        raise ValueError('evaluating new checkpoints needs --checkpoint_path to be the '
                         "directory training writes to; got the file '%s'" % path)
    with Evaluator(config) as evaluator:
        for checkpoint in tf.train.checkpoints_iterator(
                path, min_interval_secs=config.eval_interval_secs,
                timeout=config.timeout):
            # Training keeps a few checkpoints only and may delete this one first.
            if not tf.io.gfile.exists(checkpoint + '.index'):
                log.warning('%s was deleted before its evaluation; waiting for the next',
                            checkpoint)
                continue
            yield evaluator.evaluate(checkpoint)


class ResultWriter:
    """Writes the results of evaluations to an eval_dir: metrics.json, the PNGs and the events.

    Use as a context manager, so that the event file is closed.
    """

    def __init__(self, eval_dir: str, graph: tf.Graph | None = None):
        """Opens the event file in `eval_dir` (made if missing), with `graph` if given."""
        self.eval_dir = eval_dir
        tf.io.gfile.makedirs(eval_dir)
        self._events = 'the TensorBoard events in %s' % eval_dir
        # The v1 writer works in graph mode only, in a graph of its own if none is given.
        with (graph or tf.Graph()).as_default(), disk_full_named(self._events,
                                                                 _NO_SPACE_ADVICE):
            self._writer = tf.summary.FileWriter(eval_dir, graph)

    def write(self, results: dict, measured: Measurement, class_names: list[str],
              step: int, predictions_file: str | None = None) -> None:
        """metrics.json, the PNGs, the TensorBoard summaries at `step` and, if a
        `predictions_file` is named, the CSV of `measured`'s predictions."""
        metrics_path = os.path.join(self.eval_dir, METRICS_FILENAME)
        with disk_full_named(metrics_path, _NO_SPACE_ADVICE):
            write_atomically(metrics_path, _readable_json(results))
        images = {}
        for tag, filename, (png, size) in _pictures(results, measured, class_names):
            image_path = os.path.join(self.eval_dir, filename)
            with disk_full_named(image_path, _NO_SPACE_ADVICE):
                write_atomically(image_path, png)
            images[tag] = (png, size)
        if predictions_file is not None:
            with disk_full_named(predictions_file, 'free space there or choose another '
                                 '--predictions_file'):
                write_atomically(predictions_file, predictions_csv(measured, results['top_k']))
        with disk_full_named(self._events, _NO_SPACE_ADVICE):
            self._writer.add_summary(_summary(results, images), step)
            self._writer.flush()

    def close(self, failing: bool = False) -> None:
        """Closes the event file; a full device is raised unless an error is on its way."""
        try:
            with disk_full_named(self._events, _NO_SPACE_ADVICE):
                self._writer.close()
        except DiskFullError:
            if not failing:
                raise  # else the error on its way out is the first one the device caused

    def __enter__(self) -> 'ResultWriter':
        return self

    def __exit__(self, error_type, *exc_info) -> None:
        self.close(failing=error_type is not None)


def with_eval_split(config: EvalConfig) -> EvalConfig:
    """`config` with its split named: the dataset's default evaluation split if unset."""
    if config.dataset_split_name is not None:
        return config
    return dataclasses.replace(config, dataset_split_name=dataset_factory.default_eval_split(
        config.dataset_name, config.dataset_dir))


def output_classes(dataset: slim.dataset.Dataset, config: EvalConfig) -> list[str]:
    """Names by net output: the dataset's classes from `config.labels_offset` on.

    Raises:
      ValueError: for a labels offset that leaves no class.
    """
    num_classes = dataset.num_classes - config.labels_offset
    if num_classes < 1:
        raise ValueError('--labels_offset=%d leaves no class of the %d of %s'
                         % (config.labels_offset, dataset.num_classes, config.dataset_name))
    return names_by_output(dataset.labels_to_names, num_classes, config.labels_offset)


class Evaluator:
    """Builds the evaluation graph once, then evaluates any number of checkpoints.

    Use as a context manager, so that its session and event file are closed.
    `writer` is its ResultWriter, open until then.

    Raises:
      ValueError, FileNotFoundError: for an unknown dataset, split or net, a
        missing directory, or a labels offset that leaves no class.
    """

    def __init__(self, config: EvalConfig, in_record_order: bool = False):
        """Builds the graph of `config`'s net and data.

        Args:
          config: the evaluation.
          in_record_order: read the shards one after another and keep the
            examples in order, so that `measure` gives the top-1 class of
            each record (to compare with another model's, record by record);
            always so with a `config.predictions_file`.
        """
        config = with_eval_split(config)
        self.config = config
        # The predictions file names each example's record.
        self._in_record_order = in_record_order or config.predictions_file is not None
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._dataset = dataset_factory.get_dataset(
                config.dataset_name, config.dataset_split_name, config.dataset_dir)
            self.class_names = output_classes(self._dataset, config)
            self.num_classes = len(self.class_names)
            self._top_k = min(config.top_k, self.num_classes)
            self._fetches, self._initializer = self._build_model()
            self._restorer = checkpoints.CheckpointRestorer(
                config.model_name, self.num_classes, config.moving_average_decay)
            self.writer = ResultWriter(config.eval_dir, self._graph)
        self._graph.finalize()
        # One session for every checkpoint: restoring overwrites all variables.
        self._session = tf.Session(config.master, graph=self._graph,
                                   config=config.session_config)

    def _build_model(self) -> tuple[dict[str, tf.Tensor], tf.Operation]:
        config = self.config
        network_fn = nets_factory.get_network_fn(config.model_name, self.num_classes)
        batches = evaluation_batches(
            self._dataset, config.preprocessing_name or config.model_name,
            config.eval_image_size or network_fn.default_image_size, config.batch_size,
            use_grayscale=config.use_grayscale,
            num_readers=1 if self._in_record_order else config.num_readers,
            num_parallel_calls=config.num_preprocessing_threads,
            labels_offset=config.labels_offset, deterministic=self._in_record_order)
        images, labels, initializer = input_pipeline.initializable_batch(batches)
        logits, _ = network_fn(images)
        fetches = {'labels': labels, 'predictions': tf.argmax(logits, 1),
                   'probabilities': tf.nn.softmax(logits),
                   'top_k_hits': tf.nn.in_top_k(logits, labels, self._top_k)}
        if config.num_mistakes_shown:
            fetches['images'] = images
        return fetches, initializer

    def __enter__(self) -> 'Evaluator':
        return self

    def __exit__(self, error_type, *exc_info) -> None:
        try:
            self.writer.close(failing=error_type is not None)
        finally:
            self._session.close()

    def evaluate(self, checkpoint_path: str) -> dict:
        """Evaluates one checkpoint file, or the latest in a directory; see `evaluate`."""
        measured = self.measure(checkpoint_path)
        self.writer.write(measured.results, measured, self.class_names,
                          measured.results['global_step'] or 0, self.config.predictions_file)
        return measured.results

    def measure(self, checkpoint_path: str) -> Measurement:
        """Evaluates one checkpoint as `evaluate` does, writing nothing."""
        checkpoint = self._restorer.restore(self._session, checkpoint_path)
        global_step = checkpoints.checkpoint_global_step(checkpoint)
        log.info('Evaluating %s (global step %s) on %s/%s', checkpoint, global_step,
                 self.config.dataset_name, self.config.dataset_split_name)
        measured = self._one_pass(self._session)
        results = {'checkpoint': checkpoint, 'global_step': global_step,
                   'model_name': self.config.model_name,
                   'dataset_name': self.config.dataset_name,
                   'dataset_split_name': self.config.dataset_split_name}
        results.update(measured.results)
        return dataclasses.replace(measured, results=results)

    def _num_batches(self) -> int:
        batches = math.ceil(self._dataset.num_samples / self.config.batch_size)
        return min(batches, self.config.max_num_batches or batches)

    def _one_pass(self, session: tf.Session) -> Measurement:
        """The measurement of the split, or of `max_num_batches` batches; the records and
        file names in record order only."""
        confusion = np.zeros([self.num_classes, self.num_classes], np.int64)
        top_k_hits = 0
        collected = {'labels': [], 'predictions': [], 'probabilities': []}
        mistakes = curves.ConfidentMistakes(self.config.num_mistakes_shown)
        expected = self._num_batches()
        log_every = max(1, math.ceil(expected / _PROGRESS_LINES))
        session.run(self._initializer)
        batch = 0
        seen = 0
        with input_pipeline.data_errors_explained(self._dataset):
            while self.config.max_num_batches is None or batch < self.config.max_num_batches:
                try:
                    values = session.run(self._fetches)
                except tf.errors.OutOfRangeError:
                    break
                confusion += self._confusion_counts(values)
                top_k_hits += int(values['top_k_hits'].sum())
                for name, batches in collected.items():
                    batches.append(values[name])
                size = len(values['labels'])
                if 'images' in values:
                    mistakes.offer(values['probabilities'], values['labels'],
                                   values['predictions'],
                                   lambda index: curves.displayable(values['images'][index]),
                                   np.arange(seen, seen + size) if self._in_record_order
                                   else None)
                seen += size
                batch += 1
                if batch % log_every == 0:
                    log.info('batch %d/%d', batch, expected)
        labels = joined_batches(collected['labels'])
        predictions = joined_batches(collected['predictions'])
        probabilities = (np.concatenate(collected['probabilities']) if labels.size
                         else np.zeros([0, self.num_classes], np.float32))
        results = metrics.evaluation_summary(labels, predictions, probabilities, top_k_hits,
                                             self._top_k, self.class_names,
                                             self.config.f_beta, self.config.calibration_bins)
        records = file_names = None
        if self._in_record_order:
            records = np.arange(len(labels))
            file_names = record_file_names(self.config, len(labels))
        return Measurement(results, confusion, labels, predictions, probabilities,
                           mistakes.most_confident(), records, file_names)

    def _confusion_counts(self, values: dict[str, np.ndarray]) -> np.ndarray:
        try:
            return metrics.confusion_counts(values['labels'], values['predictions'],
                                            self.num_classes)
        except ValueError as error:
            raise EvaluationError('%s in %s/%s: check --labels_offset and --dataset_name'
                                  % (error, self.config.dataset_name,
                                     self.config.dataset_split_name)) from None


def record_file_names(config: EvalConfig, count: int) -> list[str]:
    """The file names the first `count` records of the split keep ('' where none)."""
    source = image_sources.record_source(config.dataset_name, config.dataset_split_name,
                                         config.dataset_dir, config.labels_offset)
    return [item.path for item in itertools.islice(source.items(), count)]


def predictions_csv(measured: Measurement, top_k: int) -> str:
    """One row per example: record, file_name, label, prediction, then the top-k class ids
    and their probabilities, highest first."""
    ranked = np.argsort(-measured.probabilities, axis=1, kind='stable')[:, :top_k]
    text = io.StringIO()
    rows = csv.writer(text, lineterminator='\n')
    rows.writerow(['record', 'file_name', 'label', 'prediction']
                  + ['top_%d_id' % rank for rank in range(1, top_k + 1)]
                  + ['top_%d_probability' % rank for rank in range(1, top_k + 1)])
    for index, (label, prediction) in enumerate(zip(measured.labels, measured.predictions)):
        row = [measured.records[index] if measured.records is not None else '',
               measured.file_names[index] if measured.file_names is not None else '',
               int(label), int(prediction)]
        row.extend(int(class_id) for class_id in ranked[index])
        row.extend('%.6g' % measured.probabilities[index, class_id]
                   for class_id in ranked[index])
        rows.writerow(row)
    return text.getvalue()


def joined_batches(batches: list[np.ndarray]) -> np.ndarray:
    """The int64 values of the batches, one after another."""
    return np.concatenate(batches).astype(np.int64) if batches else np.zeros([0], np.int64)


def _readable_json(results: dict) -> str:
    """JSON with a line per key, and per element of a list (a class, a matrix row)."""
    def item(key, value):
        if isinstance(value, list):
            value = '[\n  %s\n ]' % ',\n  '.join(json.dumps(element) for element in value)
        else:
            value = json.dumps(value)
        return ' %s: %s' % (json.dumps(key), value)
    return '{\n%s\n}\n' % ',\n'.join(item(key, value) for key, value in results.items())


def _pictures(results: dict, measured: Measurement, class_names: list[str]
              ) -> Iterator[tuple[str, str, tuple[bytes, tuple[int, int]]]]:
    """(TensorBoard tag, file name, (PNG, (width, height))) of each picture the results have:
    the curves of the classes where they are defined, the mistakes where some are kept."""
    png, layout = confusion_image.draw_confusion_matrix(measured.confusion, class_names)
    yield 'eval/Confusion_Matrix', CONFUSION_FILENAME, (png, (layout.width, layout.height))
    per_class = results['per_class']
    roc = [row['roc_auc'] for row in per_class]
    if any(area is not None for area in roc):
        yield 'eval/ROC_Curves', ROC_FILENAME, curves.draw_roc_curves(
            measured.labels, measured.probabilities, class_names, roc)
    precision = [row['average_precision'] for row in per_class]
    if any(area is not None for area in precision):
        yield 'eval/Precision_Recall_Curves', PRECISION_RECALL_FILENAME, (
            curves.draw_precision_recall_curves(measured.labels, measured.probabilities,
                                                class_names, precision))
    if results['num_examples']:
        yield 'eval/Reliability_Diagram', RELIABILITY_FILENAME, (
            curves.draw_reliability_diagram(curves.reliability(
                measured.probabilities[np.arange(len(measured.labels)), measured.predictions],
                measured.labels == measured.predictions, results['calibration_bins'])))
    if measured.mistakes:
        yield 'eval/Most_Confident_Mistakes', MISTAKES_FILENAME, curves.draw_mistakes(
            measured.mistakes, class_names)


# TensorBoard tags of the overall figures; the first three are the original evaluator's.
_SCALAR_TAGS = {'accuracy': 'eval/Accuracy', 'recall_at_5': 'eval/Recall_5',
                'mean_per_class_accuracy': 'eval/Mean_Per_Class_Accuracy',
                'macro_f_beta': 'eval/Macro_F_beta', 'weighted_f_beta': 'eval/Weighted_F_beta',
                'matthews_corrcoef': 'eval/Matthews_Correlation',
                'cohen_kappa': 'eval/Cohen_Kappa', 'macro_roc_auc': 'eval/Macro_ROC_AUC',
                'micro_roc_auc': 'eval/Micro_ROC_AUC',
                'macro_average_precision': 'eval/Macro_Average_Precision',
                'log_loss': 'eval/Log_Loss',
                'expected_calibration_error': 'eval/Expected_Calibration_Error'}


def _summary(results: dict, images: dict[str, tuple[bytes, tuple[int, int]]]) -> tf.Summary:
    """The defined overall figures as scalars, and the pictures."""
    values = [tf.Summary.Value(tag=tag, simple_value=results[key])
              for key, tag in _SCALAR_TAGS.items() if results.get(key) is not None]
    values.extend(tf.Summary.Value(tag=tag, image=tf.Summary.Image(
        encoded_image_string=png, height=height, width=width, colorspace=3))
        for tag, (png, (width, height)) in images.items())
    return tf.Summary(value=values)
