"""Predicts many images into one file, as a library (predict_image_classifier.py).

The images are files or the records of a dataset split (`image_sources`). One
row per image, in the order read (`prediction_files`): for
`--output_type=predictions` the `top_k` likeliest classes (id, name,
probability), for `features` the net's pre-logits feature vector. A
multi-label net's row has the labels at or above their thresholds and every
label's probability (or the `top_k`, when --top_k is given). An image
that cannot be read or decoded is a row with the reason in `error` and no
outputs; it never stops the run.

Memory stays flat in the number of images: paths and records are read
lazily, and rows are written as each batch is predicted. Reading, predicting
and writing overlap, each in its own thread a few batches apart (see
`write_rows`), so that a fast model is not kept waiting. The file appears
complete or not at all: an interrupted run leaves no file at the output's
name (its temporary, `.<name>.<random>.tmp`, stays for the user to remove).
"""

import contextlib
import dataclasses
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

import tensorflow.compat.v1 as tf

from slim_classifier.runtime import pretrained, run_config
from slim_classifier.serving import classifier, labels, metadata, multi_label
from slim_classifier.serving.config import ClassifyOptions, PredictOptions
from slim_classifier.serving.image_sources import (ImageItem, ImageSource, batches, file_source,
                                                   prefetched, put_unless, record_source)
from slim_classifier.serving.metadata import ExportMetadata
from slim_classifier.serving.prediction_files import (AtomicOutput, CsvRows, JsonlRows, RowLayout,
                                                      check_output, output_format)

# Predicted batches waiting for their rows to be written.
_BATCHES_BEHIND = 2
# Handed to the writing thread last: it ends the thread.
_END = object()

# The model and its class names, from the options: shared with classify_image.py.

def model_options(config_class: type, given: dict, explicit: set[str]
                  ) -> tuple[ClassifyOptions, bool]:
    """The options with the defaults --model_path brings, and whether they name the dataset.

    A training directory (its train_config.json) or a published archive (its
    net's classes) names the dataset whose classes the outputs are; a
    checkpoint of a multi-label run or dataset sets `multi_label`. An export
    brings nothing here: its metadata describes it (see `export_metadata`).

    Args:
      config_class: ClassifyOptions or a subclass.
      given: the option values given (flags, defaults included).
      explicit: the options given on the command line.

    Raises:
      FileNotFoundError: if nothing is at --model_path.
      ValueError: for an option that contradicts the training run.
    """
    given = dict(given)
    if given['model_path'] and classifier.model_kind(given['model_path']) == 'checkpoint':
        given.update(run_config.checkpoint_defaults(given['model_path'], given, explicit))
        if 'multi_label' not in explicit:
            given['multi_label'] = given['multi_label'] or multi_label.is_multi_label(
                given['model_path'], given['dataset_name'], given['dataset_dir'])
    names_dataset = bool(run_config.find_run_dir(given['model_path'])
                         or pretrained.known_archive(given['model_path'])
                         or {'dataset_name', 'dataset_dir'} & explicit)
    return config_class(**given), names_dataset


def export_metadata(options: ClassifyOptions, kind: str, explicit: set[str]
                    ) -> ExportMetadata | None:
    """The export's metadata, checked against the options given; None for a checkpoint.

    Raises:
      ValueError: for an option that contradicts the metadata, or an export
        other than a SavedModel without metadata whose net nobody named.
    """
    if kind == 'checkpoint':
        return None
    described = metadata.read(options.model_path)
    if described is not None:
        metadata.check_agreement(described, options.model_path,
                                 {name: getattr(options, name) for name in explicit
                                  if hasattr(options, name)})
    elif kind != 'saved_model' and not {'model_name', 'preprocessing_name'} & explicit:
        raise ValueError('%s has no metadata (%s): give the --model_name (or '
                         '--preprocessing_name) it was exported from, or export it again'
                         % (options.model_path, metadata.metadata_path(options.model_path)))
    return described


def class_names(options: ClassifyOptions, kind: str, names_dataset: bool,
                described: ExportMetadata | None, required: bool = True) -> list[str] | None:
    """Names by output: --labels_file, the export's metadata, labels.txt, else the dataset's.

    Raises:
      ValueError: for a checkpoint whose classes nothing names, when `required`.
    """
    if options.labels_file:
        return labels.read_labels_file(options.labels_file, options.labels_offset)
    if described is not None:
        return described.class_names
    path = classifier.default_labels_file(options.model_path)
    if tf.io.gfile.exists(path):
        return labels.read_labels_file(path, options.labels_offset)
    if names_dataset:
        return labels.dataset_classes(options.dataset_name, options.dataset_dir,
                                      options.labels_offset)
    if kind == 'checkpoint' and required:
        raise ValueError('classifying with a checkpoint needs --labels_file (no %s), or '
                         '--dataset_name and --dataset_dir: they give the class count' % path)
    return None


