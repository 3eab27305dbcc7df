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

    net = add('fc6', slim.conv2d(net, _FC_DEPTH, fc6_kernel_size, padding=fc6_padding,
                                 scope='fc6'))
    net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope='dropout6')
    net = add('fc7', slim.conv2d(net, _FC_DEPTH, [1, 1], scope='fc7'))
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
    logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                         scope='fc8', **logits_options)
    if spatial_squeeze:
        logits = squeeze_spatial(logits, name='fc8/squeezed')
    add('fc8', logits)
    end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits


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
