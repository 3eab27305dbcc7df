"""Inception v4, as in "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning" (Szegedy et al., 2016,
https://arxiv.org/abs/1602.07261).

Variable and end point names follow the public TF-Slim checkpoint
(inception_v4_2016_09_09), so that it restores without renaming.
"""

import contextlib
import functools
from collections.abc import Iterator

import tensorflow.compat.v1 as tf

from nets import inception_utils
from nets.inception_utils import Layer
from slim_classifier.compat import slim

# As in TF-Slim, every Inception net has its `inception_vN_arg_scope`: the shared one.
inception_v4_arg_scope = inception_utils.inception_arg_scope

_BASE_SCOPE = 'InceptionV4'
# The kernel that turns the auxiliary head's 5 x 5 grid (at 299 x 299 input)
# into one vector, used when the grid size is unknown at graph-building time.


@contextlib.contextmanager
def _same_padding_scope(scope: str | tf.VariableScope | None, default_name: str,
                        inputs: tf.Tensor, reuse: bool | None = None) -> Iterator[None]:
    """A variable scope whose convolutions and pools default to stride 1, SAME padding.

    Args:
      scope: variable scope (name or `tf.VariableScope`), or None for `default_name`.
      default_name: the scope's name when `scope` is None.
      inputs: the scope's input, so its name scope joins the input's graph.
      reuse: reuse the variables of an earlier build under `scope`.

    Yields:
      Nothing; layers built inside take the scope and the defaults.
    """
    with slim.arg_scope([slim.conv2d, slim.avg_pool2d, slim.max_pool2d],
                        stride=1, padding='SAME'):
        with tf.variable_scope(scope, default_name, [inputs], reuse=reuse):
            yield


