"""The tf.data input pipeline shared by training, evaluation and export.

`build_dataset` turns a `slim.dataset.Dataset` (see `dataset_factory`) into
batches of preprocessed images: shards read in parallel (interleave), records
shuffled before decoding (cheap: they are still encoded), decoding and
preprocessing on parallel calls, batching and prefetching. Training repeats
and shuffles; evaluation reads every example exactly once and keeps the last
partial batch. A preprocessing that starts with a random crop (Inception
training) can hand the crop to the pipeline, which then decodes only the
crop's window of each JPEG.

TensorFlow's own errors for a bad record name neither the file nor the record
(and one that is not a tf.train.Example is quoted in the error, which fails
as a UnicodeDecodeError where it is not UTF-8). `explain_data_error` and
`data_errors_explained` scan the shards for the culprit and raise
`DataError('corrupt record 17 in /d/x.tfrecord: ...')`.
"""

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence

import tensorflow.compat.v1 as tf
from google.protobuf.message import DecodeError

from slim_classifier.compat import slim
from slim_classifier.errors import UserError
from slim_classifier.runtime import determinism

# fn(image uint8 [H, W, C], output_height, output_width) -> float32 [H', W', C']
PreprocessFn = Callable[[tf.Tensor, int, int], tf.Tensor]
# fn(image shape int32 [3]) -> int32 [4] crop window [offset_y, offset_x, height, width]
CropWindowFn = Callable[[tf.Tensor], tf.Tensor]

DEFAULT_SHUFFLE_BUFFER_SIZE = 1024
AUTOTUNE = tf.data.AUTOTUNE

# The TFRecord key of the encoded image (see dataset_factory.make_decoder).
_ENCODED_IMAGE_KEY = 'image/encoded'
# Channels of a decoded JPEG window: those of dataset_factory's decoder.
_JPEG_WINDOW_CHANNELS = 3

# Records checked per step when scanning a shard for a bad one.
_SCAN_CHUNK_SIZE = 256
# Bytes of a record that is not a tf.train.Example shown in its DataError.
_SHOWN_BYTES = 16

# What running an input pipeline raises for a record that cannot be read or
# decoded. TensorFlow's parse error quotes the record: if that is not UTF-8,
# building the message fails with a UnicodeDecodeError instead.
DATA_ERRORS = (tf.errors.DataLossError, tf.errors.InvalidArgumentError, UnicodeDecodeError)

# Types of the ops that raise a bad record's error: tf.data iterators, and the
# reader, queue, parse and decode ops of queue-based input.
_INPUT_OP_PREFIXES = ('Iterator', 'Reader', 'Queue', 'Parse', 'Decode')


