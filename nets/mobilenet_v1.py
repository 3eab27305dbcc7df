"""MobileNet v1, as in "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications" (Howard et al., 2017, https://arxiv.org/abs/1704.04861).

The base network is a table of layer definitions (`MOBILENETV1_CONV_DEFS`):
one full convolution followed by 13 depthwise-separable ones. The thin
variants scale every layer's channels with `depth_multiplier`. Variable and
end point names follow the public TF-Slim checkpoints (mobilenet_v1_*_224),
so that they restore without renaming.
"""

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import tensorflow.compat.v1 as tf

from nets import inception_utils
from nets.inception_utils import DepthFn, Layer
from slim_classifier.compat import slim

_BASE_SCOPE = 'MobilenetV1'
_OUTPUT_STRIDES = (8, 16, 32)
# The average-pool window: the final grid of a 224 x 224 image.
_POOL_KERNEL_SIZE = [7, 7]


class Conv(NamedTuple):
    """A full convolution, end point 'Conv2d_<index>'."""
    kernel: list[int]
    stride: int
    depth: int


class DepthSepConv(NamedTuple):
    """A depthwise convolution then a 1x1 one, end points
    'Conv2d_<index>_depthwise' and 'Conv2d_<index>_pointwise'."""
    kernel: list[int]
    stride: int
    depth: int


ConvDef = Conv | DepthSepConv

# The published network: 224 x 224 x 3 in, 7 x 7 x 1024 out.
MOBILENETV1_CONV_DEFS: tuple[ConvDef, ...] = (
    Conv(kernel=[3, 3], stride=2, depth=32),            # 112 x 112 x 32
    DepthSepConv(kernel=[3, 3], stride=1, depth=64),    # 112 x 112 x 64
    DepthSepConv(kernel=[3, 3], stride=2, depth=128),   # 56 x 56 x 128
    DepthSepConv(kernel=[3, 3], stride=1, depth=128),   # 56 x 56 x 128
    DepthSepConv(kernel=[3, 3], stride=2, depth=256),   # 28 x 28 x 256
    DepthSepConv(kernel=[3, 3], stride=1, depth=256),   # 28 x 28 x 256
    DepthSepConv(kernel=[3, 3], stride=2, depth=512),   # 14 x 14 x 512
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),   # 14 x 14 x 512
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),   # 14 x 14 x 512
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),   # 14 x 14 x 512
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),   # 14 x 14 x 512
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),   # 14 x 14 x 512
    DepthSepConv(kernel=[3, 3], stride=2, depth=1024),  # 7 x 7 x 1024
    DepthSepConv(kernel=[3, 3], stride=1, depth=1024),  # 7 x 7 x 1024
)


def _conv(net: tf.Tensor, scope: str, *, num_outputs: int, kernel: Sequence[int], stride: int,
          rate: int, explicit_padding: bool) -> tf.Tensor:
    """A full convolution."""
    if explicit_padding:
        net = _fixed_padding(net, kernel, rate)
    return slim.conv2d(net, num_outputs, kernel, stride=stride, rate=rate, scope=scope)


def _depthwise(net: tf.Tensor, scope: str, *, kernel: Sequence[int], stride: int, rate: int,
               explicit_padding: bool) -> tf.Tensor:
    """One filter per channel, channels kept: the spatial half of a separable convolution."""
    if explicit_padding:
        net = _fixed_padding(net, kernel, rate)
    return slim.separable_conv2d(net, None, kernel, depth_multiplier=1, stride=stride,
                                 rate=rate, scope=scope)


def _pointwise(net: tf.Tensor, scope: str, *, num_outputs: int) -> tf.Tensor:
    """A 1x1 convolution that mixes the channels: the other half."""
    return slim.conv2d(net, num_outputs, [1, 1], stride=1, scope=scope)


