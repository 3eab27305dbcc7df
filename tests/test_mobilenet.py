"""MobileNet v2 / v3 / EdgeTPU (nets/mobilenet) against the published zoo facts.

Graphs are built at batch 1 and only the two 96 x 96 forward passes run a
session. Full builds are the slow part (tf_slim's batch norm), so the
behaviour tests stop the base early (`final_endpoint`) wherever they can.
"""

import dataclasses
import inspect

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets.mobilenet import conv_blocks, mobilenet, mobilenet_v2, mobilenet_v3
from slim_classifier.compat import slim
from tests import zoo_facts

NAMES = ('mobilenet_v2', 'mobilenet_v2_140', 'mobilenet_v2_050', 'mobilenet_v2_035',
         'mobilenet_v3_large', 'mobilenet_v3_small', 'mobilenet_v3_large_minimalistic',
         'mobilenet_v3_small_minimalistic', 'mobilenet_edgetpu', 'mobilenet_edgetpu_075')

# The named variant each zoo name is published as.
VARIANTS = {
    'mobilenet_v2': mobilenet_v2.mobilenet,
    'mobilenet_v2_140': mobilenet_v2.mobilenet_v2_140,
    'mobilenet_v2_050': mobilenet_v2.mobilenet_v2_050,
    'mobilenet_v2_035': mobilenet_v2.mobilenet_v2_035,
    'mobilenet_v3_large': mobilenet_v3.large,
    'mobilenet_v3_small': mobilenet_v3.small,
    'mobilenet_v3_large_minimalistic': mobilenet_v3.large_minimalistic,
    'mobilenet_v3_small_minimalistic': mobilenet_v3.small_minimalistic,
    'mobilenet_edgetpu': mobilenet_v3.edge_tpu,
    'mobilenet_edgetpu_075': mobilenet_v3.edge_tpu_075,
}


def _describe(value):
    """A default as the facts spell it: tables and slim functions by dotted name."""
    if value is inspect.Parameter.empty:
        return '<required>'
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    for prefix, module in (('mobilenet_v3', mobilenet_v3), ('tf_slim', slim)):
        for attribute in dir(module):
            if getattr(module, attribute) is value:
                return '%s.%s' % (prefix, attribute)
    return value


def _signature(fn):
    described = []
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            described.append(['**' + parameter.name, None])
        else:
            described.append([parameter.name, _describe(parameter.default)])
    return described


def _build(name, size=None, is_training=True, **kwargs):
    """Builds zoo net `name` on a [1, size, size, 3] placeholder.

    Returns:
      (images, logits or features, end_points).
    """
    facts = zoo_facts.load(name)
    size = size or facts['default_image_size']
    images = tf.placeholder(tf.float32, [1, size, size, 3], name='input')
    kwargs.setdefault('num_classes', facts['num_classes'])
    with slim.arg_scope(mobilenet.training_scope(is_training=is_training, weight_decay=0.0)):
        output, end_points = zoo_facts.published_builder(name)(
            images, is_training=is_training, **kwargs)
    return images, output, end_points


def _depths(end_points):
    return {name: tensor.shape.as_list()[-1] for name, tensor in end_points.items()}


def _count(variables):
    return sum(int(np.prod(v.shape.as_list())) for v in variables)


@pytest.mark.parametrize('name', NAMES)
def test_matches_published_facts(name):
    with tf.Graph().as_default():
        _, logits, end_points = zoo_facts.build_as_published(name)
        zoo_facts.assert_matches_facts(name, logits, end_points)


@pytest.mark.parametrize('name', ['mobilenet_v2', 'mobilenet_v3_large'])
def test_feature_mode_returns_pooled_features(name):
    facts = zoo_facts.load(name)['feature_mode']['num_classes=None']
    with tf.Graph().as_default():
        _, features, end_points = zoo_facts.build_as_published(name, num_classes=None)
        model_variables = slim.get_model_variables()
        assert features.op.name == facts['output_op']
        assert features.shape.as_list() == facts['output_shape']
        assert len(model_variables) == facts['num_model_variables']
        assert _count(model_variables) == facts['model_params']
        assert 'Logits' not in end_points and 'Predictions' not in end_points
        for end_point, shape in facts['last_end_points']:
            assert end_points[end_point].shape.as_list() == shape, end_point