def build_dataset(dataset: slim.dataset.Dataset, preprocess_fn: PreprocessFn,
                  image_size: int | tuple[int, int], batch_size: int, is_training: bool,
                  num_readers: int = 4, num_parallel_calls: int = AUTOTUNE,
                  shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER_SIZE,
                  seed: int | None = None, deterministic: bool = False,
                  labels_offset: int = 0, num_epochs: int | None = None,
                  crop_window_fn: CropWindowFn | None = None) -> tf.data.Dataset:
    """Returns batches of (images float32 [B, H, W, C], labels int64 [B]).

    Args:
      dataset: a Dataset from `dataset_factory.get_dataset` (TFRecord files
        in `data_sources`, a decoder with items 'image' and 'label').
      preprocess_fn: `fn(image, height, width) -> float32 image`.
      image_size: output size, an int for square images or (height, width).
      batch_size: examples per batch.
      is_training: True: shuffle, repeat `num_epochs` times and drop the last
        partial batch (static batch size); False: one pass over every
        example, the last partial batch kept.
      num_readers: shards read at the same time.
      num_parallel_calls: parallel decode/preprocessing calls (AUTOTUNE lets
        tf.data choose).
      shuffle_buffer_size: records in the shuffle buffer (training only).
      seed: seed of the shuffles and of the random ops in `preprocess_fn`.
      deterministic: two runs with the same seed yield identical batches.
        Parallel calls keep their order, and training preprocessing runs one
        example at a time, because TensorFlow's stateful random ops draw from
        one generator shared by parallel calls in whatever order they run.
        In training, the draws of slim_classifier.runtime.determinism (those
        of this project's preprocessing and augmentation) become stateless,
        seeded by the example's position in the shuffled stream, so an
        iterator restored from a checkpoint draws what it drew before.
      labels_offset: subtracted from every label (e.g. 1 for a 1000-class
        net on 1001-class ImageNet records).
      num_epochs: passes over the data in training; None repeats forever.
      crop_window_fn: crop each image to the window this draws from its
        shape before `preprocess_fn` sees it, e.g.
        `inception_preprocessing.sample_crop_window` with a `preprocess_fn`
        that crops no further (`crop_image=False`). JPEG images then decode
        only the window (`tf.io.decode_and_crop_jpeg`, as 3 channels); other
        formats decode whole and are sliced. The windows are drawn in the
        preprocessing calls, so deterministic training decodes one image at
        a time as well.

    Returns:
      The batched tf.data.Dataset.

    Raises:
      ValueError: for a non-positive size or count, deterministic training
        without a seed, or `num_epochs` given for evaluation.
      FileNotFoundError: if `dataset.data_sources` matches no file.
    """
    height, width = _check_image_size(image_size)
    _check_positive(batch_size=batch_size, num_readers=num_readers,
                    shuffle_buffer_size=shuffle_buffer_size)
    if num_parallel_calls != AUTOTUNE:
        _check_positive(num_parallel_calls=num_parallel_calls)
    if deterministic and is_training and seed is None:
        raise ValueError('deterministic training needs a seed; got seed=None')
    if not is_training and num_epochs is not None:
        raise ValueError('num_epochs applies to training only; got %r with is_training=False'
                         % (num_epochs,))
    if num_epochs is not None:
        _check_positive(num_epochs=num_epochs)

    records = _read_records(data_files(dataset.data_sources), num_readers, is_training,
                            seed, deterministic)
    if is_training:
        records = records.shuffle(shuffle_buffer_size, seed=seed).repeat(num_epochs)
    if crop_window_fn is None:
        decode = _decode_fn(dataset.decoder, labels_offset)
    else:
        # Records stay encoded until the preprocessing calls draw the windows.
        decode = _label_fn(dataset.decoder, labels_offset)
        preprocess_fn = _windowed_preprocess_fn(preprocess_fn, dataset.decoder, crop_window_fn)
    preprocess = _preprocess_fn(preprocess_fn, height, width, seed)
    if deterministic and is_training:
        # Each example's random draws are seeded by its position in the stream,
        # which the iterator's saved state includes: a resume draws them again.
        records = records.enumerate()
        decode = _positioned(decode)
        preprocess = _stateless_preprocess_fn(preprocess, seed)
    # Both functions are graph code (tf.cond, not a Python if): AutoGraph would only
    # rewrite them, at several times the cost of building the rest of the pipeline.
    examples = records.map(_not_converted(decode), num_parallel_calls=num_parallel_calls,
                           deterministic=deterministic)
    preprocess_calls = 1 if deterministic and is_training else num_parallel_calls
    examples = examples.map(_not_converted(preprocess), num_parallel_calls=preprocess_calls,
                            deterministic=deterministic)
    return examples.batch(batch_size, drop_remainder=is_training).prefetch(AUTOTUNE)


def _not_converted(function):
    """`function`, which tf.data then traces as it is, without AutoGraph's conversion."""
    return tf.autograph.experimental.do_not_convert(function)