def block_inception_a(inputs: tf.Tensor, scope: str | None = None,
                      reuse: bool | None = None) -> tf.Tensor:
    """Inception-A (35 x 35 x 384 in and out): Mixed_5b..5e.

    Args:
      inputs: a [batch, 35, 35, 384] tensor at the default image size.
      scope: variable scope; defaults to 'BlockInceptionA'.
      reuse: reuse the variables of an earlier build under `scope`.

    Returns:
      The concatenated branches, 384 channels.
    """
    with _same_padding_scope(scope, 'BlockInceptionA', inputs, reuse):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(inputs, 96, [1, 1], scope='Conv2d_0a_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(inputs, 64, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 96, [3, 3], scope='Conv2d_0b_3x3')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(inputs, 64, [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, 96, [3, 3], scope='Conv2d_0b_3x3')
            branch_2 = slim.conv2d(branch_2, 96, [3, 3], scope='Conv2d_0c_3x3')
        with tf.variable_scope('Branch_3'):
            branch_3 = slim.avg_pool2d(inputs, [3, 3], scope='AvgPool_0a_3x3')
            branch_3 = slim.conv2d(branch_3, 96, [1, 1], scope='Conv2d_0b_1x1')
        return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


def block_reduction_a(inputs: tf.Tensor, scope: str | None = None,
                      reuse: bool | None = None) -> tf.Tensor:
    """Reduction-A (35 x 35 x 384 to 17 x 17 x 1024): Mixed_6a.

    Args:
      inputs: a [batch, 35, 35, 384] tensor at the default image size.
      scope: variable scope; defaults to 'BlockReductionA'.
      reuse: reuse the variables of an earlier build under `scope`.

    Returns:
      The concatenated branches, 1024 channels, on a grid about half as wide.
    """
    with _same_padding_scope(scope, 'BlockReductionA', inputs, reuse):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(inputs, 384, [3, 3], stride=2, padding='VALID',
                                   scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(inputs, 192, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 224, [3, 3], scope='Conv2d_0b_3x3')
            branch_1 = slim.conv2d(branch_1, 256, [3, 3], stride=2, padding='VALID',
                                   scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.max_pool2d(inputs, [3, 3], stride=2, padding='VALID',
                                       scope='MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1, branch_2], axis=3)


def block_inception_b(inputs: tf.Tensor, scope: str | None = None,
                      reuse: bool | None = None) -> tf.Tensor:
    """Inception-B (17 x 17 x 1024 in and out): Mixed_6b..6h.

    Args:
      inputs: a [batch, 17, 17, 1024] tensor at the default image size.
      scope: variable scope; defaults to 'BlockInceptionB'.
      reuse: reuse the variables of an earlier build under `scope`.

    Returns:
      The concatenated branches, 1024 channels.
    """
    with _same_padding_scope(scope, 'BlockInceptionB', inputs, reuse):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(inputs, 384, [1, 1], scope='Conv2d_0a_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(inputs, 192, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 224, [1, 7], scope='Conv2d_0b_1x7')
            branch_1 = slim.conv2d(branch_1, 256, [7, 1], scope='Conv2d_0c_7x1')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(inputs, 192, [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, 192, [7, 1], scope='Conv2d_0b_7x1')
            branch_2 = slim.conv2d(branch_2, 224, [1, 7], scope='Conv2d_0c_1x7')
            branch_2 = slim.conv2d(branch_2, 224, [7, 1], scope='Conv2d_0d_7x1')
            branch_2 = slim.conv2d(branch_2, 256, [1, 7], scope='Conv2d_0e_1x7')
        with tf.variable_scope('Branch_3'):
            branch_3 = slim.avg_pool2d(inputs, [3, 3], scope='AvgPool_0a_3x3')
            branch_3 = slim.conv2d(branch_3, 128, [1, 1], scope='Conv2d_0b_1x1')
        return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


def block_reduction_b(inputs: tf.Tensor, scope: str | None = None,
                      reuse: bool | None = None) -> tf.Tensor:
    """Reduction-B (17 x 17 x 1024 to 8 x 8 x 1536): Mixed_7a.

    Args:
      inputs: a [batch, 17, 17, 1024] tensor at the default image size.
      scope: variable scope; defaults to 'BlockReductionB'.
      reuse: reuse the variables of an earlier build under `scope`.

    Returns:
      The concatenated branches, 1536 channels, on a grid about half as wide.
    """
    with _same_padding_scope(scope, 'BlockReductionB', inputs, reuse):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(inputs, 192, [1, 1], scope='Conv2d_0a_1x1')
            branch_0 = slim.conv2d(branch_0, 192, [3, 3], stride=2, padding='VALID',
                                   scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(inputs, 256, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 256, [1, 7], scope='Conv2d_0b_1x7')
            branch_1 = slim.conv2d(branch_1, 320, [7, 1], scope='Conv2d_0c_7x1')
            branch_1 = slim.conv2d(branch_1, 320, [3, 3], stride=2, padding='VALID',
                                   scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.max_pool2d(inputs, [3, 3], stride=2, padding='VALID',
                                       scope='MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1, branch_2], axis=3)


def block_inception_c(inputs: tf.Tensor, scope: str | None = None,
                      reuse: bool | None = None) -> tf.Tensor:
    """Inception-C (8 x 8 x 1536 in and out): Mixed_7b..7d.

    Args:
      inputs: a [batch, 8, 8, 1536] tensor at the default image size.
      scope: variable scope; defaults to 'BlockInceptionC'.
      reuse: reuse the variables of an earlier build under `scope`.

    Returns:
      The concatenated branches, 1536 channels.
    """
    with _same_padding_scope(scope, 'BlockInceptionC', inputs, reuse):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(inputs, 256, [1, 1], scope='Conv2d_0a_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(inputs, 384, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = inception_utils.split_1x3_3x1(branch_1, 256, 'Conv2d_0b_1x3',
                                                     'Conv2d_0c_3x1')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(inputs, 384, [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, 448, [3, 1], scope='Conv2d_0b_3x1')
            branch_2 = slim.conv2d(branch_2, 512, [1, 3], scope='Conv2d_0c_1x3')
            branch_2 = inception_utils.split_1x3_3x1(branch_2, 256, 'Conv2d_0d_1x3',
                                                     'Conv2d_0e_3x1')
        with tf.variable_scope('Branch_3'):
            branch_3 = slim.avg_pool2d(inputs, [3, 3], scope='AvgPool_0a_3x3')
            branch_3 = slim.conv2d(branch_3, 256, [1, 1], scope='Conv2d_0b_1x1')
        return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


def _stem_mixed_3a(net: tf.Tensor, scope: str) -> tf.Tensor:
    """Mixed_3a: a strided max pool beside a strided 3x3 convolution."""
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.max_pool2d(net, [3, 3], stride=2, padding='VALID',
                                       scope='MaxPool_0a_3x3')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, 96, [3, 3], stride=2, padding='VALID',
                                   scope='Conv2d_0a_3x3')
        return tf.concat([branch_0, branch_1], axis=3)


def _stem_mixed_4a(net: tf.Tensor, scope: str) -> tf.Tensor:
    """Mixed_4a: two 3x3 convolutions, one preceded by a factorised 7x7."""
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, 64, [1, 1], scope='Conv2d_0a_1x1')
            branch_0 = slim.conv2d(branch_0, 96, [3, 3], padding='VALID',
                                   scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, 64, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 64, [1, 7], scope='Conv2d_0b_1x7')
            branch_1 = slim.conv2d(branch_1, 64, [7, 1], scope='Conv2d_0c_7x1')
            branch_1 = slim.conv2d(branch_1, 96, [3, 3], padding='VALID',
                                   scope='Conv2d_1a_3x3')
        return tf.concat([branch_0, branch_1], axis=3)


def _stem_mixed_5a(net: tf.Tensor, scope: str) -> tf.Tensor:
    """Mixed_5a: a strided 3x3 convolution beside a strided max pool."""
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, 192, [3, 3], stride=2, padding='VALID',
                                   scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.max_pool2d(net, [3, 3], stride=2, padding='VALID',
                                       scope='MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1], axis=3)


def _repeated(block: Layer, stage: str, count: int) -> list[tuple[str, Layer]]:
    """`count` copies of `block` named Mixed_{stage}b, Mixed_{stage}c, ..."""
    return [('Mixed_%s%s' % (stage, chr(ord('b') + index)), block)
            for index in range(count)]


def _conv_3x3(num_outputs: int, **kwargs) -> Layer:
    """A 3x3 stem convolution."""
    return functools.partial(slim.conv2d, num_outputs=num_outputs, kernel_size=[3, 3],
                             **kwargs)


# The base network, input to output, as (end point name, layer).
_LAYERS: tuple[tuple[str, Layer], ...] = (
    # 299 x 299 x 3
    ('Conv2d_1a_3x3', _conv_3x3(32, stride=2, padding='VALID')),
    # 149 x 149 x 32
    ('Conv2d_2a_3x3', _conv_3x3(32, padding='VALID')),
    # 147 x 147 x 32
    ('Conv2d_2b_3x3', _conv_3x3(64)),
    # 147 x 147 x 64
    ('Mixed_3a', _stem_mixed_3a),
    # 73 x 73 x 160
    ('Mixed_4a', _stem_mixed_4a),
    # 71 x 71 x 192
    ('Mixed_5a', _stem_mixed_5a),
    # 35 x 35 x 384
    *_repeated(block_inception_a, '5', 4),
    # 35 x 35 x 384
    ('Mixed_6a', block_reduction_a),
    # 17 x 17 x 1024
    *_repeated(block_inception_b, '6', 7),
    # 17 x 17 x 1024
    ('Mixed_7a', block_reduction_b),
    # 8 x 8 x 1536
    *_repeated(block_inception_c, '7', 3),
    # 8 x 8 x 1536
)

END_POINTS = tuple(name for name, _ in _LAYERS)


def inception_v4_base(inputs: tf.Tensor, final_endpoint: str = 'Mixed_7d',
                      scope: str | tf.VariableScope | None = None,
                      ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Inception v4 from its input up to `final_endpoint`.

    Args:
      inputs: images, a float tensor [batch, height, width, channels].
      final_endpoint: the last layer to build, one of `END_POINTS`.
      scope: variable scope; defaults to 'InceptionV4'.

    Returns:
      The output of `final_endpoint` and a dict from end point name to tensor
      holding every layer built.

    Raises:
      ValueError: if `final_endpoint` is not one of `END_POINTS`.
    """
    layers = inception_utils.layers_up_to(_LAYERS, final_endpoint)
    with _same_padding_scope(scope, _BASE_SCOPE, inputs):
        return inception_utils.build_layers(inputs, layers)


def _global_average(net: tf.Tensor) -> tf.Tensor:
    """Averages each channel over the whole grid, keeping 1 x 1 spatial dims."""
    grid = net.get_shape()[1:3]
    if grid.is_fully_defined():
        return slim.avg_pool2d(net, grid.as_list(), padding='VALID', scope='AvgPool_1a')
    return tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')


def inception_v4(inputs: tf.Tensor,
                 num_classes: int | None = 1001,
                 is_training: bool = True,
                 dropout_keep_prob: float = 0.8,
                 reuse: bool | None = None,
                 scope: str = 'InceptionV4',
                 create_aux_logits: bool = True,
                 ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Inception v4 classifier; the public checkpoint restores into it as is.

    The final grid is always averaged as a whole, so any input size that
    survives the strided layers works, known or not when the graph is built.

    Args:
      inputs: images, a float tensor [batch, height, width, channels]; 299 x 299
        is the size the public checkpoint was trained at.
      num_classes: number of logits (the public checkpoint has 1001, class 0
        being 'background'); 0 or None skips the logits layer (and the
        auxiliary head) and returns the pooled features [batch, 1, 1, 1536].
      is_training: training mode for batch norm and dropout.
      dropout_keep_prob: fraction of pre-logits activations kept by dropout.
      reuse: reuse the variables of an earlier build under `scope`.
      scope: variable scope of the whole net.
      create_aux_logits: build the auxiliary classifier on Mixed_6h.

    Returns:
      The logits [batch, num_classes] (or the pooled features, see
      `num_classes`) and a dict of end points, including 'AuxLogits',
      'global_pool', 'PreLogitsFlatten', 'Logits' and 'Predictions' when they
      are built.
    """
    with inception_utils.classifier_scope(scope, _BASE_SCOPE, inputs, reuse,
                                          is_training) as net_scope:
        net, end_points = inception_v4_base(inputs, scope=net_scope)
        if create_aux_logits and num_classes:
            end_points['AuxLogits'] = inception_utils.aux_logits(
                end_points['Mixed_6h'], num_classes, pool_scope='AvgPool_1a_5x5',
                conv_scope='Conv2d_2a', logits_scope='Aux_logits')
        with tf.variable_scope('Logits'):
            # 8 x 8 x 1536
            net = _global_average(net)
            end_points['global_pool'] = net
            if not num_classes:
                return net, end_points
            # 1 x 1 x 1536
            net = slim.dropout(net, dropout_keep_prob, scope='Dropout_1b')
            net = slim.flatten(net, scope='PreLogitsFlatten')
            end_points['PreLogitsFlatten'] = net
            # 1536
            logits = slim.fully_connected(net, num_classes, activation_fn=None, scope='Logits')
            end_points['Logits'] = logits
            end_points['Predictions'] = tf.nn.softmax(logits, name='Predictions')
    return logits, end_points
