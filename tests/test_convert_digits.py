"""Tests for the embedded `digits` dataset (scikit-learn's handwritten digits)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import sklearn.datasets
from PIL import Image

from datasets.convert_digits import convert_digits
from tests.tfrecord_reading import read_records, shard_paths

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Published facts about scikit-learn's digits (its documentation).
NUM_DIGITS = 1797
NUM_CLASSES = 10


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """The digits dataset converted once, with its records read back."""
    dataset_dir = str(tmp_path_factory.mktemp('digits'))
    convert_digits(dataset_dir)
    records = {split: read_records(shard_paths(dataset_dir, 'digits', split), channels=0)
               for split in ('train', 'test')}
    return dataset_dir, records


def _index(record: dict) -> int:
    return int(os.path.splitext(os.path.basename(record['filename']))[0])


def test_dataset_info_and_labels_describe_ten_digit_classes(digits):
    dataset_dir, records = digits
    with open(os.path.join(dataset_dir, 'dataset_info.json'), encoding='utf-8') as info_file:
        info = json.load(info_file)
    assert info['name'] == 'digits'
    assert info['num_classes'] == NUM_CLASSES
    assert info['classes'] == [str(digit) for digit in range(NUM_CLASSES)]
    assert info['image_format'] == 'png'
    assert info['file_pattern'] == 'digits_%s_*.tfrecord'
    assert info['splits'] == {split: len(records[split]) for split in ('train', 'test')}
    with open(os.path.join(dataset_dir, 'labels.txt'), encoding='utf-8') as labels_file:
        assert labels_file.read() == ''.join('%d:%d\n' % (digit, digit) for digit in range(10))


def test_splits_are_disjoint_stratified_and_cover_every_digit(digits):
    _, records = digits
    train = {_index(record) for record in records['train']}
    test = {_index(record) for record in records['test']}
    assert not train & test
    assert train | test == set(range(NUM_DIGITS))
    assert len(test) == int(NUM_DIGITS * 0.2 + 0.5)
    labels = sklearn.datasets.load_digits().target
    for digit in range(NUM_CLASSES):
        share = np.sum(labels == digit) * 0.2
        held_out = sum(labels[index] == digit for index in test)
        assert np.floor(share) <= held_out <= np.ceil(share)


def test_records_are_the_scaled_and_resized_handwritten_digits(digits):
    _, records = digits
    source = sklearn.datasets.load_digits()
    for record in records['train'] + records['test']:
        index = _index(record)
        scaled = np.round(source.images[index] * 255 / 16).astype(np.uint8)
        expected = np.asarray(Image.fromarray(scaled).resize((28, 28), Image.BILINEAR))
        assert record['format'] == 'png'
        assert record['label'] == source.target[index]
        assert record['class_text'] == str(source.target[index])
        assert record['pixels'].shape == (28, 28, 1)
        np.testing.assert_array_equal(record['pixels'][..., 0], expected)


def test_conversion_is_deterministic(digits, tmp_path):
    dataset_dir, _ = digits
    convert_digits(str(tmp_path))
    for name in sorted(os.listdir(dataset_dir)):
        with open(os.path.join(dataset_dir, name), 'rb') as first, \
                open(os.path.join(tmp_path, name), 'rb') as second:
            assert first.read() == second.read(), name
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(dataset_dir))


def test_command_line_converts_digits_and_prints_a_summary(tmp_path):
    result = subprocess.run(
        [sys.executable, 'download_and_convert_data.py', '--dataset_name=digits',
         '--dataset_dir=' + str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert 'Converted %d images' % NUM_DIGITS in result.stdout
    # Progress of each split, to its end (a rate only once a second has passed).
    assert re.search(r'^converting digits train: (\d+) of \1 images', result.stderr, re.M)
    assert os.path.exists(tmp_path / 'dataset_info.json')
