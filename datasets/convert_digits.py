"""Converts scikit-learn's bundled handwritten digits: the `digits` dataset.

The embedded default dataset, needing no network: 1797 real handwritten
digits (8x8, values 0..16) scaled to 0..255, resized to 28x28 and stored as
grayscale PNG records. A stratified, seeded 20% of each class is the `test`
split, the rest `train`.
"""

from collections.abc import Iterator

import numpy as np
from PIL import Image

from datasets import splitting
from datasets.image_preparation import encode_png
from datasets.progress import ProgressFn, ignore_progress
from datasets.tfrecord_writing import (ConversionSummary, LabelledImage, SplitSource,
                                       write_labelled_dataset)
from slim_classifier.errors import UserError

NAME = 'digits'
CLASS_NAMES = [str(digit) for digit in range(10)]
IMAGE_SIZE = 28
TEST_PERCENTAGE = 20.0
SEED = 0

_MAX_SOURCE_VALUE = 16.0


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Returns scikit-learn's digits: images [N, 8, 8] in 0..16 and labels [N].

    Raises:
        UserError: if scikit-learn is not installed.
    """
    # scikit-learn is an optional dependency, needed only for this dataset.
    try:
        from sklearn import datasets  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise UserError("the digits dataset needs scikit-learn; install it with "
                          "pip install 'slim-image-classifier[digits]'") from None
    digits = datasets.load_digits()
    return digits.images, digits.target


def digit_pixels(values: np.ndarray) -> np.ndarray:
    """Turns one 8x8 digit (values 0..16) into a 28x28 uint8 image (0..255).

    Args:
        values: the digit, [8, 8].

    Returns:
        The image, [IMAGE_SIZE, IMAGE_SIZE], uint8.
    """
    scaled = np.round(values * (255.0 / _MAX_SOURCE_VALUE)).astype(np.uint8)
    resized = Image.fromarray(scaled).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def digit_filename(index: int) -> str:
    """Returns the `image/filename` of digit `index` of `load_digits()`."""
    return 'sklearn_digits/%04d.png' % index


def split_digits() -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """scikit-learn's digits (images, labels) and the indices of their train and test splits.

    Raises:
        UserError: if scikit-learn is not installed.
    """
    images, labels = load_digits()
    train, test = splitting.stratified_split(
        [_key(index) for index in range(len(labels))], labels.tolist(),
        splitting.holdout_count(len(labels), TEST_PERCENTAGE), 'split:%d' % SEED)
    return images, labels, train, test


def _key(index: int) -> str:
    return '%04d' % index


def convert_digits(dataset_dir: str,
                   progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Writes the `digits` dataset (splits `train` and `test`) into `dataset_dir`.

    Args:
        dataset_dir: the output directory.
        progress: told how many images have been written.

    Returns:
        What was converted.

    Raises:
        UserError: if scikit-learn is not installed.
    """
    images, labels, train, test = split_digits()
    splits = {}
    for split, indices in (('train', train), ('test', test)):
        order = splitting.stable_order([_key(index) for index in indices],
                                       'order:%s:%d' % (split, SEED))
        ordered = [indices[position] for position in order]
        splits[split] = SplitSource(len(ordered), _examples(images, labels, ordered))
    options = {'source': 'sklearn.datasets.load_digits', 'image_size': IMAGE_SIZE,
               'test_percentage': TEST_PERCENTAGE, 'seed': SEED}
    return write_labelled_dataset(dataset_dir, NAME, CLASS_NAMES, splits, options, progress)


def _examples(images: np.ndarray, labels: np.ndarray,
              indices: list[int]) -> Iterator[LabelledImage]:
    for index in indices:
        yield LabelledImage(encode_png(digit_pixels(images[index])), int(labels[index]),
                            digit_filename(index))
