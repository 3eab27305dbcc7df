"""Evaluates an export on one pass over a dataset split, and compares it with its checkpoint.

`evaluate_export(config)` loads `config.model_path` (a frozen GraphDef, a
SavedModel, a TFLite model, float or quantized, or an ONNX model; see
`serving.classifier`), reads every record of the split exactly once (the
records as `serving.prediction` reads them, in order) and writes the same
metrics.json, PNGs, TensorBoard summaries and predictions file as the
evaluation of a checkpoint, plus which model it was: its path and kind. Its
contact sheet of mistakes shows the records' images as stored, before the
export's own preprocessing.

With `config.checkpoint_path` set too, the checkpoint is evaluated as well,
by the checkpoint evaluator reading the records in the same order, and
metrics.json gets a `comparison`: the accuracy drop from the checkpoint to
the export, in points, and the share of examples whose top-1 class changed.
That is what to look at before shipping a quantized model.
"""

import contextlib
import dataclasses
import io
import itertools
import logging
import math
import os
from collections.abc import Callable

import numpy as np
import tensorflow.compat.v1 as tf
from PIL import Image

from datasets import dataset_factory
from slim_classifier.evaluation import curves, metrics
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.evaluation.evaluator import (EvaluationError, Evaluator, Measurement,
                                                  ResultWriter, joined_batches, output_classes,
                                                  with_eval_split)
from slim_classifier.serving import classifier, image_sources, inference, metadata
from slim_classifier.serving.metadata import ExportMetadata

log = logging.getLogger('eval')

_PROGRESS_LINES = 10  # progress lines logged per pass
# num_examples, accuracy, recall_at_5 and mean_per_class_accuracy open `metrics.format_table`.
_OVERALL_ROWS = 4
# The evaluation options an export's metadata describes, as {option: its value there};
# use_grayscale is read from its channel count (see `export_defaults`).
_DESCRIBED: dict[str, Callable[[ExportMetadata], object]] = {
    'model_name': lambda described: described.model_name,
    'preprocessing_name': lambda described: described.preprocessing_name,
    'eval_image_size': lambda described: described.image_size,
    'labels_offset': lambda described: described.labels_offset,
}


def export_kind(model_path: str) -> str:
    """The kind of export at `model_path`: 'graphdef', 'saved_model', 'tflite' or 'onnx'.

    Raises:
      FileNotFoundError: if nothing is there.
      ValueError: for a checkpoint, or a directory that holds no SavedModel.
    """
    kind = classifier.model_kind(model_path)
    if kind == 'checkpoint':
        raise ValueError("--model_path '%s' is no export: expected a frozen GraphDef (.pb or "
                         '.pbtxt), a SavedModel directory (with saved_model.pb), a .tflite or '
                         'an .onnx file; evaluate a checkpoint or training directory with '
                         '--checkpoint_path' % model_path)
    return kind


def export_defaults(model_path: str, given: dict, explicit: set[str]) -> dict:
    """The option values the export's metadata gives, for the options not given explicitly.

    Args:
      model_path: the --model_path given.
      given: the command's option values.
      explicit: the options given on the command line.

    Returns:
      {option: value} of model_name, preprocessing_name, eval_image_size,
      labels_offset and use_grayscale; empty for an export without metadata.

    Raises:
      FileNotFoundError, ValueError: for a path that is no export (see
        `export_kind`), metadata this version cannot read, an explicit
        option that contradicts it, or an export other than a SavedModel
        without metadata whose net no option names.
    """
    kind = export_kind(model_path)
    described = metadata.read(model_path)
    if described is None:
        if kind != 'saved_model' and not {'model_name', 'preprocessing_name'} & explicit:
            # A file that is no model at all is better told so than asked for its net.
            classifier.load_model(model_path, given['model_name']).close()
            raise ValueError('%s has no metadata (%s): give the --model_name (or '
                             '--preprocessing_name) it was exported from, or export it again'
                             % (model_path, metadata.metadata_path(model_path)))
        return {}
    values = {option: value_of(described) for option, value_of in _DESCRIBED.items()}
    for option in sorted(explicit & set(values)):
        if given[option] != values[option]:
            raise ValueError('--%s=%s contradicts the export %s, made for --%s=%s (%s)'
                             % (option, given[option], model_path, option, values[option],
                                metadata.metadata_path(model_path)))
    # A 1-channel net (LeNet) reads one channel whatever --use_grayscale says.
    if 'use_grayscale' in explicit:
        channels = inference.input_channels(described.model_name, given['use_grayscale'])
        if channels != described.channels:
            raise ValueError('--use_grayscale=%s gives %s %d-channel images, but the export %s '
                             'reads %d (%s)' % (given['use_grayscale'], described.model_name,
                                                channels, model_path, described.channels,
                                                metadata.metadata_path(model_path)))
    else:
        values['use_grayscale'] = described.channels == inference.GRAYSCALE_CHANNELS
    return {option: value for option, value in values.items() if option not in explicit}


