"""Evaluates a checkpoint on one pass over a dataset split, as a library.

`evaluate(config)` restores the checkpoint, reads every example of the split
exactly once (the last partial batch included) and accumulates a confusion
matrix and the top-5 hits. From them it derives accuracy, recall at 5,
per-class precision, recall and F1 and the mean per-class accuracy, and
writes them to `<eval_dir>/metrics.json`, a PNG of the confusion matrix and
TensorBoard summaries; a device too full for one of them is one line naming
it. `evaluate_new_checkpoints(config)` does the same for
each checkpoint a training job writes, like the original `evaluation_loop`.
An export is evaluated by `export_evaluation`, which writes its results with
the same `ResultWriter`.
"""

import dataclasses
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
from slim_classifier.evaluation import confusion_image, metrics
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.runtime import checkpoints
from slim_classifier.runtime.batches import evaluation_batches
from slim_classifier.runtime.files import disk_full_named, write_atomically
from slim_classifier.serving.labels import names_by_output

log = logging.getLogger('eval')

METRICS_FILENAME = 'metrics.json'
CONFUSION_FILENAME = 'confusion_matrix.png'
TOP_K = 5
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
      labels, predictions: the true and the top-1 class of each example in
        record order; None where the pass did not read the records in order.
    """
    results: dict
    confusion: np.ndarray
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None


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
    """Writes the results of evaluations to an eval_dir: metrics.json, the PNG and the events.

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

    def write(self, results: dict, confusion: np.ndarray, class_names: list[str],
              step: int) -> None:
        """metrics.json, the confusion PNG and the TensorBoard summaries at `step`."""
        metrics_path = os.path.join(self.eval_dir, METRICS_FILENAME)
        with disk_full_named(metrics_path, _NO_SPACE_ADVICE):
            write_atomically(metrics_path, _readable_json(results))
        png, layout = confusion_image.draw_confusion_matrix(confusion, class_names)
        image_path = os.path.join(self.eval_dir, CONFUSION_FILENAME)
        with disk_full_named(image_path, _NO_SPACE_ADVICE):
            write_atomically(image_path, png)
        with disk_full_named(self._events, _NO_SPACE_ADVICE):
            self._writer.add_summary(_summary(results, png, layout), step)
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
            each record (to compare with another model's, record by record).
        """
        config = with_eval_split(config)
        self.config = config
        self._in_record_order = in_record_order
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._dataset = dataset_factory.get_dataset(
                config.dataset_name, config.dataset_split_name, config.dataset_dir)
            self.class_names = output_classes(self._dataset, config)
            self.num_classes = len(self.class_names)
            self._top_k = min(TOP_K, self.num_classes)
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
                   'top_k_hits': tf.nn.in_top_k(logits, labels, self._top_k)}
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
        self.writer.write(measured.results, measured.confusion, self.class_names,
                          measured.results['global_step'] or 0)
        return measured.results

    def measure(self, checkpoint_path: str) -> Measurement:
        """Evaluates one checkpoint as `evaluate` does, writing nothing."""
        checkpoint = self._restorer.restore(self._session, checkpoint_path)
        global_step = checkpoints.checkpoint_global_step(checkpoint)
        log.info('Evaluating %s (global step %s) on %s/%s', checkpoint, global_step,
                 self.config.dataset_name, self.config.dataset_split_name)
        confusion, top_k_hits, labels, predictions = self._one_pass(self._session)
        results = {'checkpoint': checkpoint, 'global_step': global_step,
                   'model_name': self.config.model_name,
                   'dataset_name': self.config.dataset_name,
                   'dataset_split_name': self.config.dataset_split_name}
        results.update(metrics.summarize(confusion, top_k_hits, self._top_k,
                                         self.class_names))
        return Measurement(results, confusion, labels, predictions)

    def _num_batches(self) -> int:
        batches = math.ceil(self._dataset.num_samples / self.config.batch_size)
        return min(batches, self.config.max_num_batches or batches)

    def _one_pass(self, session: tf.Session
                  ) -> tuple[np.ndarray, int, np.ndarray | None, np.ndarray | None]:
        """(confusion matrix, top-k hits, labels, predictions) over the split or
        `max_num_batches` batches; the labels and predictions in record order only."""
        confusion = np.zeros([self.num_classes, self.num_classes], np.int64)
        top_k_hits = 0
        labels, predictions = [], []
        expected = self._num_batches()
        log_every = max(1, math.ceil(expected / _PROGRESS_LINES))
        session.run(self._initializer)
        batch = 0
        with input_pipeline.data_errors_explained(self._dataset):
            while self.config.max_num_batches is None or batch < self.config.max_num_batches:
                try:
                    values = session.run(self._fetches)
                except tf.errors.OutOfRangeError:
                    break
                confusion += self._confusion_counts(values)
                top_k_hits += int(values['top_k_hits'].sum())
                if self._in_record_order:
                    labels.append(values['labels'])
                    predictions.append(values['predictions'])
                batch += 1
                if batch % log_every == 0:
                    log.info('batch %d/%d', batch, expected)
        if not self._in_record_order:
            return confusion, top_k_hits, None, None
        return confusion, top_k_hits, joined_batches(labels), joined_batches(predictions)

    def _confusion_counts(self, values: dict[str, np.ndarray]) -> np.ndarray:
        try:
            return metrics.confusion_counts(values['labels'], values['predictions'],
                                            self.num_classes)
        except ValueError as error:
            raise EvaluationError('%s in %s/%s: check --labels_offset and --dataset_name'
                                  % (error, self.config.dataset_name,
                                     self.config.dataset_split_name)) from None



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


def _summary(results: dict, png: bytes, layout: confusion_image.ConfusionLayout
             ) -> tf.Summary:
    """The scalars under the original evaluator's tags, and the confusion image."""
    scalars = {'eval/Accuracy': results['accuracy'],
               'eval/Recall_5': results['recall_at_5'],
               'eval/Mean_Per_Class_Accuracy': results['mean_per_class_accuracy']}
    values = [tf.Summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()]
    values.append(tf.Summary.Value(tag='eval/Confusion_Matrix', image=tf.Summary.Image(
        encoded_image_string=png, height=layout.height, width=layout.width, colorspace=3)))
    return tf.Summary(value=values)