def open_model(options: ClassifyOptions, names_dataset: bool, explicit: set[str],
               features: bool = False) -> tuple[classifier.LoadedModel, list[str] | None]:
    """Loads --model_path as the options say, with the names of its classes (None if unknown).

    Args:
      options: the command's options.
      names_dataset: the options name the dataset whose classes the outputs are.
      explicit: the options given on the command line.
      features: load the net's pre-logits features (a checkpoint only); its
        classes are then named where something names them, else None.

    Returns:
      The model, with the threshold of each label if it is multi-label (see
      `model_thresholds`), and the names of its classes.

    Raises:
      ValueError, FileNotFoundError, CheckpointMismatch,
      classifier.MissingExtraError: see `classifier.load_model`; also for
        --threshold with a single-label net.
    """
    kind = classifier.model_kind(options.model_path)
    described = export_metadata(options, kind, explicit)
    names = class_names(options, kind, names_dataset, described, required=not features)
    is_multi_label = described.multi_label if described else options.multi_label
    if options.threshold is not None and not is_multi_label and not features:
        raise ValueError('--threshold=%g applies to a multi-label net only, and %s is '
                         'single-label; give --multi_label if it is not'
                         % (options.threshold, options.model_path))
    model = classifier.load_model(
        options.model_path, options.model_name,
        num_classes=len(names) if names else None,
        preprocessing_name=(described.preprocessing_name if described
                            else options.preprocessing_name), image_size=options.image_size,
        use_grayscale=options.use_grayscale, moving_average_decay=options.moving_average_decay,
        features=features, multi_label=is_multi_label)
    if names is not None and not features and len(names) != model.output_size:
        model.close()
        raise ValueError('the labels name %d classes but the %s %s gives %d probabilities; '
                         'check the labels file and --labels_offset'
                         % (len(names), model.kind, model.path, model.output_size))
    if is_multi_label and not features:
        try:
            model.thresholds = model_thresholds(
                options, described, model,
                names or [str(index) for index in range(model.output_size)])
        except ValueError:
            model.close()
            raise
    return model, names


def model_thresholds(options: ClassifyOptions, described: ExportMetadata | None,
                     model: classifier.LoadedModel, names: list[str]) -> list[float]:
    """A multi-label model's threshold of each label: --threshold, the export's, the
    thresholds.json beside a checkpoint, else the default (see serving/multi_label.py).

    Raises:
      ValueError: for a thresholds.json made for other labels.
    """
    if options.threshold is None and described is not None and described.thresholds:
        return described.thresholds
    checkpoint = model.path if model.kind == 'checkpoint' else None
    return multi_label.label_thresholds(options.threshold, names, checkpoint)[0]


# The run.

class Progress:
    """A throttled progress line: images done of the total, rate and time left.

    On a terminal the line is rewritten in place; elsewhere (a log) a line is
    added at most every `interval` seconds.
    """

    def __init__(self, total: int, stream: TextIO | None = None, interval: float | None = None):
        self._total = total
        self._stream = stream
        self._in_place = bool(stream is not None and stream.isatty())
        self._interval = interval if interval is not None else (1.0 if self._in_place else 5.0)
        self._start = time.monotonic()
        self._last = self._start

    def line(self, done: int, rejected: int) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = done / elapsed
        left = (self._total - done) / rate if rate else float('inf')
        return ('predicted %d/%d images (%d rejected), %.1f images/s, %s left'
                % (done, self._total, rejected, rate, _duration(left)))

    def update(self, done: int, rejected: int) -> None:
        now = time.monotonic()
        if self._stream is None or now - self._last < self._interval:
            return
        self._last = now
        self._show(self.line(done, rejected))

    def finish(self, done: int, rejected: int) -> float:
        """Ends the line; returns the seconds since the start."""
        elapsed = time.monotonic() - self._start
        if self._stream is not None and self._in_place:
            self._show(self.line(done, rejected))
            self._stream.write('\n')
            self._stream.flush()
        return elapsed

    def _show(self, text: str) -> None:
        self._stream.write('\r%s\033[K' % text if self._in_place else text + '\n')
        self._stream.flush()


