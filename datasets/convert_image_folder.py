"""Converts a folder with one sub-folder per class into sharded TFRecords.

    image_dir/
        daisy/1.jpg, daisy/2.png, ...
        roses/...

Class ids follow the sorted class folder names; a classifier needs at least
two. Every file is checked: hidden files and files whose extension marks them
as something else than an image (.txt, .json, Thumbs.db, ...) are skipped;
every other file is decoded and either becomes a record (see
`datasets.image_preparation`) or is rejected with a reason (so are FIFOs,
devices and files over `max_image_bytes`), and the conversion goes on. A
stratified, seeded share of each class becomes the validation split; options
that would leave a split empty are refused before anything is written, and
more shards or workers than images are cut down to the number of images.

Memory stays flat as the folder grows: images stream from disk through the
workers into the shard being written, a bounded number at a time. With
`num_workers` > 1 the files are decoded by a process pool and written in
their planned order, so the output does not depend on the number of workers.
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence

from datasets import splitting, tfrecord_writing
from datasets.conversion_config import ConversionOptions
from datasets.image_preparation import (EncodedImage, Rejection, prepare_image_file,
                                        prepare_image_files)
from datasets.progress import ProgressFn, ignore_progress
from datasets.tfrecord_writing import ConversionSummary, RejectedFile, SkippedFile
from slim_classifier.errors import UserError

TRAIN_SPLIT = 'train'
VALIDATION_SPLIT = 'validation'
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ConversionOptions)}
DEFAULT_VALIDATION_PERCENTAGE = _DEFAULTS['validation_percentage']
DEFAULT_NUM_SHARDS = _DEFAULTS['num_shards']
DEFAULT_MAX_REJECTED_FRACTION = _DEFAULTS['max_rejected_fraction']
DEFAULT_MAX_IMAGE_BYTES = _DEFAULTS['max_image_bytes']

# Extensions of files that sit beside images in photo folders but are not
# images; they are skipped rather than reported as rejected.
_NON_IMAGE_EXTENSIONS = frozenset({
    '.txt', '.json', '.csv', '.tsv', '.md', '.rst', '.xml', '.html', '.htm', '.yaml',
    '.yml', '.ini', '.cfg', '.log', '.db', '.pdf', '.doc', '.docx', '.py', '.sh',
    '.zip', '.tar', '.gz', '.tgz', '.bz2', '.xz', '.7z', '.rar', '.pkl', '.npy',
    '.npz', '.h5', '.mp4', '.mov', '.avi', '.mkv', '.mp3', '.wav', '.xmp', '.aae',
    '.tfrecord', '.partial', '.part',
})
_SYSTEM_FILES = frozenset({'thumbs.db', 'ehthumbs.db', 'desktop.ini'})

# Files per task sent to a worker, and tasks queued per worker: enough to
# keep every worker busy while bounding how many images are held at once.
_FILES_PER_TASK = 8
_TASKS_PER_WORKER = 4

log = logging.getLogger('convert')


class TooManyRejectedError(UserError):
    """More files were rejected than `max_rejected_fraction` allows.

    Attributes:
        summary: what the conversion did; its report has been written.
    """

    def __init__(self, message: str, summary: ConversionSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """An image candidate found in the folder.

    Attributes:
        path: the file's path.
        relative_path: the path below the image folder, '/'-separated; it
            keys the split and record order and is stored as image/filename.
        label: the class id (the stratum of the split in a multi-label
            dataset: see `datasets.convert_labels_csv`).
        labels: the label ids of an image of a multi-label dataset.
    """
    path: str
    relative_path: str
    label: int
    labels: tuple[int, ...] | None = None


@dataclasses.dataclass(frozen=True)
class FolderScan:
    """What a folder holds.

    Attributes:
        class_names: the class folder names, sorted; the index is the class id.
        images: the image candidates, in sorted order.
        skipped: the files that are not image candidates, with reasons.
    """
    class_names: list[str]
    images: list[ImageFile]
    skipped: list[SkippedFile]


def skip_reason(file_name: str) -> str | None:
    """Says why a file is no image candidate, judging by its name alone.

    Args:
        file_name: the file's base name.

    Returns:
        The reason to skip it, or None for an image candidate.
    """
    if file_name.startswith('.'):
        return 'hidden file'
    if file_name.lower() in _SYSTEM_FILES:
        return 'system file'
    if os.path.splitext(file_name)[1].lower() in _NON_IMAGE_EXTENSIONS:
        return 'not an image (by extension)'
    return None


def scan_image_folder(image_dir: str) -> FolderScan:
    """Lists the classes and image candidates of a folder, in sorted order.

    Args:
        image_dir: a folder with one sub-folder per class; files in nested
            folders belong to the class folder they are in.

    Returns:
        The classes, image candidates and skipped files.

    Raises:
        ValueError: if the folder is missing, has fewer than two class
            sub-folders, has a class folder without image files or whose name
            is unusable.
    """
    if not os.path.exists(image_dir):
        raise ValueError('--image_dir %r does not exist' % image_dir)
    if not os.path.isdir(image_dir):
        raise ValueError('--image_dir %r is not a folder' % image_dir)
    class_names, skipped = [], []
    for entry in sorted(os.scandir(image_dir), key=lambda entry: entry.name):
        if not entry.is_dir():
            skipped.append(SkippedFile(display(entry.name), 'not inside a class folder'))
        elif entry.name.startswith('.'):
            skipped.append(SkippedFile(display(entry.name) + '/', 'hidden folder'))
        else:
            _check_class_name(entry.name)
            class_names.append(entry.name)
    if not class_names:
        raise ValueError('--image_dir %r has no class sub-folders' % image_dir)
    if len(class_names) == 1:
        raise ValueError('--image_dir %r has one class folder, %r; a classifier needs at least '
                         'two: add a sub-folder of images for each other class'
                         % (image_dir, display(class_names[0])))
    images = []
    for label, class_name in enumerate(class_names):
        found = list(_class_images(image_dir, class_name, label, skipped))
        if not found:
            raise ValueError('class folder %r in --image_dir has no image files' % class_name)
        images.extend(found)
    return FolderScan(class_names, images, skipped)


def plan_splits(images: Sequence[ImageFile], validation_count: int,
                seed: int) -> dict[str, list[ImageFile]]:
    """Splits image candidates into train and validation, each in record order.

    Args:
        images: the image candidates.
        validation_count: how many go to validation, shared among classes in
            proportion to their size; 0 gives no validation split.
        seed: fixes the split and the record order.

    Returns:
        The images of each split, in the order they are written.
    """
    keys = [image.relative_path for image in images]
    train, validation = splitting.stratified_split(
        keys, [image.label for image in images], validation_count, 'split:%d' % seed)
    plan = {TRAIN_SPLIT: train}
    if validation_count:
        plan[VALIDATION_SPLIT] = validation
    ordered = {}
    for split, indices in plan.items():
        order = splitting.stable_order([keys[index] for index in indices],
                                       'order:%s:%d' % (split, seed))
        ordered[split] = [images[indices[position]] for position in order]
    return ordered


def convert_image_folder(
        image_dir: str, dataset_dir: str, name: str, *,
        validation_percentage: float = DEFAULT_VALIDATION_PERCENTAGE,
        validation_count: int | None = None,
        num_shards: int = DEFAULT_NUM_SHARDS,
        num_workers: int = 1,
        max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        seed: int = 0,
        progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Converts an image folder into a dataset directory.

    Args:
        image_dir: a folder with one sub-folder per class.
        dataset_dir: where shards, labels.txt, conversion_report.json and
            dataset_info.json are written; must not be inside `image_dir`.
        name: the dataset name, the prefix of the shard files.
        validation_percentage: share of each class held out for validation,
            in [0, 100); 0 gives no validation split.
        validation_count: if given, the exact number of images held out
            (shared among classes in proportion), instead of the percentage.
        num_shards: shards per split; a split of fewer images gets one shard
            per image (with a warning).
        num_workers: processes decoding images; at most one per image is
            started (with a warning).
        max_rejected_fraction: the conversion fails, after writing its
            report, if a larger fraction of the image candidates is rejected.
        max_image_bytes: larger files are rejected unread.
        seed: fixes the split and the record order.
        progress: told how many images have been handled.

    Returns:
        What was converted, rejected and skipped.

    Raises:
        ValueError: if an argument or the folder is unusable, or the
            validation share would leave a split empty.
        DatasetLockedError: if another conversion is writing `dataset_dir`.
        DiskFullError: if the disk filled up; the shards are removed.
        TooManyRejectedError: if too many files were rejected; the report is
            written, dataset_info.json is not.
    """
    tfrecord_writing.check_dataset_name(name)
    check_options(validation_percentage, validation_count, num_shards, num_workers,
                  max_rejected_fraction, max_image_bytes)
    check_output_outside_input(image_dir, dataset_dir)
    scan = scan_image_folder(image_dir)
    holdout = validation_size(len(scan.images), validation_percentage, validation_count)
    plan = plan_splits(scan.images, holdout, seed)
    summary = ConversionSummary(
        name=name, dataset_dir=dataset_dir, class_names=scan.class_names, split_sizes={},
        converted_per_class=[0] * len(scan.class_names), image_formats=set(),
        options={'image_dir': os.path.abspath(image_dir),
                 'validation_percentage': validation_percentage,
                 'validation_count': validation_count, 'num_shards': num_shards,
                 'max_rejected_fraction': max_rejected_fraction,
                 'max_image_bytes': max_image_bytes, 'seed': seed},
        skipped=scan.skipped)
    write_planned_images(plan, summary, num_shards, num_workers, max_rejected_fraction,
                         max_image_bytes, progress)
    return summary


