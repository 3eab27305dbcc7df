"""The images predict_image_classifier.py reads, lazily: files or the records of a split.

* a directory: every file in it and below it, hidden ones left out, in sorted
  order directory by directory;
* `@FILE`: a text file with one image path per line (blank lines and lines
  starting with `#` left out; a relative path is relative to the current
  directory, as the shell that made the list saw it);
* a glob (`photos/**/*.jpg`, `**` recursive), in the file system's order; a
  plain file path is a glob that matches itself;
* the records of a dataset split: each item carries the record index (counted
  across the split's shards in sorted order), the file name that the record
  keeps in `image/filename` (empty where it keeps none) and the true label
  (the record's label less `labels_offset`), and those of a multi-label
  record (`image/class/labels`).

`batches` groups them and `prefetched` reads one batch ahead in a thread.
"""

import contextlib
import dataclasses
import glob
import io
import os
import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow.compat.v1 as tf
from PIL import Image

from datasets import dataset_factory, input_pipeline

LIST_PREFIX = '@'
_PREFETCHED_BATCHES = 2
# How often a thread waiting on a full buffer checks whether to give up.
_GIVE_UP_POLL_SECONDS = 0.1


@dataclasses.dataclass
class ImageItem:
    """One image to predict, and where it came from.

    Attributes:
      path: the image file, or the file name a record keeps ('' if none).
      encoded: the encoded image, or None if it could not be read.
      error: why it could not be read, or None.
      record: the record's index in its split, or None for a file.
      label: the record's true label (labels_offset applied), or None.
      labels: a multi-label record's true labels (labels_offset applied),
        or None.
    """
    path: str
    encoded: bytes | None = None
    error: str | None = None
    record: int | None = None
    label: int | None = None
    labels: list[int] | None = None


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
    multi_labels = _feature(features, 'image/class/labels')
    item = ImageItem(filename.bytes_list.value[0].decode('utf-8', 'replace')
                     if filename and filename.bytes_list.value else '',
                     encoded=encoded, record=index, label=label - labels_offset,
                     labels=None if multi_labels is None else
                     [value - labels_offset for value in multi_labels.int64_list.value])
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


def put_unless(buffer: queue.Queue, value, given_up: Callable[[], bool]) -> bool:
    """Puts `value` into the bounded `buffer`, waiting for room; False once `given_up()`."""
    while not given_up():
        try:
            buffer.put(value, timeout=_GIVE_UP_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def prefetched(values: Iterator, depth: int = _PREFETCHED_BATCHES) -> Iterator:
    """`values`, produced by a thread up to `depth` ahead, so reading overlaps predicting.

    An exception of the producer is raised here, where its value would have come.
    Once the iterator is closed or exhausted (or raises), the thread has stopped:
    an early stop waits for the value being produced, and produces no more.
    """
    buffer: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()
    failure: list[BaseException] = []

    def produce():
        try:
            for value in values:
                if not put_unless(buffer, value, stop.is_set) or stop.is_set():
                    return
        except BaseException as error:  # pylint: disable=broad-except
            failure.append(error)
        put_unless(buffer, end, stop.is_set)

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
        # Emptied, the buffer wakes a producer waiting to put into it.
        with contextlib.suppress(queue.Empty):
            while True:
                buffer.get_nowait()
        thread.join()