def evaluate_export(config: EvalConfig) -> dict:
    """Evaluates the export `config.model_path`, and compares it with `config.checkpoint_path`.

    The export is fed as its metadata says (its preprocessing, input size and
    channels); the other options describing the net should be the metadata's
    too (`export_defaults`), so that the checkpoint is evaluated alike.

    Returns:
      The metrics, as written to metrics.json: those of `metrics.summarize`,
      plus `model_path`, `model_kind`, `model_name`, `quantization` and
      `exported_from` (from the metadata; None without), `dataset_name`,
      `dataset_split_name` and, with a checkpoint, `comparison` (see
      `compare`).

    Raises:
      FileNotFoundError, ValueError: no export at `model_path`, an unknown
        dataset or split, or an export whose class count is not the
        dataset's.
      MissingExtraError: an ONNX model without ONNX Runtime installed.
      EvaluationError: a label outside the classes, or a record the export
        cannot read.
      DataError: a record that cannot be read.
      CheckpointMismatch: a checkpoint that does not fit the net.
      DiskFullError: no space left for metrics.json, the image or the events.
    """
    config = with_eval_split(config)
    kind = export_kind(config.model_path)
    described = metadata.read(config.model_path)
    with tf.Graph().as_default():
        class_names = output_classes(dataset_factory.get_dataset(
            config.dataset_name, config.dataset_split_name, config.dataset_dir), config)
    model = classifier.load_model(
        config.model_path, described.model_name if described else config.model_name,
        preprocessing_name=(described.preprocessing_name if described
                            else config.preprocessing_name))
    try:
        if model.output_size != len(class_names):
            raise ValueError('the %s export %s gives %d probabilities but %s has %d classes '
                             'from --labels_offset=%d on; check --dataset_name and '
                             '--labels_offset' % (kind, config.model_path, model.output_size,
                                                  config.dataset_name, len(class_names),
                                                  config.labels_offset))
        if config.checkpoint_path is None:
            with ResultWriter(config.eval_dir) as writer:
                return _evaluate(config, model, described, class_names, writer, None)
        with Evaluator(config, in_record_order=True) as checkpoint_evaluator:
            reference = checkpoint_evaluator.measure(config.checkpoint_path)
            return _evaluate(config, model, described, class_names,
                             checkpoint_evaluator.writer, reference)
    finally:
        model.close()


def _evaluate(config: EvalConfig, model: classifier.LoadedModel,
              described: ExportMetadata | None, class_names: list[str],
              writer: ResultWriter, reference: Measurement | None) -> dict:
    """The export's pass, compared with `reference` if given, written by `writer`."""
    log.info('Evaluating the %s export %s on %s/%s', model.kind, config.model_path,
             config.dataset_name, config.dataset_split_name)
    measured = export_pass(model, config, class_names)
    results = {'model_path': os.path.abspath(config.model_path), 'model_kind': model.kind,
               'model_name': described.model_name if described else config.model_name,
               'quantization': described.quantization if described else None,
               'exported_from': described.checkpoint if described else None,
               'dataset_name': config.dataset_name,
               'dataset_split_name': config.dataset_split_name}
    results.update(measured.results)
    if reference is not None:
        results['comparison'] = compare(reference, measured)
    writer.write(results, dataclasses.replace(measured, results=results), class_names, 0,
                 config.predictions_file)
    return results


def export_pass(model: classifier.LoadedModel, config: EvalConfig,
                class_names: list[str]) -> Measurement:
    """One pass of `model` over the split (or `config.max_num_batches` batches), in record order.

    Raises:
      EvaluationError: a label outside the classes, or an image the model
        cannot read.
      DataError: a record that cannot be read.
    """
    num_classes = len(class_names)
    top_k = min(config.top_k, num_classes)
    source = image_sources.record_source(config.dataset_name, config.dataset_split_name,
                                      config.dataset_dir, config.labels_offset)
    expected = math.ceil(source.total / config.batch_size)
    expected = min(expected, config.max_num_batches or expected)
    log_every = max(1, math.ceil(expected / _PROGRESS_LINES))
    confusion = np.zeros([num_classes, num_classes], np.int64)
    top_k_hits = 0
    labels, predictions, probabilities, records, file_names = [], [], [], [], []
    mistakes = curves.ConfidentMistakes(config.num_mistakes_shown)
    read = image_sources.prefetched(image_sources.batches(source.items(), config.batch_size))
    with contextlib.closing(read):
        for number, batch in enumerate(itertools.islice(read, expected), 1):
            batch_probabilities = _probabilities(model, batch, config)
            batch_labels = np.array([item.label for item in batch], np.int64)
            batch_predictions = batch_probabilities.argmax(axis=1)
            confusion += _confusion_counts(batch_labels, batch_predictions, config,
                                           num_classes)
            top_k_hits += top_k_count(batch_probabilities, batch_labels, top_k)
            batch_records = np.array([item.record for item in batch], np.int64)
            mistakes.offer(batch_probabilities, batch_labels, batch_predictions,
                           lambda index: _stored_image(batch[index]), batch_records)
            labels.append(batch_labels)
            predictions.append(batch_predictions)
            probabilities.append(batch_probabilities.astype(np.float32))
            records.append(batch_records)
            file_names.extend(item.path for item in batch)
            if number % log_every == 0:
                log.info('batch %d/%d', number, expected)
    labels, predictions = joined_batches(labels), joined_batches(predictions)
    probabilities = (np.concatenate(probabilities) if probabilities
                     else np.zeros([0, num_classes], np.float32))
    results = metrics.evaluation_summary(labels, predictions, probabilities, top_k_hits, top_k,
                                         class_names, config.f_beta, config.calibration_bins)
    return Measurement(results, confusion, labels, predictions, probabilities,
                       mistakes.most_confident(), joined_batches(records), file_names)


