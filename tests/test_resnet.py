"""ResNet v1 and v2 against the published facts (tests/zoo/resnet_*.json), and
the options the facts do not cover: output stride, non-strided block
activations, spatial squeeze, argument checking and a small forward pass.

Graphs are built at batch 1 only. Building the deep nets is slow (batch norm
layers check every existing variable), so the 101- to 200-layer nets are
only compared with the facts, without a session; shape-only tests build
without batch norm where that changes no name they check.
"""

import importlib
import inspect

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import resnet_utils, resnet_v1, resnet_v2
from slim_classifier.compat import slim
from tests import zoo_facts

NAMES = ['resnet_v1_50', 'resnet_v1_101', 'resnet_v1_152', 'resnet_v1_200',
         'resnet_v2_50', 'resnet_v2_101', 'resnet_v2_152', 'resnet_v2_200']
MODULES = {'resnet_v1': resnet_v1, 'resnet_v2': resnet_v2}


def _builder(name):
    return getattr(MODULES[name.rsplit('_', 1)[0]], name)


def _build(name, image_size=224, use_batch_norm=True, **kwargs):
    """Builds `name` (kwargs to the builder) on a [1, size, size, 3] placeholder.

    Without batch norm after the convolutions (ResNet v2 keeps its `preact`
    and `postnorm` ones), op names, end points and shapes are the same.

    Returns:
      (images placeholder, logits or features, end_points).
    """
    images = tf.placeholder(tf.float32, [1, image_size, image_size, 3], name='input')
    with slim.arg_scope(resnet_utils.resnet_arg_scope(weight_decay=0.0,
                                                      use_batch_norm=use_batch_norm)):
        return images, *_builder(name)(images, **kwargs)


def _assert_matches_feature_mode(name, entry, output, end_points):
    """Compares output op, output shape and last end points with `feature_mode[entry]`."""
    facts = zoo_facts.load(name)['feature_mode'][entry]
    assert output.op.name == facts['output_op']
    assert output.shape.as_list() == facts['output_shape']
    assert [[n, t.shape.as_list()] for n, t in list(end_points.items())[-3:]] == \
        facts['last_end_points']


@pytest.mark.parametrize('name', NAMES)
def test_matches_published_facts(name):
    with tf.Graph().as_default():
        _, logits, end_points = zoo_facts.build_as_published(name)
        zoo_facts.assert_matches_facts(name, logits, end_points)
        counts = zoo_facts.load(name)['counts']
        assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == \
            counts['update_ops_is_training_true']
        assert len(tf.losses.get_regularization_losses()) == \
            counts['regularization_losses_weight_decay_0']


def _signature(function):
    return [[name, '<required>' if parameter.default is inspect.Parameter.empty
             else parameter.default]
            for name, parameter in inspect.signature(function).parameters.items()]


@pytest.mark.parametrize('name', NAMES)
def test_builder_signatures_match_published(name):
    facts = zoo_facts.load(name)
    assert _signature(_builder(name)) == facts['builder_signature']
    for dotted, expected in facts['related_signatures'].items():
        module_name, function_name = dotted.rsplit('.', 1)
        function = getattr(importlib.import_module(module_name), function_name)
        assert _signature(function) == expected, dotted
    assert _builder(name).default_image_size == facts['default_image_size']


def test_arg_scope_signature_matches_published():
    published = {'nn.relu': tf.nn.relu}
    expected = [[name, published.get(default, default)]
                for name, default in zoo_facts.load('resnet_v1_50')['arg_scope_signature']]
    assert _signature(resnet_utils.resnet_arg_scope) == expected
    assert resnet_v1.resnet_arg_scope is resnet_v2.resnet_arg_scope is \
        resnet_utils.resnet_arg_scope
    assert resnet_v1.resnet_v1.default_image_size == 224
    assert resnet_v2.resnet_v2.default_image_size == 224


@pytest.mark.parametrize('name', ['resnet_v1_50', 'resnet_v2_50'])
def test_feature_mode_returns_the_pooled_features(name):
    with tf.Graph().as_default():
        _, features, end_points = _build(name, use_batch_norm=False, num_classes=None)
        _assert_matches_feature_mode(name, 'num_classes=None', features, end_points)
        assert [v.op.name for v in tf.global_variables() if '/logits/' in v.op.name] == []


@pytest.mark.parametrize('name', ['resnet_v1_50', 'resnet_v2_50'])
def test_output_stride_16_matches_published(name):
    with tf.Graph().as_default():
        _, features, end_points = _build(name, use_batch_norm=False, num_classes=None,
                                         global_pool=False, output_stride=16)
        _assert_matches_feature_mode(
            name, 'num_classes=None, global_pool=False, output_stride=16', features,
            end_points)
        # block3 keeps the 14 x 14 grid it reaches and block4 dilates instead.
        assert end_points[name + '/block3'].shape.as_list() == [1, 14, 14, 1024]


def _atrous_rate(conv_scope):
    """[rate along height, rate along width] of the convolution under `conv_scope`."""
    graph = tf.get_default_graph()
    graph.get_operation_by_name(conv_scope + '/Conv2D')
    try:
        rate = graph.get_operation_by_name(conv_scope + '/Conv2D/dilation_rate')
    except KeyError:  # only atrous convolutions get one
        return [1, 1]
    return tf.make_ndarray(rate.get_attr('value')).tolist()


@pytest.mark.parametrize('name, unit', [('resnet_v1_50', 'bottleneck_v1'),
                                        ('resnet_v2_50', 'bottleneck_v2')])
