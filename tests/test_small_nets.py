"""Specifics of LeNet, CifarNet, AlexNet v2 and VGG beyond the shared net suite."""

import functools
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import alexnet, cifarnet, lenet, vgg
from slim_classifier.compat import slim


def _build(builder, arg_scope, shape, **kwargs):
    """Builds `builder` on a float placeholder of `shape` in the current graph."""
    images = tf.placeholder(tf.float32, shape)
    with slim.arg_scope(arg_scope()):
        logits, end_points = builder(images, **kwargs)
    return images, logits, end_points


def _variable_names() -> set[str]:
    return {variable.op.name for variable in tf.global_variables()}


def _parameter_count() -> int:
    return sum(int(np.prod(variable.shape.as_list())) for variable in tf.trainable_variables())


def test_cifarnet_parameter_count_matches_the_architecture():
    def conv(kernel, channels_in, channels_out):
        return kernel * kernel * channels_in * channels_out + channels_out

    def dense(units_in, units_out):
        return units_in * units_out + units_out

    # Two 2x2/2 pools take 32 x 32 down to 8 x 8 before flattening.
    flattened = (32 // 2 // 2) ** 2 * 64
    expected = (conv(5, 3, 64) + conv(5, 64, 64) + dense(flattened, 384)
                + dense(384, 192) + dense(192, 10))
    with tf.Graph().as_default():
        _, logits, end_points = _build(cifarnet.cifarnet, cifarnet.cifarnet_arg_scope,
                                       [2, 32, 32, 3])
        assert _parameter_count() == expected
        assert len(slim.get_model_variables()) == 10
        assert end_points['Flatten'].shape.as_list() == [2, flattened]
        assert logits.shape.as_list() == [2, 10]


def test_cifarnet_regularises_only_the_hidden_fully_connected_layers():
    with tf.Graph().as_default():
        _build(cifarnet.cifarnet, cifarnet.cifarnet_arg_scope, [1, 32, 32, 3])
        losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
        layers = sorted(loss.op.name.split('/')[1] for loss in losses)
    assert layers == ['fc3', 'fc4']


@pytest.mark.parametrize('name, weight_layers', [('vgg_a', 11), ('vgg_16', 16), ('vgg_19', 19)])
def test_vgg_table_drives_the_convolutions_per_block(name, weight_layers):
    with tf.Graph().as_default():
        # At 32 x 32 pool5 is 1 x 1; SAME padding lets fc6 build on it.
        _build(getattr(vgg, name), vgg.vgg_arg_scope, [1, 32, 32, 3], fc_conv_padding='SAME')
        weights = [v for v in _variable_names() if v.endswith('/weights')]
    per_block = tuple(
        sum(bool(re.fullmatch(r'%s/conv%d/conv%d_\d+/weights' % (name, block, block), w))
            for w in weights)
        for block in range(1, 6))
    assert per_block == vgg.CONV_REPEATS[name]
    # The paper names each configuration by its weight layers: convolutions + 3 fc.
    assert len(weights) == weight_layers


def test_vgg_accepts_a_custom_table():
    with tf.Graph().as_default():
        _, _, end_points = _build(vgg.vgg, vgg.vgg_arg_scope, [1, 32, 32, 3],
                                  conv_repeats=(1, 1, 1, 1, 1), scope='vgg_tiny',
                                  fc_conv_padding='SAME', num_classes=4)
        conv_weights = [v for v in _variable_names()
                        if re.fullmatch(r'vgg_tiny/conv\d/.*/weights', v)]
    assert len(conv_weights) == 5
    assert end_points['vgg_tiny/fc8'].shape.as_list() == [1, 4]


def test_vgg_letter_aliases():
    assert vgg.vgg_d is vgg.vgg_16
    assert vgg.vgg_e is vgg.vgg_19


def test_vgg_same_fc_padding_gives_spatial_logits():
    with tf.Graph().as_default():
        _, logits, end_points = _build(vgg.vgg_16, vgg.vgg_arg_scope, [2, 224, 224, 3],
                                       num_classes=5, fc_conv_padding='SAME',
                                       spatial_squeeze=False)
        # pool5 is 7 x 7 at 224 x 224; SAME keeps that size through fc6 to fc8.
        assert logits.shape.as_list() == [2, 7, 7, 5]
        assert end_points['vgg_16/fc6'].shape.as_list() == [2, 7, 7, 4096]


def test_spatial_squeeze_of_spatial_logits_is_a_clear_error():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'spatial_squeeze needs 1 x 1 logits; got 7 x 7'):
            _build(vgg.vgg_16, vgg.vgg_arg_scope, [1, 224, 224, 3], fc_conv_padding='SAME')


