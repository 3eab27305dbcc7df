"""Writes converted datasets in the layout the readers expect.

A dataset directory holds one dataset:

    {name}_{split}_{index:05d}-of-{num_shards:05d}.tfrecord   the shards
    labels.txt                                                `id:name` lines
    conversion_report.json                                    what was done
    dataset_info.json                                         written last

`dataset_info.json` is the mark of a complete dataset. A conversion runs
inside `converting(...)`, which holds the directory's lock (see
`datasets.dataset_lock`) and removes dataset_info.json before touching
anything else; `finish_conversion` writes it (atomically) only after every
shard is complete, so an interrupted conversion never looks whole. Shards are
written under a `.partial` suffix, which the shard file pattern does not
match, created exclusively (never through a link planted at that name) and
renamed once complete. When the disk fills up, the conversion's shards are
removed and a `DiskFullError` names the file. Records carry no timestamps and
are serialised deterministically, so the same input gives byte-identical
shards.

A record holds `image/encoded`, `image/format`, `image/height`,
`image/width`, `image/filename`, `image/class/label` (the class id) and
`image/class/text` (its name). A record of a multi-label dataset
(`multi_label_example`) also holds `image/class/labels`, the sorted list of
the ids of the labels its image carries (possibly empty); its
`image/class/label` is then the smallest of them, or -1 (NO_LABEL) for an
image without labels, and `image/class/text` their names joined by ';'.
The dataset_info.json of a multi-label dataset has `"multi_label": true`,
`label_counts` (split -> label name -> images carrying it) and
`unlabelled_counts` (split -> images without labels).
"""

import contextlib
import dataclasses
import errno
import glob
import os
import re
import types
from collections.abc import Iterable, Iterator, Sequence

import tensorflow.compat.v1 as tf

from datasets import dataset_format, dataset_lock
from datasets.image_preparation import EncodedImage
from datasets.progress import ProgressFn, ignore_progress
from slim_classifier.errors import UserError
from slim_classifier.runtime import files

PARTIAL_SUFFIX = '.partial'
# The `image/class/label` of a multi-label example without labels.
NO_LABEL = -1

_DATASET_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# TensorFlow reports both as RESOURCE_EXHAUSTED, naming them by their strerror.
_DISK_FULL_REASONS = tuple(os.strerror(number) for number in _DISK_FULL_ERRNOS)