def test_eval_mode_at_160_keeps_variables_and_adds_no_updates():
    name = 'mobilenet_v3_small_minimalistic'
    facts = zoo_facts.load(name)
    with tf.Graph().as_default():
        _, logits, end_points = _build(name, size=160, is_training=False)
        built = [[v.op.name, v.shape.as_list()] for v in slim.get_model_variables()]
        assert built == facts['model_variables']
        assert tf.get_collection(tf.GraphKeys.UPDATE_OPS) == []
        assert logits.op.name == facts['is_training_false']['logits_op']
        assert logits.shape.as_list() == [1, 1001]
        # 160 / 32 = 5: the head's pool adapts its window to the 5 x 5 map.
        assert end_points['layer_13'].shape.as_list() == [1, 5, 5, 576]
        assert end_points['layer_14'].shape.as_list() == [1, 1, 1, 576]


@pytest.mark.parametrize('name', ['mobilenet_v2', 'mobilenet_v3_small'])
def test_forward_pass_at_96_is_finite(name):
    with tf.Graph().as_default():
        images, logits, end_points = _build(name, size=96)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            feed = {images: np.random.RandomState(0).uniform(-1, 1, [1, 96, 96, 3])}
            logit_values, predictions = session.run([logits, end_points['Predictions']], feed)
    assert logit_values.shape == (1, 1001)
    assert np.all(np.isfinite(logit_values))
    assert predictions.sum() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize('version, finegrain, depth_multiplier, last_depth', [
    ('v2', True, 0.35, 1280),
    ('v2', False, 0.35, 448),    # 1280 * 0.35
    ('v2', True, 1.4, 1792),     # v2 keeps the last layer only below 1
    ('v3', True, 1.4, 1280),     # v3 keeps it at every multiplier
    ('v3', False, 0.75, 960),
])
def test_finegrain_mode_keeps_the_last_layer(version, finegrain, depth_multiplier, last_depth):
    # The stem, one bottleneck and the last layer of the net's table: building
    # the whole net would only repeat what the published facts check.
    builder, conv_defs = {'v2': (mobilenet_v2.mobilenet, mobilenet_v2.V2_DEF),
                          'v3': (mobilenet_v3.mobilenet, mobilenet_v3.V3_LARGE)}[version]
    short = dataclasses.replace(conv_defs, spec=conv_defs.spec[:2] + conv_defs.spec[-1:])
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 32, 32, 3])
        with slim.arg_scope(mobilenet.training_scope(weight_decay=0.0)):
            _, end_points = builder(images, conv_defs=short, depth_multiplier=depth_multiplier,
                                    finegrain_classification_mode=finegrain, base_only=True)
    stem_depth = conv_blocks.make_divisible(conv_defs.spec[0].params['num_outputs']
                                            * depth_multiplier)
    assert end_points['layer_1'].shape.as_list()[-1] == stem_depth
    assert end_points['layer_3'].shape.as_list()[-1] == last_depth


@pytest.mark.parametrize('kwargs, stem_depth, block_depth', [
    pytest.param({'depth_multiplier': 0.1}, 8, 8, id='default'),  # 3.2 and 1.6 round up to 8
    pytest.param({'depth_multiplier': 0.1, 'min_depth': 16}, 16, 16, id='min_depth'),
    # 32 * 0.35 = 11.2 -> 11; 16 * 0.35 = 5.6 -> min_depth 8
    pytest.param({'depth_multiplier': 0.35, 'divisible_by': 1}, 11, 8, id='divisible_by'),
])
def test_min_depth_and_divisible_by_round_scaled_depths(kwargs, stem_depth, block_depth):
    with tf.Graph().as_default():
        _, _, end_points = _build('mobilenet_v2', final_endpoint='layer_2', base_only=True,
                                  **kwargs)
    assert _depths(end_points) == {
        'layer_1': stem_depth, 'layer_2/depthwise_output': stem_depth,
        'layer_2/output': block_depth, 'layer_2': block_depth}


