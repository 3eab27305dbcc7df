"""The table of dataset converters behind download_and_convert_data.py.

`convert(name, dataset_dir, image_dir, ...)` converts an image folder when
`image_dir` is given (a multi-label one when `labels_csv` lists its images
and their labels), else the built-in dataset `name` through `CONVERTERS`:
adding a built-in dataset is one entry. A built-in dataset's directory is
locked (see `datasets.dataset_lock`) from its download on; an image folder's
from its first write.
"""

from collections.abc import Callable

from datasets import dataset_lock
from datasets.convert_cifar10 import convert_cifar10
from datasets.convert_digit_tiles import convert_digit_tiles
from datasets.convert_digits import convert_digits
from datasets.convert_flowers import convert_flowers
from datasets.convert_image_folder import (DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_REJECTED_FRACTION,
                                           DEFAULT_NUM_SHARDS, DEFAULT_VALIDATION_PERCENTAGE,
                                           convert_image_folder)
from datasets.convert_labels_csv import convert_labels_csv
from datasets.convert_mnist import convert_mnist
from datasets.progress import ProgressFn, ignore_progress
from datasets.tfrecord_writing import ConversionSummary


def _flowers(dataset_dir, progress, num_workers, max_rejected_fraction, max_image_bytes):
    return convert_flowers(dataset_dir, num_workers=num_workers,
                           max_rejected_fraction=max_rejected_fraction,
                           max_image_bytes=max_image_bytes, progress=progress)


# name -> converter(dataset_dir, progress, num_workers, max_rejected_fraction, max_image_bytes)
CONVERTERS: dict[str, Callable[..., ConversionSummary]] = {
    'cifar10': lambda dataset_dir, progress, *_: convert_cifar10(dataset_dir, progress=progress),
    'digit_tiles': lambda dataset_dir, progress, *_: convert_digit_tiles(dataset_dir,
                                                                          progress=progress),
    'digits': lambda dataset_dir, progress, *_: convert_digits(dataset_dir, progress=progress),
    'flowers': _flowers,
    'mnist': lambda dataset_dir, progress, *_: convert_mnist(dataset_dir, progress=progress),
}


def convert(dataset_name: str, dataset_dir: str, image_dir: str | None = None, *,
            labels_csv: str | None = None,
            validation_percentage: float = DEFAULT_VALIDATION_PERCENTAGE,
            num_shards: int = DEFAULT_NUM_SHARDS, num_workers: int = 1,
            max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
            max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
            progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Converts a built-in dataset, or the image folder `image_dir`.

    Args:
        dataset_name: a built-in dataset, or the name to give `image_dir`'s.
        dataset_dir: the output directory.
        image_dir: a folder with one sub-folder per class, or None for a
            built-in dataset.
        labels_csv: a CSV of `relative/path,label1;label2;...` rows naming the
            images of `image_dir` and their labels: a multi-label dataset
            (see `convert_labels_csv`).
        validation_percentage: see `convert_image_folder` (image folders only).
        num_shards: see `convert_image_folder` (image folders only).
        num_workers: processes decoding images (image folders and flowers).
        max_rejected_fraction: see `convert_image_folder` (image folders and
            flowers).
        max_image_bytes: see `convert_image_folder` (image folders and flowers).
        progress: told how the work advances.

    Returns:
        What was converted.

    Raises:
        ValueError: for an unknown dataset without `image_dir`, `labels_csv`
            without `image_dir`, a bad row of `labels_csv`, or bad options.
        DownloadError, ArchiveError: when a download or archive is unusable.
        TooManyRejectedError: when too many images were rejected.
        DatasetLockedError: when another conversion is writing `dataset_dir`.
        DiskFullError: when the disk filled up.
    """
    if labels_csv is not None:
        if image_dir is None:
            raise ValueError('--labels_csv %r needs --image_dir, the folder its paths are '
                             'relative to' % labels_csv)
        return convert_labels_csv(
            image_dir, labels_csv, dataset_dir, dataset_name,
            validation_percentage=validation_percentage, num_shards=num_shards,
            num_workers=num_workers, max_rejected_fraction=max_rejected_fraction,
            max_image_bytes=max_image_bytes, progress=progress)
    if image_dir is not None:
        return convert_image_folder(
            image_dir, dataset_dir, dataset_name, validation_percentage=validation_percentage,
            num_shards=num_shards, num_workers=num_workers,
            max_rejected_fraction=max_rejected_fraction, max_image_bytes=max_image_bytes,
            progress=progress)
    if dataset_name not in CONVERTERS:
        raise ValueError('--dataset_name %r is not built in (%s); convert a folder of images '
                         'with --image_dir' % (dataset_name, ', '.join(sorted(CONVERTERS))))
    with dataset_lock.locked(dataset_dir):
        return CONVERTERS[dataset_name](dataset_dir, progress, num_workers,
                                        max_rejected_fraction, max_image_bytes)
