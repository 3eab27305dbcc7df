"""MobileNet v1 and its thin variants against the published zoo facts
(tests/zoo/mobilenet_v1*.json)."""


import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import mobilenet_v1
from slim_classifier.compat import slim
from tests import zoo_facts

NAMES = ('mobilenet_v1', 'mobilenet_v1_075', 'mobilenet_v1_050', 'mobilenet_v1_025')
FACTS = zoo_facts.load('mobilenet_v1')
# Grid reduction after each layer of the published table, from 2 to 32.
LAYER_STRIDES = (2, 2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32)


def _count(variables):
    return sum(int(np.prod(v.shape.as_list())) for v in variables)


def _build_base(size=224, **kwargs):
    """The base network on a [1, size, size, 3] placeholder, without batch norm."""
    return mobilenet_v1.mobilenet_v1_base(tf.placeholder(tf.float32, [1, size, size, 3]),
                                          **kwargs)


def _stride_of(end_point):
    """The grid reduction of a published base end point: 'Conv2d_5_pointwise' -> 8."""
    return LAYER_STRIDES[int(end_point.split('_')[1])]


def _base_end_points():
    """The published base end points and their shapes, in build order."""
    return {name: shape for name, shape in FACTS['end_points'].items()
            if name.startswith('Conv2d_')}


@pytest.mark.parametrize('name', NAMES)
def test_matches_published_facts(name):
    with tf.Graph().as_default():
        _, logits, end_points = zoo_facts.build_as_published(name)
        zoo_facts.assert_matches_facts(name, logits, end_points)
        update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    assert len(update_ops) == zoo_facts.load(name)['counts']['update_ops_is_training_true']


@pytest.mark.parametrize('name, num_classes', [(name, None) for name in NAMES]
                         + [('mobilenet_v1', 0)])
def test_feature_mode_returns_the_pooled_features(name, num_classes):
    published = zoo_facts.load(name)['feature_mode']['num_classes=None']
    with tf.Graph().as_default():
        _, features, end_points = zoo_facts.build_as_published(name, is_training=False,
                                                               num_classes=num_classes)
        model_variables = slim.get_model_variables()
    assert features.op.name == published['output_op']
    assert features.shape.as_list() == published['output_shape']
    assert len(model_variables) == published['num_model_variables']
    assert _count(model_variables) == published['model_params']
    assert [[n, t.shape.as_list()] for n, t in list(end_points.items())[-3:]] == \
        published['last_end_points']
    assert not {'Logits', 'Predictions'} & set(end_points)


@pytest.mark.parametrize('size, grid', [(128, 4), (160, 5)])
def test_small_inputs_shrink_the_pool_window(size, grid):
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [2, size, size, 3])
        with slim.arg_scope(mobilenet_v1.mobilenet_v1_arg_scope()):
            logits, end_points = mobilenet_v1.mobilenet_v1(images, num_classes=1001,
                                                           is_training=False)
        pool = tf.get_default_graph().get_operation_by_name('MobilenetV1/Logits/AvgPool_1a/AvgPool')
    assert end_points['Conv2d_13_pointwise'].shape.as_list() == [2, grid, grid, 1024]
    assert list(pool.get_attr('ksize')) == [1, grid, grid, 1]
    assert end_points['AvgPool_1a'].shape.as_list() == [2, 1, 1, 1024]
    assert logits.shape.as_list() == [2, 1001]


def test_global_pool_averages_any_grid():
    with tf.Graph().as_default():
        logits, end_points = mobilenet_v1.mobilenet_v1(
            tf.placeholder(tf.float32, [1, None, None, 3]), num_classes=10, global_pool=True)
    assert end_points['global_pool'].op.name == 'MobilenetV1/Logits/global_pool'
    assert 'AvgPool_1a' not in end_points
    assert logits.shape.as_list() == [1, 10]


def test_explicit_padding_keeps_the_published_shapes():
    with tf.Graph().as_default():
        _, end_points = _build_base(use_explicit_padding=True)
        graph = tf.get_default_graph()
        first = graph.get_operation_by_name('MobilenetV1/Conv2d_0/Conv2D')
        pads = [op for op in graph.get_operations() if op.type == 'Pad']
    assert {n: t.shape.as_list() for n, t in end_points.items()} == _base_end_points()
    assert first.get_attr('padding') == b'VALID'
    # One explicit padding per 3x3 layer: Conv2d_0 and the 13 depthwise ones.
    assert len(pads) == 14


@pytest.mark.parametrize('output_stride', [8, 16])
@pytest.mark.parametrize('use_explicit_padding', [False, True])
def test_output_stride_stops_the_grid_from_shrinking(output_stride, use_explicit_padding):
    with tf.Graph().as_default():
        _, end_points = _build_base(output_stride=output_stride,
                                    use_explicit_padding=use_explicit_padding)
        shapes = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    for name, published in _base_end_points().items():
        side = 224 // min(_stride_of(name), output_stride)
        assert end_points[name].shape.as_list() == [1, side, side, published[3]], name
    # Dilation adds no variables: the checkpoint still restores.
    assert shapes['MobilenetV1/Conv2d_13_depthwise/depthwise_weights'] == [3, 3, 1024, 1]


