"""Tests of the preprocessing modules and of the preprocessing factory.

Expected values come from the published preprocessing facts (DATA.md) and
from NumPy computations written here, never from the code under test.
"""

import importlib
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from sklearn.datasets import load_sample_images

from nets import nets_factory
from preprocessing import (cifarnet_preprocessing, inception_preprocessing, preprocessing_factory,
                           vgg_preprocessing)
from slim_classifier.runtime import determinism

# Every registered preprocessing (its module is preprocessing/<name>_preprocessing.py), so a
# new one is tested by being registered.
MODULES = {name: importlib.import_module('preprocessing.%s_preprocessing' % name)
           for name in preprocessing_factory.list_preprocessing_names()}
# Small resize sides keep the VGG tests fast; the crop still has to fit.
SMALL_KWARGS = {'vgg': {'resize_side_min': 24, 'resize_side_max': 40}}
# LeNet's training preprocessing only scales; the others draw random distortions.
RANDOM_MODULES = tuple(name for name in MODULES if name != 'lenet')
VGG_RGB_MEANS = np.array([123.68, 116.78, 103.94])
# ITU-R BT.601 luma weights, the ones tf.image.rgb_to_grayscale documents.
LUMA_WEIGHTS = np.array([0.2989, 0.5870, 0.1140])


def _image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(
            0, 256, (height, width, channels), dtype=np.uint8)


def _run(build: Callable[[], object], runs: int = 1) -> list:
    """Builds a graph with `build()` and evaluates its result `runs` times."""
    with tf.Graph().as_default():
        outputs = build()
        with tf.Session() as sess:
            return [sess.run(outputs) for _ in range(runs)]


def _preprocess(name: str, image: np.ndarray, height: int, width: int,
                is_training: bool, **kwargs) -> tf.Tensor:
    options = {**SMALL_KWARGS.get(name, {}), **kwargs}
    return MODULES[name].preprocess_image(tf.constant(image), height, width,
                                          is_training=is_training, **options)


@pytest.mark.parametrize('name', sorted(MODULES))
@pytest.mark.parametrize('is_training', [False, True])
@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('height, width', [(8, 8), (24, 18)])
def test_output_shape_and_dtype(name, is_training, channels, height, width):
    def build():
        output = _preprocess(name, _image(30, 40, channels), height, width, is_training)
        assert output.shape.as_list() == [height, width, channels]
        assert output.dtype == tf.float32
        return output

    [value] = _run(build)
    assert value.shape == (height, width, channels)
    assert np.all(np.isfinite(value))


@pytest.mark.parametrize('is_training, kwargs', [
        (False, {}), (True, {}), (True, {'fast_mode': False})])
def test_inception_output_is_within_minus_one_and_one(is_training, kwargs):
    image = _image(40, 40)
    image[:5] = 0
    image[-5:] = 255
    values = _run(lambda: _preprocess('inception', image, 32, 32, is_training, **kwargs),
                  runs=10 if is_training else 1)
    for value in values:
        assert value.min() >= -1.0 and value.max() <= 1.0
    if not is_training:
        # The central crop keeps rows of both the black and the white band.
        assert values[0].max() - values[0].min() > 1.0


@pytest.mark.parametrize('pixel', [0, 100, 255])
def test_inception_eval_maps_pixels_with_x_minus_half_times_two(pixel):
    image = np.full((20, 20, 3), pixel, np.uint8)
    [value] = _run(lambda: _preprocess('inception', image, 12, 12, False))
    np.testing.assert_allclose(value, (pixel / 255.0 - 0.5) * 2.0, atol=1e-6)


def test_inception_eval_keeps_the_central_seven_eighths():
    # 0.875 of 16 pixels is 14, one pixel off each side; resizing 14 to 14
    # samples every pixel exactly once.
    image = _image(16, 16)
    [value] = _run(lambda: _preprocess('inception', image, 14, 14, False))
    expected = (image[1:15, 1:15] / 255.0 - 0.5) * 2.0
    np.testing.assert_allclose(value, expected, atol=1e-6)


def test_inception_crop_follows_the_published_constraints():
    size = 64
    # The bottom-right quarter; every crop must cover 10% of it.
    box = np.array([0.5, 0.5, 1.0, 1.0], np.float32)

    def build():
        image = tf.constant(_image(size, size))
        return inception_preprocessing.distorted_bounding_box_crop(
                image, tf.constant(box.reshape(1, 1, 4)))

    for cropped, crop_box in _run(build, runs=20):
        ymin, xmin, ymax, xmax = crop_box[0, 0]
        crop_height, crop_width = (ymax - ymin) * size, (xmax - xmin) * size
        assert cropped.shape[:2] == (round(crop_height), round(crop_width))
        assert 0.05 - 1e-6 <= (ymax - ymin) * (xmax - xmin) <= 1.0
        assert 0.75 - 2 / size <= crop_width / crop_height <= 1.33 + 2 / size
        overlap = (max(0.0, min(ymax, box[2]) - max(ymin, box[0]))
                   * max(0.0, min(xmax, box[3]) - max(xmin, box[1])))
        assert overlap / 0.25 >= 0.1 - 1e-6


