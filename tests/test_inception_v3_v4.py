"""Inception v3 and v4 specifics: base truncation and size, heads, checkpoint names.

The registry-wide checks (full-net end points, parameter counts, gradients,
reuse) live in test_nets.py; these tests build graphs, and run forward passes
only on small images.
"""

import functools

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import inception, inception_utils, inception_v1, inception_v2, inception_v3, inception_v4
from slim_classifier.compat import slim
from tests.net_facts import NET_FACTS
from tests.net_test_helpers import (build_base, build_net, count_parameters,
                                    published_base_end_points, refused_base_message,
                                    variable_shapes)

MODULES = {'inception_v3': inception_v3, 'inception_v4': inception_v4}
NAMES = sorted(MODULES)

# Trainable parameters of each auxiliary head, from its published layout:
# 1x1 conv to 128 (+ beta), 5x5 conv to 768 (+ beta), then 768 -> classes (+ biases).
V3_AUX_PARAMS = (768 * 128 + 128) + (5 * 5 * 128 * 768 + 768) + (768 * 1000 + 1000)
V4_AUX_PARAMS = (1024 * 128 + 128) + (5 * 5 * 128 * 768 + 768) + (768 * 1001 + 1001)


@functools.lru_cache(maxsize=None)
def _full_net(name, create_aux_logits=True):
    """Facts of the whole net, built once per test run for an unknown image size.

    Returns:
      (shapes of every variable, names of the model variables, trainable
      parameter count, shapes of the end points).
    """
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [None, None, None, 3])
        _, end_points = build_net(name, images, num_classes=NET_FACTS[name]['num_classes'],
                                  create_aux_logits=create_aux_logits)
        return (variable_shapes(), [v.op.name for v in slim.get_model_variables()],
                count_parameters(tf.trainable_variables()),
                {n: t.shape.as_list() for n, t in end_points.items()})


@pytest.mark.parametrize('name', NAMES)
def test_end_point_names_follow_published_order(name):
    assert list(MODULES[name].END_POINTS) == list(published_base_end_points(name))


@pytest.mark.parametrize('name', NAMES)
def test_base_stops_at_every_final_endpoint(name):
    published = published_base_end_points(name)
    base = getattr(MODULES[name], name + '_base')
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [2, 299, 299, 3])
        # Sharing one set of variables keeps the many truncated builds cheap.
        with tf.variable_scope(tf.get_variable_scope(), reuse=tf.AUTO_REUSE):
            with slim.arg_scope(inception_utils.inception_arg_scope(use_batch_norm=False)):
                for index, final_endpoint in enumerate(published):
                    net, end_points = base(images, final_endpoint=final_endpoint, scope=name)
                    assert list(end_points) == list(published)[:index + 1], final_endpoint
                    assert net is end_points[final_endpoint]
                    assert net.shape.as_list() == published[final_endpoint], final_endpoint


@pytest.mark.parametrize('name, scope', [('inception_v3', 'InceptionV3'),
                                         ('inception_v4', 'InceptionV4')])
def test_base_parameter_count(name, scope):
    shapes, model_variables, _, _ = _full_net(name)
    base = [n for n in model_variables
            if not n.startswith((scope + '/AuxLogits/', scope + '/Logits/'))]
    assert sum(int(np.prod(shapes[n])) for n in base) == NET_FACTS[name]['base'][1]


@pytest.mark.parametrize('name, aux_params', [('inception_v3', V3_AUX_PARAMS),
                                              ('inception_v4', V4_AUX_PARAMS)])
def test_without_aux_logits_the_aux_head_is_gone(name, aux_params):
    shapes, _, trainable, end_points = _full_net(name, create_aux_logits=False)
    assert 'AuxLogits' not in end_points
    assert not [n for n in shapes if '/AuxLogits/' in n]
    assert trainable == NET_FACTS[name]['trainable_params'] - aux_params


