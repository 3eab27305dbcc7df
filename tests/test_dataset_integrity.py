"""A converted dataset is read whole or refused, and a bad record is named in one line.

The directories here are what interrupted, failed or tampered-with
conversions leave: shards written with tf.io.TFRecordWriter, dataset_info.json
files written by hand, and a real failed conversion of an image folder. The
bad records are trained on through the real command.
"""

import io
import json
import struct

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from datasets import convert_image_folder, dataset_factory
from tests import training_helpers as helpers

NUM_CLASSES = 2


def _example(label):
    pixels = np.full((28, 28, 3), 40 * label, np.uint8)
    return tf.train.Example(features=tf.train.Features(feature={
        'image/encoded': tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[tf.io.encode_png(pixels).numpy()])),
        'image/format': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'png'])),
        'image/class/label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


def _write_shard(path, records=()):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def _write_info(dataset_dir, **overrides):
    info = {'format_version': 1, 'name': 'pets', 'num_classes': NUM_CLASSES,
            'classes': ['cat', 'dog'], 'splits': {'train': 4, 'validation': 2},
            'file_pattern': 'pets_%s_*.tfrecord', 'image_format': 'png',
            'options': {'image_dir': '/photos/pets', 'num_shards': 2}}
    info.update(overrides)
    (dataset_dir / 'dataset_info.json').write_text(json.dumps(info))


def _write_pets(dataset_dir, shards_per_split=None):
    """Writes the pets dataset of `_write_info`: {split: shard indices} of 2 shards each."""
    _write_info(dataset_dir)
    for split, indices in (shards_per_split or {'train': [0, 1], 'validation': [0, 1]}).items():
        for index in indices:
            _write_shard(dataset_dir / ('pets_%s_%05d-of-00002.tfrecord' % (split, index)))


def _refusal(dataset_dir, name='pets', split='train'):
    with pytest.raises(FileNotFoundError) as raised:
        dataset_factory.get_dataset(name, split, str(dataset_dir))
    return str(raised.value)


def test_flowers_with_one_shard_of_five_is_refused_with_the_command(tmp_path):
    _write_shard(tmp_path / 'flowers_train_00000-of-00005.tfrecord')
    assert _refusal(tmp_path, 'flowers') == (
        "split 'train' in '%s' is incomplete: 4 of its 5 shards are missing "
        "(flowers_train_00001-of-00005.tfrecord and 3 more); to complete it, run python "
        "download_and_convert_data.py --dataset_name=flowers --dataset_dir=%s"
        % (tmp_path, tmp_path))


def test_a_split_with_a_missing_shard_refuses_the_whole_dataset(tmp_path):
    _write_pets(tmp_path, {'train': [0, 1], 'validation': [1]})
    expected = (
        "split 'validation' in '%s' is incomplete: 1 of its 2 shards are missing "
        "(pets_validation_00000-of-00002.tfrecord); to complete it, run python "
        "download_and_convert_data.py --dataset_name=pets --image_dir=/photos/pets "
        "--dataset_dir=%s" % (tmp_path, tmp_path))
    assert _refusal(tmp_path, split='train') == expected
    assert _refusal(tmp_path, split='validation') == expected


def test_a_listed_split_without_files_is_refused(tmp_path):
    _write_pets(tmp_path, {'train': [0, 1]})
    assert _refusal(tmp_path).startswith(
        "no files match 'pets_validation_*.tfrecord' in '%s'; to make them, run python "
        "download_and_convert_data.py --dataset_name=pets --image_dir=/photos/pets" % tmp_path)


def test_shards_of_two_conversions_are_refused(tmp_path):
    _write_pets(tmp_path)
    for index in range(3):
        _write_shard(tmp_path / ('pets_train_%05d-of-00003.tfrecord' % index))
    assert ("split 'train' in '%s' is incomplete: its files belong to 2 sets of shards "
            "(-of-00002, -of-00003)" % tmp_path) in _refusal(tmp_path)


def test_a_complete_dataset_reads(tmp_path):
    _write_pets(tmp_path)
    dataset = dataset_factory.get_dataset('pets', 'validation', str(tmp_path))
    assert dataset.data_sources == [str(tmp_path / ('pets_validation_%05d-of-00002.tfrecord' % i))
                                    for i in range(2)]
    assert dataset.num_samples == 2


def test_shards_of_an_unfinished_mnist_conversion_are_not_taken(tmp_path):
    # This project's converter names MNIST shards unlike the original tools.
    _write_shard(tmp_path / 'mnist_train_00000-of-00001.tfrecord')
    assert _refusal(tmp_path, 'mnist') == (
        "no files match 'mnist_train.tfrecord' in '%s'; to make them, run python "
        "download_and_convert_data.py --dataset_name=mnist --dataset_dir=%s" % (tmp_path, tmp_path))


def test_original_imagenet_shards_missing_point_to_the_original_tool(tmp_path):
    _write_shard(tmp_path / 'validation-00001-of-00002')
    assert _refusal(tmp_path, 'imagenet', 'validation') == (
        "split 'validation' in '%s' is incomplete: 1 of its 2 shards are missing "
        "(validation-00000-of-00002); to complete it, use the original build_imagenet_data.py"
        % tmp_path)


def _png(color):
    buffer = io.BytesIO()
    Image.new('RGB', (8, 8), color).save(buffer, format='PNG')
    return buffer.getvalue()


