"""dataset_factory: the table of standard datasets, dataset_info.json folders, decoders.

Records are written here with tf.io.TFRecordWriter, in this project's layout
and in the layouts of the original TF-Slim converters.
"""

import io
import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from datasets import dataset_factory
from slim_classifier.compat import slim


def _feature(value):
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(value)))


def _example(features):
    return tf.train.Example(features=tf.train.Features(
        feature={key: _feature(value) for key, value in features.items()})).SerializeToString()


def _write(path, serialized_examples):
    with tf.io.TFRecordWriter(path) as writer:
        for serialized in serialized_examples:
            writer.write(serialized)


def _touch(directory, *names):
    for name in names:
        _write(str(directory / name), [])


def _encode(array, image_format):
    buffer = io.BytesIO()
    Image.fromarray(array.squeeze() if array.shape[-1] == 1 else array).save(
        buffer, format=image_format)
    return buffer.getvalue()


def _pixels(seed, shape):
    return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


def _decode(dataset, serialized):
    """Runs the dataset's decoder on one serialized example."""
    with tf.Graph().as_default():
        image, label = dataset.decoder.decode(tf.constant(serialized), ['image', 'label'])
        with tf.Session() as session:
            return session.run([image, label])


def _write_info(dataset_dir, **overrides):
    info = {'format_version': 1, 'name': 'pets', 'num_classes': 2, 'classes': ['cat', 'dog'],
            'splits': {'train': 5, 'validation': 2}, 'file_pattern': 'pets_%s_*.tfrecord',
            'image_format': 'png', 'options': {'validation_percentage': 30}}
    info.update(overrides)
    with open(os.path.join(dataset_dir, 'dataset_info.json'), 'w') as info_file:
        json.dump(info, info_file)


def test_table_holds_the_published_dataset_facts():
    facts = {
        'mnist': ('mnist_%s.tfrecord', {'train': 60000, 'test': 10000}, 10),
        'cifar10': ('cifar10_%s.tfrecord', {'train': 50000, 'test': 10000}, 10),
        'flowers': ('flowers_%s_*.tfrecord', {'train': 3320, 'validation': 350}, 5),
        'imagenet': ('%s-*', {'train': 1281167, 'validation': 50000}, 1001),
    }
    for name, (pattern, splits, num_classes) in facts.items():
        spec = dataset_factory.DATASETS[name]
        assert (spec.file_pattern, dict(spec.splits), spec.num_classes) == (
            pattern, splits, num_classes)
    assert dataset_factory.list_datasets() == ['cifar10', 'digit_tiles', 'digits', 'flowers',
                                               'imagenet', 'mnist']


def test_original_mnist_raw_records_decode(tmp_path):
    pixels = _pixels(0, (28, 28, 1))
    # The original MNIST reader took raw 28x28x1 bytes with no shape stored.
    record = _example({'image/encoded': pixels.tobytes(), 'image/format': b'raw',
                       'image/class/label': 7})
    _write(str(tmp_path / 'mnist_train.tfrecord'), [record])
    dataset = dataset_factory.get_dataset('mnist', 'train', str(tmp_path))
    assert dataset.num_samples == 60000
    assert dataset.num_classes == 10
    assert dataset.data_sources == [str(tmp_path / 'mnist_train.tfrecord')]
    assert dataset.labels_to_names == {digit: str(digit) for digit in range(10)}
    image, label = _decode(dataset, record)
    assert label == 7
    assert image.dtype == np.uint8 and image.shape == (28, 28, 3)
    np.testing.assert_array_equal(image, np.repeat(pixels, 3, axis=2))


def test_raw_records_with_their_own_shape_decode(tmp_path):
    pixels = _pixels(1, (5, 3, 3))
    _touch(tmp_path, 'mnist_test.tfrecord')
    dataset = dataset_factory.get_dataset('mnist', 'test', str(tmp_path))
    image, label = _decode(dataset, _example({
        'image/encoded': pixels.tobytes(), 'image/format': b'RAW', 'image/height': 5,
        'image/width': 3, 'image/class/label': 2}))
    np.testing.assert_array_equal(image, pixels)
    assert label == 2