def _stored_image(item: image_sources.ImageItem) -> np.ndarray:
    """The uint8 RGB pixels of a record's image, as stored."""
    return np.asarray(Image.open(io.BytesIO(item.encoded)).convert('RGB'))


def _confusion_counts(labels: np.ndarray, predictions: np.ndarray, config: EvalConfig,
                      num_classes: int) -> np.ndarray:
    try:
        return metrics.confusion_counts(labels, predictions, num_classes)
    except ValueError as error:
        raise EvaluationError('%s in %s/%s: check --labels_offset and --dataset_name'
                              % (error, config.dataset_name, config.dataset_split_name)) from None


def _probabilities(model: classifier.LoadedModel, batch: list[image_sources.ImageItem],
                   config: EvalConfig) -> np.ndarray:
    """[batch, classes] of the records of `batch`.

    Raises:
      EvaluationError: for a record whose image cannot be read.
    """
    unreadable = next((item for item in batch if item.error is not None), None)
    if unreadable is None:
        outcomes = classifier.predict_each(model, [item.encoded for item in batch])
        failed = next((index for index, outcome in enumerate(outcomes)
                       if outcome.error is not None), None)
        if failed is None:
            return np.stack([outcome.outputs for outcome in outcomes])
        unreadable = dataclasses.replace(batch[failed], error=outcomes[failed].error)
    raise EvaluationError("record %d ('%s') of %s/%s cannot be classified: %s"
                          % (unreadable.record, unreadable.path, config.dataset_name,
                             config.dataset_split_name, unreadable.error))


def top_k_count(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many labels are among the `k` highest scores, ties counted as hits (as in_top_k)."""
    own = scores[np.arange(len(labels)), labels]
    return int(((scores > own[:, np.newaxis]).sum(axis=1) < k).sum())


def compare(reference: Measurement, measured: Measurement) -> dict:
    """How an export's pass differs from its checkpoint's on the same records.

    Args:
      reference: the checkpoint's pass, in record order.
      measured: the export's pass.

    Returns:
      {checkpoint, global_step, checkpoint_accuracy, accuracy,
      accuracy_drop_points (checkpoint minus export, in points of accuracy),
      predictions_changed (examples whose top-1 class differs),
      changed_fraction (of num_examples), num_examples}.

    Raises:
      EvaluationError: if the two passes did not read the same records.
    """
    if not np.array_equal(reference.labels, measured.labels):
        raise EvaluationError('the checkpoint and the export read %d and %d examples whose '
                              'labels differ: the two passes are not comparable'
                              % (len(reference.labels), len(measured.labels)))
    changed = int((reference.predictions != measured.predictions).sum())
    num_examples = len(measured.labels)
    checkpoint_accuracy = reference.results['accuracy']
    accuracy = measured.results['accuracy']
    return {'checkpoint': reference.results['checkpoint'],
            'global_step': reference.results['global_step'],
            'checkpoint_accuracy': checkpoint_accuracy, 'accuracy': accuracy,
            'accuracy_drop_points': 100.0 * (checkpoint_accuracy - accuracy),
            'predictions_changed': changed,
            'changed_fraction': changed / num_examples if num_examples else 0.0,
            'num_examples': num_examples}


def format_table(results: dict) -> str:
    """`metrics.format_table`, with the comparison's rows after the overall figures, if any."""
    lines = metrics.format_table(results).splitlines()
    if 'comparison' in results:
        comparison = results['comparison']
        # The overall figures are the table's first lines, the per-class ones follow.
        lines[_OVERALL_ROWS:_OVERALL_ROWS] = [
            '%-24s %.4f' % ('checkpoint_accuracy', comparison['checkpoint_accuracy']),
            '%-24s %.2f points' % ('accuracy_drop', comparison['accuracy_drop_points']),
            '%-24s %.4f (%d of %d)' % ('predictions_changed', comparison['changed_fraction'],
                                       comparison['predictions_changed'],
                                       comparison['num_examples'])]
    return '\n'.join(lines)


def comparison_line(results: dict) -> str:
    """The comparison of `evaluate_export`'s results with the checkpoint, in one line."""
    comparison = results['comparison']
    return ('%s against %s: accuracy %.4f -> %.4f, a drop of %.2f points; the top-1 class '
            'changed for %d of %d examples (%.2f%%)'
            % (os.path.basename(results['model_path']), comparison['checkpoint'],
               comparison['checkpoint_accuracy'], comparison['accuracy'],
               comparison['accuracy_drop_points'], comparison['predictions_changed'],
               comparison['num_examples'], 100.0 * comparison['changed_fraction']))
