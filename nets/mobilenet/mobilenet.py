"""The one builder of every MobileNet v2 / v3 / EdgeTPU net, driven by a table.

A net is a `ConvDefs`: an ordered table of layers (`Op`) plus the arg_scope
defaults its layers share. `mobilenet_base` applies the table layer by layer
(layer i is end point 'layer_i'; an inverted bottleneck adds
'layer_i/expansion_output', 'layer_i/depthwise_output' and 'layer_i/output'),
scaling every layer's channels by the depth multiplier and, when an output
stride is asked for, replacing later strides by dilation. `mobilenet` adds
the classification head (global average pool, dropout, 1x1 convolution
logits 'Logits/output', 'Predictions').

Scope names follow TF-Slim's (`Conv`, `expanded_conv_3/depthwise`,
`Logits/Conv2d_1c_1x1`) so the public checkpoints restore without renaming.
"""

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import tensorflow.compat.v1 as tf

from nets.mobilenet import conv_blocks
from slim_classifier.compat import slim

# The functions an arg_scope entry sets defaults for, and those defaults.
ArgScopeEntry = tuple[tuple[Callable[..., Any], ...], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Op:
    """One layer of a table: `fn(net, stride=..., **params)`.

    `params['num_outputs']`, when present, is the layer's depth at multiplier
    1 and is scaled by the depth multiplier unless `scales_with_multiplier`
    is False.
    """
    fn: Callable[..., tf.Tensor]
    params: Mapping[str, Any]
    # An inverted bottleneck reports its inner end points, receives the
    # dilation rate and pads itself.
    is_block: bool = False
    scales_with_multiplier: bool = True


@dataclasses.dataclass(frozen=True)
class ConvDefs:
    """A whole net: its layers in order and the defaults they are built under."""
    spec: tuple[Op, ...]
    # Applied in order, so a later entry overrides an earlier one.
    defaults: tuple[ArgScopeEntry, ...] = ()
    # Every scaled depth is rounded to a multiple of `divisible_by`, at least `min_depth`.
    divisible_by: int = 8
    min_depth: int = 8

    def with_defaults(self, functions: Sequence[Callable[..., Any]], **params: Any) -> 'ConvDefs':
        """The same net with `params` as defaults of `functions`, overriding the table's."""
        return dataclasses.replace(
            self, defaults=self.defaults + ((tuple(functions), dict(params)),))

    def with_last_layer_unscaled(self) -> 'ConvDefs':
        """The same net whose last layer keeps its depth at every depth multiplier."""
        last = dataclasses.replace(self.spec[-1], scales_with_multiplier=False)
        return dataclasses.replace(self, spec=self.spec[:-1] + (last,))


def op(fn: Callable[..., tf.Tensor], **params: Any) -> Op:
    """A plain layer of a table, e.g. `op(slim.conv2d, num_outputs=32, kernel_size=[3, 3])`."""
    return Op(fn, params)


def bottleneck(expansion_factor: float, num_outputs: int, kernel_size: int = 3,
               stride: int = 1, **block_params: Any) -> Op:
    """An inverted bottleneck layer (`conv_blocks.expanded_conv`) of a table.

    Args:
      expansion_factor: expanded channels per input channel; 1 means no expansion.
      num_outputs: output channels at depth multiplier 1.
      kernel_size: side of the depthwise (or fused) convolution.
      stride: stride of the depthwise (or fused) convolution.
      **block_params: the other arguments of `expanded_conv`.

    Returns:
      The table row.
    """
    # Rounding a factor of 1 up to a multiple of 8 would add an expansion.
    divisible_by = 1 if expansion_factor == 1 else 8
    params = dict(expansion_size=conv_blocks.expand_input_by_factor(expansion_factor,
                                                                    divisible_by),
                  num_outputs=num_outputs, kernel_size=(kernel_size, kernel_size),
                  stride=stride, **block_params)
    return Op(conv_blocks.expanded_conv, params, is_block=True)


def named_variant(builder: Callable[..., Any], name: str, doc: str,
                  **bound: Any) -> functools.partial:
    """`builder` with some arguments bound, named and documented as a net of its own.

    Args:
      builder: a net builder with a `default_image_size` attribute.
      name: the variant's `__name__`.
      doc: the variant's docstring.
      **bound: the arguments the variant fixes (they stay overridable).

    Returns:
      The variant, with the builder's `default_image_size`.
    """
    variant = functools.partial(builder, **bound)
    variant.__name__ = name
    variant.__doc__ = doc
    variant.default_image_size = builder.default_image_size
    return variant


@contextlib.contextmanager
def _arg_scopes(entries: Sequence[ArgScopeEntry]) -> Iterator[None]:
    """Opens one slim.arg_scope per entry, in order."""
    with contextlib.ExitStack() as stack:
        for functions, params in entries:
            stack.enter_context(slim.arg_scope(list(functions), **params))
        yield


@contextlib.contextmanager
def _net_scope(scope: str | tf.VariableScope | None,
               inputs: tf.Tensor) -> Iterator[tf.VariableScope]:
    """Opens (or re-enters) the net's variable scope with its original name scope.

    `mobilenet` opens the scope and hands it to `mobilenet_base`; re-entering
    the name scope keeps op names under 'MobilenetV2/', not 'MobilenetV2_1/'.
    """
    with tf.variable_scope(scope, 'Mobilenet', [inputs]) as net_scope, \
            tf.name_scope(net_scope.original_name_scope):
        yield net_scope


def _check_base_arguments(conv_defs: ConvDefs, multiplier: float, final_endpoint: str | None,
                          output_stride: int | None) -> None:
    """Raises ValueError naming the first argument of `mobilenet_base` out of range."""
    if multiplier <= 0:
        raise ValueError('multiplier must be > 0; got %r' % (multiplier,))
    if output_stride is not None and (output_stride < 1 or
                                      (output_stride > 1 and output_stride % 2)):
        raise ValueError('output_stride must be None, 1 or a positive multiple of 2; got %r'
                         % (output_stride,))
    names = ['layer_%d' % i for i in range(1, len(conv_defs.spec) + 1)]
    if final_endpoint is not None and final_endpoint not in names:
        raise ValueError('final_endpoint must be one of layer_1 ... layer_%d; got %r'
                         % (len(names), final_endpoint))


def _scaled_params(layer: Op, conv_defs: ConvDefs, multiplier: float) -> dict[str, Any]:
    """The layer's params with its depth scaled by `multiplier`."""
    params = dict(layer.params)
    if layer.scales_with_multiplier and 'num_outputs' in params:
        params['num_outputs'] = conv_blocks.make_divisible(
            params['num_outputs'] * multiplier, conv_defs.divisible_by, conv_defs.min_depth)
    return params


def _apply_layer(net: tf.Tensor, layer: Op, params: dict[str, Any], rate: int,
                 use_explicit_padding: bool,
                 inner_end_points: dict[str, tf.Tensor]) -> tf.Tensor:
    """Builds one layer with dilation `rate`; a block fills `inner_end_points`."""
    if layer.is_block:
        return layer.fn(net, rate=rate, use_explicit_padding=use_explicit_padding,
                        endpoints=inner_end_points, **params)
    kernel_size = params.get('kernel_size')
    if kernel_size is not None and tuple(kernel_size) != (1, 1):
        if rate > 1:
            params['rate'] = rate
        if use_explicit_padding:
            net = conv_blocks.fixed_padding(net, kernel_size, rate)
    return layer.fn(net, **params)


@slim.add_arg_scope
def mobilenet_base(inputs: tf.Tensor,
                   conv_defs: ConvDefs,
                   multiplier: float = 1.0,
                   final_endpoint: str | None = None,
                   output_stride: int | None = None,
                   use_explicit_padding: bool = False,
                   scope: str | tf.VariableScope | None = None,
                   is_training: bool = False) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds the layers of `conv_defs` up to `final_endpoint`, without a head.

    Args:
      inputs: [batch, height, width, channels] images.
      conv_defs: the net's table.
      multiplier: scales the depth of every layer (rounded as the table says).
      final_endpoint: the last layer to build, 'layer_<i>'; all when None.
      output_stride: the largest ratio of input to output size; once reached,
        later strides become dilation. None keeps every stride.
      use_explicit_padding: pad with `fixed_padding` and use 'VALID'
        convolutions, so strided layers see the same pixels at every size.
      scope: variable scope of the net; 'Mobilenet' when None.
      is_training: whether batch norm runs in training mode.

    Returns:
      (net, end_points): the last layer's output and every end point by name.

    Raises:
      ValueError: if multiplier <= 0, output_stride is not None, 1 or a
        multiple of 2, or final_endpoint names no layer.
    """
    _check_base_arguments(conv_defs, multiplier, final_endpoint, output_stride)
    defaults = conv_defs.defaults
    if use_explicit_padding:
        defaults += (((slim.conv2d, slim.separable_conv2d), {'padding': 'VALID'}),)
    end_points = {}
    current_stride, rate = 1, 1
    with _net_scope(scope, inputs), \
            slim.arg_scope([slim.batch_norm], is_training=is_training), \
            _arg_scopes(defaults):
        net = inputs
        for index, layer in enumerate(conv_defs.spec, start=1):
            params = _scaled_params(layer, conv_defs, multiplier)
            stride = params.get('stride', 1)
            layer_rate = 1
            if output_stride is not None and current_stride == output_stride:
                params['stride'], layer_rate = 1, rate
                rate *= stride
            else:
                params['stride'] = stride
                current_stride *= stride
            end_point = 'layer_%d' % index
            inner = {}
            net = _apply_layer(net, layer, params, layer_rate, use_explicit_padding, inner)
            end_points.update(('%s/%s' % (end_point, key), tensor)
                              for key, tensor in inner.items())
            end_points[end_point] = net
            if end_point == final_endpoint:
                break
    return net, end_points


def global_pool(net: tf.Tensor, use_reduce_mean: bool = False) -> tf.Tensor:
    """Averages each channel over the whole map: [batch, 1, 1, channels].

    An average pool over the whole map (op 'AvgPool') when its size is known
    and `use_reduce_mean` is False, else a reduce_mean (op 'ReduceMean').
    """
    height, width = net.shape.as_list()[1:3]
    if use_reduce_mean or height is None or width is None:
        return tf.reduce_mean(net, [1, 2], keepdims=True, name='ReduceMean')
    return tf.nn.avg_pool(net, [1, height, width, 1], [1, 1, 1, 1], 'VALID', name='AvgPool')


@slim.add_arg_scope
def mobilenet(inputs: tf.Tensor,
              num_classes: int | None = 1001,
              prediction_fn: Callable[..., tf.Tensor] | None = slim.softmax,
              reuse: bool | None = None,
              scope: str = 'Mobilenet',
              base_only: bool = False,
              use_reduce_mean_for_pooling: bool = False,
              **mobilenet_args: Any) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """A MobileNet classifier: `mobilenet_base` and the logits head.

    Args:
      inputs: [batch, height, width, channels] images.
      num_classes: number of logits; 0 or None stops after the global pool
        and returns the pooled features [batch, 1, 1, channels].
      prediction_fn: maps the logits to the 'Predictions' end point; None
        adds no predictions.
      reuse: reuse the variables of an earlier build under the same scope.
      scope: variable scope of the net.
      base_only: return the base network's output, with no head at all.
      use_reduce_mean_for_pooling: pool with reduce_mean instead of an average pool.
      **mobilenet_args: the arguments of `mobilenet_base` (`conv_defs` is
        required); `is_training` also switches dropout.

    Returns:
      (logits, end_points): logits [batch, num_classes] (or the features,
      see above), and every end point by name.

    Raises:
      ValueError: if `inputs` is not 4-D, or as `mobilenet_base`.
    """
    if inputs.shape.ndims != 4:
        raise ValueError('inputs must be [batch, height, width, channels]; got shape %s'
                         % (inputs.shape,))
    is_training = mobilenet_args.get('is_training', False)
    with tf.variable_scope(scope, 'Mobilenet', [inputs], reuse=reuse) as net_scope:
        inputs = tf.identity(inputs, 'input')
        net, end_points = mobilenet_base(inputs, scope=net_scope, **mobilenet_args)
        if base_only:
            return net, end_points
        net = tf.identity(net, name='embedding')
        with tf.variable_scope('Logits'):
            net = end_points['global_pool'] = global_pool(net, use_reduce_mean_for_pooling)
            if not num_classes:
                return net, end_points
            net = slim.dropout(net, scope='Dropout', is_training=is_training)
            logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                 normalizer_fn=None, biases_initializer=tf.zeros_initializer(),
                                 scope='Conv2d_1c_1x1')
            logits = tf.identity(tf.squeeze(logits, [1, 2]), name='output')
        end_points['Logits'] = logits
        if prediction_fn:
            end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


def training_scope(is_training: bool = True,
                   weight_decay: float = 0.00004,
                   stddev: float = 0.09,
                   dropout_keep_prob: float = 0.8,
                   bn_decay: float = 0.997) -> dict:
    """Defaults for training (or evaluating) any MobileNet v2 / v3 / EdgeTPU net.

    Args:
      is_training: the default `is_training` of the builders, batch norm and dropout.
      weight_decay: L2 regularisation of the (non-depthwise) convolution weights.
      stddev: standard deviation of the truncated normal weight initialiser;
        a negative value uses Glorot (Xavier) initialisation instead.
      dropout_keep_prob: fraction of the pooled features dropout keeps.
      bn_decay: decay of the batch-norm moving averages.

    Returns:
      An arg_scope for the builders and their layers.
    """
    if stddev < 0:
        initializer = slim.initializers.xavier_initializer()
    else:
        initializer = tf.truncated_normal_initializer(stddev=stddev)
    with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.separable_conv2d],
                        weights_initializer=initializer, normalizer_fn=slim.batch_norm), \
            slim.arg_scope([mobilenet_base, mobilenet], is_training=is_training), \
            slim.arg_scope([slim.batch_norm], decay=bn_decay, is_training=is_training), \
            slim.arg_scope([slim.dropout], is_training=is_training,
                           keep_prob=dropout_keep_prob), \
            slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)), \
            slim.arg_scope([slim.separable_conv2d], weights_regularizer=None) as scope:
        return scope