def test_original_mnist_png_and_cifar10_records_decode(tmp_path):
    digit = _pixels(2, (28, 28, 1))
    photo = _pixels(3, (32, 32, 3))
    _touch(tmp_path, 'mnist_test.tfrecord', 'cifar10_test.tfrecord')
    mnist = dataset_factory.get_dataset('mnist', 'test', str(tmp_path))
    cifar10 = dataset_factory.get_dataset('cifar10', 'test', str(tmp_path))
    image, _ = _decode(mnist, _example({'image/encoded': _encode(digit, 'PNG'),
                                        'image/format': b'png', 'image/class/label': 1}))
    np.testing.assert_array_equal(image, np.repeat(digit, 3, axis=2))
    image, label = _decode(cifar10, _example({
        'image/encoded': _encode(photo, 'PNG'), 'image/format': b'png',
        'image/class/label': 9, 'image/height': 32, 'image/width': 32}))
    np.testing.assert_array_equal(image, photo)
    assert label == 9
    assert cifar10.labels_to_names[9] == 'truck'
    assert cifar10.num_samples == 10000


def test_original_flowers_shards_and_labels_file(tmp_path):
    rows, columns = np.mgrid[0:12, 0:16]
    photo = np.stack([rows * 20, columns * 15, rows + columns * 8], axis=2).astype(np.uint8)
    jpeg = _encode(photo, 'JPEG')
    record = _example({'image/encoded': jpeg, 'image/format': b'jpg',
                       'image/class/label': 3, 'image/height': 12, 'image/width': 16})
    names = ['flowers_train_%05d-of-00005.tfrecord' % index for index in range(5)]
    for name in reversed(names):
        _write(str(tmp_path / name), [record])
    _touch(tmp_path, *('flowers_validation_%05d-of-00005.tfrecord' % index for index in range(5)))
    (tmp_path / 'labels.txt').write_text('0:daisy\n1:dandelion\n2:roses\n3:sun:flowers\n'
                                         '4:tulips\n')
    dataset = dataset_factory.get_dataset('flowers', 'train', str(tmp_path))
    assert dataset.data_sources == [str(tmp_path / name) for name in names]
    assert (dataset.num_samples, dataset.num_classes) == (3320, 5)
    assert dataset.labels_to_names[3] == 'sun:flowers'
    image, label = _decode(dataset, record)
    assert image.shape == (12, 16, 3) and label == 3
    # JPEG decoders may round differently; on a smooth image they agree closely.
    expected = np.asarray(Image.open(io.BytesIO(jpeg)).convert('RGB'))
    assert np.abs(image.astype(int) - expected.astype(int)).max() <= 3


def test_original_imagenet_shards_with_boxes_and_text(tmp_path):
    photo = _pixels(5, (10, 14, 3))
    record = _example({
        'image/encoded': _encode(photo, 'JPEG'), 'image/format': b'JPEG',
        'image/colorspace': b'RGB', 'image/channels': 3, 'image/height': 10, 'image/width': 14,
        'image/class/label': 1000, 'image/class/synset': b'n15075141',
        'image/class/text': b'toilet tissue', 'image/filename': b'n15075141_1.JPEG',
        'image/object/bbox/xmin': [0.1, 0.2], 'image/object/bbox/ymin': [0.1, 0.3],
        'image/object/bbox/xmax': [0.9, 0.8], 'image/object/bbox/ymax': [0.7, 1.0],
        'image/object/bbox/label': 1000})
    _write(str(tmp_path / 'train-00000-of-00001'), [record])
    _write(str(tmp_path / 'validation-00000-of-00001'), [record])
    dataset = dataset_factory.get_dataset('imagenet', 'validation', str(tmp_path))
    assert dataset.data_sources == [str(tmp_path / 'validation-00000-of-00001')]
    assert (dataset.num_samples, dataset.num_classes) == (50000, 1001)
    # The bundled ILSVRC-2012 names, background first.
    assert len(dataset.labels_to_names) == 1001
    assert (dataset.labels_to_names[0], dataset.labels_to_names[1]) == (
        'background', 'tench, Tinca tinca')
    image, label = _decode(dataset, record)
    assert image.shape == (10, 14, 3) and label == 1000