def one_shot_batch(batches: tf.data.Dataset) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns the (images, labels) tensors of a one-shot iterator (graph mode).

    Each new session starts again from the first batch.
    """
    return tf.data.make_one_shot_iterator(batches).get_next()


def initializable_batch(batches: tf.data.Dataset
                        ) -> tuple[tf.Tensor, tf.Tensor, tf.Operation]:
    """Returns (images, labels, initializer) of an initializable iterator.

    Running `initializer` restarts the pass, e.g. before each evaluation.
    """
    iterator = tf.data.make_initializable_iterator(batches)
    images, labels = iterator.get_next()
    return images, labels, iterator.initializer


def data_files(data_sources: str | Sequence[str]) -> list[str]:
    """Expands a file, a glob or a list of them into a list of files.

    Raises:
      FileNotFoundError: if nothing matches.
    """
    sources = [data_sources] if isinstance(data_sources, str) else list(data_sources)
    files = []
    for source in sources:
        files.extend(sorted(tf.io.gfile.glob(source)) if _is_glob(source) else [source])
    if not files:
        raise FileNotFoundError('no files match %s' % ', '.join(repr(s) for s in sources))
    return files


def _is_glob(path: str) -> bool:
    return any(char in path for char in '*?[')


def _check_image_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if height <= 0 or width <= 0:
        raise ValueError('image_size must be positive; got %r' % (image_size,))
    return height, width


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError('%s must be > 0; got %r' % (name, value))


def _read_records(files: list[str], num_readers: int, is_training: bool, seed: int | None,
                  deterministic: bool) -> tf.data.Dataset:
    """Serialized records, read from up to `num_readers` shards at a time."""
    filenames = tf.data.Dataset.from_tensor_slices(files)
    if is_training:
        filenames = filenames.shuffle(len(files), seed=seed)
    cycle_length = min(num_readers, len(files))
    return filenames.interleave(tf.data.TFRecordDataset, cycle_length=cycle_length,
                                block_length=1, num_parallel_calls=cycle_length,
                                deterministic=deterministic)


def _decode_fn(decoder: slim.data_decoder.DataDecoder, labels_offset: int
               ) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """fn(record) -> (image, label): a class id less `labels_offset`, or a multi-hot vector.

    A multi-hot label (float32 [num_classes], multi-label datasets) loses its
    first `labels_offset` columns instead.
    """
    def decode(record):
        image, label = decoder.decode(record, ['image', 'label'])
        if label.dtype.is_floating:
            return image, label[labels_offset:]
        return image, tf.cast(label, tf.int64) - labels_offset
    return decode


def _label_fn(decoder: slim.data_decoder.DataDecoder, labels_offset: int
              ) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """fn(record) -> (record, label), the label as `_decode_fn` gives it."""
    def record_and_label(record):
        label, = decoder.decode(record, ['label'])
        if label.dtype.is_floating:
            return record, label[labels_offset:]
        return record, tf.cast(label, tf.int64) - labels_offset
    return record_and_label


def _windowed_preprocess_fn(preprocess_fn: PreprocessFn, decoder: slim.data_decoder.DataDecoder,
                            crop_window_fn: CropWindowFn
                            ) -> Callable[[tf.Tensor, int, int], tf.Tensor]:
    """fn(record, height, width): `preprocess_fn` of the record's image cropped to a window."""
    def preprocess(record, height, width):
        return preprocess_fn(_decode_window(record, decoder, crop_window_fn), height, width)
    return preprocess