def _duration(seconds: float) -> str:
    if seconds == float('inf'):
        return '? s'
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return '%dh%02dm' % (hours, minutes)
    return '%dm%02ds' % (minutes, seconds) if minutes else '%d s' % seconds


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a run wrote."""
    output: str
    rows: int
    rejected: int
    seconds: float
    model_kind: str


class WrittenBehind:
    """Calls `write` on each value handed over, in a thread, in the order handed.

    The caller goes on while up to `depth` values wait, so that its work
    overlaps the writing. Leaving the `with` block waits until every value
    handed over is written (after an exception in the block too: nothing
    already computed is dropped), and the thread has stopped. An exception of
    `write` stops the writing; the next `hand` or the block's end raises it.
    """

    def __init__(self, write: Callable[[object], None], depth: int = _BATCHES_BEHIND):
        self._write = write
        self._waiting: queue.Queue = queue.Queue(depth)
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name='write rows', daemon=True)

    def __enter__(self) -> 'WrittenBehind':
        self._thread.start()
        return self

    def hand(self, value) -> None:
        """Queues `value`, waiting while `depth` values wait.

        Raises:
          The exception of a `write` that failed.
        """
        if not self._put(value):
            raise self._failure[0]

    def __exit__(self, error_type, error, traceback) -> None:
        self._put(_END)
        self._thread.join()
        # An exception of the block is the one to see; it may have stopped the writing.
        if error_type is None and self._failure:
            raise self._failure[0]

    def _put(self, value) -> bool:
        """Queues `value` unless the writing failed; False if it did."""
        return put_unless(self._waiting, value, lambda: bool(self._failure))

    def _run(self) -> None:
        while (value := self._waiting.get()) is not _END:
            try:
                self._write(value)
            # Raised by `hand` or at the block's end, in the caller's thread.
            except BaseException as failure:  # pylint: disable=broad-except
                self._failure.append(failure)
                return


def write_rows(model: classifier.LoadedModel, source: ImageSource, layout: RowLayout,
               output: str, batch_size: int, progress: Progress) -> tuple[int, int]:
    """Predicts every image of `source` into `output`, atomically; returns (rows, rejected).

    Three threads overlap: one reads the images a batch or two ahead (and,
    where the model decodes and preprocesses apart from inferring, as TFLite
    and ONNX models do, prepares them), this one runs the model (the thread
    that loaded it: a TensorFlow session's first run costs more in a new
    thread), and one writes the rows of the batches predicted, in the order
    read. Whatever fails in either thread is raised here once the rows of the
    batches before it are written.
    """
    rows = rejected = 0
    rows_class = CsvRows if output_format(output) == '.csv' else JsonlRows
    batches_read = batches(source.items(), batch_size)
    if model.prepare is None:
        read = prefetched((batch, None) for batch in batches_read)
    else:
        read = prefetched((batch, prepared_batch(model, batch)) for batch in batches_read)
    with AtomicOutput(output) as stream, contextlib.closing(read):
        writer = rows_class(stream, layout)

        def write_batch(predicted: tuple[list[ImageItem], list[classifier.Outcome]]) -> None:
            nonlocal rows, rejected
            batch, outcomes = predicted
            for item, outcome in zip(batch, outcomes):
                writer.write(item, outcome)
                rejected += outcome.error is not None
            rows += len(batch)
            stream.flush()
            progress.update(rows, rejected)

        with WrittenBehind(write_batch) as behind:
            for batch, prepared in read:
                behind.hand((batch, batch_outcomes(model, batch, prepared)))
    return rows, rejected


def _readable(batch: list[ImageItem]) -> list[bytes]:
    """The encoded images of the items that could be read."""
    return [item.encoded for item in batch if item.error is None]


def prepared_batch(model: classifier.LoadedModel, batch: list[ImageItem]
                   ) -> classifier.Prepared:
    """The readable images of `batch` made ready for `model.infer`."""
    return classifier.prepare_each(model, _readable(batch))


def batch_outcomes(model: classifier.LoadedModel, batch: list[ImageItem],
                   prepared: classifier.Prepared | None = None) -> list[classifier.Outcome]:
    """The outcome of each image: the model's outputs, or why it could not be read (the
    item's own error, or the model's for an image it cannot decode). `prepared`: the
    batch's `prepared_batch`, already made (else the model runs whole)."""
    if prepared is not None:
        outcomes = iter(classifier.infer_prepared(model, prepared))
    else:
        readable = _readable(batch)
        outcomes = iter(classifier.predict_each(model, readable) if readable else ())
    return [classifier.Outcome(error=item.error) if item.error is not None else next(outcomes)
            for item in batch]


def predict(options: PredictOptions, names_dataset: bool, explicit: set[str],
            progress_stream: TextIO | None = sys.stderr) -> Summary:
    """Writes the predictions (or features) of the images the options name to `options.output`.

    Args:
      options: the command's options.
      names_dataset: the options name the dataset whose classes the outputs are
        (see `model_options`).
      explicit: the options given on the command line.
      progress_stream: where the progress line goes; None for none.

    Raises:
      ValueError, FileNotFoundError, FileExistsError, IsADirectoryError:
        a bad input, output or model (one line each).
      input_pipeline.DataError: a corrupt record.
    """
    check_output(options.output)
    if options.dataset_split_name is not None:
        source = record_source(options.dataset_name, options.dataset_split_name,
                               options.dataset_dir, options.labels_offset)
    else:
        source = file_source(options.input, exclude=(options.output,))
    features = options.output_type == 'features'
    model, names = open_model(options, names_dataset, explicit, features=features)
    # A multi-label row lists every label's probability unless --top_k asks for fewer.
    every_label = model.thresholds is not None and 'top_k' not in explicit
    layout = RowLayout(source.from_records, options.output_type,
                       None if every_label else min(options.top_k, model.output_size),
                       model.output_size, names, model.thresholds)
    progress = Progress(source.total, progress_stream)
    try:
        rows, rejected = write_rows(model, source, layout, options.output, options.batch_size,
                                    progress)
    finally:
        model.close()
    return Summary(options.output, rows, rejected, progress.finish(rows, rejected), model.kind)
