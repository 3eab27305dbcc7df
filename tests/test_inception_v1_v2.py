"""Inception v1 and v2 specifics: base truncation and size, depth scaling, checkpoint names.

The registry-wide checks (full-net end points, parameter counts, gradients,
reuse) live in test_nets.py; these tests only build graphs, except the two
small-image forward passes.
"""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import inception_utils, inception_v1, inception_v2
from slim_classifier.compat import slim
from tests.net_facts import NET_FACTS
from tests.net_test_helpers import (build_base, build_net, count_parameters,
                                    published_base_end_points, refused_base_message,
                                    variable_shapes)

MODULES = {'inception_v1': inception_v1, 'inception_v2': inception_v2}
SCOPES = {'inception_v1': 'InceptionV1', 'inception_v2': 'InceptionV2'}


@pytest.mark.parametrize('name', sorted(MODULES))
def test_end_point_names_follow_published_order(name):
    assert list(MODULES[name].END_POINTS) == list(published_base_end_points(name))


@pytest.mark.parametrize('name, final_endpoint', [
    (name, end_point) for name in sorted(MODULES) for end_point in published_base_end_points(name)
])
def test_base_stops_at_every_final_endpoint(name, final_endpoint):
    published = published_base_end_points(name)
    expected_names = list(published)[:list(published).index(final_endpoint) + 1]
    with tf.Graph().as_default():
        net, end_points = build_base(name, use_batch_norm=False,
                                     final_endpoint=final_endpoint)
    assert list(end_points) == expected_names
    assert net is end_points[final_endpoint]
    assert net.shape.as_list() == published[final_endpoint]


@pytest.mark.parametrize('name', sorted(MODULES))
def test_base_parameter_count(name):
    final_endpoint, parameters = NET_FACTS[name]['base']
    with tf.Graph().as_default():
        build_base(name, final_endpoint=final_endpoint)
        assert count_parameters(slim.get_model_variables()) == parameters


# As in TF-Slim, only v2 scales its depths; v1 takes no depth arguments.
def test_v2_half_depth_multiplier_halves_every_end_point():
    # Every published output depth is >= 32, so halving never reaches min_depth 16.
    with tf.Graph().as_default():
        _, end_points = build_base('inception_v2', use_batch_norm=False, depth_multiplier=0.5)
    for end_point, shape in published_base_end_points('inception_v2').items():
        assert end_points[end_point].shape.as_list() == shape[:3] + [shape[3] // 2], end_point


def test_v2_min_depth_floors_thin_convolutions():
    # Mixed_4b's Branch_0 is 224 deep; 1/16 of it is below 32.
    with tf.Graph().as_default():
        build_base('inception_v2', use_batch_norm=False, final_endpoint='Mixed_4b',
                   depth_multiplier=1 / 16, min_depth=32)
        weights = variable_shapes()['InceptionV2/Mixed_4b/Branch_0/Conv2d_0a_1x1/weights']
    assert weights[-1] == 32


@pytest.mark.parametrize('depth_multiplier', [0.0, -1.0])
def test_v2_base_rejects_non_positive_depth_multiplier(depth_multiplier):
    message = refused_base_message('inception_v2', depth_multiplier=depth_multiplier)
    assert message == 'depth_multiplier must be > 0; got %r' % depth_multiplier


def test_v2_full_net_rejects_non_positive_depth_multiplier():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'^depth_multiplier must be > 0; got -0\.5$'):
            build_net('inception_v2', tf.zeros([1, 224, 224, 3]), depth_multiplier=-0.5)


def test_v2_base_rejects_min_depth_below_one():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'^min_depth must be >= 1; got 0$'):
            build_base('inception_v2', min_depth=0)


@pytest.mark.parametrize('name', sorted(MODULES))
def test_base_without_root_block_starts_at_mixed_3b(name):
    published = published_base_end_points(name)
    with tf.Graph().as_default():
        # The root block turns a 224 x 224 image into MaxPool_3a_3x3's 28 x 28 x 192.
        root_output = tf.placeholder(tf.float32, published['MaxPool_3a_3x3'])
        with slim.arg_scope(inception_utils.inception_arg_scope(use_batch_norm=False)):
            net, end_points = getattr(MODULES[name], name + '_base')(
                root_output, include_root_block=False)
        names = variable_shapes()
    inception_blocks = list(published)[list(published).index('Mixed_3b'):]
    assert list(end_points) == inception_blocks
    assert net.shape.as_list() == published['Mixed_5c']
    assert not any(n.startswith('%s/Conv2d_' % SCOPES[name]) for n in names)
    assert '%s/Mixed_3b/Branch_0/Conv2d_0a_1x1/weights' % SCOPES[name] in names


@pytest.mark.parametrize('name', sorted(MODULES))
def test_root_end_point_without_root_block_is_refused(name):
    message = refused_base_message(name, include_root_block=False,
                                   final_endpoint='Conv2d_2c_3x3')
    assert message.startswith('final_endpoint must be one of Mixed_3b, ')
    assert message.endswith("; got 'Conv2d_2c_3x3'")


@pytest.mark.parametrize('name', sorted(MODULES))
def test_module_exports_its_arg_scope_as_slim_does(name):
    assert getattr(MODULES[name], name + '_arg_scope') is inception_utils.inception_arg_scope