def _decode_window(record: tf.Tensor, decoder: slim.data_decoder.DataDecoder,
                   crop_window_fn: CropWindowFn) -> tf.Tensor:
    """The record's image cropped to `crop_window_fn`'s window; a JPEG decodes only that."""
    encoded = tf.io.parse_single_example(record, {
        _ENCODED_IMAGE_KEY: tf.io.FixedLenFeature((), tf.string, default_value='')
    })[_ENCODED_IMAGE_KEY]

    def jpeg_window():
        window = crop_window_fn(tf.image.extract_jpeg_shape(encoded))
        return tf.image.decode_and_crop_jpeg(encoded, window, channels=_JPEG_WINDOW_CHANNELS)

    def decoded_window():
        image, = decoder.decode(record, ['image'])
        window = crop_window_fn(tf.shape(image))
        return tf.slice(image, tf.stack([window[0], window[1], 0]),
                        tf.stack([window[2], window[3], -1]))

    # Only the branch taken runs: a JPEG is never decoded whole.
    image = tf.cond(tf.io.is_jpeg(encoded), jpeg_window, decoded_window)
    image.set_shape([None, None, _JPEG_WINDOW_CHANNELS])
    return image


def _preprocess_fn(preprocess_fn: PreprocessFn, height: int, width: int, seed: int | None
                   ) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    def preprocess(image, label):
        if seed is not None:
            # Seeds the random ops of preprocess_fn; this graph-level seed
            # belongs to the traced function alone, not to the caller's graph.
            tf.set_random_seed(seed)
        image = preprocess_fn(image, height, width)
        if not image.shape[:2].is_compatible_with([height, width]):
            raise ValueError('preprocess_fn must return [%d, %d, channels] images; got %s'
                             % (height, width, image.shape))
        image.set_shape([height, width, None])
        return image, label
    return preprocess


def _positioned(decode: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
                ) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    """`decode` of an enumerated record, passing its position on."""
    def decode_at(position, record):
        return (position,) + tuple(decode(record))
    return decode_at


def _stateless_preprocess_fn(preprocess: Callable[[tf.Tensor, tf.Tensor], tuple],
                             seed: int) -> Callable[..., tuple[tf.Tensor, tf.Tensor]]:
    """`preprocess` whose draws (slim_classifier.runtime.determinism) are seeded by position."""
    def preprocess_at(position, image, label):
        with determinism.stateless_draws(seed, determinism.STREAM_EXAMPLES, position):
            return preprocess(image, label)
    return preprocess_at


class DataError(UserError):
    """A record of a dataset cannot be read or decoded.

    Attributes:
      path: the TFRecord file.
      index: the 0-based position of the record in that file.
      reason: what went wrong.
    """

    def __init__(self, path: str, index: int, reason: str):
        super().__init__('corrupt record %d in %s: %s' % (index, path, reason))
        self.path = path
        self.index = index
        self.reason = reason


def find_bad_record(data_sources: str | Sequence[str],
                    decoder: slim.data_decoder.DataDecoder | None = None
                    ) -> DataError | None:
    """Scans shards in order for the first record that fails.

    Args:
      data_sources: files or globs, as in a Dataset's `data_sources`.
      decoder: also decode items 'image' and 'label' of each record with it;
        None only reads the records (finds truncated or corrupted shards).

    Returns:
      A DataError naming the file, record index and reason, or None if every
      record reads (and decodes).
    """
    with tf.Graph().as_default():
        scanner = _ShardScanner(decoder)
        with tf.Session() as session:
            for path in data_files(data_sources):
                bad_record = scanner.scan(session, path)
                if bad_record is not None:
                    return bad_record
    return None


def explain_data_error(dataset: slim.dataset.Dataset, error: Exception) -> DataError | None:
    """Returns a DataError naming the record behind `error`, or None if no record is to blame.

    Only `DATA_ERRORS` raised by input ops (or with no op, as in eager mode
    or for a UnicodeDecodeError) are traced: reading errors
    (tf.errors.DataLossError) by reading the shards, others by decoding every
    record as well, which can take a while on a large dataset.
    """
    if not isinstance(error, DATA_ERRORS):
        return None
    op = getattr(error, 'op', None)
    if op is not None and not op.type.startswith(_INPUT_OP_PREFIXES):
        return None
    tf.logging.info('Scanning the files of %s for the record that failed.',
                    getattr(dataset, 'file_pattern', 'the dataset'))
    if isinstance(error, tf.errors.DataLossError):
        return find_bad_record(dataset.data_sources)
    return find_bad_record(dataset.data_sources, dataset.decoder)