def test_output_stride_replaces_later_strides_by_dilation():
    with tf.Graph().as_default():
        _, net, end_points = _build('mobilenet_v2', size=96, output_stride=8,
                                    final_endpoint='layer_9', base_only=True)
        dilated = sorted({op.name.split('/')[1] for op in tf.get_default_graph().get_operations()
                          if op.type == 'SpaceToBatchND'})
    # layer_8 would halve 12 x 12 to 6 x 6; it keeps 12 x 12 and layer_9 dilates.
    assert end_points['layer_7'].shape.as_list()[1:3] == [12, 12]
    assert net.shape.as_list() == [1, 12, 12, 64]
    assert dilated == ['expanded_conv_7']


def test_explicit_padding_keeps_same_padding_shapes():
    with tf.Graph().as_default():
        _, _, end_points = _build('mobilenet_v2', use_explicit_padding=True,
                                  final_endpoint='layer_3', base_only=True)
        pads = [op.name for op in tf.get_default_graph().get_operations() if op.type == 'Pad']
    published = zoo_facts.load('mobilenet_v2')['end_points']
    for end_point in ('layer_1', 'layer_2', 'layer_3'):
        assert end_points[end_point].shape.as_list() == published[end_point]
    assert len(pads) == 3  # the stem, and the depthwise convolutions of layer_2 and layer_3


def test_groupnorm_replaces_batch_norm():
    with tf.Graph().as_default():
        _build('mobilenet_v3_small', use_groupnorm=True, final_endpoint='layer_2',
               base_only=True)
        names = [v.op.name for v in slim.get_model_variables()]
    assert 'MobilenetV3/Conv/GroupNorm/gamma' in names
    assert not [name for name in names if 'BatchNorm' in name or 'moving' in name]


def test_reuse_shares_variables_between_builds():
    with tf.Graph().as_default():
        _, first, _ = _build('mobilenet_v2', final_endpoint='layer_3', base_only=True)
        count = len(tf.global_variables())
        _, second, _ = _build('mobilenet_v2', final_endpoint='layer_3', base_only=True,
                              reuse=True)
        assert len(tf.global_variables()) == count
    assert first.op.name == 'MobilenetV2/expanded_conv_1/output'
    assert second.op.name == 'MobilenetV2_1/expanded_conv_1/output'


def test_errors_name_the_argument():
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 96, 96, 3])
        with pytest.raises(ValueError, match="final_endpoint must be one of layer_1 ... "
                                             "layer_19; got 'layer_20'"):
            mobilenet_v2.mobilenet(images, final_endpoint='layer_20')
        with pytest.raises(ValueError, match='takes depth_multiplier, not multiplier'):
            mobilenet_v3.mobilenet(images, multiplier=0.5)
        with pytest.raises(ValueError, match='output_stride must be None, 1 or a positive '
                                             'multiple of 2; got 3'):
            mobilenet_v2.mobilenet(images, output_stride=3)


def test_hard_activations():
    with tf.Graph().as_default(), tf.Session() as session:
        x = tf.constant([-4.0, -3.0, 0.0, 1.5, 3.0, 5.0])
        sigmoid, swish = session.run([conv_blocks.hard_sigmoid(x), conv_blocks.hard_swish(x)])
    np.testing.assert_allclose(sigmoid, [0, 0, 0.5, 0.75, 1, 1], atol=1e-6)
    np.testing.assert_allclose(swish, [0, 0, 0, 1.125, 3, 5], atol=1e-6)


@pytest.mark.parametrize('name', NAMES)
def test_signatures_match_facts(name):
    facts = zoo_facts.load(name)
    assert _signature(zoo_facts.published_builder(name)) == facts['builder_signature']
    assert _signature(VARIANTS[name]) == facts['builder_signature']
    assert _signature(zoo_facts.published_arg_scope(name)) == facts['arg_scope_signature']
    for dotted, expected in facts['related_signatures'].items():
        assert _signature(zoo_facts._resolve(dotted)) == expected, dotted
    assert VARIANTS[name].default_image_size == facts['default_image_size']