def write_planned_images(plan: dict[str, list[ImageFile]], summary: ConversionSummary,
                         num_shards: int, num_workers: int, max_rejected_fraction: float,
                         max_image_bytes: int, progress: ProgressFn) -> None:
    """Converts the planned images of each split, holding the dataset directory's lock.

    Args:
        plan: the images of each split, in record order (`plan_splits`).
        summary: the conversion's summary, filled in as the images are written.
        num_shards, num_workers, max_rejected_fraction, max_image_bytes,
            progress: as `convert_image_folder`'s.

    Raises:
        DatasetLockedError: if another conversion is writing the directory.
        DiskFullError: if the disk filled up; the shards are removed.
        TooManyRejectedError: if too many files were rejected; the report is
            written, dataset_info.json is not.
    """
    num_images = sum(len(images) for images in plan.values())
    if num_workers > num_images:
        log.warning('--num_workers %d is more than the %d image files; starting %d',
                    num_workers, num_images, num_images)
        num_workers = num_images
    with tfrecord_writing.converting(summary.dataset_dir, summary.name):
        _write_splits(plan, summary, num_shards, num_workers, max_image_bytes, progress)
        summary.rejected.sort(key=lambda item: item.path)
        if summary.rejected_fraction > max_rejected_fraction:
            failure = ('%d of %d image files (%.1f%%) were rejected, more than '
                       '--max_rejected_fraction %g allows; see %s'
                       % (len(summary.rejected), num_images,
                          100 * summary.rejected_fraction, max_rejected_fraction,
                          summary.report_path))
            tfrecord_writing.finish_conversion(summary, failure)
            raise TooManyRejectedError(failure, summary)
        tfrecord_writing.finish_conversion(summary)