def test_v1_predictions_are_named_under_logits_as_in_slim():
    with tf.Graph().as_default():
        _, end_points = build_net('inception_v1', tf.zeros([1, 224, 224, 3]),
                                  use_batch_norm=False, num_classes=5)
    assert end_points['Predictions'].op.name == 'InceptionV1/Logits/Predictions/Reshape_1'


@pytest.mark.parametrize('name', sorted(MODULES))
def test_unknown_final_endpoint_lists_the_valid_ones(name):
    message = refused_base_message(name, final_endpoint='Mixed_9z')
    assert message.startswith('final_endpoint must be one of ')
    assert message.endswith("; got 'Mixed_9z'")
    assert all(end_point in message for end_point in published_base_end_points(name))


def test_v1_mixed_5b_keeps_the_checkpoint_branch_2_name():
    with tf.Graph().as_default():
        build_base('inception_v1', use_batch_norm=False)
        shapes = variable_shapes()
    # Mixed_5b's Branch_2 turns 32 reduced channels into 128 with a 3x3 conv.
    assert shapes['InceptionV1/Mixed_5b/Branch_2/Conv2d_0a_3x3/weights'] == [3, 3, 32, 128]
    assert 'InceptionV1/Mixed_5b/Branch_2/Conv2d_0b_3x3/weights' not in shapes
    assert 'InceptionV1/Mixed_5c/Branch_2/Conv2d_0b_3x3/weights' in shapes


def test_v1_head_explains_a_too_small_image():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='got 2 x 2, pass global_pool=True'):
            build_net('inception_v1', tf.zeros([1, 64, 64, 3]), use_batch_norm=False,
                      num_classes=5)


def _predictions(end_points):
    """Runs the freshly initialised net and returns its predictions."""
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(end_points['Predictions'])


def test_v1_global_pool_classifies_a_small_image():
    with tf.Graph().as_default():
        logits, end_points = build_net('inception_v1', tf.zeros([1, 64, 64, 3]), num_classes=5,
                                       is_training=False, global_pool=True)
        assert end_points['global_pool'].shape.as_list() == [1, 1, 1, 1024]
        predictions = _predictions(end_points)
    assert logits.shape.as_list() == [1, 5]
    assert np.allclose(predictions.sum(), 1.0, atol=1e-5)


def test_v2_head_shrinks_its_pool_for_a_small_image():
    # 64 x 64 is 2/7 of 224, so the 7 x 7 final map becomes 2 x 2.
    with tf.Graph().as_default():
        images = tf.random_uniform([1, 64, 64, 3], seed=1)
        logits, end_points = build_net('inception_v2', images, num_classes=5, is_training=False)
        assert end_points['AvgPool_1a'].op.name == 'InceptionV2/Logits/AvgPool_1a_2x2/AvgPool'
        predictions = _predictions(end_points)
    assert logits.shape.as_list() == [1, 5]
    assert np.allclose(predictions.sum(), 1.0, atol=1e-5)


def test_v2_first_layer_is_separable_as_in_the_checkpoint():
    with tf.Graph().as_default():
        build_base('inception_v2', final_endpoint='Conv2d_1a_7x7')
        shapes = variable_shapes()
    # 8 depthwise filters per RGB channel feed 64 pointwise outputs.
    assert shapes == {
        'InceptionV2/Conv2d_1a_7x7/depthwise_weights': [7, 7, 3, 8],
        'InceptionV2/Conv2d_1a_7x7/pointwise_weights': [1, 1, 24, 64],
        'InceptionV2/Conv2d_1a_7x7/biases': [64],
    }


def test_v2_plain_first_layer_is_batch_normalised():
    with tf.Graph().as_default():
        build_base('inception_v2', final_endpoint='Conv2d_1a_7x7', use_separable_conv=False)
        shapes = variable_shapes()
    assert shapes['InceptionV2/Conv2d_1a_7x7/weights'] == [7, 7, 3, 64]
    assert shapes['InceptionV2/Conv2d_1a_7x7/BatchNorm/moving_mean'] == [64]


def test_v2_nchw_puts_channels_second():
    published = published_base_end_points('inception_v2')
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [2, 3, 224, 224])
        with slim.arg_scope(inception_utils.inception_arg_scope()):
            _, end_points = inception_v2.inception_v2_base(
                images, use_separable_conv=False, data_format='NCHW')
        shapes = variable_shapes()
    for end_point, (batch, height, width, channels) in published.items():
        assert end_points[end_point].shape.as_list() == [batch, channels, height, width], end_point
    # Batch norm keeps one statistic per channel (64), not per image column (56).
    assert (shapes['InceptionV2/Conv2d_2b_1x1/BatchNorm/moving_mean']
            == published['Conv2d_2b_1x1'][3:])


def test_v2_rejects_an_unknown_data_format():
    with tf.Graph().as_default():
        with pytest.raises(ValueError,
                           match=r"^data_format must be one of NHWC, NCHW; got 'NWHC'$"):
            build_base('inception_v2', data_format='NWHC')


def test_v2_rejects_separable_first_layer_in_nchw():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r"^use_separable_conv=True needs data_format='NHWC'"):
            build_base('inception_v2', data_format='NCHW')