class DiskFullError(UserError):
    """The disk (or the user's quota) filled up while the dataset was written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__('cannot write %s: the disk is full (%s); the partial dataset was '
                         'removed: free some space, or choose another --dataset_dir, and convert '
                         'again' % (path, reason))


def check_dataset_name(name: str) -> None:
    """Checks that `name` can prefix shard file names and file patterns.

    Args:
        name: the dataset name.

    Raises:
        ValueError: if the name is empty or holds other characters than
            letters, digits, '_', '-' and '.'.
    """
    if not _DATASET_NAME.fullmatch(name):
        raise ValueError("--dataset_name must be letters, digits, '_', '-' or '.', "
                         'starting with a letter or digit; got %r' % name)


def file_pattern(name: str) -> str:
    """Returns the shard file pattern of a dataset; `%s` stands for the split."""
    return '%s_%%s_*.tfrecord' % name


def shard_filename(name: str, split: str, index: int, num_shards: int) -> str:
    """Returns the file name of shard `index` of `num_shards` of a split."""
    return '%s_%s_%05d-of-%05d.tfrecord' % (name, split, index, num_shards)


def image_example(image: EncodedImage, label: int, class_name: str,
                  filename: str) -> bytes:
    """Serialises one classification example with the slim keys.

    Args:
        image: the encoded image.
        label: the class id.
        class_name: the class name (`image/class/text`).
        filename: where the image came from, relative to the source.

    Returns:
        The serialised `tf.train.Example`, byte-identical for equal inputs.
    """
    feature = {
        'image/encoded': _bytes_feature(image.data),
        'image/format': _bytes_feature(image.format.encode('ascii')),
        'image/class/label': _int64_feature(label),
        'image/height': _int64_feature(image.height),
        'image/width': _int64_feature(image.width),
        'image/filename': _bytes_feature(_utf8(filename)),
        'image/class/text': _bytes_feature(_utf8(class_name)),
    }
    return _serialized(feature)


def multi_label_example(image: EncodedImage, labels: Sequence[int], class_names: Sequence[str],
                        filename: str) -> bytes:
    """Serialises one multi-label example: the slim keys plus `image/class/labels`.

    Args:
        image: the encoded image.
        labels: the ids of the labels the image carries, possibly none.
        class_names: the label names by id.
        filename: where the image came from, relative to the source.

    Returns:
        The serialised `tf.train.Example`, byte-identical for equal inputs:
        `image/class/labels` the sorted ids, `image/class/label` the smallest
        (-1 without labels) and `image/class/text` their names joined by ';'.
    """
    ids = sorted(set(labels))
    feature = {
        'image/encoded': _bytes_feature(image.data),
        'image/format': _bytes_feature(image.format.encode('ascii')),
        'image/class/label': _int64_feature(ids[0] if ids else NO_LABEL),
        'image/class/labels': tf.train.Feature(int64_list=tf.train.Int64List(value=ids)),
        'image/height': _int64_feature(image.height),
        'image/width': _int64_feature(image.width),
        'image/filename': _bytes_feature(_utf8(filename)),
        'image/class/text': _bytes_feature(_utf8(';'.join(class_names[i] for i in ids))),
    }
    return _serialized(feature)


def _serialized(feature: dict[str, tf.train.Feature]) -> bytes:
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # Features is a map: only deterministic serialisation fixes the key order.
    return example.SerializeToString(deterministic=True)


class SplitWriter:
    """Writes the records of one split into a fixed number of shards.

    The caller announces how many records it plans to add; planned record
    `p` goes to shard `p * num_shards // planned_count`. A planned record can
    be dropped (`add(None)`, e.g. a rejected file) without moving the others
    to different shards. Use it as a context manager: leaving the block
    normally completes every shard, leaving it with an exception deletes the
    shard being written. Any failure to write deletes that shard too; a full
    disk is raised as `DiskFullError`.

    Attributes:
        written: the number of records written so far.
    """

    def __init__(self, dataset_dir: str, name: str, split: str, planned_count: int,
                 num_shards: int) -> None:
        """Plans the shards; nothing is written before the first record.

        Args:
            dataset_dir: the output directory.
            name: the dataset name.
            split: the split name.
            planned_count: how many records (kept or dropped) will be added.
            num_shards: how many shards to write, empty ones included.

        Raises:
            ValueError: if `num_shards` is below 1.
        """
        if num_shards < 1:
            raise ValueError('--num_shards must be >= 1; got %d' % num_shards)
        self._paths = [os.path.join(dataset_dir, shard_filename(name, split, index, num_shards))
                       for index in range(num_shards)]
        self._planned_count = planned_count
        self._position = 0
        self._shard = -1
        self._writer = None
        self.written = 0

    def __enter__(self) -> 'SplitWriter':
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                 traceback: types.TracebackType | None) -> None:
        if error_type is None:
            self.close()
        else:
            self._abort()

    def add(self, record: bytes | None) -> None:
        """Adds the next planned record; None drops it.

        Args:
            record: a serialised example, or None.

        Raises:
            ValueError: if more records are added than were planned.
            DiskFullError: if the disk is full.
            FileExistsError: if something is at the name of a shard's
                temporary file (it is left as it is).
        """
        if self._position >= self._planned_count:
            raise ValueError('more records than the %d planned' % self._planned_count)
        with self._aborted_on_failure():
            self._advance_to(self._position * len(self._paths) // self._planned_count)
            if record is not None:
                self._writer.write(record)
        if record is not None:
            self.written += 1
        self._position += 1

    def close(self) -> None:
        """Completes the remaining shards (empty ones included).

        Raises:
            ValueError: if fewer records were added than were planned.
            DiskFullError: if the disk is full.
        """
        if self._position != self._planned_count:
            self._abort()
            raise ValueError('%d records were planned but %d added'
                             % (self._planned_count, self._position))
        with self._aborted_on_failure():
            self._advance_to(len(self._paths) - 1)
            self._finish_shard()

    @contextlib.contextmanager
    def _aborted_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException as error:
            path = self._partial_path()
            self._abort()
            _raise_if_disk_full(error, path)
            raise

    def _partial_path(self) -> str:
        return self._paths[self._shard] + PARTIAL_SUFFIX

    def _advance_to(self, shard: int) -> None:
        while self._shard < shard:
            if self._writer is not None:
                self._finish_shard()
            self._shard += 1
            self._writer = _exclusive_record_writer(self._partial_path())

    def _finish_shard(self) -> None:
        partial = self._partial_path()
        self._writer.close()
        _fsync(partial)
        os.replace(partial, self._paths[self._shard])
        self._writer = None

    def _abort(self) -> None:
        """Removes the temporary file of the shard being written, if there is one."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        # The shard is discarded: a failure to flush it (the same full disk,
        # typically) changes nothing.
        with contextlib.suppress(tf.errors.OpError):
            writer.close()
        os.remove(self._partial_path())