def test_a_failed_conversion_is_refused_with_its_status(tmp_path):
    photos = tmp_path / 'photos'
    for class_name in ('cat', 'dog'):
        (photos / class_name).mkdir(parents=True)
        (photos / class_name / 'good.png').write_bytes(_png((200, 10, 10)))
        (photos / class_name / 'bad.png').write_bytes(b'not a png')
    dataset_dir = tmp_path / 'pets'
    with pytest.raises(convert_image_folder.TooManyRejectedError):
        convert_image_folder.convert_image_folder(str(photos), str(dataset_dir), 'pets',
                                                  validation_percentage=50)
    message = _refusal(dataset_dir)
    assert message.startswith(
        "no dataset_info.json in '%s': its conversion did not complete (conversion_report.json "
        "status: failed: 2 of 4 image files (50.0%%) were rejected" % dataset_dir)
    assert message.endswith(
        '; to complete it, run python download_and_convert_data.py --dataset_name=pets '
        '--image_dir=%s --dataset_dir=%s' % (photos, dataset_dir))
    assert '\n' not in message


@pytest.mark.parametrize('pattern', ['/etc/%s*', '../other/pets_%s_*.tfrecord',
                                     'shards/../../pets_%s_*', '\\\\server\\%s', ''])
def test_file_patterns_outside_the_directory_are_refused(tmp_path, pattern):
    _write_info(tmp_path, file_pattern=pattern)
    with pytest.raises(ValueError) as raised:
        dataset_factory.get_dataset('pets', 'train', str(tmp_path))
    assert str(raised.value) == (
        "%s field file_pattern must be a relative path inside the dataset directory, without "
        "'..'; got %r" % (tmp_path / 'dataset_info.json', pattern))


def test_a_file_pattern_into_a_subdirectory_reads(tmp_path):
    _write_info(tmp_path, file_pattern='shards/pets_%s.tfrecord', splits={'train': 0})
    (tmp_path / 'shards').mkdir()
    _write_shard(tmp_path / 'shards' / 'pets_train.tfrecord')
    assert dataset_factory.get_dataset('pets', 'train', str(tmp_path)).data_sources == [
        str(tmp_path / 'shards' / 'pets_train.tfrecord')]


@pytest.mark.parametrize('field, value, expected', [
    ('file_pattern', 'pets_%s_%d.tfrecord',
     "field file_pattern may hold '%s' (the split name) and no other '%'"),
    ('splits', ['train'], 'field splits must be a JSON object'),
    ('splits', {'train': 'many'}, 'field splits must map split names to example counts'),
    ('num_classes', '2', 'field num_classes must be a JSON integer'),
    ('name', None, 'field name must be a JSON string'),
])
def test_malformed_fields_are_named(tmp_path, field, value, expected):
    _write_info(tmp_path, **{field: value})
    with pytest.raises(ValueError) as raised:
        dataset_factory.get_dataset('pets', 'train', str(tmp_path))
    assert str(raised.value).startswith('%s %s' % (tmp_path / 'dataset_info.json', expected))


NOT_AN_EXAMPLE = b'\xff\xfe not an example'


def _toy_dataset(dataset_dir, third_record=None):
    """One shard of four records, the third `third_record` when given; returns the shard."""
    dataset_dir.mkdir()
    records = [_example(label % NUM_CLASSES) for label in range(4)]
    if third_record is not None:
        records[2] = third_record
    shard = dataset_dir / 'pets_train_00000-of-00001.tfrecord'
    _write_shard(shard, records)
    _write_info(dataset_dir, splits={'train': 4}, options={})
    return str(shard)


def _corrupt_record(shard, index):
    """Flips the first payload byte of record `index`, so its checksum fails."""
    with open(shard, 'r+b') as shard_file:
        data = shard_file.read()
        offset = 0
        for _ in range(index):
            # A record: its length (8 bytes), their CRC (4), the payload, its CRC (4).
            length, = struct.unpack('<Q', data[offset:offset + 8])
            offset += 8 + 4 + length + 4
        shard_file.seek(offset + 12)
        shard_file.write(bytes([data[offset + 12] ^ 0xFF]))


def _train(dataset_dir, train_dir):
    return helpers.run_command(
        'train_image_classifier.py', '--dataset_name=pets', '--dataset_dir=%s' % dataset_dir,
        '--model_name=lenet', '--train_dir=%s' % train_dir, '--batch_size=1',
        '--max_number_of_steps=20', '--num_readers=1', '--num_preprocessing_threads=1',
        check=False)


def _error_line(result):
    """The one line a failed command printed last, after checking it failed without a traceback."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_training_on_a_record_that_is_not_an_example_names_it(tmp_path):
    shard = _toy_dataset(tmp_path / 'data', NOT_AN_EXAMPLE)
    assert _error_line(_train(tmp_path / 'data', tmp_path / 'train')) == (
        'error: corrupt record 2 in %s: not a tf.train.Example (it starts %r)'
        % (shard, NOT_AN_EXAMPLE[:16]))


def test_training_on_a_corrupt_shard_names_the_record(tmp_path):
    shard = _toy_dataset(tmp_path / 'data')
    _corrupt_record(shard, 2)
    assert _error_line(_train(tmp_path / 'data', tmp_path / 'train')).startswith(
        'error: corrupt record 2 in %s: cannot read the record, the file is truncated or '
        'corrupted (' % shard)