def _fixed_padding(inputs: tf.Tensor, kernel: Sequence[int], rate: int) -> tf.Tensor:
    """Pads the grid so that a 'VALID' convolution keeps it as 'SAME' would.

    Unlike 'SAME', the padding does not depend on the input size; an odd
    total puts the extra row and column last.

    Args:
      inputs: [batch, height, width, channels].
      kernel: [height, width] of the convolution that follows.
      rate: its dilation rate.

    Returns:
      The padded tensor.
    """
    padding = []
    for size in kernel:
        total = (size - 1) * rate
        padding.append([total // 2, total - total // 2])
    return tf.pad(inputs, [[0, 0], *padding, [0, 0]])


def _strides_and_rates(conv_defs: Sequence[ConvDef],
                       output_stride: int | None) -> Iterator[tuple[int, int]]:
    """(stride, dilation rate) of each layer, for the net to reduce the grid `output_stride` times.

    Once the grid is `output_stride` times smaller than the input, each later
    stride turns into dilation of the layers after it: the grid stays put and
    each kernel still spans what it would have spanned.
    """
    current_stride = 1
    rate = 1
    for conv_def in conv_defs:
        if output_stride is not None and current_stride == output_stride:
            yield 1, rate
            rate *= conv_def.stride
        else:
            yield conv_def.stride, 1
            current_stride *= conv_def.stride


def _check_conv_defs(conv_defs: Sequence[ConvDef]) -> None:
    """Raises ValueError if a definition is neither a `Conv` nor a `DepthSepConv`."""
    for index, conv_def in enumerate(conv_defs):
        if not isinstance(conv_def, (Conv, DepthSepConv)):
            raise ValueError('conv_defs[%d] must be a Conv or a DepthSepConv; got %r'
                             % (index, conv_def))


def _layers(conv_defs: Sequence[ConvDef], depth: DepthFn, output_stride: int | None,
            use_explicit_padding: bool) -> list[tuple[str, Layer]]:
    """The base network as (end point name, layer): each `Conv` gives one, each
    `DepthSepConv` two ('Conv2d_<index>_depthwise', 'Conv2d_<index>_pointwise').

    Raises:
      ValueError: if a definition is neither a `Conv` nor a `DepthSepConv`.
    """
    _check_conv_defs(conv_defs)
    layers = []
    strides_and_rates = _strides_and_rates(conv_defs, output_stride)
    for index, (conv_def, (stride, rate)) in enumerate(zip(conv_defs, strides_and_rates)):
        name = 'Conv2d_%d' % index
        spatial = dict(kernel=conv_def.kernel, stride=stride, rate=rate,
                       explicit_padding=use_explicit_padding)
        if isinstance(conv_def, Conv):
            layers.append((name, functools.partial(
                _conv, num_outputs=depth(conv_def.depth), **spatial)))
        else:
            layers.append((name + '_depthwise', functools.partial(_depthwise, **spatial)))
            layers.append((name + '_pointwise', functools.partial(
                _pointwise, num_outputs=depth(conv_def.depth))))
    return layers


def mobilenet_v1_base(inputs: tf.Tensor,
                      final_endpoint: str = 'Conv2d_13_pointwise',
                      min_depth: int = 8,
                      depth_multiplier: float = 1.0,
                      conv_defs: Sequence[ConvDef] | None = None,
                      output_stride: int | None = None,
                      use_explicit_padding: bool = False,
                      scope: str | tf.VariableScope | None = None,
                      ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """MobileNet v1 from its input up to `final_endpoint`.

    Args:
      inputs: images, a float tensor [batch, height, width, channels].
      final_endpoint: the last end point to build: 'Conv2d_0', then
        'Conv2d_<i>_depthwise' and 'Conv2d_<i>_pointwise' for i = 1..13 with
        the published `conv_defs`.
      min_depth: the fewest channels any layer gets when `depth_multiplier`
        shrinks the net.
      depth_multiplier: scales the channel count of every layer.
      conv_defs: the layers, `MOBILENETV1_CONV_DEFS` when None.
      output_stride: how many times smaller than the input the grid gets
        before striding gives way to dilation: 8, 16 or 32; None strides as
        `conv_defs` say (32 times with the published ones).
      use_explicit_padding: pad each convolution's input explicitly and
        convolve 'VALID', so the padding does not depend on the input size.
      scope: variable scope; defaults to 'MobilenetV1'.

    Returns:
      The output of `final_endpoint` and a dict from end point name to tensor
      holding every end point built.

    Raises:
      ValueError: if `depth_multiplier` <= 0, `min_depth` < 1, `output_stride`
        is not None, 8, 16 or 32, a layer definition is of an unknown type,
        or `final_endpoint` is not an end point of `conv_defs`.
    """
    depth = inception_utils.depth_fn(depth_multiplier, min_depth)
    if output_stride is not None and output_stride not in _OUTPUT_STRIDES:
        raise ValueError('output_stride must be None, 8, 16 or 32; got %r' % (output_stride,))
    conv_defs = MOBILENETV1_CONV_DEFS if conv_defs is None else conv_defs
    layers = inception_utils.layers_up_to(
        _layers(conv_defs, depth, output_stride, use_explicit_padding), final_endpoint)
    with tf.variable_scope(scope, _BASE_SCOPE, [inputs]):
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                            padding='VALID' if use_explicit_padding else 'SAME'):
            return inception_utils.build_layers(inputs, layers)


def _pool(net: tf.Tensor, end_points: dict[str, tf.Tensor], global_pool: bool) -> tf.Tensor:
    """Averages the final grid into one feature vector per image, [batch, 1, 1, channels]."""
    if global_pool:
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')
        end_points['global_pool'] = net
        return net
    # A small input gives a final grid smaller than 7 x 7: the window shrinks to it.
    kernel_size = inception_utils.reduced_kernel_size(net, _POOL_KERNEL_SIZE)
    net = slim.avg_pool2d(net, kernel_size, stride=2, padding='VALID', scope='AvgPool_1a')
    end_points['AvgPool_1a'] = net
    return net


def mobilenet_v1(inputs: tf.Tensor,
                 num_classes: int | None = 1000,
                 dropout_keep_prob: float = 0.999,
                 is_training: bool = True,
                 min_depth: int = 8,
                 depth_multiplier: float = 1.0,
                 conv_defs: Sequence[ConvDef] | None = None,
                 prediction_fn: Callable[..., tf.Tensor] | None = slim.softmax,
                 spatial_squeeze: bool = True,
                 reuse: bool | None = None,
                 scope: str = 'MobilenetV1',
                 global_pool: bool = False,
                 ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """MobileNet v1 classifier; the public checkpoints restore into it as is.

    Args:
      inputs: images, a float tensor [batch, height, width, channels]; the
        public checkpoints were trained at 224 x 224 (and smaller sizes).
      num_classes: number of logits (the public checkpoints have 1001, class 0
        being 'background'); 0 or None skips the logits layer and returns the
        pooled features [batch, 1, 1, channels].
      dropout_keep_prob: fraction of the pooled features kept by dropout.
      is_training: training mode for batch norm and dropout.
      min_depth: the fewest channels any layer gets when `depth_multiplier`
        shrinks the net.
      depth_multiplier: scales the channel count of every layer (1.0, 0.75,
        0.5 and 0.25 have public checkpoints).
      conv_defs: the layers, `MOBILENETV1_CONV_DEFS` when None.
      prediction_fn: turns logits into the 'Predictions' end point; None
        leaves that end point out.
      spatial_squeeze: drop the 1 x 1 spatial dimensions of the logits.
      reuse: reuse the variables of an earlier build under `scope`.
      scope: variable scope of the whole net.
      global_pool: average over the whole final grid, whatever its size,
        instead of a 7 x 7 window.

    Returns:
      The logits [batch, num_classes] (or the pooled features, see
      `num_classes`) and a dict of end points, including 'AvgPool_1a' (or
      'global_pool'), 'Logits' and 'Predictions' when they are built.

    Raises:
      ValueError: if `inputs` is not of rank 4, or on base arguments
        `mobilenet_v1_base` refuses.
    """
    rank = inputs.get_shape().ndims
    if rank != 4:
        raise ValueError('inputs must have rank 4 [batch, height, width, channels]; got rank %s'
                         % rank)
    with inception_utils.classifier_scope(scope, _BASE_SCOPE, inputs, reuse,
                                          is_training) as net_scope:
        net, end_points = mobilenet_v1_base(inputs, min_depth=min_depth,
                                            depth_multiplier=depth_multiplier,
                                            conv_defs=conv_defs, scope=net_scope)
        with tf.variable_scope('Logits'):
            # 7 x 7 x 1024 at 224 x 224 and depth_multiplier 1
            net = _pool(net, end_points, global_pool)
            if not num_classes:
                return net, end_points
            # 1 x 1 x 1024
            net = slim.dropout(net, keep_prob=dropout_keep_prob, scope='Dropout_1b')
            logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                 normalizer_fn=None, scope='Conv2d_1c_1x1')
            if spatial_squeeze:
                logits = tf.squeeze(logits, [1, 2], name='SpatialSqueeze')
        end_points['Logits'] = logits
        if prediction_fn:
            end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


mobilenet_v1.default_image_size = 224


def _thin_variant(depth_multiplier: float, name: str) -> Callable[..., tuple]:
    """`mobilenet_v1` with another default `depth_multiplier`, named `name`.

    A plain partial: `inspect.signature` shows the variant's own default.
    """
    variant = functools.partial(mobilenet_v1, depth_multiplier=depth_multiplier)
    variant.__name__ = name
    variant.__doc__ = ('MobileNet v1 with depth_multiplier=%s; see `mobilenet_v1`.'
                       % depth_multiplier)
    variant.default_image_size = mobilenet_v1.default_image_size
    return variant


mobilenet_v1_075 = _thin_variant(0.75, 'mobilenet_v1_075')
mobilenet_v1_050 = _thin_variant(0.50, 'mobilenet_v1_050')
mobilenet_v1_025 = _thin_variant(0.25, 'mobilenet_v1_025')


def mobilenet_v1_arg_scope(is_training: bool | None = True,
                           weight_decay: float = 0.00004,
                           stddev: float = 0.09,
                           regularize_depthwise: bool = False,
                           batch_norm_decay: float = 0.9997,
                           batch_norm_epsilon: float = 0.001,
                           batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                           normalizer_fn: Callable[..., tf.Tensor] | None = slim.batch_norm):
    """Defaults for the convolutions of MobileNet v1.

    Args:
      is_training: batch norm's training mode; None leaves it to the
        enclosing scope (`mobilenet_v1` sets it from its own `is_training`).
      weight_decay: L2 regularisation of the full and pointwise convolution
        weights.
      stddev: standard deviation of the truncated normal weight initialiser.
      regularize_depthwise: regularise the depthwise weights too.
      batch_norm_decay: decay of the batch-norm moving averages.
      batch_norm_epsilon: added to the variance to avoid dividing by zero.
      batch_norm_updates_collections: where batch norm puts its update ops.
      normalizer_fn: the normalisation after each convolution.

    Returns:
      An arg_scope for `slim.conv2d`, `slim.separable_conv2d` and `slim.batch_norm`.
    """
    batch_norm_params = {
        'center': True,
        'scale': True,
        'decay': batch_norm_decay,
        'epsilon': batch_norm_epsilon,
        'updates_collections': batch_norm_updates_collections,
    }
    if is_training is not None:
        batch_norm_params['is_training'] = is_training
    regularizer = slim.l2_regularizer(weight_decay)
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=stddev),
                        activation_fn=tf.nn.relu6, normalizer_fn=normalizer_fn):
        with slim.arg_scope([slim.batch_norm], **batch_norm_params):
            with slim.arg_scope([slim.conv2d], weights_regularizer=regularizer):
                with slim.arg_scope([slim.separable_conv2d],
                                    weights_regularizer=regularizer if regularize_depthwise
                                    else None) as scope:
                    return scope