V3_CHECKPOINT_SHAPES = {
    # From the reference: a batch-normalised Mixed_5b 5x5 conv.
    'InceptionV3/Mixed_5b/Branch_1/Conv2d_0b_5x5/BatchNorm/moving_mean': [64],
    # Mixed_5c names its 5x5 branch differently from Mixed_5b and Mixed_5d.
    'InceptionV3/Mixed_5c/Branch_1/Conv2d_0b_1x1/weights': [1, 1, 256, 48],
    'InceptionV3/Mixed_5c/Branch_1/Conv_1_0c_5x5/weights': [5, 5, 48, 64],
    'InceptionV3/Mixed_5d/Branch_1/Conv2d_0b_5x5/weights': [5, 5, 48, 64],
    # Mixed_6a's strided 3x3 convolutions carry '_1x1' names.
    'InceptionV3/Mixed_6a/Branch_0/Conv2d_1a_1x1/weights': [3, 3, 288, 384],
    'InceptionV3/Mixed_6a/Branch_1/Conv2d_1a_1x1/weights': [3, 3, 96, 96],
    'InceptionV3/Mixed_6e/Branch_2/Conv2d_0e_1x7/weights': [1, 7, 192, 192],
    # Mixed_7b's 3x1 twin is '0b', Mixed_7c's is '0c'.
    'InceptionV3/Mixed_7b/Branch_1/Conv2d_0b_3x1/weights': [3, 1, 384, 384],
    'InceptionV3/Mixed_7c/Branch_1/Conv2d_0c_3x1/weights': [3, 1, 384, 384],
    'InceptionV3/Mixed_7c/Branch_2/Conv2d_0c_1x3/weights': [1, 3, 384, 384],
    'InceptionV3/Mixed_7c/Branch_2/Conv2d_0d_3x1/weights': [3, 1, 384, 384],
    'InceptionV3/AuxLogits/Conv2d_1b_1x1/weights': [1, 1, 768, 128],
    'InceptionV3/AuxLogits/Conv2d_2a_5x5/weights': [5, 5, 128, 768],
    'InceptionV3/AuxLogits/Conv2d_2b_1x1/biases': [1000],
    'InceptionV3/Logits/Conv2d_1c_1x1/weights': [1, 1, 2048, 1000],
}

V4_CHECKPOINT_SHAPES = {
    'InceptionV4/Conv2d_1a_3x3/weights': [3, 3, 3, 32],
    'InceptionV4/Mixed_3a/Branch_1/Conv2d_0a_3x3/weights': [3, 3, 64, 96],
    'InceptionV4/Mixed_4a/Branch_1/Conv2d_0b_1x7/weights': [1, 7, 64, 64],
    'InceptionV4/Mixed_5e/Branch_3/Conv2d_0b_1x1/weights': [1, 1, 384, 96],
    'InceptionV4/Mixed_6a/Branch_1/Conv2d_1a_3x3/weights': [3, 3, 224, 256],
    'InceptionV4/Mixed_6h/Branch_2/Conv2d_0e_1x7/weights': [1, 7, 224, 256],
    'InceptionV4/Mixed_6h/Branch_2/Conv2d_0e_1x7/BatchNorm/moving_variance': [256],
    'InceptionV4/Mixed_7a/Branch_1/Conv2d_1a_3x3/weights': [3, 3, 320, 320],
    'InceptionV4/Mixed_7d/Branch_1/Conv2d_0c_3x1/weights': [3, 1, 384, 256],
    'InceptionV4/Mixed_7d/Branch_2/Conv2d_0e_3x1/weights': [3, 1, 512, 256],
    'InceptionV4/AuxLogits/Conv2d_2a/weights': [5, 5, 128, 768],
    'InceptionV4/AuxLogits/Aux_logits/weights': [768, 1001],
    'InceptionV4/Logits/Logits/weights': [1536, 1001],
    'InceptionV4/Logits/Logits/biases': [1001],
}


@pytest.mark.parametrize('name, expected', [('inception_v3', V3_CHECKPOINT_SHAPES),
                                            ('inception_v4', V4_CHECKPOINT_SHAPES)])
def test_checkpoint_variable_names_and_shapes(name, expected):
    shapes, _, _, _ = _full_net(name)
    assert {n: shapes.get(n) for n in expected} == expected


def test_v3_does_not_tidy_the_irregular_names():
    shapes, _, _, _ = _full_net('inception_v3')
    for regular_name in ('InceptionV3/Mixed_5c/Branch_1/Conv2d_0b_5x5/weights',
                         'InceptionV3/Mixed_5c/Branch_1/Conv2d_0a_1x1/weights',
                         'InceptionV3/Mixed_6a/Branch_0/Conv2d_1a_3x3/weights',
                         'InceptionV3/Mixed_7b/Branch_1/Conv2d_0c_3x1/weights',
                         'InceptionV3/Mixed_7c/Branch_1/Conv2d_0b_3x1/weights'):
        assert regular_name not in shapes


def test_v3_small_image_shrinks_the_head_kernels():
    # 150 x 150 leaves Mixed_6e at 7 x 7, so the aux pool (5x5, stride 3)
    # gives 1 x 1, and Mixed_7c at 3 x 3.
    with tf.Graph().as_default():
        images = tf.random_uniform([2, 150, 150, 3], seed=1)
        logits, end_points = build_net('inception_v3', images, num_classes=5,
                                       is_training=False)
        shapes = variable_shapes()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            aux, predictions = sess.run([end_points['AuxLogits'], end_points['Predictions']])
    assert shapes['InceptionV3/AuxLogits/Conv2d_2a_1x1/weights'] == [1, 1, 128, 768]
    assert end_points['AvgPool_1a'].op.name == 'InceptionV3/Logits/AvgPool_1a_3x3/AvgPool'
    assert logits.shape.as_list() == [2, 5]
    assert aux.shape == (2, 5) and np.all(np.isfinite(aux))
    assert np.allclose(predictions.sum(axis=-1), 1.0, atol=1e-5)