def test_inception_training_accepts_a_bounding_box():
    boxes = [[[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.5, 0.5]]]
    [value] = _run(lambda: inception_preprocessing.preprocess_image(
            tf.constant(_image(32, 32)), 16, 16, is_training=True,
            bbox=tf.constant(boxes)))
    assert value.shape == (16, 16, 3)


@pytest.mark.parametrize('add_image_summaries', [False, True])
def test_inception_image_summaries_follow_the_argument(add_image_summaries):
    with tf.Graph().as_default():
        inception_preprocessing.preprocess_image(
                tf.constant(_image(20, 20)), 8, 8, is_training=True,
                add_image_summaries=add_image_summaries)
        summaries = tf.get_collection(tf.GraphKeys.SUMMARIES)
    assert bool(summaries) == add_image_summaries


@pytest.mark.parametrize('fast_mode', [True, False])
def test_inception_training_stages_in_order_are_the_training_preprocessing(fast_mode):
    # The stage profile of benchmarks/bench_input_pipeline.py runs these one by one.
    image = _image(30, 40)

    # Stateless draws are seeded by their order, which the stages must keep.
    def whole():
        with determinism.stateless_draws(3, determinism.STREAM_EXAMPLES, tf.constant(5)):
            return inception_preprocessing.preprocess_for_train(
                    tf.constant(image), 16, 16, fast_mode=fast_mode, add_image_summaries=False,
                    random_crop=False)

    def staged():
        staged_image = tf.constant(image)
        with determinism.stateless_draws(3, determinism.STREAM_EXAMPLES, tf.constant(5)):
            for _, stage in inception_preprocessing.training_stages(16, 16, fast_mode):
                staged_image = stage(staged_image)
        return staged_image

    names = [name for name, _ in inception_preprocessing.training_stages(16, 16, fast_mode)]
    assert names == ['resize', 'flip', 'colour', 'scale']
    np.testing.assert_array_equal(_run(whole), _run(staged))


@pytest.mark.parametrize('method', [tf.image.ResizeMethod.BILINEAR,
                                    tf.image.ResizeMethod.NEAREST_NEIGHBOR,
                                    tf.image.ResizeMethod.BICUBIC, tf.image.ResizeMethod.AREA])
def test_inception_resize_gives_the_values_of_resizing_the_uint8_image(method):
    # The preprocessing casts to float32 before resizing, which is cheaper; the
    # kernels compute in float32 either way, so no value may change.
    photo = load_sample_images().images[0][100:171, 200:293]

    def build():
        image = tf.constant(photo)
        expected = tf.cast(tf.image.resize_images(image, [61, 107], method=method), tf.float32)
        return (inception_preprocessing._resize_to_unit_float(image, 61, 107, method),
                expected * (1.0 / 255.0))

    [(resized, expected)] = _run(build)
    np.testing.assert_array_equal(resized, expected)


def test_inception_distort_color_rejects_an_unknown_ordering():
    with tf.Graph().as_default():
        image = tf.zeros([4, 4, 3])
        with pytest.raises(ValueError, match=r'color_ordering must be in \[0, 2\) when '
                                             r'fast_mode is True; got 2'):
            inception_preprocessing.distort_color(image, 2, fast_mode=True)


@pytest.mark.parametrize('is_training', [False, True])
def test_vgg_subtracts_the_rgb_means(is_training):
    image = np.empty((30, 40, 3), np.uint8)
    image[...] = [200, 100, 50]
    [value] = _run(lambda: _preprocess('vgg', image, 16, 16, is_training))
    expected = np.broadcast_to(np.array([200, 100, 50]) - VGG_RGB_MEANS, value.shape)
    np.testing.assert_allclose(value, expected, atol=1e-3)


def test_vgg_eval_takes_the_central_crop_of_the_resized_image():
    # The smaller side is already resize_side, so the resize keeps every pixel.
    image = _image(20, 40)
    [value] = _run(lambda: _preprocess('vgg', image, 20, 20, False, resize_side_min=20))
    np.testing.assert_allclose(value, image[:, 10:30] - VGG_RGB_MEANS, atol=1e-4)


def test_vgg_resize_keeps_the_aspect_ratio():
    [value] = _run(lambda: vgg_preprocessing._aspect_preserving_resize(
            tf.constant(_image(30, 75)), 20))
    assert value.shape == (20, 50, 3)