def _write_splits(plan: dict[str, list[ImageFile]], summary: ConversionSummary,
                  num_shards: int, num_workers: int, max_image_bytes: int,
                  progress: ProgressFn) -> None:
    """Streams every planned image through the workers into its shard."""
    total = sum(len(images) for images in plan.values())
    task = 'converting %s' % summary.name
    progress(task, 0, total, 'images')
    done = 0
    paths = [image.path for images in plan.values() for image in images]
    results = _prepared_in_order(paths, num_workers, max_image_bytes)
    try:
        for split, images in plan.items():
            shards = min(num_shards, len(images))
            if shards < num_shards:
                log.warning('--num_shards %d is more than the %d %s images; writing %d %s '
                            'shards instead of empty ones', num_shards, len(images), split,
                            shards, split)
            with tfrecord_writing.SplitWriter(summary.dataset_dir, summary.name, split,
                                              len(images), shards) as writer:
                for image in images:
                    writer.add(_record(image, next(results), summary, split))
                    done += 1
                    progress(task, done, total, 'images')
            summary.split_sizes[split] = writer.written
    finally:
        results.close()


def _record(image: ImageFile, result: EncodedImage | Rejection,
            summary: ConversionSummary, split: str) -> bytes | None:
    """Returns the record for a prepared image, or None after noting a rejection."""
    if isinstance(result, Rejection):
        if image.labels is None:
            rejected = RejectedFile(display(image.relative_path), image.label, result.reason)
        else:
            rejected = RejectedFile(display(image.relative_path), tfrecord_writing.NO_LABEL,
                                    result.reason, image.labels)
        summary.rejected.append(rejected)
        return None
    summary.image_formats.add(result.format)
    summary.turned_upright += int(result.turned_upright)
    if image.labels is not None:
        summary.count_labels(split, image.labels)
        return tfrecord_writing.multi_label_example(result, image.labels, summary.class_names,
                                                    image.relative_path)
    summary.converted_per_class[image.label] += 1
    return tfrecord_writing.image_example(result, image.label,
                                          summary.class_names[image.label],
                                          image.relative_path)


