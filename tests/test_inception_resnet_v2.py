"""Inception-ResNet v2 against the published zoo facts (tests/zoo/inception_resnet_v2.json).

The whole net is large: it is built only at batch 1 and never run (a forward
pass takes far longer than this file may); the residual blocks run on tiny
grids instead. Only the check against the facts builds under the arg_scope;
the others compare shapes and layers (not their batch-norm variables), which
batch norm, half the build time, does not change.
"""

import math
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import inception_resnet_v2 as irv2
from slim_classifier.compat import slim
from tests import zoo_facts

NAME = 'inception_resnet_v2'
FACTS = zoo_facts.load(NAME)
# Grid reduction of each base end point, as published (output stride 16).
STRIDES = {'Conv2d_1a_3x3': 2, 'Conv2d_2a_3x3': 2, 'Conv2d_2b_3x3': 2, 'MaxPool_3a_3x3': 4,
           'Conv2d_3b_1x1': 4, 'Conv2d_4a_3x3': 4, 'MaxPool_5a_3x3': 8, 'Mixed_5b': 8,
           'Mixed_6a': 16, 'PreAuxLogits': 16, 'Mixed_7a': 32, 'Conv2d_7b_1x1': 32}


def _build_base(**kwargs):
    """The base network on a placeholder of the published input shape, without batch norm."""
    return irv2.inception_resnet_v2_base(tf.placeholder(tf.float32, FACTS['input_shape']),
                                         **kwargs)


def _layer_scopes(variable_names):
    """The layers owning `variable_names`: 'X/weights' and 'X/BatchNorm/beta' are layer 'X'."""
    return {re.sub(r'(/BatchNorm)?/[a-z_]+$', '', name) for name in variable_names}


def test_matches_published_facts():
    with tf.Graph().as_default():
        _, logits, end_points = zoo_facts.build_as_published(NAME)
        zoo_facts.assert_matches_facts(NAME, logits, end_points)
        update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    assert len(update_ops) == FACTS['counts']['update_ops_is_training_true']


def test_feature_mode_returns_the_pooled_features():
    published = FACTS['feature_mode']['num_classes=None']
    with tf.Graph().as_default():
        features, end_points = irv2.inception_resnet_v2(
            tf.placeholder(tf.float32, FACTS['input_shape']), num_classes=None,
            is_training=False)
        layers = _layer_scopes(v.op.name for v in slim.get_model_variables())
    full = _layer_scopes(name for name, _ in FACTS['model_variables'])
    assert layers == full - _layer_scopes(published['missing_vs_full'])
    assert features.op.name == published['output_op']
    assert features.shape.as_list() == published['output_shape']
    assert [[n, t.shape.as_list()] for n, t in list(end_points.items())[-3:]] == \
        published['last_end_points']
    assert not {'AuxLogits', 'Logits', 'Predictions'} & set(end_points)


def test_without_aux_logits_the_aux_head_is_gone():
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, FACTS['input_shape'])
        logits, end_points = irv2.inception_resnet_v2(
            images, num_classes=FACTS['num_classes'], is_training=False,
            create_aux_logits=False)
        layers = _layer_scopes(v.op.name for v in slim.get_model_variables())
    published = _layer_scopes(name for name, _ in FACTS['model_variables'])
    aux_layers = {layer for layer in published if layer.startswith('InceptionResnetV2/AuxLogits/')}
    assert len(aux_layers) == 3
    assert layers == published - aux_layers
    assert 'AuxLogits' not in end_points
    assert logits.shape.as_list() == FACTS['logits_shape']


def test_aligned_feature_maps_divide_the_input_by_the_stride():
    with tf.Graph().as_default():
        _, end_points = _build_base(align_feature_maps=True)
    for name, stride in STRIDES.items():
        side = math.ceil(299 / stride)
        channels = FACTS['end_points'][name][3]
        assert end_points[name].shape.as_list() == [1, side, side, channels], name


