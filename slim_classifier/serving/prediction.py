"""Predicts many images into one file, as a library (predict_image_classifier.py).

The images are files or the records of a dataset split:

* a directory: every file in it and below it, hidden ones left out, in sorted
  order directory by directory;
* `@FILE`: a text file with one image path per line (blank lines and lines
  starting with `#` left out; a relative path is relative to the current
  directory, as the shell that made the list saw it);
* a glob (`photos/**/*.jpg`, `**` recursive), in the file system's order; a
  plain file path is a glob that matches itself;
* the records of `--dataset_split_name` of `--dataset_dir`: each row carries
  the record index (counted across the split's shards in sorted order), the
  file name that the record keeps in `image/filename` (empty where it keeps
  none) and the true label (the record's label less `labels_offset`).

One row per image, in the order read: for `--output_type=predictions` the
`top_k` likeliest classes (id, name, probability), for `features` the net's
pre-logits feature vector. An image that cannot be read or decoded is a row
with the reason in `error` and no outputs; it never stops the run. Columns of
a `.csv` (written by the csv module, numbers as `%.9g`, exact for float32):
`[record,] path, [true_label, true_name,] error`, then `class_1, name_1,
probability_1, ...` or `feature_0 ... feature_<D-1>`. A `.jsonl` has one JSON
object per line with the same keys, `top_k` (a list of {class_id, name,
probability}) or `features` (a list) in place of the numbered columns.

Memory stays flat in the number of images: paths and records are read
lazily (by a thread one batch ahead of the model), and rows are written as
each batch is predicted. The file is written under a hidden temporary name in
the output's directory, created exclusively, and renamed to the output when
every row is written, so an interrupted run leaves no file at the output's
name (its temporary, `.<name>.<random>.tmp`, stays for the user to remove). A
directory at the output's name is never replaced, nor a file that is not an
output of this command (recognised by its header or first row).
"""

import csv
import dataclasses
import glob
import io
import json
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

import numpy as np
import tensorflow.compat.v1 as tf
from PIL import Image

from datasets import dataset_factory, input_pipeline
from slim_classifier.runtime import pretrained, run_config
from slim_classifier.runtime.files import check_replaceable, fsync_directory
from slim_classifier.serving import classifier, labels, metadata
from slim_classifier.serving.config import ClassifyOptions, PredictOptions
from slim_classifier.serving.metadata import ExportMetadata

LIST_PREFIX = '@'
FORMATS = ('.csv', '.jsonl')
_PREFETCHED_BATCHES = 2


# The model and its class names, from the options: shared with classify_image.py.

def model_options(config_class: type, given: dict, explicit: set[str]
                  ) -> tuple[ClassifyOptions, bool]:
    """The options with the defaults --model_path brings, and whether they name the dataset.

    A training directory (its train_config.json) or a published archive (its
    net's classes) names the dataset whose classes the outputs are. An export
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

    Raises:
      ValueError, FileNotFoundError, CheckpointMismatch,
      classifier.MissingExtraError: see `classifier.load_model`.
    """
    kind = classifier.model_kind(options.model_path)
    described = export_metadata(options, kind, explicit)
    names = class_names(options, kind, names_dataset, described, required=not features)
    model = classifier.load_model(
        options.model_path, options.model_name,
        num_classes=len(names) if names else None,
        preprocessing_name=(described.preprocessing_name if described
                            else options.preprocessing_name), image_size=options.image_size,
        use_grayscale=options.use_grayscale, moving_average_decay=options.moving_average_decay,
        features=features)
    if names is not None and not features and len(names) != model.output_size:
        model.close()
        raise ValueError('the labels name %d classes but the %s %s gives %d probabilities; '
                         'check the labels file and --labels_offset'
                         % (len(names), model.kind, model.path, model.output_size))
    return model, names


# The images.

@dataclasses.dataclass
class ImageItem:
    """One image to predict, and where it came from.

    Attributes:
      path: the image file, or the file name a record keeps ('' if none).
      encoded: the encoded image, or None if it could not be read.
      error: why it could not be read, or None.
      record: the record's index in its split, or None for a file.
      label: the record's true label (labels_offset applied), or None.
    """
    path: str
    encoded: bytes | None = None
    error: str | None = None
    record: int | None = None
    label: int | None = None


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """Images read lazily: `items()` yields them, `total` says how many there are."""
    items: Callable[[], Iterator[ImageItem]]
    total: int
    from_records: bool


