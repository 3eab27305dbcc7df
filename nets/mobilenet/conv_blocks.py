"""The blocks MobileNet v2, v3 and EdgeTPU are made of.

The inverted bottleneck (`expanded_conv`) widens its input with a 1x1
convolution, filters each channel with a depthwise convolution, optionally
re-weights the channels (squeeze-excite), and projects back down with a
linear 1x1 convolution; the input is added back when the shapes allow. The
EdgeTPU variant fuses the expansion and the depthwise filter into one full
convolution.

Scope names (`expand`, `depthwise`, `squeeze_excite/Conv`, `project`) are
those of the public checkpoints.
"""

from collections.abc import Callable, Sequence

import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim

ExpansionSize = Callable[[int], int]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds `value` to the nearest multiple of `divisor`, never more than 10% down.

    Args:
      value: a channel count, possibly fractional after a depth multiplier.
      divisor: the result is a multiple of it.
      min_value: the smallest result; `divisor` when None.

    Returns:
      The rounded channel count.
    """
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def expand_input_by_factor(factor: float, divisible_by: int = 8) -> ExpansionSize:
    """The expansion size of a block as a function of its input channels.

    Args:
      factor: expanded channels per input channel.
      divisible_by: the expanded channel count is rounded to a multiple of it.

    Returns:
      A function from the input channel count to the expanded channel count.
    """
    return lambda num_inputs: make_divisible(num_inputs * factor, divisible_by)


def hard_sigmoid(x: tf.Tensor, name: str = 'hard_sigmoid') -> tf.Tensor:
    """relu6(x + 3) / 6: a piecewise-linear sigmoid (MobileNet v3 paper, eq. 2)."""
    with tf.name_scope(name):
        return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def hard_swish(x: tf.Tensor, name: str = 'hard_swish') -> tf.Tensor:
    """x * hard_sigmoid(x): the cheap swish of MobileNet v3."""
    with tf.name_scope(name):
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def squeeze_excite(input_tensor: tf.Tensor,
                   squeeze_factor: int = 4,
                   divisible_by: int = 8,
                   inner_activation_fn: Callable[[tf.Tensor], tf.Tensor] = tf.nn.relu,
                   gating_fn: Callable[[tf.Tensor], tf.Tensor] = hard_sigmoid) -> tf.Tensor:
    """Re-weights the channels of `input_tensor` by a gate computed from their means.

    The defaults are those of MobileNet v3 (a quarter of the channels in the
    squeeze, a hard-sigmoid gate).

    Args:
      input_tensor: [batch, height, width, channels].
      squeeze_factor: the squeeze has channels / squeeze_factor channels (rounded).
      divisible_by: the squeeze's channel count is rounded to a multiple of it.
      inner_activation_fn: activation of the squeeze.
      gating_fn: turns the excitation into per-channel weights.

    Returns:
      A tensor shaped like `input_tensor`.
    """
    height, width, channels = input_tensor.shape.as_list()[1:4]
    with tf.variable_scope('squeeze_excite'):
        if height is None or width is None:
            pooled = tf.reduce_mean(input_tensor, [1, 2], keepdims=True)
        else:
            pooled = tf.nn.avg_pool(input_tensor, [1, height, width, 1], [1, 1, 1, 1], 'VALID')
        squeeze = slim.conv2d(pooled, make_divisible(channels / squeeze_factor, divisible_by),
                              [1, 1], normalizer_fn=None, activation_fn=inner_activation_fn)
        excite = slim.conv2d(squeeze, channels, [1, 1], normalizer_fn=None,
                             activation_fn=gating_fn)
        return input_tensor * excite


def fixed_padding(inputs: tf.Tensor, kernel_size: Sequence[int], rate: int = 1) -> tf.Tensor:
    """Zero-pads height and width so a 'VALID' convolution keeps 'SAME' output sizes.

    Unlike 'SAME' padding, the padding does not depend on the input size, so a
    strided layer sees the same pixels at every input resolution.

    Args:
      inputs: [batch, height, width, channels].
      kernel_size: [height, width] of the convolution that follows.
      rate: its dilation rate.

    Returns:
      The padded tensor.
    """
    paddings = [[0, 0]]
    for size in kernel_size:
        total = (size - 1) * rate
        paddings.append([total // 2, total - total // 2])
    paddings.append([0, 0])
    return tf.pad(inputs, paddings)


def _spatial_conv(net: tf.Tensor, kernel_size: Sequence[int], rate: int,
                  use_explicit_padding: bool, conv: Callable[..., tf.Tensor],
                  **conv_args) -> tf.Tensor:
    """Applies `conv` with a kernel larger than 1x1, padding explicitly when asked."""
    if use_explicit_padding:
        net = fixed_padding(net, kernel_size, rate)
        conv_args['padding'] = 'VALID'
    return conv(net, kernel_size=kernel_size, rate=rate, **conv_args)


@slim.add_arg_scope
def expanded_conv(input_tensor: tf.Tensor,
                  num_outputs: int,
                  expansion_size: ExpansionSize = expand_input_by_factor(6),
                  stride: int = 1,
                  rate: int = 1,
                  kernel_size: Sequence[int] = (3, 3),
                  residual: bool = True,
                  fused: bool = False,
                  inner_activation_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
                  expansion_transform: Callable[[tf.Tensor], tf.Tensor] | None = None,
                  use_explicit_padding: bool = False,
                  endpoints: dict[str, tf.Tensor] | None = None,
                  scope: str | None = None) -> tf.Tensor:
    """An inverted bottleneck: expand, depthwise filter, (transform,) project, add.

    Normalisation, the default activation and padding come from the
    arg_scope of `slim.conv2d` and `slim.separable_conv2d`.

    Args:
      input_tensor: [batch, height, width, channels].
      num_outputs: channels of the projection, the block's output.
      expansion_size: expanded channels as a function of the input channels;
        the expansion is skipped when that is no more than the input channels.
      stride: stride of the depthwise (or fused) convolution.
      rate: dilation rate of the depthwise (or fused) convolution.
      kernel_size: [height, width] of the depthwise (or fused) convolution.
      residual: add the input to the output when stride is 1 and the channel
        counts agree.
      fused: the expansion is a full `kernel_size` convolution with `stride`
        and `rate`, and there is no depthwise convolution (EdgeTPU).
      inner_activation_fn: activation of the expansion and depthwise
        convolutions; None keeps the arg_scope's.
      expansion_transform: applied to the filtered expansion before the
        projection, e.g. `squeeze_excite`.
      use_explicit_padding: pad with `fixed_padding` before the spatial
        convolution, which then uses 'VALID' padding.
      endpoints: if given, receives 'expansion_output' (when there is an
        expansion), 'depthwise_output' (when there is a depthwise convolution)
        and 'output'.
      scope: variable scope; 'expanded_conv' (uniquified) when None.

    Returns:
      [batch, height / stride, width / stride, num_outputs].
    """
    endpoints = {} if endpoints is None else endpoints
    inner_args = {} if inner_activation_fn is None else {'activation_fn': inner_activation_fn}
    kernel_size = list(kernel_size)
    with tf.variable_scope(scope, 'expanded_conv', [input_tensor]) as block_scope, \
            tf.name_scope(block_scope.original_name_scope):
        input_depth = input_tensor.shape.as_list()[3]
        net = tf.identity(input_tensor, 'input')
        inner_size = expansion_size(input_depth)
        if inner_size > input_depth:
            if fused:
                net = _spatial_conv(net, kernel_size, rate, use_explicit_padding, slim.conv2d,
                                    num_outputs=inner_size, stride=stride, scope='expand',
                                    **inner_args)
            else:
                net = slim.conv2d(net, inner_size, [1, 1], scope='expand', **inner_args)
            net = endpoints['expansion_output'] = tf.identity(net, 'expansion_output')
        if not fused:
            net = _spatial_conv(net, kernel_size, rate, use_explicit_padding,
                                slim.separable_conv2d, num_outputs=None, depth_multiplier=1,
                                stride=stride, scope='depthwise', **inner_args)
            net = endpoints['depthwise_output'] = tf.identity(net, 'depthwise_output')
        if expansion_transform is not None:
            net = expansion_transform(net)
        net = slim.conv2d(net, num_outputs, [1, 1], activation_fn=None, scope='project')
        if residual and stride == 1 and num_outputs == input_depth:
            net += input_tensor
        net = endpoints['output'] = tf.identity(net, 'output')
    return net
