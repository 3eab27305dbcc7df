"""Downloads MNIST and converts it into the `mnist` dataset.

The four published idx files are downloaded and checked against their
published MD5s, then streamed image by image into 28x28 grayscale PNG
records, splits `train` (60000) and `test` (10000).

idx format (big-endian): a magic number (2051 for images, 2049 for labels),
then the item count, then rows and columns for images; then one unsigned
byte per pixel (row-major) or per label.
"""

import contextlib
import gzip
import itertools
import os
import struct
import urllib.parse
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from datasets.download import DOWNLOAD_FOLDER, download
from datasets.image_preparation import encode_png
from datasets.progress import ProgressFn, ignore_progress
from datasets.tfrecord_writing import ConversionSummary, LabelledImage, SplitSource
from datasets.tfrecord_writing import write_labelled_dataset

NAME = 'mnist'
CLASS_NAMES = [str(digit) for digit in range(10)]
IMAGE_SIZE = 28
DEFAULT_BASE_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist/'
# (images file, labels file) of each split.
SPLIT_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
PUBLISHED_MD5 = {
    'train-images-idx3-ubyte.gz': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    'train-labels-idx1-ubyte.gz': 'd53e105ee54ea40749a09fcbcd1e9432',
    't10k-images-idx3-ubyte.gz': '9fb629c4189551a2d022fa330f9573f3',
    't10k-labels-idx1-ubyte.gz': 'ec29112dd5afa0611ce80d1b7f02629c',
}

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_PIXELS = IMAGE_SIZE * IMAGE_SIZE


def convert_mnist(dataset_dir: str, base_url: str = DEFAULT_BASE_URL,
                  checksums: dict[str, str] | None = None,
                  progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Downloads MNIST and writes the `mnist` dataset into `dataset_dir`.

    Args:
        dataset_dir: the output directory; downloads are kept in its
            'downloads' folder until the conversion is complete.
        base_url: the folder URL the four files are fetched from.
        checksums: MD5 of each of the four files, by file name; None means
            the published ones.
        progress: told how the downloads and the conversion advance.

    Returns:
        What was converted.

    Raises:
        DownloadError: if a download fails or does not match its checksum.
        ValueError: if a file is not a valid MNIST idx file.
    """
    checksums = PUBLISHED_MD5 if checksums is None else checksums
    download_dir = os.path.join(dataset_dir, DOWNLOAD_FOLDER)
    for file_name in itertools.chain.from_iterable(SPLIT_FILES.values()):
        download(urllib.parse.urljoin(base_url, file_name),
                 os.path.join(download_dir, file_name), checksums[file_name], progress)
    splits = {split: read_split(os.path.join(download_dir, images_file),
                                os.path.join(download_dir, labels_file))
              for split, (images_file, labels_file) in SPLIT_FILES.items()}
    summary = write_labelled_dataset(dataset_dir, NAME, CLASS_NAMES, splits,
                                     {'base_url': base_url}, progress)
    for file_name in itertools.chain.from_iterable(SPLIT_FILES.values()):
        os.remove(os.path.join(download_dir, file_name))
    with contextlib.suppress(OSError):
        os.rmdir(download_dir)  # Kept while it holds anything else (a file set aside as corrupt).
    return summary


def read_split(images_path: str, labels_path: str) -> SplitSource:
    """Checks a pair of gzipped idx files and streams their examples.

    Args:
        images_path: the idx3 images file (.gz).
        labels_path: the idx1 labels file (.gz).

    Returns:
        The examples, read from disk as they are consumed.

    Raises:
        ValueError: if the headers are not MNIST's or the counts differ.
    """
    with gzip.open(images_path, 'rb') as images:
        count, rows, columns = _read_header(images, images_path, _IMAGES_MAGIC, 3)
    with gzip.open(labels_path, 'rb') as labels:
        (label_count,) = _read_header(labels, labels_path, _LABELS_MAGIC, 1)
    if (rows, columns) != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError('%s holds %dx%d images; MNIST images are %dx%d'
                         % (images_path, rows, columns, IMAGE_SIZE, IMAGE_SIZE))
    if count != label_count:
        raise ValueError('%s holds %d images but %s holds %d labels'
                         % (images_path, count, labels_path, label_count))
    return SplitSource(count, _examples(images_path, labels_path, count))


def _examples(images_path: str, labels_path: str, count: int) -> Iterator[LabelledImage]:
    source_name = os.path.basename(images_path)
    with gzip.open(images_path, 'rb') as images, gzip.open(labels_path, 'rb') as labels:
        _read_header(images, images_path, _IMAGES_MAGIC, 3)
        _read_header(labels, labels_path, _LABELS_MAGIC, 1)
        for index in range(count):
            pixels = np.frombuffer(_read_exactly(images, _PIXELS, images_path), np.uint8)
            label = _read_exactly(labels, 1, labels_path)[0]
            if label >= len(CLASS_NAMES):
                raise ValueError('%s: label %d of example %d is not a digit'
                                 % (labels_path, label, index))
            yield LabelledImage(encode_png(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE)), label,
                                '%s/%05d' % (source_name, index))


def _read_header(stream: BinaryIO, path: str, magic: int, num_sizes: int) -> tuple[int, ...]:
    values = struct.unpack('>%dI' % (1 + num_sizes),
                           _read_exactly(stream, 4 * (1 + num_sizes), path))
    if values[0] != magic:
        raise ValueError('%s is not an MNIST idx file: magic number %d, expected %d'
                         % (path, values[0], magic))
    return values[1:]


def _read_exactly(stream: BinaryIO, size: int, path: str) -> bytes:
    try:
        data = stream.read(size)
    except EOFError:
        data = b''
    if len(data) != size:
        raise ValueError('%s ends early' % path)
    return data