def _walk(directory: str, exclude: set[str]) -> Iterator[str]:
    """The files in and below `directory`, hidden ones left out, sorted directory by directory."""
    for root, directories, files in os.walk(directory):
        directories[:] = sorted(name for name in directories if not name.startswith('.'))
        for name in sorted(files):
            path = os.path.join(root, name)
            if not name.startswith('.') and os.path.abspath(path) not in exclude:
                yield path


def _listed(list_path: str) -> Iterator[str]:
    with open(list_path, encoding='utf-8') as listing:
        for line in listing:
            path = line.strip()
            if path and not path.startswith('#'):
                yield path


def _globbed(pattern: str, exclude: set[str]) -> Iterator[str]:
    for path in glob.iglob(pattern, recursive=True):
        if os.path.isfile(path) and os.path.abspath(path) not in exclude:
            yield path


def image_paths(spec: str, exclude: tuple[str, ...] = ()) -> Callable[[], Iterator[str]]:
    """What --input names, as a function that lists the paths afresh on each call.

    Args:
      spec: a directory, `@FILE` or a glob (see the module docstring).
      exclude: files left out of a directory or glob (the output).

    Raises:
      FileNotFoundError: for a list file that does not exist, or a glob
        that matches no file.
    """
    excluded = {os.path.abspath(path) for path in exclude}
    if spec.startswith(LIST_PREFIX):
        list_path = spec[len(LIST_PREFIX):]
        if not os.path.isfile(list_path):
            raise FileNotFoundError("--input=%s: the list file '%s' does not exist"
                                    % (spec, list_path))
        return lambda: _listed(list_path)
    if os.path.isdir(spec):
        return lambda: _walk(spec, excluded)
    if next(_globbed(spec, excluded), None) is None:
        raise FileNotFoundError("--input '%s' is no directory, and no file matches it; give a "
                                'directory, a glob, or @FILE listing the images' % spec)
    return lambda: _globbed(spec, excluded)


def _read_file(path: str) -> ImageItem:
    try:
        with open(path, 'rb') as image_file:
            return ImageItem(path, encoded=image_file.read())
    except OSError as error:
        return ImageItem(path, error='cannot read the file: %s' % (error.strerror or error))


def file_source(spec: str, exclude: tuple[str, ...] = ()) -> ImageSource:
    """The image files --input names; a file that cannot be read becomes a rejected item.

    Raises:
      FileNotFoundError: see `image_paths`.
      ValueError: if there is no file to predict.
    """
    paths = image_paths(spec, exclude)
    total = sum(1 for _ in paths())
    if not total:
        raise ValueError("--input '%s' holds no file to predict" % spec)
    return ImageSource(lambda: (_read_file(path) for path in paths()), total,
                       from_records=False)


def record_source(dataset_name: str, split_name: str, dataset_dir: str,
                  labels_offset: int = 0) -> ImageSource:
    """The records of a dataset split, with their labels.

    Raises:
      ValueError, FileNotFoundError: an unknown dataset or split, or an
        incomplete one (see `dataset_factory.get_dataset`).
    """
    with tf.Graph().as_default():
        dataset = dataset_factory.get_dataset(dataset_name, split_name, dataset_dir)
    files = input_pipeline.data_files(dataset.data_sources)
    raw_shape = dataset_factory.get_dataset_spec(dataset_name, dataset_dir).raw_image_shape

    def items() -> Iterator[ImageItem]:
        index = 0
        for path in files:
            for position, record in enumerate(_records(path)):
                yield _record_item(record, index, labels_offset, raw_shape, path, position)
                index += 1

    return ImageSource(items, dataset.num_samples, from_records=True)


def _records(path: str) -> Iterator[bytes]:
    """The serialized records of a TFRecord file.

    Raises:
      input_pipeline.DataError: for a truncated or corrupted file.
    """
    position = 0
    try:
        for record in tf.io.tf_record_iterator(path):
            yield record
            position += 1
    except tf.errors.OpError as error:
        raise input_pipeline.DataError(path, position, error.message.splitlines()[0]) from None


def _feature(features, key: str):
    return features[key] if key in features else None


def _record_item(record: bytes, index: int, labels_offset: int,
                 raw_shape: tuple[int, int, int] | None, path: str, position: int
                 ) -> ImageItem:
    """The image, file name and label of a serialized tf.train.Example.

    Raises:
      input_pipeline.DataError: for a record that is no classification example.
    """
    try:
        features = tf.train.Example.FromString(record).features.feature
        encoded = features['image/encoded'].bytes_list.value[0]
        label = features['image/class/label'].int64_list.value[0]
    except (ValueError, KeyError, IndexError) as error:
        raise input_pipeline.DataError(path, position, 'not a classification example (%s)'
                                       % error) from None
    filename = _feature(features, 'image/filename')
    image_format = _feature(features, 'image/format')
    item = ImageItem(filename.bytes_list.value[0].decode('utf-8', 'replace')
                     if filename and filename.bytes_list.value else '',
                     encoded=encoded, record=index, label=label - labels_offset)
    if image_format and image_format.bytes_list.value[0].lower() == b'raw':
        item.encoded, item.error = _png_of_raw(encoded, features, raw_shape)
    return item