@pytest.mark.parametrize('builder, arg_scope', [
    (alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope),
    (vgg.vgg_a, vgg.vgg_arg_scope),
    (vgg.vgg_16, vgg.vgg_arg_scope),
])
def test_global_pool_on_a_larger_image_gives_one_prediction_per_image(builder, arg_scope):
    with tf.Graph().as_default():
        _, logits, end_points = _build(builder, arg_scope, [2, 256, 256, 3],
                                       num_classes=6, global_pool=True)
        assert logits.shape.as_list() == [2, 6]
        assert end_points['global_pool'].shape.as_list() == [2, 1, 1, 4096]
        assert 'Predictions' not in end_points


def test_without_global_pool_a_larger_image_cannot_be_squeezed():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=r'got 2 x 2 logits'):
            _build(alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope, [1, 256, 256, 3])


def test_lenet_forward_pass_is_finite_and_normalised():
    with tf.Graph().as_default():
        images, logits, end_points = _build(lenet.lenet, lenet.lenet_arg_scope, [3, 28, 28, 1])
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            batch = np.random.RandomState(0).uniform(-1, 1, [3, 28, 28, 1])
            values, predictions = session.run([logits, end_points['Predictions']],
                                              {images: batch})
    assert values.shape == (3, 10)
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose(predictions.sum(axis=1), np.ones(3), rtol=1e-5)


def test_checkpoint_variable_names_exist():
    expected = {
        'LeNet/fc4/weights': (lenet.lenet, lenet.lenet_arg_scope, [1, 28, 28, 1]),
        'CifarNet/logits/biases': (cifarnet.cifarnet, cifarnet.cifarnet_arg_scope, [1, 32, 32, 3]),
        'alexnet_v2/fc8/biases': (alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope,
                                  [1, 224, 224, 3]),
        'vgg_16/conv3/conv3_2/biases': (vgg.vgg_16, vgg.vgg_arg_scope, [1, 224, 224, 3]),
    }
    for name, (builder, arg_scope, shape) in expected.items():
        with tf.Graph().as_default():
            _build(builder, arg_scope, shape)
            assert name in _variable_names()


def test_pre_logits_features_skip_the_logits_layer():
    with tf.Graph().as_default():
        _, features, end_points = _build(lenet.lenet, lenet.lenet_arg_scope, [2, 28, 28, 1],
                                         num_classes=0)
        assert features is end_points['fc3']
        assert not any(v.startswith('LeNet/fc4') for v in _variable_names())
    with tf.Graph().as_default():
        _, features, end_points = _build(vgg.vgg_19, vgg.vgg_arg_scope, [2, 224, 224, 3],
                                         num_classes=None)
        assert features.shape.as_list() == [2, 1, 1, 4096]
        assert 'vgg_19/fc8' not in end_points
        assert not any(v.startswith('vgg_19/fc8') for v in _variable_names())


@pytest.mark.parametrize('kwargs, message', [
    ({'fc_conv_padding': 'valid'}, "fc_conv_padding must be one of VALID, SAME; got 'valid'"),
    ({'num_classes': -1}, 'num_classes must be >= 0 or None; got -1'),
])
def test_vgg_rejects_bad_arguments(kwargs, message):
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=re.escape(message)):
            _build(vgg.vgg_16, vgg.vgg_arg_scope, [1, 224, 224, 3], **kwargs)


