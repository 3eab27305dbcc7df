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

A multi-label evaluation (a multi-label dataset or training run, or
`multi_label`) takes the sigmoid of the logits, collects the multi-hot truth
and the probabilities, and writes the figures of `multilabel_metrics` (mAP,
F1, subset accuracy, ...) with the per-label precision-recall curves; with
`tune_thresholds` it writes the per-label thresholds that maximise F1 to
thresholds.json (see `multilabel_metrics`).
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
from slim_classifier.evaluation import confusion_image, curves, metrics, multilabel_metrics
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.runtime import checkpoints, run_config
from slim_classifier.runtime.batches import evaluation_batches
from slim_classifier.runtime.files import disk_full_named, write_atomically
from slim_classifier.serving import image_sources, multi_label
from slim_classifier.serving.labels import names_by_output

log = logging.getLogger('eval')

METRICS_FILENAME = 'metrics.json'
CONFUSION_FILENAME = 'confusion_matrix.png'
ROC_FILENAME = 'roc_curves.png'
PRECISION_RECALL_FILENAME = 'precision_recall_curves.png'
RELIABILITY_FILENAME = 'reliability_diagram.png'
MISTAKES_FILENAME = 'mistakes.png'
THRESHOLDS_FILENAME = 'thresholds.json'
_PROGRESS_LINES = 10  # progress lines logged per pass
_NO_SPACE_ADVICE = 'free space there or choose another --eval_dir'