def _png_of_raw(pixels: bytes, features, raw_shape: tuple[int, int, int] | None
                ) -> tuple[bytes | None, str | None]:
    """A PNG of `raw` pixel bytes (MNIST, CIFAR-10): lossless, so decoding gives them back."""
    height, width = (raw_shape or (0, 0, 0))[:2]
    for key in ('image/height', 'image/width'):
        value = _feature(features, key)
        if value and value.int64_list.value:
            if key == 'image/height':
                height = value.int64_list.value[0]
            else:
                width = value.int64_list.value[0]
    values = np.frombuffer(pixels, np.uint8)
    if not height or not width or values.size % (height * width):
        return None, 'raw pixels of unknown or inconsistent size (%d bytes)' % values.size
    image = values.reshape(height, width, -1)
    if image.shape[-1] not in (1, 3):
        return None, 'raw pixels with %d channels; expected 1 or 3' % image.shape[-1]
    encoded = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(encoded, 'PNG')
    return encoded.getvalue(), None


def batches(items: Iterator[ImageItem], batch_size: int) -> Iterator[list[ImageItem]]:
    """`items` in lists of `batch_size` (the last one shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def prefetched(values: Iterator, depth: int = _PREFETCHED_BATCHES) -> Iterator:
    """`values`, produced by a thread up to `depth` ahead, so reading overlaps predicting.

    An exception of the producer is raised here, where its value would have come.
    """
    buffer: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()
    failure: list[BaseException] = []

    def put(value) -> bool:
        while not stop.is_set():
            try:
                buffer.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for value in values:
                if not put(value):
                    return
        except BaseException as error:  # pylint: disable=broad-except
            failure.append(error)
        put(end)

    thread = threading.Thread(target=produce, name='prefetch', daemon=True)
    thread.start()
    try:
        while True:
            value = buffer.get()
            if value is end:
                break
            yield value
        if failure:
            raise failure[0]
    finally:
        stop.set()


# The rows.

@dataclasses.dataclass(frozen=True)
class RowLayout:
    """What each row holds.

    Attributes:
      from_records: rows carry the record index and the true label.
      output_type: 'predictions' or 'features'.
      top_k: classes per row (predictions).
      output_size: the class count or the feature dimension.
      class_names: names by class id, or None (classes are named by id).
    """
    from_records: bool
    output_type: str
    top_k: int
    output_size: int
    class_names: list[str] | None

    def leading_columns(self) -> list[str]:
        if self.from_records:
            return ['record', 'path', 'true_label', 'true_name', 'error']
        return ['path', 'error']

    def output_columns(self) -> list[str]:
        if self.output_type == 'features':
            return ['feature_%d' % index for index in range(self.output_size)]
        return ['%s_%d' % (name, rank) for rank in range(1, self.top_k + 1)
                for name in ('class', 'name', 'probability')]

    def true_name(self, label: int) -> str:
        if self.class_names and 0 <= label < len(self.class_names):
            return self.class_names[label]
        return str(label)

    def row(self, item: ImageItem, outcome: classifier.Outcome) -> dict:
        """The row of one image as JSON values: the leading columns, then `top_k` or `features`."""
        row = {'record': item.record, 'path': item.path} if self.from_records else {
            'path': item.path}
        if self.from_records:
            row.update(true_label=item.label, true_name=self.true_name(item.label))
        row['error'] = outcome.error
        if outcome.outputs is None:
            return row
        if self.output_type == 'features':
            row['features'] = outcome.outputs.tolist()
        else:
            row['top_k'] = [dataclasses.asdict(prediction) for prediction in classifier.top_k(
                outcome.outputs, self.class_names, self.top_k)]
        return row


class CsvRows:
    """Rows as CSV: the leading columns, then the numbered outputs."""

    def __init__(self, stream: TextIO, layout: RowLayout):
        self._writer = csv.writer(stream, lineterminator='\n')
        self._layout = layout
        self._writer.writerow(layout.leading_columns() + layout.output_columns())

    def write(self, item: ImageItem, outcome: classifier.Outcome) -> None:
        row = self._layout.row(item, outcome)
        values = ['' if row[column] is None else row[column]
                  for column in self._layout.leading_columns()]
        if 'features' in row:
            values.extend('%.9g' % value for value in row['features'])
        for prediction in row.get('top_k', ()):
            values.extend([prediction['class_id'], prediction['name'],
                           '%.9g' % prediction['probability']])
        self._writer.writerow(values)


class JsonlRows:
    """Rows as JSON lines, one object per image."""

    def __init__(self, stream: TextIO, layout: RowLayout):
        self._stream = stream
        self._layout = layout

    def write(self, item: ImageItem, outcome: classifier.Outcome) -> None:
        self._stream.write(json.dumps(self._layout.row(item, outcome), ensure_ascii=False))
        self._stream.write('\n')


def output_format(path: str) -> str:
    """'.csv' or '.jsonl', by the output's extension.

    Raises:
      ValueError: for another extension.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ValueError("--output must end in %s; got '%s'" % (' or '.join(FORMATS), path))
    return extension