def test_vgg_rejects_a_crop_larger_than_the_resized_image():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'resize_side_min must be >= the output size '
                                             r'299x299 .*; got 256'):
            vgg_preprocessing.preprocess_image(tf.constant(_image(8, 8)), 299, 299)


def test_vgg_rejects_an_empty_resize_range():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'resize_side_min must be <= '
                                             r'resize_side_max \(40\); got 50'):
            vgg_preprocessing.preprocess_image(
                    tf.constant(_image(8, 8)), 16, 16, is_training=True,
                    resize_side_min=50, resize_side_max=40)


@pytest.mark.parametrize('is_training', [False, True])
def test_lenet_scales_a_known_image(is_training):
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    [same, cropped, padded] = _run(lambda: [
            _preprocess('lenet', image, 16, 16, is_training),
            _preprocess('lenet', image, 8, 10, is_training),
            _preprocess('lenet', image, 20, 18, is_training)])[0]
    scaled = (image.astype(np.float32) - 128.0) / 128.0
    np.testing.assert_array_equal(same, scaled)
    # Central crop: offsets (16 - 8) // 2 and (16 - 10) // 2.
    np.testing.assert_array_equal(cropped, scaled[4:12, 3:13])
    # Central zero padding: offsets (20 - 16) // 2 and (18 - 16) // 2.
    expected_padded = np.full((20, 18, 1), -1.0, np.float32)
    expected_padded[2:18, 1:17] = scaled
    np.testing.assert_array_equal(padded, expected_padded)


@pytest.mark.parametrize('is_training', [False, True])
def test_cifarnet_standardises_each_image(is_training):
    [value] = _run(lambda: _preprocess('cifarnet', _image(32, 32), 24, 24, is_training))
    assert abs(value.mean()) < 1e-4
    assert abs(value.std() - 1.0) < 1e-3


def test_cifarnet_eval_standardises_the_central_crop():
    image = _image(32, 32)
    [value] = _run(lambda: _preprocess('cifarnet', image, 24, 24, False))
    crop = image[4:28, 4:28].astype(np.float64)
    np.testing.assert_allclose(value, (crop - crop.mean()) / crop.std(), atol=1e-4)


def test_cifarnet_rejects_negative_padding():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'padding must be >= 0; got -1'):
            cifarnet_preprocessing.preprocess_for_train(
                    tf.constant(_image(8, 8)), 8, 8, padding=-1)


@pytest.mark.parametrize('name', sorted(MODULES))
def test_eval_is_deterministic(name):
    image = _image(30, 40)
    first, second = _run(lambda: _preprocess(name, image, 16, 16, False), runs=2)
    [rebuilt] = _run(lambda: _preprocess(name, image, 16, 16, False))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, rebuilt)


@pytest.mark.parametrize('name', RANDOM_MODULES)
def test_training_is_random(name):
    runs = _run(lambda: _preprocess(name, _image(30, 40), 16, 16, True), runs=5)
    assert any(not np.array_equal(runs[0], other) for other in runs[1:])


@pytest.mark.parametrize('name', RANDOM_MODULES)
def test_training_repeats_under_a_graph_seed(name):
    def build():
        tf.set_random_seed(7)
        return _preprocess(name, _image(30, 40), 16, 16, True)

    [first] = _run(build)
    [second] = _run(build)
    np.testing.assert_array_equal(first, second)


# The factory.

@pytest.mark.parametrize('network', nets_factory.list_networks())
def test_factory_follows_the_registry_for_every_network(network):
    spec = nets_factory.get_network_spec(network)
    image = _image(30, 40)

    def build():
        from_factory = preprocessing_factory.get_preprocessing(network)(
                tf.constant(image), 24, 24, **SMALL_KWARGS.get(spec.preprocessing_name, {}))
        from_module = _preprocess(spec.preprocessing_name, image, 24, 24, False,
                                  use_grayscale=spec.num_channels == 1)
        return from_factory, from_module

    [(from_factory, from_module)] = _run(build)
    assert from_factory.shape == (24, 24, spec.num_channels)
    np.testing.assert_array_equal(from_factory, from_module)


@pytest.mark.parametrize('network, preprocessing_name', [
        ('lenet', 'lenet'), ('cifarnet', 'cifarnet'), ('alexnet_v2', 'vgg'),
        ('vgg_a', 'vgg'), ('vgg_16', 'vgg'), ('vgg_19', 'vgg'),
        ('inception_v1', 'inception'), ('inception_v2', 'inception'),
        ('inception_v3', 'inception'), ('inception_v4', 'inception')])
def test_networks_use_their_published_default_preprocessing(network, preprocessing_name):
    assert nets_factory.get_network_spec(network).preprocessing_name == preprocessing_name


@pytest.mark.parametrize('name, channels', [
        ('cifarnet', 3), ('inception', 3), ('lenet', 1), ('vgg', 3)])
