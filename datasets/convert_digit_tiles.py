"""Builds the multi-label `digit_tiles` dataset from the embedded digits.

Each image is a 2x2 grid of 28x28 cells (56x56 grayscale PNG, like the
`digits` records); 1 to 3 of its cells hold a handwritten digit of
scikit-learn's digits (see `datasets.convert_digits`), the others are black.
Its labels are the distinct digits present, so an image carries one, two or
three of the ten labels. The digits of the `test` tiles are those of the
`digits` test split (the same stratified, seeded 20%), the `train` tiles are
made of the other digits: no handwritten digit appears in both splits.
Which digits go where is drawn from NumPy generators seeded with SEED, so
the dataset is the same on every conversion. No network is needed.
"""

from collections.abc import Iterator

import numpy as np

from datasets import convert_digits
from datasets.image_preparation import encode_png
from datasets.progress import ProgressFn, ignore_progress
from datasets.tfrecord_writing import (NO_LABEL, ConversionSummary, LabelledImage, SplitSource,
                                       write_labelled_dataset)

NAME = 'digit_tiles'
CLASS_NAMES = convert_digits.CLASS_NAMES
CELL_SIZE = convert_digits.IMAGE_SIZE
GRID = 2  # cells per side
IMAGE_SIZE = GRID * CELL_SIZE
MAX_DIGITS = 3  # per tile; at least one
SPLIT_SIZES = {'train': 2400, 'test': 600}
SEED = 0


def convert_digit_tiles(dataset_dir: str,
                        progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Writes the `digit_tiles` dataset (splits `train` and `test`) into `dataset_dir`.

    Args:
        dataset_dir: the output directory.
        progress: told how many tiles have been written.

    Returns:
        What was converted.

    Raises:
        UserError: if scikit-learn is not installed.
    """
    # The split of convert_digits: the test tiles hold the digits of its test split.
    images, labels, train, test = convert_digits.split_digits()
    cells = np.stack([convert_digits.digit_pixels(image) for image in images])
    splits = {}
    for number, (split, pool) in enumerate((('train', train), ('test', test))):
        generator = np.random.default_rng([SEED, number])
        splits[split] = SplitSource(SPLIT_SIZES[split],
                                    _tiles(split, cells, labels, pool, generator))
    options = {'source': 'sklearn.datasets.load_digits', 'image_size': IMAGE_SIZE,
               'grid': GRID, 'max_digits': MAX_DIGITS, 'split_sizes': SPLIT_SIZES,
               'seed': SEED}
    return write_labelled_dataset(dataset_dir, NAME, CLASS_NAMES, splits, options, progress,
                                  multi_label=True)


def tile(cells: np.ndarray, positions: list[int]) -> np.ndarray:
    """Places digit cells on a black GRID x GRID tile.

    Args:
        cells: the digits, [n, CELL_SIZE, CELL_SIZE] uint8.
        positions: the cell of each digit, row-major in [0, GRID * GRID).

    Returns:
        The tile, [IMAGE_SIZE, IMAGE_SIZE] uint8.
    """
    pixels = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for cell, position in zip(cells, positions):
        row, column = divmod(int(position), GRID)
        pixels[row * CELL_SIZE:(row + 1) * CELL_SIZE,
               column * CELL_SIZE:(column + 1) * CELL_SIZE] = cell
    return pixels


def _tiles(split: str, cells: np.ndarray, labels: np.ndarray, pool: list[int],
           generator: np.random.Generator) -> Iterator[LabelledImage]:
    for index in range(SPLIT_SIZES[split]):
        count = int(generator.integers(1, MAX_DIGITS + 1))
        positions = generator.choice(GRID * GRID, count, replace=False)
        digits = generator.choice(pool, count, replace=False)
        yield LabelledImage(encode_png(tile(cells[digits], positions)), NO_LABEL,
                            '%s/%s/%05d.png' % (NAME, split, index),
                            labels=tuple(sorted({int(labels[digit]) for digit in digits})))