class EvaluationError(UserError):
    """A problem the user can act on; its message is one line."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What one pass measured.

    Attributes:
      results: the metrics (see `evaluate`).
      confusion: the confusion matrix [classes, classes], rows true classes;
        multi-label: each label's [[tn, fp], [fn, tp]], [labels, 2, 2].
      labels, predictions: the true and the top-1 class of each example, in
        record order where the pass read the records in order; multi-label:
        the multi-hot truth and the predicted labels, [examples, labels].
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
      The metrics, as written to metrics.json (see `metrics.summarize`, and
      `multilabel_metrics.multilabel_summary` for a multi-label evaluation),
      plus `checkpoint`, `global_step`, `model_name`, `dataset_name` and
      `dataset_split_name`; with `tune_thresholds`, `thresholds_files`: the
      thresholds.json files written.

    Raises:
      CheckpointMismatch: no checkpoint, or one that does not fit the net.
      EvaluationError: a label outside the net's classes; `tune_thresholds` on
        a single-label evaluation.
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
            table = (multilabel_predictions_csv(measured) if results.get('multi_label')
                     else predictions_csv(measured, results['top_k']))
            with disk_full_named(predictions_file, 'free space there or choose another '
                                 '--predictions_file'):
                write_atomically(predictions_file, table)
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
            self.multi_label = (config.multi_label or self._dataset.multi_label
                                or multi_label.trained_multi_label(config.checkpoint_path))
            if config.tune_thresholds and not self.multi_label:
                raise EvaluationError(
                    '--tune_thresholds tunes the thresholds of a multi-label evaluation; %s is '
                    'single-label (add --multi_label to evaluate it as multi-label)'
                    % config.dataset_name)
            self.class_names = output_classes(self._dataset, config)
            self.num_classes = len(self.class_names)
            self._top_k = min(config.top_k, self.num_classes)
            self._fetches, self._initializer = self._build_model()
            self._restorer = checkpoints.CheckpointRestorer(
                config.model_name, self.num_classes, config.moving_average_decay)
            self.writer = ResultWriter(config.eval_dir, self._graph)
        self._graph.finalize()
        # The iterator starts once, and again only after a pass that did not reach its end.
        self._restart_pipeline = True
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
        if config.max_num_batches:
            batches = batches.take(config.max_num_batches)
        images, labels, end_of_pass, initializer = _repeated_passes(batches)
        logits, _ = network_fn(images)
        if self.multi_label:
            return {'labels': labels, 'probabilities': tf.sigmoid(logits),
                    'end_of_pass': end_of_pass}, initializer
        fetches = {'labels': labels, 'predictions': tf.argmax(logits, 1),
                   'probabilities': tf.nn.softmax(logits),
                   'top_k_hits': tf.nn.in_top_k(logits, labels, self._top_k),
                   'end_of_pass': end_of_pass}
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
        if self.config.tune_thresholds:
            measured.results['thresholds_files'] = write_thresholds(
                measured.results, self.config.eval_dir)
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

    def _batch_values(self, session: tf.Session) -> Iterator[dict[str, np.ndarray]]:
        """The fetched values of each batch of one pass (at most `max_num_batches`), with
        progress lines."""
        expected = self._num_batches()
        log_every = max(1, math.ceil(expected / _PROGRESS_LINES))
        if self._restart_pipeline:
            session.run(self._initializer)
        self._restart_pipeline = True  # until this pass reads its end
        batch = 0
        with input_pipeline.data_errors_explained(self._dataset):
            while True:
                values = session.run(self._fetches)
                if values['end_of_pass']:
                    break
                yield values
                batch += 1
                if batch % log_every == 0:
                    log.info('batch %d/%d', batch, expected)
        self._restart_pipeline = False

    def _record_order(self, count: int) -> tuple[np.ndarray | None, list[str] | None]:
        """(record indices, file names) of `count` examples read in record order, else Nones."""
        if not self._in_record_order:
            return None, None
        return np.arange(count), record_file_names(self.config, count)

    def _one_pass(self, session: tf.Session) -> Measurement:
        """The measurement of the split, or of `max_num_batches` batches; the records and
        file names in record order only."""
        if self.multi_label:
            return self._multilabel_pass(session)
        confusion = np.zeros([self.num_classes, self.num_classes], np.int64)
        top_k_hits = 0
        collected = {'labels': [], 'predictions': [], 'probabilities': []}
        mistakes = curves.ConfidentMistakes(self.config.num_mistakes_shown)
        seen = 0
        for values in self._batch_values(session):
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
        labels = joined_batches(collected['labels'])
        predictions = joined_batches(collected['predictions'])
        probabilities = (np.concatenate(collected['probabilities']) if labels.size
                         else np.zeros([0, self.num_classes], np.float32))
        results = metrics.evaluation_summary(labels, predictions, probabilities, top_k_hits,
                                             self._top_k, self.class_names,
                                             self.config.f_beta, self.config.calibration_bins)
        return Measurement(results, confusion, labels, predictions, probabilities,
                           mistakes.most_confident(), *self._record_order(len(labels)))

    def _multilabel_pass(self, session: tf.Session) -> Measurement:
        """The multi-label measurement: the multi-hot truth against the sigmoid
        probabilities, labels predicted at `config.threshold`."""
        truth, probabilities = [np.zeros([0, self.num_classes], np.float32)], [
            np.zeros([0, self.num_classes], np.float32)]
        for values in self._batch_values(session):
            truth.append(self._multi_hot(values['labels']))
            probabilities.append(values['probabilities'])
        truth, probabilities = np.concatenate(truth), np.concatenate(probabilities)
        results = multilabel_metrics.multilabel_summary(truth, probabilities,
                                                        self.config.threshold, self.class_names)
        predicted = probabilities >= self.config.threshold
        confusion = multilabel_metrics.label_confusion(truth != 0, predicted)
        return Measurement(results, confusion, truth, predicted, probabilities, [],
                           *self._record_order(len(truth)))

    def _multi_hot(self, labels: np.ndarray) -> np.ndarray:
        """float32 [batch, classes]: multi-hot labels as they are, class ids made one-hot.

        Raises:
          EvaluationError: for a class id outside the net's classes, or multi-hot
            labels of another number of classes.
        """
        if labels.ndim == 1:
            outside = labels[(labels < 0) | (labels >= self.num_classes)]
            if outside.size:
                raise EvaluationError(
                    'label %d is outside [0, %d) in %s/%s: check --labels_offset and '
                    '--dataset_name' % (outside[0], self.num_classes, self.config.dataset_name,
                                        self.config.dataset_split_name))
            return np.eye(self.num_classes, dtype=np.float32)[labels]
        if labels.shape[1] != self.num_classes:
            raise EvaluationError('the records of %s/%s have %d labels; the net has %d: check '
                                  '--labels_offset and --dataset_name'
                                  % (self.config.dataset_name, self.config.dataset_split_name,
                                     labels.shape[1], self.num_classes))
        return labels.astype(np.float32)

    def _confusion_counts(self, values: dict[str, np.ndarray]) -> np.ndarray:
        try:
            return metrics.confusion_counts(values['labels'], values['predictions'],
                                            self.num_classes)
        except ValueError as error:
            raise EvaluationError('%s in %s/%s: check --labels_offset and --dataset_name'
                                  % (error, self.config.dataset_name,
                                     self.config.dataset_split_name)) from None


def _repeated_passes(batches: tf.data.Dataset
                     ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Operation]:
    """(images, labels, end_of_pass, initializer) of one iterator over `batches` followed by
    a batch of one blank example whose end_of_pass is True (not an empty one: oneDNN's
    convolutions reject a batch of 0), repeated: each pass reads every batch exactly once,
    and the pipeline runs on into the next pass (prefetching it while the results of this
    one are computed and written) instead of restarting."""
    def blank(spec: tf.TensorSpec) -> tf.Tensor:
        return tf.zeros([1] + [size or 1 for size in spec.shape.as_list()[1:]], spec.dtype)
    image_spec, label_spec = batches.element_spec
    end = tf.data.Dataset.from_tensors((blank(image_spec), blank(label_spec), True))
    passes = batches.map(lambda images, labels: (images, labels, False)).concatenate(end)
    iterator = tf.data.make_initializable_iterator(passes.repeat())
    images, labels, end_of_pass = iterator.get_next()
    return images, labels, end_of_pass, iterator.initializer


def record_file_names(config: EvalConfig, count: int) -> list[str]:
    """The file names the first `count` records of the split keep ('' where none)."""
    source = image_sources.record_source(config.dataset_name, config.dataset_split_name,
                                         config.dataset_dir, config.labels_offset)
    return [item.path for item in itertools.islice(source.items(), count)]


def write_thresholds(results: dict, eval_dir: str) -> list[str]:
    """Writes the tuned thresholds of multi-label `results` (see
    `multilabel_metrics.thresholds_record`) to thresholds.json in `eval_dir` and, where the
    checkpoint belongs to a training directory, beside the checkpoint; each through a
    temporary file and a rename. Returns the paths written."""
    checkpoint = results['checkpoint']
    record = multilabel_metrics.thresholds_record(results, results['dataset_split_name'],
                                                  checkpoint)
    paths = [os.path.join(eval_dir, THRESHOLDS_FILENAME)]
    if run_config.find_run_dir(checkpoint) is not None:
        paths.append(os.path.join(os.path.dirname(checkpoint), THRESHOLDS_FILENAME))
    for path in paths:
        with disk_full_named(path, 'free space there or choose another --eval_dir'):
            write_atomically(path, json.dumps(record, indent=1) + '\n')
    return paths


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


def multilabel_predictions_csv(measured: Measurement) -> str:
    """One row per example of a multi-label evaluation: record, file_name, labels and
    predicted_labels (ids joined by ';'), then each label's probability."""
    text = io.StringIO()
    rows = csv.writer(text, lineterminator='\n')
    num_labels = measured.probabilities.shape[1]
    rows.writerow(['record', 'file_name', 'labels', 'predicted_labels']
                  + ['probability_%d' % label for label in range(num_labels)])
    for index, (truth, predicted) in enumerate(zip(measured.labels, measured.predictions)):
        rows.writerow([measured.records[index] if measured.records is not None else '',
                       measured.file_names[index] if measured.file_names is not None else '',
                       ';'.join(str(label) for label in np.flatnonzero(truth)),
                       ';'.join(str(label) for label in np.flatnonzero(predicted))]
                      + ['%.6g' % value for value in measured.probabilities[index]])
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
    the curves of the classes where they are defined, the mistakes where some are kept;
    multi-label: the precision-recall curves of the labels."""
    if results.get('multi_label'):
        precision = [row['average_precision'] for row in results['per_label']]
        if any(area is not None for area in precision):
            yield 'eval/Precision_Recall_Curves', PRECISION_RECALL_FILENAME, (
                curves.draw_precision_recall_curves(measured.labels, measured.probabilities,
                                                    class_names, precision))
        return
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
                'expected_calibration_error': 'eval/Expected_Calibration_Error',
                # Multi-label.
                'map': 'eval/mAP', 'micro_f1': 'eval/Micro_F1', 'macro_f1': 'eval/Macro_F1',
                'subset_accuracy': 'eval/Subset_Accuracy', 'hamming_loss': 'eval/Hamming_Loss',
                'label_ranking_average_precision': 'eval/Label_Ranking_Average_Precision'}


def _summary(results: dict, images: dict[str, tuple[bytes, tuple[int, int]]]) -> tf.Summary:
    """The defined overall figures as scalars, and the pictures."""
    values = [tf.Summary.Value(tag=tag, simple_value=results[key])
              for key, tag in _SCALAR_TAGS.items() if results.get(key) is not None]
    values.extend(tf.Summary.Value(tag=tag, image=tf.Summary.Image(
        encoded_image_string=png, height=height, width=width, colorspace=3))
        for tag, (png, (width, height)) in images.items())
    return tf.Summary(value=values)
