"""The fully convolutional classifier head that AlexNet v2 and the VGG nets share.

Both nets end in fully connected layers written as convolutions: fc6 (a
kernel as large as the last feature map), fc7 and the fc8 logits (1 x 1),
with dropout before fc7 and fc8. Written as convolutions, the head also
slides over images larger than the default size, giving a map of class
scores, or one score per image with `global_pool`.
"""

from collections.abc import Callable

import tensorflow.compat.v1 as tf

from slim_compat import slim
from tf_slim.ops import arg_scope as arg_scope_lib

_FC_DEPTH = 4096


def classifier_head(net: tf.Tensor,
                    end_points: dict[str, tf.Tensor],
                    scope_name: str,
                    *,
                    fc6_kernel_size: list[int],
                    fc6_padding: str,
                    num_classes: int | None,
                    is_training: bool,
                    dropout_keep_prob: float,
                    global_pool: bool,
                    spatial_squeeze: bool,
                    prediction_fn: Callable[..., tf.Tensor],
                    logits_biases_initializer: Callable[..., tf.Tensor] | None = None,
                    ) -> tf.Tensor:
    """Adds fc6, dropout6, fc7, the optional global pool, dropout7 and the fc8 logits.

    Call it inside the net's variable scope: the layers are named `fc6`,
    `dropout6`, `fc7`, `global_pool`, `dropout7` and `fc8` below it.

    Args:
      net: the last feature map [batch, height, width, channels].
      end_points: the net's end points; `fc6`, `fc7` and `fc8` are added under
        `scope_name`, `global_pool` and `Predictions` without it.
      scope_name: the full name of the net's variable scope.
      fc6_kernel_size: [height, width] of the fc6 kernel.
      fc6_padding: padding of fc6, 'VALID' or 'SAME'.
      num_classes: number of logits; 0 or None stops after fc7 (and the
        global pool).
      is_training: apply dropout.
      dropout_keep_prob: fraction of `fc6` and `fc7` activations kept while training.
      global_pool: average `fc7` over its spatial extent.
      spatial_squeeze: squeeze the 1 x 1 logits to [batch, num_classes].
      prediction_fn: turns the logits into the `Predictions` end point.
      logits_biases_initializer: the fc8 biases' initializer; None keeps the
        one of the enclosing arg_scope.

    Returns:
      The logits, [batch, num_classes] when squeezed and 4-D otherwise; or,
      without num_classes, the `fc7` activations (or their global average).

    Raises:
      ValueError: if spatial_squeeze is asked of logits whose known height or
        width is not 1.
    """
    def add(name: str, tensor: tf.Tensor) -> tf.Tensor:
        end_points['%s/%s' % (scope_name, name)] = tensor
        return tensor

    net = add('fc6', _fully_connected_conv(net, _FC_DEPTH, fc6_kernel_size, fc6_padding, 'fc6'))
    net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope='dropout6')
    net = add('fc7', _fully_connected_conv(net, _FC_DEPTH, [1, 1], 'SAME', 'fc7'))
    if global_pool:
        net = end_points['global_pool'] = tf.reduce_mean(
            net, [1, 2], keepdims=True, name='global_pool')
    if not num_classes:
        return net
    net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope='dropout7')
    logits_options = {}
    if logits_biases_initializer is not None:
        # Passed only when given: an explicit None would drop the biases altogether.
        logits_options['biases_initializer'] = logits_biases_initializer
    logits = _fully_connected_conv(net, num_classes, [1, 1], 'SAME', 'fc8', activation_fn=None,
                                   normalizer_fn=None, **logits_options)
    if spatial_squeeze:
        logits = squeeze_spatial(logits, name='fc8/squeezed')
    add('fc8', logits)
    end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits


def _fully_connected_conv(net: tf.Tensor, num_outputs: int, kernel_size: list[int],
                          padding: str, scope: str, **options) -> tf.Tensor:
    """`slim.conv2d`, computed as a matrix multiply when the kernel covers the whole map.

    The variables are those `slim.conv2d` makes (same names, shapes, initialisers and
    regularisers from the arg_scope), so the public checkpoints restore unchanged. Only the
    arithmetic differs: oneDNN runs a k x k VALID convolution over a k x k map (VGG's fc6,
    and the 1 x 1 fc7 and fc8) markedly slower than the same product as one matmul. The
    convolution built alongside is never run: nothing consumes its output.
    """
    conv = slim.conv2d(net, num_outputs, kernel_size, padding=padding, scope=scope, **options)
    height, width, channels = net.shape.as_list()[1:4]
    settings = {**_conv2d_arg_scope(), **options}
    covers_map = [height, width] == list(kernel_size) and (
        padding == 'VALID' or list(kernel_size) == [1, 1])
    if not covers_map or channels is None or settings.get('normalizer_fn') is not None:
        return conv
    with tf.variable_scope(scope, reuse=True):
        weights = tf.get_variable('weights')
        has_biases = settings.get('biases_initializer', True) is not None
        biases = tf.get_variable('biases') if has_biases else None
    with tf.name_scope(conv.op.name.rsplit('/', 1)[0] + '/dense/'):
        flat = tf.reshape(net, [-1, height * width * channels])
        outputs = tf.matmul(flat, tf.reshape(weights, [-1, num_outputs]))
        if biases is not None:
            outputs = tf.nn.bias_add(outputs, biases)
        activation_fn = settings.get('activation_fn', tf.nn.relu)
        if activation_fn is not None:
            outputs = activation_fn(outputs)
        return tf.reshape(outputs, [-1, 1, 1, num_outputs])


def _conv2d_arg_scope() -> dict:
    """The keyword arguments the enclosing arg_scopes give `slim.conv2d`."""
    key = arg_scope_lib.arg_scope_func_key(slim.conv2d)
    return dict(slim.current_arg_scope().get(key, {}))


def squeeze_spatial(logits: tf.Tensor, name: str) -> tf.Tensor:
    """Squeezes 1 x 1 logits [batch, 1, 1, classes] to [batch, classes].

    Args:
      logits: the 4-D output of a 1 x 1 logits convolution.
      name: the name of the squeeze op (slim's is `fc8/squeezed`).

    Returns:
      The logits as [batch, classes].

    Raises:
      ValueError: if the height or width of `logits` is known and not 1.
    """
    height, width = logits.shape.as_list()[1:3]
    if height not in (None, 1) or width not in (None, 1):
        raise ValueError('spatial_squeeze needs 1 x 1 logits; got %s x %s logits (pass '
                         'global_pool=True or spatial_squeeze=False)' % (height, width))
    return tf.squeeze(logits, [1, 2], name=name)