@contextlib.contextmanager
def data_errors_explained(dataset: slim.dataset.Dataset) -> Iterator[None]:
    """Turns TensorFlow's data errors raised in the block into a DataError.

    Wrap the loop that runs the pipeline of `dataset`. An error that no record
    explains (e.g. a shape mismatch in the model) is raised unchanged.

    Raises:
      DataError: if a record of `dataset` cannot be read or decoded.
    """
    try:
        yield
    except DATA_ERRORS as error:
        explained = explain_data_error(dataset, error)
        if explained is None:
            raise
        raise explained from error


class _ShardScanner:
    """Reads one shard per `scan`, a chunk of records per step, then one at a time."""

    def __init__(self, decoder: slim.data_decoder.DataDecoder | None):
        self._path = tf.placeholder(tf.string, [])
        self._start = tf.placeholder(tf.int64, [])
        records = tf.data.TFRecordDataset(self._path).skip(self._start)
        if decoder is not None:
            # tf.shape needs the decoded image, so the decode cannot be pruned.
            records = records.map(lambda record: [tf.shape(item) for item in
                                                  decoder.decode(record, ['image', 'label'])],
                                  num_parallel_calls=AUTOTUNE, deterministic=True)
        chunks = tf.data.make_initializable_iterator(records.batch(_SCAN_CHUNK_SIZE))
        singles = tf.data.make_initializable_iterator(records)
        raw = tf.data.make_initializable_iterator(
            tf.data.TFRecordDataset(self._path).skip(self._start).take(1))
        self._chunks = (chunks.initializer, chunks.get_next())
        self._singles = (singles.initializer, singles.get_next())
        self._raw = (raw.initializer, raw.get_next())

    def scan(self, session: tf.Session, path: str) -> DataError | None:
        """Returns the first bad record of `path`, or None."""
        failure = self._first_failure(session, self._chunks, path, 0)
        if failure is None:
            return None
        chunk_start = failure[0] * _SCAN_CHUNK_SIZE
        single_failure = self._first_failure(session, self._singles, path, chunk_start)
        # Should the record fail only within a chunk, the chunk's error is told.
        index, error = single_failure or (0, failure[1])
        return DataError(path, chunk_start + index,
                         self._reason(session, path, chunk_start + index, error))

    def _reason(self, session: tf.Session, path: str, index: int, error: Exception) -> str:
        """What is wrong with record `index` of `path`, which failed with `error`."""
        if isinstance(error, tf.errors.DataLossError):
            return ('cannot read the record, the file is truncated or corrupted (%s)'
                    % _detail(error))
        initializer, record = self._raw
        session.run(initializer, {self._path: path, self._start: index})
        serialized = session.run(record)
        try:
            tf.train.Example.FromString(serialized)
        except DecodeError:
            return 'not a tf.train.Example (it starts %r)' % serialized[:_SHOWN_BYTES]
        return 'cannot decode the example (%s)' % _detail(error)

    def _first_failure(self, session: tf.Session, iterator: tuple, path: str, start: int
                       ) -> tuple[int, Exception] | None:
        """Returns (elements read before the error, error), or None at the end."""
        initializer, next_element = iterator
        session.run(initializer, {self._path: path, self._start: start})
        steps = 0
        while True:
            try:
                session.run(next_element)
            except tf.errors.OutOfRangeError:
                return None
            except DATA_ERRORS as error:
                return steps, error
            steps += 1


def _detail(error: Exception) -> str:
    """TensorFlow's message without node names or traceback."""
    lines = [line.strip() for line in getattr(error, 'message', str(error)).splitlines()]
    lines = [re.sub(r'\s*\[Op:\w+\].*$', '', line) for line in lines
             if line and not line.startswith('[[')]
    return lines[-1] if lines else type(error).__name__