def _prepared_in_order(paths: list[str], num_workers: int,
                       max_image_bytes: int) -> Iterator[EncodedImage | Rejection]:
    """Prepares every file, in order, on `num_workers` processes."""
    if num_workers == 1:
        for path in paths:
            yield prepare_image_file(path, max_image_bytes)
        return
    # Few files are spread thinly enough for every worker to get some.
    files_per_task = min(_FILES_PER_TASK, math.ceil(len(paths) / num_workers))
    batches = (paths[start:start + files_per_task]
               for start in range(0, len(paths), files_per_task))
    executor = concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=_worker_context())
    try:
        pending = collections.deque(
            executor.submit(prepare_image_files, batch, max_image_bytes)
            for batch in itertools.islice(batches, num_workers * _TASKS_PER_WORKER))
        while pending:
            results = pending.popleft().result()
            for batch in itertools.islice(batches, 1):
                pending.append(executor.submit(prepare_image_files, batch, max_image_bytes))
            yield from results
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _worker_context() -> multiprocessing.context.BaseContext:
    # Forked workers start at once instead of importing this process's modules
    # (TensorFlow among them) again; they only ever run Pillow code. Outside
    # Linux, forking is unsafe or missing, so workers are spawned.
    method = 'fork' if sys.platform.startswith('linux') else 'spawn'
    return multiprocessing.get_context(method)


def _class_images(image_dir: str, class_name: str, label: int,
                  skipped: list[SkippedFile]) -> Iterator[ImageFile]:
    """Yields the image candidates below one class folder, in sorted order."""
    # An unreadable folder is an error, not a silently empty one.
    for folder, subfolders, files in os.walk(os.path.join(image_dir, class_name),
                                             onerror=_raise):
        relative_folder = os.path.relpath(folder, image_dir).replace(os.sep, '/')
        for hidden in sorted(name for name in subfolders if name.startswith('.')):
            skipped.append(SkippedFile(display(relative_folder + '/' + hidden) + '/',
                                       'hidden folder'))
        subfolders[:] = sorted(name for name in subfolders if not name.startswith('.'))
        for file_name in sorted(files):
            relative_path = relative_folder + '/' + file_name
            reason = skip_reason(file_name)
            if reason is None:
                yield ImageFile(os.path.join(folder, file_name), relative_path, label)
            else:
                skipped.append(SkippedFile(display(relative_path), reason))


def _raise(error: OSError) -> None:
    raise error


def check_options(validation_percentage: float, validation_count: int | None,
                   num_shards: int, num_workers: int, max_rejected_fraction: float,
                   max_image_bytes: int) -> None:
    if not 0 <= validation_percentage < 100:
        raise ValueError('--validation_percentage must be in [0, 100); got %g'
                         % validation_percentage)
    if validation_count is not None and validation_count < 0:
        raise ValueError('validation_count must be >= 0; got %d' % validation_count)
    if num_shards < 1:
        raise ValueError('--num_shards must be >= 1; got %d' % num_shards)
    if num_workers < 1:
        raise ValueError('--num_workers must be >= 1; got %d' % num_workers)
    if not 0 <= max_rejected_fraction <= 1:
        raise ValueError('--max_rejected_fraction must be in [0, 1]; got %g'
                         % max_rejected_fraction)
    if max_image_bytes < 1:
        raise ValueError('--max_image_bytes must be >= 1; got %d' % max_image_bytes)


def check_output_outside_input(image_dir: str, dataset_dir: str) -> None:
    # Shards written inside the image folder would be read as input next time.
    image_root = os.path.realpath(image_dir)
    output = os.path.realpath(dataset_dir)
    if os.path.commonpath([image_root, output]) == image_root:
        raise ValueError('--dataset_dir %r must not be inside --image_dir %r'
                         % (dataset_dir, image_dir))


def _check_class_name(class_name: str) -> None:
    if '\n' in class_name or '\r' in class_name:
        raise ValueError('class folder name %r contains a line break' % class_name)
    try:
        class_name.encode('utf-8')
    except UnicodeEncodeError:
        raise ValueError('class folder name %r is not valid UTF-8'
                         % display(class_name)) from None


def validation_size(num_images: int, validation_percentage: float,
                     validation_count: int | None) -> int:
    """Returns how many images to hold out; refuses a share that empties a split."""
    if validation_count is None:
        holdout = splitting.holdout_count(num_images, validation_percentage)
        share = '--validation_percentage %g' % validation_percentage
        if validation_percentage and not holdout:
            # holdout_count rounds half up: 50 / num_images percent holds out one.
            raise ValueError('%s of the %d image files holds out none of them, so the validation '
                             'split would be empty; use at least %g, or 0 for no validation '
                             'split' % (share, num_images, math.ceil(5000 / num_images) / 100))
    else:
        holdout = validation_count
        share = 'validation_count %d' % validation_count
        if validation_count > num_images:
            raise ValueError('validation_count must be at most the %d image files; got %d'
                             % (num_images, validation_count))
    if holdout == num_images:
        raise ValueError('%s holds out all %d image files, leaving none to train on; use a '
                         'smaller one' % (share, num_images))
    return holdout


def display(path: str) -> str:
    # Names that are not valid UTF-8 are shown with their bytes escaped.
    return path.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