def test_output_stride_8_keeps_the_35x35_grid_up_to_pre_aux_logits():
    with tf.Graph().as_default():
        net, end_points = _build_base(final_endpoint='PreAuxLogits', output_stride=8)
        graph = tf.get_default_graph()
        # Dilated convolutions run as convolutions between SpaceToBatch and BatchToSpace.
        dilated = {op.name.split('/')[1] for op in graph.get_operations()
                   if op.type == 'SpaceToBatchND'}
        layers = _layer_scopes(v.op.name for v in tf.global_variables())
    assert list(end_points) == list(irv2.END_POINTS[:irv2.END_POINTS.index('PreAuxLogits') + 1])
    assert net is end_points['PreAuxLogits']
    # Mixed_6a's 'VALID' 3x3 convolutions no longer stride: 35 - 2 = 33.
    assert net.shape.as_list() == [1, 33, 33, 1088]
    assert end_points['Mixed_6a'].shape.as_list() == [1, 33, 33, 1088]
    assert end_points['Mixed_5b'].shape.as_list() == FACTS['end_points']['Mixed_5b']
    assert dilated == {'Repeat_1'}
    # The build stopped at PreAuxLogits.
    assert 'InceptionResnetV2/Repeat_1/block17_20/Conv2d_1x1' in layers
    assert not [layer for layer in layers if '/Mixed_7a/' in layer or '/Repeat_2/' in layer]


def test_end_points_follow_published_order():
    published = [n for n in FACTS['end_points'] if n in STRIDES]
    assert list(irv2.END_POINTS) == published == list(STRIDES)


@pytest.mark.parametrize('kwargs, message', [
    ({'output_stride': 32}, r'^output_stride must be 8 or 16; got 32$'),
    ({'output_stride': 8},
     r"^output_stride 8 is supported only up to final_endpoint 'PreAuxLogits'; "
     r"got 'Conv2d_7b_1x1'$"),
    ({'final_endpoint': 'Mixed_9z'}, r"^final_endpoint must be one of Conv2d_1a_3x3, .*; "
                                     r"got 'Mixed_9z'$"),
])
def test_base_refuses_bad_arguments_before_building(kwargs, message):
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=message):
            _build_base(**kwargs)
        assert not tf.global_variables()


@pytest.mark.parametrize('block, channels, default_scope', [
    (irv2.block35, 320, 'Block35'), (irv2.block17, 1088, 'Block17'), (irv2.block8, 2080, 'Block8'),
])
def test_residual_blocks_add_a_scaled_residual(block, channels, default_scope):
    inputs = np.random.RandomState(0).uniform(-1, 1, [1, 3, 3, channels]).astype(np.float32)
    with tf.Graph().as_default():
        identity = block(tf.constant(inputs), scale=0.0, activation_fn=None)
        names = [v.op.name for v in tf.global_variables()]
        rectified = block(tf.constant(inputs), scale=0.5, scope='Rectified')
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            identity, rectified = sess.run([identity, rectified])
    # With a zero scale the block passes its input through unchanged.
    np.testing.assert_allclose(identity, inputs, rtol=0, atol=1e-6)
    assert np.all(rectified >= 0) and np.all(np.isfinite(rectified))
    assert not np.allclose(rectified, np.maximum(inputs, 0))
    assert names and all(n.startswith(default_scope + '/') for n in names)


def test_builder_signatures_match_the_facts():
    assert zoo_facts.signature(irv2.inception_resnet_v2) == \
        zoo_facts.expected_signature(FACTS['builder_signature'])
    base = 'nets.inception_resnet_v2.inception_resnet_v2_base'
    assert zoo_facts.signature(irv2.inception_resnet_v2_base) == \
        zoo_facts.expected_signature(FACTS['related_signatures'][base])
    assert zoo_facts.signature(irv2.inception_resnet_v2_arg_scope) == \
        zoo_facts.expected_signature(FACTS['arg_scope_signature'])


def test_default_image_size_matches_the_facts():
    assert irv2.inception_resnet_v2.default_image_size == FACTS['default_image_size']