def test_grayscale_and_animated_images_decode_to_three_channels(tmp_path):
    _write_info(str(tmp_path))
    _touch(tmp_path, 'pets_train_00000-of-00001.tfrecord',
           'pets_validation_00000-of-00001.tfrecord')
    dataset = dataset_factory.get_dataset('pets', 'train', str(tmp_path))
    gray = _pixels(6, (6, 4, 1))
    image, _ = _decode(dataset, _example({'image/encoded': _encode(gray, 'PNG'),
                                          'image/format': b'png', 'image/class/label': 0}))
    np.testing.assert_array_equal(image, np.repeat(gray, 3, axis=2))
    frames = [Image.new('RGB', (5, 3), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format='GIF', save_all=True, append_images=frames[1:])
    image, _ = _decode(dataset, _example({'image/encoded': buffer.getvalue(),
                                          'image/class/label': 1}))
    assert image.shape == (3, 5, 3)
    np.testing.assert_array_equal(image[0, 0], [255, 0, 0])


def test_dataset_info_describes_the_folder_whatever_the_name(tmp_path):
    _write_info(str(tmp_path))
    _touch(tmp_path, 'pets_train_00000-of-00001.tfrecord',
           'pets_validation_00000-of-00001.tfrecord')
    for name in ('pets', 'flowers'):
        dataset = dataset_factory.get_dataset(name, 'validation', str(tmp_path))
        assert dataset.name == 'pets'
        assert (dataset.num_samples, dataset.num_classes) == (2, 2)
        assert dataset.labels_to_names == {0: 'cat', 1: 'dog'}
        assert dataset.data_sources == [str(tmp_path / 'pets_validation_00000-of-00001.tfrecord')]
    (tmp_path / 'labels.txt').write_text('0:tabby\n1:beagle\n')
    assert dataset_factory.get_dataset('pets', 'train', str(tmp_path)).labels_to_names == {
        0: 'tabby', 1: 'beagle'}


def test_digits_needs_the_dataset_info_its_conversion_writes_last(tmp_path):
    # Shards without dataset_info.json are what an unfinished conversion leaves.
    _touch(tmp_path, 'digits_test_00000-of-00001.tfrecord')
    with pytest.raises(FileNotFoundError) as raised:
        dataset_factory.get_dataset('digits', 'test', str(tmp_path))
    assert str(raised.value) == (
        "no dataset_info.json in '%s': dataset 'digits' is complete once its conversion writes "
        "that file; run python download_and_convert_data.py --dataset_name=digits "
        "--dataset_dir=%s" % (tmp_path, tmp_path))
    _write_info(str(tmp_path), name='digits', num_classes=10, classes=list('0123456789'),
                splits={'train': 80, 'test': 20}, file_pattern='digits_%s_*.tfrecord')
    _touch(tmp_path, 'digits_train_00000-of-00001.tfrecord')
    dataset = dataset_factory.get_dataset('digits', 'test', str(tmp_path))
    assert (dataset.num_samples, dataset.num_classes) == (20, 10)


def test_file_pattern_and_reader_can_be_overridden(tmp_path):
    _touch(tmp_path, 'mine-train.rec', 'mnist_train.tfrecord')
    dataset = dataset_factory.get_dataset('mnist', 'train', str(tmp_path),
                                          file_pattern='mine-%s.rec', reader=tf.TextLineReader)
    assert dataset.data_sources == [str(tmp_path / 'mine-train.rec')]
    assert dataset.reader is tf.TextLineReader
    assert dataset_factory.get_dataset('mnist', 'train', str(tmp_path)).reader is (
        tf.TFRecordReader)


def test_queue_based_slim_provider_reads_the_dataset(tmp_path):
    photos = [_pixels(10 + index, (4, 4, 3)) for index in range(3)]
    _write(str(tmp_path / 'cifar10_train.tfrecord'), [
        _example({'image/encoded': _encode(photo, 'PNG'), 'image/format': b'png',
                  'image/class/label': index}) for index, photo in enumerate(photos)])
    dataset = dataset_factory.get_dataset('cifar10', 'train', str(tmp_path))
    with tf.Graph().as_default():
        provider = slim.dataset_data_provider.DatasetDataProvider(dataset, shuffle=False,
                                                                  num_epochs=1)
        image, label = provider.get(['image', 'label'])
        with tf.Session() as session:
            session.run(tf.local_variables_initializer())
            coordinator = tf.train.Coordinator()
            threads = tf.train.start_queue_runners(session, coordinator)
            read = [session.run([image, label]) for _ in photos]
            coordinator.request_stop()
            coordinator.join(threads)
    for (image_value, label_value) in read:
        np.testing.assert_array_equal(image_value, photos[label_value])
    assert sorted(label_value for _, label_value in read) == [0, 1, 2]


def test_unknown_dataset_names_what_was_looked_for(tmp_path):
    with pytest.raises(ValueError) as raised:
        dataset_factory.get_dataset('x', 'train', str(tmp_path))
    assert str(raised.value) == (
        "unknown dataset 'x': no dataset_info.json in '%s' and not one of "
        "cifar10, digit_tiles, digits, flowers, imagenet, mnist; to convert a folder of images, "
        "run python download_and_convert_data.py --dataset_name=x --image_dir=IMAGE_DIR "
        "--dataset_dir=%s"
        % (tmp_path, tmp_path))


def test_unknown_split_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError) as raised:
        dataset_factory.get_dataset('flowers', 'tran', str(tmp_path))
    assert str(raised.value) == (
        "unknown split 'tran' for dataset 'flowers'; valid splits: train, validation")