@dataclasses.dataclass(frozen=True)
class RejectedFile:
    """A file that could not be converted.

    Attributes:
        path: the file, relative to the source folder.
        label: the class id of its folder (NO_LABEL in a multi-label dataset).
        reason: why it was rejected.
        labels: the label ids it was listed with, in a multi-label dataset.
    """
    path: str
    label: int
    reason: str
    labels: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file that was not considered an image candidate at all.

    Attributes:
        path: the file, relative to the source folder.
        reason: why it was skipped.
    """
    path: str
    reason: str


@dataclasses.dataclass
class ConversionSummary:
    """What a conversion did; written to conversion_report.json.

    Attributes:
        name: the dataset name.
        dataset_dir: where the dataset was written.
        class_names: class names by id.
        split_sizes: number of records written per split.
        converted_per_class: number of records written per class id; in a
            multi-label dataset, of records carrying each label.
        image_formats: the `image/format` values written.
        options: the options that shaped the output.
        rejected: the files that were rejected, with reasons.
        skipped: the files that were skipped, with reasons.
        turned_upright: how many records were turned by their EXIF orientation.
        multi_label: whether a record carries a list of labels (`count_labels`
            counts them); dataset_info.json then says so and keeps the
            per-label counts of each split.
        label_counts: split -> records carrying each label id (multi-label).
        unlabelled_counts: split -> records without any label (multi-label).
    """
    name: str
    dataset_dir: str
    class_names: list[str]
    split_sizes: dict[str, int]
    converted_per_class: list[int]
    image_formats: set[str]
    options: dict
    rejected: list[RejectedFile] = dataclasses.field(default_factory=list)
    skipped: list[SkippedFile] = dataclasses.field(default_factory=list)
    turned_upright: int = 0
    multi_label: bool = False
    label_counts: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    unlabelled_counts: dict[str, int] = dataclasses.field(default_factory=dict)

    def count_labels(self, split: str, labels: Iterable[int]) -> None:
        """Counts one multi-label record of `split` carrying `labels`."""
        counts = self.label_counts.setdefault(split, [0] * len(self.class_names))
        self.unlabelled_counts.setdefault(split, 0)
        ids = set(labels)
        for label in ids:
            counts[label] += 1
            self.converted_per_class[label] += 1
        if not ids:
            self.unlabelled_counts[split] += 1

    @property
    def converted(self) -> int:
        """Number of records written."""
        return sum(self.split_sizes.values())

    @property
    def rejected_fraction(self) -> float:
        """Rejected files as a fraction of all image candidates."""
        candidates = self.converted + len(self.rejected)
        return len(self.rejected) / candidates if candidates else 0.0

    @property
    def image_format(self) -> str:
        """'jpeg' or 'png' when every record has that format, else 'mixed'."""
        if len(self.image_formats) == 1:
            return next(iter(self.image_formats))
        return 'mixed'

    @property
    def report_path(self) -> str:
        """Where the conversion report is written."""
        return os.path.join(self.dataset_dir, dataset_format.REPORT_FILENAME)

    def summary_lines(self) -> list[str]:
        """Returns a short human-readable summary, per class."""
        splits = ', '.join('%s: %d' % item for item in self.split_sizes.items())
        lines = ['Converted %d images into %s (%s).' % (self.converted, self.dataset_dir, splits),
                 'Rejected %d files, skipped %d files; details in %s.'
                 % (len(self.rejected), len(self.skipped), self.report_path)]
        kind = 'label' if self.multi_label else 'class'
        width = max([len(kind)] + [len(name) for name in self.class_names])
        if self.turned_upright:
            lines.append('Turned %d images upright, as their EXIF orientation says.'
                         % self.turned_upright)
        if self.multi_label:
            lines.append('%d images have no label. Per label, the images carrying it:'
                         % sum(self.unlabelled_counts.values()))
        lines.append('  %-*s  %9s  %8s' % (width, kind, 'converted', 'rejected'))
        rejected = self._rejected_per_class()
        for label, name in enumerate(self.class_names):
            lines.append('  %-*s  %9d  %8d'
                         % (width, name, self.converted_per_class[label], rejected[label]))
        return lines

    def report(self, status: str) -> dict:
        """Returns the JSON-ready conversion report.

        Args:
            status: 'complete', or why the conversion failed.

        Returns:
            The report, with every rejected and skipped file.
        """
        rejected = self._rejected_per_class()
        report = {
            'format_version': dataset_format.FORMAT_VERSION,
            'name': self.name,
            'status': status,
            'converted': self.converted,
            'rejected_count': len(self.rejected),
            'skipped_count': len(self.skipped),
            'turned_upright': self.turned_upright,
            'rejected_fraction': self.rejected_fraction,
            'splits': self.split_sizes,
            'per_class': {name: {'converted': self.converted_per_class[label],
                                 'rejected': rejected[label]}
                          for label, name in enumerate(self.class_names)},
            'rejected': [self._rejected_entry(item) for item in self.rejected],
            'skipped': [{'file': item.path, 'reason': item.reason} for item in self.skipped],
            'options': self.options,
        }
        if self.multi_label:
            report.update(self.label_statistics())
        return report

    def label_statistics(self) -> dict:
        """The multi-label facts of dataset_info.json and the report.

        'multi_label': true, 'label_counts' (split -> label name -> records
        carrying it) and 'unlabelled_counts' (split -> records without labels).
        """
        return {'multi_label': True,
                'label_counts': {split: dict(zip(self.class_names, counts))
                                 for split, counts in self.label_counts.items()},
                'unlabelled_counts': dict(self.unlabelled_counts)}

    def _rejected_entry(self, item: RejectedFile) -> dict:
        if item.labels is None:
            return {'file': item.path, 'class': self.class_names[item.label],
                    'reason': item.reason}
        return {'file': item.path, 'labels': [self.class_names[label] for label in item.labels],
                'reason': item.reason}

    def _rejected_per_class(self) -> list[int]:
        counts = [0] * len(self.class_names)
        for item in self.rejected:
            for label in (item.label,) if item.labels is None else item.labels:
                counts[label] += 1
        return counts


@contextlib.contextmanager
def converting(dataset_dir: str, name: str) -> Iterator[None]:
    """Holds `dataset_dir`'s lock while dataset `name` is (re)converted in the block.

    Starts the conversion (`start_conversion`) once the lock is held; the
    block writes the shards and calls `finish_conversion`. When the disk fills
    up, the shards and report the block wrote are removed (the directory must
    not look complete, and the space is the user's), and everything else is
    left as it is.

    Args:
        dataset_dir: the output directory; created if missing.
        name: the dataset name.

    Raises:
        DatasetLockedError: if another conversion holds the directory.
        DiskFullError: if the disk filled up.
    """
    with dataset_lock.locked(dataset_dir):
        start_conversion(dataset_dir, name)
        try:
            yield
        except DiskFullError:
            _remove_own_files(dataset_dir, name)
            raise


def start_conversion(dataset_dir: str, name: str) -> None:
    """Prepares `dataset_dir` for a (re)conversion of dataset `name`.

    Call it through `converting`, which holds the directory's lock.

    Removes dataset_info.json first, so the directory stops claiming to hold
    a complete dataset, then the previous report, then every shard (complete
    or partial) a previous conversion of `name` left, so shards of an older
    layout (another shard count, say) cannot be mixed with the new ones.
    Shards of another dataset in the same directory are kept, even when its
    name starts with `name`.

    Args:
        dataset_dir: the output directory; created if missing.
        name: the dataset name.
    """
    os.makedirs(dataset_dir, exist_ok=True)
    _remove_own_files(dataset_dir, name)


def _remove_own_files(dataset_dir: str, name: str) -> None:
    """Removes dataset_info.json, then the report, then every shard of `name`.

    The temporaries of an interrupted write of the metadata files go too.
    """
    metadata_files = (dataset_format.INFO_FILENAME, dataset_format.REPORT_FILENAME,
                      dataset_format.LABELS_FILENAME)
    for metadata in metadata_files[:2]:
        path = os.path.join(dataset_dir, metadata)
        if os.path.lexists(path):
            os.remove(path)
    files.remove_stale_temporaries(dataset_dir, metadata_files)
    # Only this dataset's own shard names: converting 'pets' leaves 'pets_small_*' alone.
    own_shard = re.compile(re.escape(name) + r'_[A-Za-z]+_\d+-of-\d+\.tfrecord(%s)?'
                           % re.escape(PARTIAL_SUFFIX))
    for path in glob.glob(os.path.join(glob.escape(dataset_dir), glob.escape(name) + '_*')):
        if own_shard.fullmatch(os.path.basename(path)):
            os.remove(path)


def finish_conversion(summary: ConversionSummary, failure: str | None = None) -> None:
    """Writes labels.txt, the report and, unless the conversion failed, dataset_info.json.

    Args:
        summary: what the conversion did.
        failure: why the conversion failed, or None when it succeeded. A
            failed conversion gets its report but no dataset_info.json.

    Raises:
        DiskFullError: if the disk is full.
    """
    with _disk_full_reported(os.path.join(summary.dataset_dir, dataset_format.LABELS_FILENAME)):
        dataset_format.write_labels(summary.dataset_dir, summary.class_names)
    report = summary.report('complete' if failure is None else 'failed: ' + failure)
    with _disk_full_reported(summary.report_path):
        dataset_format.write_json(summary.report_path, report)
    if failure is not None:
        return
    with _disk_full_reported(os.path.join(summary.dataset_dir, dataset_format.INFO_FILENAME)):
        dataset_format.write_info(summary.dataset_dir, {
            'name': summary.name,
            'num_classes': len(summary.class_names),
            'classes': summary.class_names,
            'splits': summary.split_sizes,
            'file_pattern': file_pattern(summary.name),
            'image_format': summary.image_format,
            'options': summary.options,
            **(summary.label_statistics() if summary.multi_label else {}),
        })


@dataclasses.dataclass(frozen=True)
class LabelledImage:
    """One example of a dataset whose every example is kept.

    Attributes:
        image: the encoded image.
        label: the class id (NO_LABEL in a multi-label dataset).
        filename: where it came from (`image/filename`).
        labels: the label ids of an example of a multi-label dataset.
    """
    image: EncodedImage
    label: int
    filename: str
    labels: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class SplitSource:
    """The examples of one split, streamed.

    Attributes:
        count: how many examples `examples` yields.
        examples: the examples in record order, read as they are written.
    """
    count: int
    examples: Iterable[LabelledImage]


def write_labelled_dataset(dataset_dir: str, name: str, class_names: list[str],
                           splits: dict[str, SplitSource], options: dict,
                           progress: ProgressFn = ignore_progress,
                           num_shards: int = 1, multi_label: bool = False) -> ConversionSummary:
    """Converts a dataset whose examples are all valid (digits, digit_tiles, MNIST, CIFAR-10).

    Args:
        dataset_dir: the output directory.
        name: the dataset name.
        class_names: class names by id.
        splits: the examples of each split.
        options: the options that shaped the output, for dataset_info.json.
        progress: told how many examples of each split have been written.
        num_shards: shards per split.
        multi_label: the examples carry `labels` (see `multi_label_example`).

    Returns:
        What was converted.

    Raises:
        ValueError: if a split yields another number of examples than announced.
        DatasetLockedError: if another conversion holds `dataset_dir`.
        DiskFullError: if the disk filled up; the shards are removed.
    """
    summary = ConversionSummary(name=name, dataset_dir=dataset_dir, class_names=class_names,
                                split_sizes={}, converted_per_class=[0] * len(class_names),
                                image_formats=set(), options=options,
                                multi_label=multi_label)
    with converting(dataset_dir, name):
        for split, source in splits.items():
            task = 'converting %s %s' % (name, split)
            with SplitWriter(dataset_dir, name, split, source.count, num_shards) as writer:
                for example in source.examples:
                    if multi_label:
                        writer.add(multi_label_example(example.image, example.labels,
                                                       class_names, example.filename))
                        summary.count_labels(split, example.labels)
                    else:
                        writer.add(image_example(example.image, example.label,
                                                 class_names[example.label], example.filename))
                        summary.converted_per_class[example.label] += 1
                    summary.image_formats.add(example.image.format)
                    progress(task, writer.written, source.count, 'images')
            summary.split_sizes[split] = writer.written
        finish_conversion(summary)
    return summary


def _exclusive_record_writer(path: str) -> tf.io.TFRecordWriter:
    """Creates `path` exclusively, then opens a TFRecord writer on it.

    Creating the file first (O_EXCL | O_NOFOLLOW) means the writer only ever
    opens a file this conversion has just made: a link or file planted at the
    name is refused, and left as it is.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise FileExistsError('%s already exists, but the conversion writes a shard there; it '
                              'is left as it is: move it away, then convert again'
                              % path) from None
    os.close(descriptor)
    return tf.io.TFRecordWriter(path)


@contextlib.contextmanager
def _disk_full_reported(path: str) -> Iterator[None]:
    """Raises a full disk met while writing `path` as a `DiskFullError`."""
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        _raise_if_disk_full(error, path)
        raise


def _raise_if_disk_full(error: BaseException, path: str) -> None:
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        raise DiskFullError(path, error.strerror) from error
    if isinstance(error, tf.errors.ResourceExhaustedError):
        reason = next((text for text in _DISK_FULL_REASONS if text in error.message), None)
        if reason is not None:
            raise DiskFullError(path, reason) from error


def _fsync(path: str) -> None:
    # The rename must not reach the disk before the data it names.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _utf8(text: str) -> bytes:
    # File names that are not valid UTF-8 keep their original bytes.
    return text.encode('utf-8', 'surrogateescape')


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
