"""Crop windows in the input pipeline: JPEGs decode only the window, as a full decode has it."""

import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from sklearn.datasets import load_sample_images

from datasets import dataset_factory, input_pipeline
from preprocessing import inception_preprocessing, preprocessing_factory
from slim_classifier.runtime import batches

HEIGHT, WIDTH = 48, 64
NUM_CLASSES = 3


def _photo(index):
    """A HEIGHT x WIDTH crop of a sample photo: real JPEG content, different per index."""
    photo = load_sample_images().images[index % 2]
    top, left = 7 * index, 11 * index
    return np.ascontiguousarray(photo[top:top + HEIGHT, left:left + WIDTH])


def _example(pixels, image_format, label):
    encode = tf.io.encode_jpeg if image_format == b'jpeg' else tf.io.encode_png
    feature = {
        'image/encoded': tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[encode(pixels).numpy()])),
        'image/format': tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_format])),
        'image/class/label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_dataset(directory, formats):
    """One shard with a photo per entry of `formats`; returns (dataset, photos)."""
    photos = [_photo(index) for index in range(len(formats))]
    with tf.io.TFRecordWriter(os.path.join(directory, 'win_train_00000-of-00001.tfrecord')) as w:
        for index, (photo, image_format) in enumerate(zip(photos, formats)):
            w.write(_example(photo, image_format, index % NUM_CLASSES))
    info = {'format_version': 1, 'name': 'win', 'num_classes': NUM_CLASSES,
            'classes': ['c%d' % label for label in range(NUM_CLASSES)],
            'splits': {'train': len(formats)}, 'file_pattern': 'win_%s_*.tfrecord',
            'image_format': 'mixed', 'options': {}}
    with open(os.path.join(directory, 'dataset_info.json'), 'w') as info_file:
        json.dump(info, info_file)
    return dataset_factory.get_dataset('win', 'train', directory), photos