def test_vgg_rejects_a_table_of_the_wrong_length():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=re.escape('conv_repeats must be 5 counts >= 1; '
                                                       'got (2, 2, 3)')):
            _build(vgg.vgg, vgg.vgg_arg_scope, [1, 224, 224, 3], conv_repeats=(2, 2, 3))


@pytest.mark.parametrize('builder, arg_scope, shape', [
    (lenet.lenet, lenet.lenet_arg_scope, [1, 28, 28, 1]),
    (cifarnet.cifarnet, cifarnet.cifarnet_arg_scope, [1, 32, 32, 3]),
    (alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope, [1, 224, 224, 3]),
])
def test_negative_class_count_is_rejected(builder, arg_scope, shape):
    with tf.Graph().as_default():
        message = 'num_classes must be >= 0 or None; got -3'
        with pytest.raises(ValueError, match=re.escape(message)):
            _build(builder, arg_scope, shape, num_classes=-3)


# The nets with the fully convolutional head of nets/conv_head.py, and its scopes.
CONV_HEAD_NETS = [
    (alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope, 'alexnet_v2'),
    (vgg.vgg_a, vgg.vgg_arg_scope, 'vgg_a'),
    (vgg.vgg_16, vgg.vgg_arg_scope, 'vgg_16'),
    (vgg.vgg_19, vgg.vgg_arg_scope, 'vgg_19'),
]
HEAD_LAYERS = ('fc6', 'fc7', 'fc8')


def _head_op_types(scope: str) -> dict[str, set[str]]:
    """{layer: the op types built under its name scope} for fc6, fc7 and fc8."""
    types = {layer: set() for layer in HEAD_LAYERS}
    for op in tf.get_default_graph().get_operations():
        for layer in HEAD_LAYERS:
            if op.name.startswith('%s/%s/' % (scope, layer)):
                types[layer].add(op.type)
    return types


@pytest.mark.parametrize('builder, arg_scope, scope', CONV_HEAD_NETS)
def test_head_at_the_default_size_is_matmuls_with_slim_op_names(builder, arg_scope, scope):
    with tf.Graph().as_default():
        _, logits, end_points = _build(builder, arg_scope, [1, 224, 224, 3])
        op_types = _head_op_types(scope)
        assert logits.op.name == scope + '/fc8/squeezed'
        assert end_points[scope + '/fc6'].op.name == scope + '/fc6/Relu'
        assert end_points[scope + '/fc7'].op.name == scope + '/fc7/Relu'
    for layer in HEAD_LAYERS:
        assert 'MatMul' in op_types[layer], layer
        assert 'Conv2D' not in op_types[layer], 'a dead convolution in ' + layer


@pytest.mark.parametrize('size, logits_shape, head_ops', [
    (224, [1, 1, 1, 9], 'MatMul'),
    # pool5 is 8 x 8 for VGG's 7 x 7 fc6: only a convolution slides over it.
    (256, [1, 2, 2, 9], 'Conv2D'),
])
def test_unsqueezed_logits_keep_slim_op_name_on_either_path(size, logits_shape, head_ops):
    with tf.Graph().as_default():
        _, logits, end_points = _build(vgg.vgg_16, vgg.vgg_arg_scope, [1, size, size, 3],
                                       num_classes=9, spatial_squeeze=False)
        op_types = _head_op_types('vgg_16')
        assert logits.op.name == 'vgg_16/fc8/BiasAdd'
        assert logits.shape.as_list() == logits_shape
        assert end_points['vgg_16/fc8'] is logits
    assert all(head_ops in op_types[layer] for layer in HEAD_LAYERS)


def _plain_convolution(scope: str, layer: str, inputs: tf.Tensor, padding: str) -> tf.Tensor:
    """What `slim.conv2d` computes with the head layer's variables, without activation."""
    with tf.variable_scope(scope, reuse=True):
        weights = tf.get_variable(layer + '/weights')
        biases = tf.get_variable(layer + '/biases')
    return tf.nn.bias_add(tf.nn.conv2d(inputs, weights, [1, 1, 1, 1], padding), biases)


