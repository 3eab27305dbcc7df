"""The fully convolutional classifier head that AlexNet v2 and the VGG nets share.

Both nets end in fully connected layers written as convolutions: fc6 (a
kernel as large as the last feature map), fc7 and the fc8 logits (1 x 1),
with dropout before fc7 and fc8. Written as convolutions, the head also
slides over images larger than the default size, giving a map of class
scores, or one score per image with `global_pool`.

As in TF-Slim, the head adds no `Predictions` end point: apply a softmax to
the logits for probabilities.
"""

import inspect
from collections.abc import Callable

import tensorflow.compat.v1 as tf

from slim_classifier.compat import arg_scope_func_key, slim

_FC_DEPTH = 4096

# What the Keras layer inside slim.conv2d calls the variables that slim renames.
_LAYER_VARIABLE_NAMES = {'weights': 'kernel', 'biases': 'bias'}


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
                    logits_biases_initializer: Callable[..., tf.Tensor] | None = None,
                    ) -> tf.Tensor:
    """Adds fc6, dropout6, fc7, the optional global pool, dropout7 and the fc8 logits.

    Call it inside the net's variable scope: the layers are named `fc6`,
    `dropout6`, `fc7`, `global_pool`, `dropout7` and `fc8` below it, and
    their ops as `slim.conv2d` names them (`fc7/Relu`, `fc8/BiasAdd`, and
    `fc8/squeezed` for the squeezed logits).

    Args:
      net: the last feature map [batch, height, width, channels].
      end_points: the net's end points; `fc6`, `fc7` and `fc8` are added under
        `scope_name`, `global_pool` without it.
      scope_name: the full name of the net's variable scope.
      fc6_kernel_size: [height, width] of the fc6 kernel.
      fc6_padding: padding of fc6, 'VALID' or 'SAME'.
      num_classes: number of logits; 0 or None stops after fc7 (and the
        global pool).
      is_training: apply dropout.
      dropout_keep_prob: fraction of `fc6` and `fc7` activations kept while training.
      global_pool: average `fc7` over its spatial extent.
      spatial_squeeze: squeeze the 1 x 1 logits to [batch, num_classes].
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
    return add('fc8', logits)


def _fully_connected_conv(net: tf.Tensor, num_outputs: int, kernel_size: list[int],
                          padding: str, scope: str, **options) -> tf.Tensor:
    """`slim.conv2d`, computed as a matrix multiply when the kernel covers the whole map.

    oneDNN runs a k x k VALID convolution over a k x k map (VGG's fc6, and
    the 1 x 1 fc7 and fc8 at the default image size) markedly slower than the
    same product as one matmul. Everything else (a larger map, an unknown
    size, SAME padding over a larger map, batch norm, dilation, NCHW) takes
    `slim.conv2d` itself.
    """
    settings = _conv2d_settings(options)
    if _kernel_covers_map(net, kernel_size, padding) and _matmul_reproduces(settings):
        return _conv_as_matmul(net, num_outputs, kernel_size, scope, settings)
    return slim.conv2d(net, num_outputs, kernel_size, padding=padding, scope=scope, **options)


def _conv2d_settings(options: dict) -> dict:
    """The arguments `slim.conv2d(**options)` would run with: its defaults,
    overridden by the enclosing arg_scopes, overridden by `options`."""
    defaults = {name: parameter.default
                for name, parameter in inspect.signature(slim.conv2d).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    in_scope = slim.current_arg_scope().get(arg_scope_func_key(slim.conv2d), {})
    return {**defaults, **in_scope, **options}


def _kernel_covers_map(net: tf.Tensor, kernel_size: list[int], padding: str) -> bool:
    """Whether the convolution sees the whole known map once: a 1 x 1 output."""
    height, width, channels = net.shape.as_list()[1:4]
    if channels is None or [height, width] != list(kernel_size):
        return False
    return padding == 'VALID' or list(kernel_size) == [1, 1]


def _matmul_reproduces(settings: dict) -> bool:
    """Whether `_conv_as_matmul` computes what `slim.conv2d` would with `settings`."""
    return (settings['normalizer_fn'] is None
            and settings['data_format'] in (None, 'NHWC')
            and settings['rate'] in (1, [1, 1], (1, 1)))


def _conv_as_matmul(net: tf.Tensor, num_outputs: int, kernel_size: list[int], scope: str,
                    settings: dict) -> tf.Tensor:
    """A convolution whose kernel covers the map, as one matmul on its variables.

    The variables are the ones `slim.conv2d` makes: `weights` [kh, kw, in, out]
    and `biases` [out], model variables with the same initialisers,
    regulariser and collections, so the public checkpoints restore unchanged.
    The output is [batch, 1, 1, out] and its ops carry `slim.conv2d`'s names
    (`BiasAdd`, then the activation's, such as `Relu`).
    """
    height, width, channels = net.shape.as_list()[1:4]
    dtype = net.dtype.base_dtype
    with tf.variable_scope(scope, 'Conv', [net], reuse=settings['reuse']) as layer_scope:
        weights = _layer_variable('weights', list(kernel_size) + [channels, num_outputs],
                                  dtype, settings)
        biases = None
        if settings['biases_initializer'] is not None:
            biases = _layer_variable('biases', [num_outputs], dtype, settings)
        flat = tf.reshape(net, [-1, height * width * channels])
        outputs = tf.matmul(flat, tf.reshape(weights, [-1, num_outputs]))
        outputs = tf.reshape(outputs, [-1, 1, 1, num_outputs])
        if biases is not None:
            outputs = tf.nn.bias_add(outputs, biases)
        if settings['activation_fn'] is not None:
            outputs = settings['activation_fn'](outputs)
        return slim.utils.collect_named_outputs(settings['outputs_collections'],
                                                layer_scope.name, outputs)


def _layer_variable(kind: str, shape: list[int], dtype: tf.DType, settings: dict) -> tf.Variable:
    """The `weights` or `biases` model variable and its regularisation loss, as
    `slim.conv2d` makes them."""
    existing = {variable.ref() for variable in tf.global_variables()}
    variable = slim.model_variable(
        kind, shape=shape, dtype=dtype, initializer=settings[kind + '_initializer'],
        collections=slim.utils.get_variable_collections(settings['variables_collections'], kind),
        trainable=settings['trainable'])
    regularizer = settings[kind + '_regularizer']
    if regularizer is not None and variable.ref() not in existing:
        # slim.conv2d's layer regularises a variable once, when it creates it, under
        # the layer's own name for it ('kernel' or 'bias').
        with tf.name_scope(_LAYER_VARIABLE_NAMES[kind] + '/Regularizer'):
            loss = regularizer(variable)
        if loss is not None:
            tf.add_to_collection(tf.GraphKeys.REGULARIZATION_LOSSES, loss)
    return variable


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