def test_v3_global_pool_replaces_the_fixed_pool():
    with tf.Graph().as_default():
        _, end_points = build_net('inception_v3', tf.zeros([2, 150, 150, 3]), global_pool=True)
    assert end_points['global_pool'].shape.as_list() == [2, 1, 1, 2048]
    assert 'AvgPool_1a' not in end_points


def test_v4_small_image_shrinks_the_aux_kernel():
    # 150 x 150 leaves Mixed_6h at 7 x 7, so the aux pool (5x5, stride 3) gives 1 x 1.
    with tf.Graph().as_default():
        logits, end_points = build_net('inception_v4', tf.zeros([1, 150, 150, 3]), num_classes=5)
        shapes = variable_shapes()
    assert shapes['InceptionV4/AuxLogits/Conv2d_2a/weights'] == [1, 1, 128, 768]
    assert end_points['AuxLogits'].shape.as_list() == [1, 5]
    assert logits.shape.as_list() == [1, 5]


@pytest.mark.parametrize('name', NAMES)
def test_unknown_image_size_still_gives_logits(name):
    # _full_net builds for [None, None, None, 3] images; the checkpoint shapes
    # test above reads the same build.
    num_classes = NET_FACTS[name]['num_classes']
    _, _, _, end_points = _full_net(name)
    assert end_points['Logits'] == [None, num_classes]
    assert end_points['AuxLogits'] == [None, num_classes]


@pytest.mark.parametrize('block, channels_in, size_out, channels_out, default_scope', [
    (inception_v4.block_inception_a, 384, 9, 384, 'BlockInceptionA'),
    (inception_v4.block_reduction_a, 384, 4, 1024, 'BlockReductionA'),
    (inception_v4.block_inception_b, 1024, 9, 1024, 'BlockInceptionB'),
    (inception_v4.block_reduction_b, 1024, 4, 1536, 'BlockReductionB'),
    (inception_v4.block_inception_c, 1536, 9, 1536, 'BlockInceptionC'),
])
def test_v4_blocks_on_their_own(block, channels_in, size_out, channels_out, default_scope):
    # A 9 x 9 grid: stride-2 'VALID' reductions give (9 - 3) // 2 + 1 = 4.
    with tf.Graph().as_default():
        net = block(tf.zeros([1, 9, 9, channels_in]))
        names = [v.op.name for v in tf.global_variables()]
    assert net.shape.as_list() == [1, size_out, size_out, channels_out]
    assert names and all(n.startswith(default_scope + '/Branch_') for n in names)


@pytest.mark.parametrize('depth_multiplier', [0.0, -1.0])
def test_v3_base_rejects_non_positive_depth_multiplier(depth_multiplier):
    message = refused_base_message('inception_v3', depth_multiplier=depth_multiplier)
    assert message == 'depth_multiplier must be > 0; got %r' % depth_multiplier


def test_v3_rejects_non_positive_depth_multiplier():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'^depth_multiplier must be > 0; got -0\.5$'):
            build_net('inception_v3', tf.zeros([1, 299, 299, 3]), depth_multiplier=-0.5)


def test_v3_rejects_min_depth_below_one():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'^min_depth must be >= 1; got 0$'):
            build_base('inception_v3', min_depth=0)


def test_v3_half_depth_multiplier_halves_every_end_point():
    # Every published v3 depth is >= 32, so halving never reaches min_depth 16.
    with tf.Graph().as_default():
        _, end_points = build_base('inception_v3', use_batch_norm=False, depth_multiplier=0.5)
    for end_point, shape in published_base_end_points('inception_v3').items():
        assert end_points[end_point].shape.as_list() == shape[:3] + [shape[3] // 2], end_point


@pytest.mark.parametrize('name', NAMES)
def test_unknown_final_endpoint_lists_the_valid_ones(name):
    message = refused_base_message(name, final_endpoint='Mixed_9z')
    assert message.startswith('final_endpoint must be one of ')
    assert message.endswith("; got 'Mixed_9z'")
    assert all(end_point in message for end_point in published_base_end_points(name))


def test_inception_module_re_exports_every_version():
    for module in (inception_v1, inception_v2, inception_v3, inception_v4):
        version = module.__name__.rsplit('.', 1)[1]
        assert getattr(inception, version) is getattr(module, version)
        assert getattr(inception, version + '_base') is getattr(module, version + '_base')
        assert getattr(inception, version + '_arg_scope') is inception_utils.inception_arg_scope


@pytest.mark.parametrize('name', NAMES)
def test_module_exports_its_arg_scope_as_slim_does(name):
    assert getattr(MODULES[name], name + '_arg_scope') is inception_utils.inception_arg_scope