@pytest.mark.parametrize('builder, arg_scope, scope', CONV_HEAD_NETS[:2])
def test_head_computes_what_a_plain_convolution_computes(builder, arg_scope, scope):
    with tf.Graph().as_default():
        images, logits, end_points = _build(builder, arg_scope, [2, 224, 224, 3],
                                            num_classes=7, is_training=False)
        fc6, fc7 = end_points[scope + '/fc6'], end_points[scope + '/fc7']
        expected = [
            tf.nn.relu(_plain_convolution(scope, 'fc6', end_points[scope + '/pool5'], 'VALID')),
            tf.nn.relu(_plain_convolution(scope, 'fc7', fc6, 'SAME')),
            tf.squeeze(_plain_convolution(scope, 'fc8', fc7, 'SAME'), [1, 2]),
        ]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            batch = np.random.RandomState(0).uniform(-1, 1, [2, 224, 224, 3])
            computed, expected = session.run([[fc6, fc7, logits], expected], {images: batch})
    for layer, value, reference in zip(HEAD_LAYERS, computed, expected):
        assert value.shape == reference.shape, layer
        assert np.abs(reference).max() > 0, layer
        assert np.abs(value - reference).max() <= 1e-5 * np.abs(reference).max(), layer


def _variables_and_losses() -> dict[str, list]:
    """What a checkpoint and the training loss see of the default graph's variables."""
    facts = {key: [(v.op.name, v.op.type, v.dtype.name, v.shape.as_list())
                   for v in tf.get_collection(key)]
             for key in (tf.GraphKeys.GLOBAL_VARIABLES, tf.GraphKeys.TRAINABLE_VARIABLES,
                         tf.GraphKeys.MODEL_VARIABLES)}
    facts['regularization losses'] = [loss.op.name
                                      for loss in tf.losses.get_regularization_losses()]
    return facts


@pytest.mark.parametrize('builder, arg_scope, scope', CONV_HEAD_NETS[:2])
def test_matmul_and_convolution_paths_make_the_same_variables(builder, arg_scope, scope):
    built = []
    # 224 x 224 takes the matmuls, 288 x 288 (a larger last map) the convolutions.
    for size in (224, 288):
        with tf.Graph().as_default():
            _build(builder, functools.partial(arg_scope, weight_decay=0.01), [1, size, size, 3],
                   spatial_squeeze=False)
            assert ('Conv2D' in _head_op_types(scope)['fc6']) == (size == 288)
            built.append(_variables_and_losses())
    assert built[0] == built[1]


def test_matmul_head_regularises_reused_variables_once():
    with tf.Graph().as_default():
        _build(vgg.vgg_a, functools.partial(vgg.vgg_arg_scope, weight_decay=0.01),
               [1, 224, 224, 3])
        count = len(tf.losses.get_regularization_losses())
        _build(vgg.vgg_a, functools.partial(vgg.vgg_arg_scope, weight_decay=0.01),
               [1, 224, 224, 3], reuse=True)
        assert len(tf.losses.get_regularization_losses()) == count == 11


def test_batch_normalised_head_takes_the_convolution():
    """The matmul leaves batch norm to `slim.conv2d`, which gives fc6 and fc7 their statistics."""
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 224, 224, 3])
        with slim.arg_scope(vgg.vgg_arg_scope()):
            with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm):
                vgg.vgg(images, (1, 1, 1, 1, 1), num_classes=3, scope='vgg_bn')
        names = _variable_names()
        op_types = _head_op_types('vgg_bn')
    assert {'vgg_bn/fc6/BatchNorm/moving_mean', 'vgg_bn/fc7/BatchNorm/moving_mean'} <= names
    assert 'Conv2D' in op_types['fc6'] and 'Conv2D' in op_types['fc7']
    # fc8 is never normalised, so it keeps the matmul.
    assert 'MatMul' in op_types['fc8'] and 'vgg_bn/fc8/biases' in names


def test_alexnet_reuses_variables_through_the_enclosing_scope():
    with tf.Graph().as_default():
        _build(alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope, [1, 224, 224, 3])
        count = len(tf.global_variables())
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            _build(alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope, [1, 256, 256, 3],
                   global_pool=True)
        assert len(tf.global_variables()) == count