def _quarter_window(shape):
    """The window from a quarter down and a third across, half the height and width."""
    return tf.stack([shape[0] // 4, shape[1] // 3, shape[0] // 2, shape[1] // 2])


def _as_float(image, height, width):
    image.set_shape([height, width, 3])
    return tf.cast(image, tf.float32)


def _run(batches):
    images, labels = input_pipeline.one_shot_batch(batches)
    results = []
    with tf.Session() as session:
        try:
            while True:
                results.append(session.run([images, labels]))
        except tf.errors.OutOfRangeError:
            pass
    return (np.concatenate([images for images, _ in results]),
            np.concatenate([labels for _, labels in results]))


def _window_pixels(photo, decoded):
    """What decoding `photo`'s bytes whole (`decoded`) and slicing the quarter window gives."""
    top, left = photo.shape[0] // 4, photo.shape[1] // 3
    return decoded[top:top + photo.shape[0] // 2, left:left + photo.shape[1] // 2]


def _full_jpeg_decode(photo):
    return tf.io.decode_jpeg(tf.io.encode_jpeg(photo)).numpy()


@pytest.mark.parametrize('formats', [[b'jpeg'] * 4, [b'png'] * 4, [b'jpeg', b'png'] * 3],
                         ids=['jpeg', 'png', 'mixed'])
def test_windows_hold_the_pixels_of_a_full_decode(tmp_path, formats):
    dataset, photos = _write_dataset(str(tmp_path), formats)
    with tf.Graph().as_default():
        images, labels = _run(input_pipeline.build_dataset(
            dataset, _as_float, (HEIGHT // 2, WIDTH // 2), batch_size=4, is_training=False,
            num_readers=1, deterministic=True, crop_window_fn=_quarter_window))
    assert images.shape == (len(formats), HEIGHT // 2, WIDTH // 2, 3)
    for image, photo, image_format in zip(images, photos, formats):
        decoded = _full_jpeg_decode(photo) if image_format == b'jpeg' else photo
        np.testing.assert_array_equal(image, _window_pixels(photo, decoded))
    np.testing.assert_array_equal(labels, np.arange(len(formats)) % NUM_CLASSES)


def _function_ops(graph):
    """The op types inside the graph's functions (where tf.data's map functions live)."""
    return {node.op for function in graph.as_graph_def().library.function
            for node in function.node_def}


def test_jpeg_records_use_the_fused_decode_and_crop(tmp_path):
    dataset, _ = _write_dataset(str(tmp_path), [b'jpeg'])
    with tf.Graph().as_default() as graph:
        input_pipeline.one_shot_batch(input_pipeline.build_dataset(
            dataset, _as_float, (HEIGHT // 2, WIDTH // 2), batch_size=1, is_training=False,
            crop_window_fn=_quarter_window))
    assert 'DecodeAndCropJpeg' in _function_ops(graph)


@pytest.mark.parametrize('name', ['inception', 'inception_v1', 'inception_v3', 'inception_v4'])
def test_inception_preprocessing_offers_its_crop_window(name):
    assert (preprocessing_factory.get_training_crop_window(name)
            is inception_preprocessing.sample_crop_window)


@pytest.mark.parametrize('name', ['vgg', 'vgg_16', 'lenet', 'cifarnet', 'alexnet_v2'])
def test_other_preprocessings_have_no_crop_window(name):
    assert preprocessing_factory.get_training_crop_window(name) is None


def test_crop_window_of_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"^unknown preprocessing 'inceptoin'.*inception"):
        preprocessing_factory.get_training_crop_window('inceptoin')


def _trainer_batches(directory, model_name):
    """One training batch from the input recipe the trainer builds its graph with; its graph."""
    dataset, _ = _write_dataset(directory, [b'jpeg'] * 4)
    with tf.Graph().as_default() as graph:
        images, _ = tf.data.make_one_shot_iterator(batches.training_batches(
            dataset, model_name, 32, 2, num_readers=1, seed=1)).get_next()
        with tf.Session() as session:
            batch = session.run(images)
    return batch, graph


def test_the_trainer_decodes_only_the_crop_window_for_inception_nets(tmp_path):
    batch, graph = _trainer_batches(str(tmp_path), 'inception_v1')
    assert 'DecodeAndCropJpeg' in _function_ops(graph)
    assert batch.shape == (2, 32, 32, 3)
    assert -1.0 <= batch.min() < batch.max() <= 1.0


def test_the_trainer_decodes_whole_images_for_vgg(tmp_path):
    batch, graph = _trainer_batches(str(tmp_path), 'vgg_16')
    assert 'DecodeAndCropJpeg' not in _function_ops(graph)
    assert batch.shape == (2, 32, 32, 3)


def test_labels_offset_applies_to_windowed_records(tmp_path):
    dataset, _ = _write_dataset(str(tmp_path), [b'jpeg'] * 3)
    with tf.Graph().as_default():
        _, labels = _run(input_pipeline.build_dataset(
            dataset, _as_float, (HEIGHT // 2, WIDTH // 2), batch_size=3, is_training=False,
            num_readers=1, deterministic=True, labels_offset=1,
            crop_window_fn=_quarter_window))
    np.testing.assert_array_equal(labels, np.arange(3) % NUM_CLASSES - 1)


def _inception_training_batches(dataset, seed):
    def preprocess(image, height, width):
        return inception_preprocessing.preprocess_image(
            image, height, width, is_training=True, add_image_summaries=False,
            crop_image=False)
    return input_pipeline.build_dataset(
        dataset, preprocess, 32, batch_size=2, is_training=True, num_readers=1, seed=seed,
        deterministic=True, num_epochs=1, crop_window_fn=inception_preprocessing.sample_crop_window)


def test_inception_training_windows_repeat_under_a_seed(tmp_path):
    dataset, _ = _write_dataset(str(tmp_path), [b'jpeg'] * 4)
    passes = []
    for seed in (3, 3, 4):
        with tf.Graph().as_default():
            passes.append(_run(_inception_training_batches(dataset, seed))[0])
    assert passes[0].shape == (4, 32, 32, 3)
    assert passes[0].min() >= -1.0 and passes[0].max() <= 1.0
    np.testing.assert_array_equal(passes[0], passes[1])
    assert not np.array_equal(passes[0], passes[2])


def test_sampled_windows_follow_the_published_crop_constraints():
    shape = [90, 120, 3]
    with tf.Graph().as_default():
        window = inception_preprocessing.sample_crop_window(tf.constant(shape))
        with tf.Session() as session:
            windows = [session.run(window) for _ in range(30)]
    for top, left, height, width in windows:
        assert 0 <= top and top + height <= shape[0]
        assert 0 <= left and left + width <= shape[1]
        assert 0.05 - 1e-6 <= height * width / (shape[0] * shape[1]) <= 1.0
        assert 0.75 - 2 / height <= width / height <= 1.33 + 2 / height
    assert len({tuple(window) for window in windows}) > 1