def test_factory_accepts_preprocessing_names(name, channels):
    image = _image(30, 40)

    def build():
        from_factory = preprocessing_factory.get_preprocessing(name)(
                tf.constant(image), 24, 24, **SMALL_KWARGS.get(name, {}))
        from_module = _preprocess(name, image, 24, 24, False,
                                  use_grayscale=channels == 1)
        return from_factory, from_module

    [(from_factory, from_module)] = _run(build)
    assert from_factory.shape == (24, 24, channels)
    np.testing.assert_array_equal(from_factory, from_module)


def test_factory_lists_preprocessing_names():
    assert preprocessing_factory.list_preprocessing_names() == [
            'cifarnet', 'inception', 'lenet', 'vgg']


def test_factory_rejects_an_unknown_name_listing_the_valid_ones():
    with pytest.raises(ValueError) as raised:
        preprocessing_factory.get_preprocessing('incepton_v3')
    message = str(raised.value)
    assert message.startswith("unknown preprocessing 'incepton_v3' "
                              "(did you mean 'inception_v3'?); valid names: ")
    for valid in ['cifarnet', 'inception', 'lenet', 'vgg'] + nets_factory.list_networks():
        assert valid in message


def test_factory_passes_keyword_arguments_on():
    with tf.Graph().as_default():
        fn = preprocessing_factory.get_preprocessing('vgg_16', is_training=True)
        output = fn(tf.constant(_image(8, 8)), 16, 16, resize_side_min=20,
                    resize_side_max=30)
        assert output.shape.as_list() == [16, 16, 3]
        with pytest.raises(ValueError, match=r'; got 10$'):
            fn(tf.constant(_image(8, 8)), 16, 16, resize_side_min=10)


@pytest.mark.parametrize('shape', [[8, 8, 4], [8, 8], [None, None, None]])
def test_factory_rejects_images_without_one_or_three_channels(shape):
    with tf.Graph().as_default():
        image = tf.placeholder(tf.uint8, shape)
        with pytest.raises(ValueError, match=r'image must be \[height, width, channels\] '
                                             r'with 1 or 3 channels'):
            preprocessing_factory.get_preprocessing('inception')(image, 8, 8)


def test_factory_feeds_grey_images_to_rgb_networks_as_three_equal_channels():
    fn = preprocessing_factory.get_preprocessing('inception_v3', is_training=True)
    [value] = _run(lambda: fn(tf.constant(_image(30, 40, channels=1)), 16, 16,
                              fast_mode=False))
    assert value.shape == (16, 16, 3)
    np.testing.assert_allclose(value[..., 0], value[..., 1], atol=1e-5)
    np.testing.assert_allclose(value[..., 0], value[..., 2], atol=1e-5)


def test_factory_subtracts_each_rgb_mean_from_a_grey_image():
    fn = preprocessing_factory.get_preprocessing('vgg_16')
    [value] = _run(lambda: fn(tf.constant(_image(30, 40, channels=1)), 16, 16))
    assert value.shape == (16, 16, 3)
    # The three channels are the same grey pixels less different means.
    for channel in (1, 2):
        np.testing.assert_allclose(value[..., 0] - value[..., channel],
                                   VGG_RGB_MEANS[channel] - VGG_RGB_MEANS[0], atol=1e-3)


def test_factory_gives_lenet_the_luma_of_rgb_images():
    image = _image(16, 16)
    fn = preprocessing_factory.get_preprocessing('lenet')
    [value] = _run(lambda: fn(tf.constant(image), 16, 16))
    luma = (image.astype(np.float64) @ LUMA_WEIGHTS)[..., np.newaxis]
    np.testing.assert_allclose(value, (luma - 128.0) / 128.0, atol=1e-4)


@pytest.mark.parametrize('network', ['inception_v3', 'cifarnet', 'vgg_16'])
@pytest.mark.parametrize('channels', [1, 3])
def test_factory_use_grayscale_returns_one_channel(network, channels):
    fn = preprocessing_factory.get_preprocessing(network, is_training=True,
                                                 use_grayscale=True)
    [value] = _run(lambda: fn(tf.constant(_image(30, 40, channels)), 16, 16,
                              **SMALL_KWARGS.get(nets_factory.get_network_spec(
                                      network).preprocessing_name, {})))
    assert value.shape == (16, 16, 1)


def test_grey_vgg_image_has_the_luma_of_the_means_subtracted():
    fn = preprocessing_factory.get_preprocessing('vgg', use_grayscale=True)
    image = np.full((20, 20, 1), 100, np.uint8)
    [value] = _run(lambda: fn(tf.constant(image), 16, 16, resize_side_min=20))
    np.testing.assert_allclose(value, 100.0 - VGG_RGB_MEANS @ LUMA_WEIGHTS, atol=1e-3)
