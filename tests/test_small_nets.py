"""Specifics of LeNet, CifarNet, AlexNet v2 and VGG beyond the shared net suite."""

import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from slim_compat import slim
from nets import alexnet, cifarnet, lenet, vgg


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
        assert end_points['Predictions'].shape.as_list() == [2, 6]
        assert end_points['global_pool'].shape.as_list() == [2, 1, 1, 4096]


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