def test_base_stops_at_a_depthwise_end_point():
    with tf.Graph().as_default():
        net, end_points = _build_base(final_endpoint='Conv2d_5_depthwise')
        names = {v.op.name for v in tf.global_variables()}
    published = list(_base_end_points())
    assert list(end_points) == published[:published.index('Conv2d_5_depthwise') + 1]
    assert net.shape.as_list() == FACTS['end_points']['Conv2d_5_depthwise']
    assert 'MobilenetV1/Conv2d_5_depthwise/depthwise_weights' in names
    assert not [n for n in names if n.startswith('MobilenetV1/Conv2d_5_pointwise/')]


def test_custom_conv_defs_drive_the_base():
    conv_defs = (mobilenet_v1.Conv(kernel=[3, 3], stride=2, depth=16),
                 mobilenet_v1.DepthSepConv(kernel=[3, 3], stride=2, depth=40),
                 mobilenet_v1.DepthSepConv(kernel=[5, 5], stride=1, depth=24))
    with tf.Graph().as_default():
        net, end_points = _build_base(size=64, conv_defs=conv_defs,
                                      final_endpoint='Conv2d_2_pointwise', depth_multiplier=0.5)
        shapes = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    assert {n: t.shape.as_list() for n, t in end_points.items()} == {
        'Conv2d_0': [1, 32, 32, 8],
        'Conv2d_1_depthwise': [1, 16, 16, 8],
        'Conv2d_1_pointwise': [1, 16, 16, 20],
        'Conv2d_2_depthwise': [1, 16, 16, 20],
        # 24 * 0.5 = 12, kept at min_depth 8 only when below it.
        'Conv2d_2_pointwise': [1, 16, 16, 12],
    }
    assert shapes['MobilenetV1/Conv2d_2_depthwise/depthwise_weights'] == [5, 5, 20, 1]
    assert net is end_points['Conv2d_2_pointwise']


def test_min_depth_floors_the_thinnest_layers():
    with tf.Graph().as_default():
        _, end_points = _build_base(size=32, final_endpoint='Conv2d_1_pointwise',
                                    depth_multiplier=0.1, min_depth=16)
    # 32 * 0.1 and 64 * 0.1 both fall below 16.
    assert end_points['Conv2d_0'].shape.as_list()[3] == 16
    assert end_points['Conv2d_1_pointwise'].shape.as_list()[3] == 16


@pytest.mark.parametrize('depth_multiplier', [0.0, -0.5])
@pytest.mark.parametrize('build', ['base', 'net'])
def test_non_positive_depth_multiplier_is_refused_before_building(depth_multiplier, build):
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 224, 224, 3])
        builder = mobilenet_v1.mobilenet_v1_base if build == 'base' else mobilenet_v1.mobilenet_v1
        with pytest.raises(ValueError, match=r'^depth_multiplier must be > 0; got %r$'
                           % depth_multiplier):
            builder(images, depth_multiplier=depth_multiplier)
        assert not tf.global_variables()


@pytest.mark.parametrize('kwargs, message', [
    ({'output_stride': 4}, r'^output_stride must be None, 8, 16 or 32; got 4$'),
    ({'final_endpoint': 'Conv2d_14_pointwise'},
     r"^final_endpoint must be one of Conv2d_0, Conv2d_1_depthwise, .*, Conv2d_13_pointwise; "
     r"got 'Conv2d_14_pointwise'$"),
    ({'conv_defs': [mobilenet_v1.Conv([3, 3], 2, 32), ('Pool', 2)]},
     r"^conv_defs\[1\] must be a Conv or a DepthSepConv; got \('Pool', 2\)$"),
])
def test_base_refuses_bad_arguments_before_building(kwargs, message):
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=message):
            _build_base(**kwargs)
        assert not tf.global_variables()


def test_inputs_of_another_rank_are_refused():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'^inputs must have rank 4 .*; got rank 3$'):
            mobilenet_v1.mobilenet_v1(tf.placeholder(tf.float32, [224, 224, 3]))


def test_thinnest_variant_runs_forward_at_128():
    images = np.random.RandomState(0).uniform(-1, 1, [2, 128, 128, 3]).astype(np.float32)
    with tf.Graph().as_default():
        with slim.arg_scope(mobilenet_v1.mobilenet_v1_arg_scope(is_training=False)):
            logits, end_points = mobilenet_v1.mobilenet_v1_025(
                tf.constant(images), num_classes=1001, is_training=False)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            logits, predictions = sess.run([logits, end_points['Predictions']])
    assert logits.shape == (2, 1001)
    assert np.all(np.isfinite(logits)) and np.ptp(logits) > 0
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize('name', NAMES)
def test_builder_signatures_match_the_facts(name):
    facts = zoo_facts.load(name)
    expected = zoo_facts.expected_signature(facts['builder_signature'])
    assert zoo_facts.signature(zoo_facts.published_builder(name)) == expected
    # The module's own thin variants show the same defaults.
    assert zoo_facts.signature(getattr(mobilenet_v1, name)) == expected
    base = 'nets.mobilenet_v1.mobilenet_v1_base'
    assert zoo_facts.signature(mobilenet_v1.mobilenet_v1_base) == \
        zoo_facts.expected_signature(facts['related_signatures'][base])
    assert zoo_facts.signature(mobilenet_v1.mobilenet_v1_arg_scope) == \
        zoo_facts.expected_signature(facts['arg_scope_signature'])


@pytest.mark.parametrize('name', NAMES)
def test_default_image_size_matches_the_facts(name):
    builder = getattr(mobilenet_v1, name)
    assert builder.default_image_size == zoo_facts.load(name)['default_image_size']
    assert builder.__name__ == name
