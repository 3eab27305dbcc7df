"""Downloads CIFAR-10 (binary release) and converts it into the `cifar10` dataset.

The binary release is used rather than the pickled Python one, so no
untrusted data is ever unpickled. Its archive holds, in
`cifar-10-batches-bin/`, `data_batch_1.bin` .. `data_batch_5.bin` (train),
`test_batch.bin` (test) and `batches.meta.txt` (the class names, one a line).
Each batch is a run of 3073-byte records: one label byte, then 1024 red,
1024 green and 1024 blue bytes of a row-major 32x32 image. Records become
32x32x3 PNG images.
"""

import os
from collections.abc import Iterator

import numpy as np

from datasets.download import ArchiveError
from datasets.downloaded_archive import downloaded_archive
from datasets.image_preparation import encode_png
from datasets.progress import ProgressFn, ignore_progress
from datasets.tfrecord_writing import ConversionSummary, LabelledImage, SplitSource
from datasets.tfrecord_writing import write_labelled_dataset

NAME = 'cifar10'
IMAGE_SIZE = 32
NUM_CLASSES = 10
DEFAULT_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
PUBLISHED_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530'
BATCH_FOLDER = 'cifar-10-batches-bin'
CLASS_NAMES_FILE = 'batches.meta.txt'
SPLIT_FILES = {
    'train': tuple('data_batch_%d.bin' % number for number in range(1, 6)),
    'test': ('test_batch.bin',),
}

_CHANNELS = 3
_RECORD_BYTES = 1 + _CHANNELS * IMAGE_SIZE * IMAGE_SIZE


def convert_cifar10(dataset_dir: str, url: str = DEFAULT_URL, md5: str = PUBLISHED_MD5,
                    progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Downloads CIFAR-10 and writes the `cifar10` dataset into `dataset_dir`.

    Args:
        dataset_dir: the output directory; the download and its extraction
            are kept in its 'downloads' folder until the conversion is complete.
        url: where cifar-10-binary.tar.gz is fetched from.
        md5: its expected MD5.
        progress: told how the download and the conversion advance.

    Returns:
        What was converted.

    Raises:
        DownloadError: if the download fails or does not match `md5`.
        ArchiveError: if the archive is unsafe, corrupt or lacks a file.
        ValueError: if a batch file is not a whole number of records.
    """
    with downloaded_archive(dataset_dir, url, os.path.basename(DEFAULT_URL), md5,
                            progress) as (archive, extracted):
        batch_dir = os.path.join(extracted, BATCH_FOLDER)
        class_names = read_class_names(_archive_file(batch_dir, CLASS_NAMES_FILE, archive))
        splits = {split: read_split([_archive_file(batch_dir, name, archive) for name in names],
                                    len(class_names))
                  for split, names in SPLIT_FILES.items()}
        return write_labelled_dataset(dataset_dir, NAME, class_names, splits, {'url': url},
                                      progress)


def read_class_names(path: str) -> list[str]:
    """Reads batches.meta.txt: one class name a line, blank lines ignored.

    Args:
        path: the file.

    Returns:
        The class names by id.

    Raises:
        ValueError: if the file does not name exactly 10 classes.
    """
    with open(path, encoding='utf-8') as names_file:
        names = [line.strip() for line in names_file if line.strip()]
    if len(names) != NUM_CLASSES:
        raise ValueError('%s names %d classes; CIFAR-10 has %d'
                         % (path, len(names), NUM_CLASSES))
    return names


def read_split(batch_paths: list[str], num_classes: int) -> SplitSource:
    """Checks batch files and streams their examples.

    Args:
        batch_paths: the batch files of the split, in order.
        num_classes: labels must be below this.

    Returns:
        The examples, read from disk as they are consumed.

    Raises:
        ValueError: if a batch file is not a whole number of records.
    """
    count = 0
    for path in batch_paths:
        size = os.path.getsize(path)
        if size % _RECORD_BYTES:
            raise ValueError('%s holds %d bytes, not a whole number of %d-byte records'
                             % (path, size, _RECORD_BYTES))
        count += size // _RECORD_BYTES
    return SplitSource(count, _examples(batch_paths, num_classes))


def record_pixels(record: bytes) -> np.ndarray:
    """Returns the [32, 32, 3] uint8 image of one 3073-byte record."""
    planes = np.frombuffer(record, np.uint8, offset=1)
    return planes.reshape(_CHANNELS, IMAGE_SIZE, IMAGE_SIZE).transpose(1, 2, 0)


def _examples(batch_paths: list[str], num_classes: int) -> Iterator[LabelledImage]:
    for path in batch_paths:
        with open(path, 'rb') as batch:
            for index, record in enumerate(iter(lambda: batch.read(_RECORD_BYTES), b'')):
                label = record[0]
                if label >= num_classes:
                    raise ValueError('%s: label %d of record %d is not below %d'
                                     % (path, label, index, num_classes))
                yield LabelledImage(encode_png(record_pixels(record)), label,
                                    '%s/%05d' % (os.path.basename(path), index))


def _archive_file(batch_dir: str, name: str, archive: str) -> str:
    path = os.path.join(batch_dir, name)
    if not os.path.isfile(path):
        raise ArchiveError('%s lacks %s/%s' % (archive, BATCH_FOLDER, name))
    return path