def test_missing_files_name_the_pattern_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        dataset_factory.get_dataset('flowers', 'train', str(tmp_path))
    assert str(raised.value) == (
        "no files match 'flowers_train_*.tfrecord' in '%s'; to make them, run python "
        "download_and_convert_data.py --dataset_name=flowers --dataset_dir=%s"
        % (tmp_path, tmp_path))
    with pytest.raises(FileNotFoundError, match="dataset_dir '.*nowhere' does not exist"):
        dataset_factory.get_dataset('flowers', 'train', str(tmp_path / 'nowhere'))


def test_malformed_dataset_info_and_labels_are_reported(tmp_path):
    _write_info(str(tmp_path), format_version=2)
    with pytest.raises(ValueError, match='dataset_info.json has format_version 2; expected 1'):
        dataset_factory.get_dataset('pets', 'train', str(tmp_path))
    (tmp_path / 'dataset_info.json').write_text('{"format_version": 1, "name": "pets"}')
    with pytest.raises(ValueError,
                       match='dataset_info.json lacks num_classes, splits, file_pattern'):
        dataset_factory.get_dataset('pets', 'train', str(tmp_path))
    (tmp_path / 'dataset_info.json').write_text('{"format_version": 1,')
    with pytest.raises(ValueError, match='dataset_info.json is not valid JSON'):
        dataset_factory.get_dataset('pets', 'train', str(tmp_path))
    (tmp_path / 'labels.txt').write_text('0:cat\ndog\n')
    with pytest.raises(ValueError, match="labels.txt line 2 must be '<id>:<name>'; got 'dog'"):
        dataset_factory.read_labels_file(str(tmp_path))