def test_output_stride_8_dilates_blocks_3_and_4(name, unit):
    with tf.Graph().as_default():
        _, features, end_points = _build(name, use_batch_norm=False, num_classes=None,
                                         global_pool=False, output_stride=8)
        assert features.shape.as_list() == [1, 28, 28, 2048]
        block_shapes = [end_points['%s/block%d' % (name, b)].shape.as_list()[1:3]
                        for b in range(1, 5)]
        assert block_shapes == [[28, 28]] * 4
        # block2's last unit would stride 2; it and everything after dilate.
        assert _atrous_rate('%s/block2/unit_4/%s/conv2' % (name, unit)) == [1, 1]
        assert _atrous_rate('%s/block3/unit_1/%s/conv2' % (name, unit)) == [2, 2]
        assert _atrous_rate('%s/block4/unit_1/%s/conv2' % (name, unit)) == [4, 4]


def test_spatial_squeeze_false_keeps_4d_logits():
    name = 'resnet_v1_50'
    with tf.Graph().as_default():
        _, logits, end_points = _build(name, use_batch_norm=False, num_classes=1000,
                                       spatial_squeeze=False)
        _assert_matches_feature_mode(name, 'num_classes=N, spatial_squeeze=False', logits,
                                     end_points)
        assert name + '/spatial_squeeze' not in end_points


def test_store_non_strided_activations_keeps_the_block_grids():
    name = 'resnet_v1_50'
    with tf.Graph().as_default():
        _, features, end_points = _build(name, num_classes=None, global_pool=False,
                                         store_non_strided_activations=True)
        blocks = {b: end_points['%s/block%d' % (name, b)].shape.as_list() for b in range(1, 5)}
        assert blocks == {1: [1, 56, 56, 256], 2: [1, 28, 28, 512], 3: [1, 14, 14, 1024],
                          4: [1, 7, 7, 2048]}
        last_unit = end_points[name + '/block1/unit_3/bottleneck_v1/conv2']
        assert last_unit.shape.as_list() == [1, 56, 56, 64]
        assert features.shape.as_list() == [1, 7, 7, 2048]
        # The same variables, so the public checkpoint still restores.
        published = [v for v in zoo_facts.load(name)['model_variables']
                     if not v[0].startswith(name + '/logits/')]
        assert [[v.op.name, v.shape.as_list()] for v in slim.get_model_variables()] == published


@pytest.mark.parametrize('output_stride', [2, 12, 64])
@pytest.mark.parametrize('builder', [resnet_v1.resnet_v1_50, resnet_v2.resnet_v2_50])
def test_unreachable_output_stride_is_refused_before_building(builder, output_stride):
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 224, 224, 3])
        message = r'^output_stride must be one of 4, 8, 16, 32 \(or None\); got %d$'
        with pytest.raises(ValueError, match=message % output_stride):
            builder(images, output_stride=output_stride)
        assert not tf.global_variables()


def test_stack_blocks_dense_names_the_reachable_output_strides():
    blocks = [resnet_v1.resnet_v1_block('block1', base_depth=1, num_units=2, stride=2),
              resnet_v1.resnet_v1_block('block2', base_depth=1, num_units=1, stride=3)]
    assert resnet_utils.reachable_output_strides(blocks) == [1, 2, 6]
    with tf.Graph().as_default():
        net = tf.zeros([1, 12, 12, 4])
        with pytest.raises(ValueError, match=r'one of 1, 2, 6 \(or None\); got 4$'):
            resnet_utils.stack_blocks_dense(net, blocks, output_stride=4)


@pytest.mark.parametrize('size', [6, 7])
def test_conv2d_same_strided_is_the_subsampled_stride_1_convolution(size):
    image = np.arange(size * size, dtype=np.float32).reshape([1, size, size, 1])
    with tf.Graph().as_default():
        with slim.arg_scope([slim.conv2d], activation_fn=None, normalizer_fn=None,
                            weights_initializer=tf.ones_initializer()):
            dense = resnet_utils.conv2d_same(tf.constant(image), 1, 3, stride=1, scope='conv')
            strided = resnet_utils.conv2d_same(tf.constant(image), 1, 3, stride=2,
                                               scope='conv_strided')
        subsampled = resnet_utils.subsample(dense, 2)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            dense_value, strided_value, subsampled_value = session.run(
                [dense, strided, subsampled])
    assert strided_value.shape == (1, (size + 1) // 2, (size + 1) // 2, 1)
    np.testing.assert_allclose(strided_value, subsampled_value)
    # Symmetric padding: the top-left output sums the 2 x 2 corner only.
    assert dense_value[0, 0, 0, 0] == image[0, :2, :2, 0].sum()


@pytest.mark.parametrize('name', ['resnet_v1_50', 'resnet_v2_50'])
def test_forward_pass_on_a_small_image_is_finite(name):
    facts = zoo_facts.load(name)
    num_classes = facts['num_classes']
    with tf.Graph().as_default():
        images, logits, end_points = _build(name, image_size=64, num_classes=num_classes,
                                            is_training=False)
        # Inference builds the same variables, and no batch-norm updates.
        assert len(slim.get_model_variables()) == \
            facts['is_training_false']['num_model_variables']
        assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == \
            facts['counts']['update_ops_is_training_false']
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            feed = np.random.RandomState(0).uniform(-1, 1, [1, 64, 64, 3])
            logits_value, predictions = session.run([logits, end_points['predictions']],
                                                    {images: feed})
    assert logits_value.shape == (1, num_classes)
    assert np.isfinite(logits_value).all()
    np.testing.assert_allclose(predictions.sum(), 1.0, rtol=1e-5)