def is_prediction_file(path: str) -> bool:
    """Whether `path` is a file this module wrote: by its CSV header or first JSON row."""
    if not os.path.isfile(path):
        return False
    with open(path, encoding='utf-8', errors='replace') as existing:
        first_line = existing.readline(1 << 16).rstrip('\n')
    if first_line.startswith(('path,error,', 'record,path,true_label,true_name,error,')):
        return True
    try:
        row = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(row, dict) and {'path', 'error'} <= set(row)


class AtomicOutput:
    """A text file written under a hidden temporary name and renamed into place on success.

    `with AtomicOutput(path) as stream:` writes into a temporary file beside
    `path`, created exclusively; leaving the block normally flushes, syncs and
    renames it to `path`, leaving it by an exception removes it. A process
    killed in the block leaves the temporary, never a file at `path`.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._temporary: str | None = None
        self._stream: TextIO | None = None

    def __enter__(self) -> TextIO:
        directory, name = os.path.split(self.path)
        os.makedirs(directory, exist_ok=True)
        descriptor, self._temporary = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp',
                                                       dir=directory)
        os.fchmod(descriptor, 0o644)
        self._stream = os.fdopen(descriptor, 'w', encoding='utf-8', newline='')
        return self._stream

    def __exit__(self, error_type, error, traceback) -> None:
        try:
            if error_type is None:
                self._stream.flush()
                os.fsync(self._stream.fileno())
            self._stream.close()
            if error_type is None:
                os.replace(self._temporary, self.path)
                fsync_directory(os.path.dirname(self.path))
        finally:
            if os.path.lexists(self._temporary):
                os.remove(self._temporary)


def check_output(path: str) -> str:
    """The output's format, once it is known that writing `path` replaces nothing of the user's.

    Raises:
      ValueError: for an extension other than .csv and .jsonl.
      IsADirectoryError: if `path` is a directory.
      FileExistsError: if `path` is a file this command did not write.
    """
    extension = output_format(path)
    if os.path.isdir(path):
        raise IsADirectoryError('--output %s is a directory; give a file path ending in %s'
                                % (path, ' or '.join(FORMATS)))
    check_replaceable(path, is_prediction_file, 'a file of predict_image_classifier.py')
    return extension


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


def write_rows(model: classifier.LoadedModel, source: ImageSource, layout: RowLayout,
               output: str, batch_size: int, progress: Progress) -> tuple[int, int]:
    """Predicts every image of `source` into `output`, atomically; returns (rows, rejected)."""
    rows = rejected = 0
    rows_class = CsvRows if output_format(output) == '.csv' else JsonlRows
    with AtomicOutput(output) as stream:
        writer = rows_class(stream, layout)
        for batch in prefetched(batches(source.items(), batch_size)):
            readable = [item for item in batch if item.error is None]
            outcomes = iter(classifier.predict_each(model, [item.encoded for item in readable])
                            if readable else ())
            for item in batch:
                outcome = (classifier.Outcome(error=item.error) if item.error is not None
                           else next(outcomes))
                writer.write(item, outcome)
                rejected += outcome.error is not None
            rows += len(batch)
            stream.flush()
            progress.update(rows, rejected)
    return rows, rejected


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
    layout = RowLayout(source.from_records, options.output_type,
                       min(options.top_k, model.output_size), model.output_size, names)
    progress = Progress(source.total, progress_stream)
    try:
        rows, rejected = write_rows(model, source, layout, options.output, options.batch_size,
                                    progress)
    finally:
        model.close()
    return Summary(options.output, rows, rejected, progress.finish(rows, rejected), model.kind)
