"""Inception v2 with the variable names of TF-Slim's public checkpoint.

Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network Training
by Reducing Internal Covariate Shift", 2015 (arXiv:1502.03167): Inception v1
with batch norm, 5x5 convolutions replaced by two 3x3 ones, and stride-2
reduction blocks in place of the max pools. As in `inception_v2_2016_08_28`,
the first layer is a separable 7x7 convolution by default.

The network is a table of layers, the root block (`_ROOT_LAYERS`) then the
Inception blocks (`_INCEPTION_LAYERS`); `inception_v2_base` builds it row by
row and stops at `final_endpoint`.
"""

import dataclasses
from collections.abc import Callable

import tensorflow.compat.v1 as tf

from nets import inception_utils
from nets.inception_utils import DepthFn
from slim_classifier.compat import slim

# As in TF-Slim, every Inception net has its `inception_vN_arg_scope`: the shared one.
inception_v2_arg_scope = inception_utils.inception_arg_scope

DATA_FORMATS = ('NHWC', 'NCHW')


@dataclasses.dataclass(frozen=True)
class _Settings:
    """What every layer needs to know besides its own depths."""
    depth: DepthFn
    use_separable_conv: bool
    concat_axis: int


def _conv(net: tf.Tensor, depth: int, kernel: int, scope: str, stride: int = 1,
          stddev: float | None = None) -> tf.Tensor:
    """A square convolution; `stddev` replaces the arg_scope's initializer."""
    kwargs = {}
    if stddev is not None:
        kwargs['weights_initializer'] = tf.truncated_normal_initializer(stddev=stddev)
    return slim.conv2d(net, depth, [kernel, kernel], stride=stride, scope=scope, **kwargs)


@dataclasses.dataclass(frozen=True)
class _FirstConv:
    """The 7x7 stride-2 stem convolution, separable or plain."""
    depth: int

    def __call__(self, net: tf.Tensor, settings: _Settings, scope: str) -> tf.Tensor:
        depth = settings.depth(self.depth)
        initializer = tf.truncated_normal_initializer(stddev=1.0)
        if not settings.use_separable_conv:
            return slim.conv2d(net, depth, [7, 7], stride=2,
                               weights_initializer=initializer, scope=scope)
        # The checkpoint's depthwise stage has 8 filters per RGB channel (24 in
        # all, fewer for a thin net) feeding the pointwise stage.
        return slim.separable_conv2d(net, depth, [7, 7],
                                     depth_multiplier=min(int(depth / 3), 8), stride=2,
                                     padding='SAME', weights_initializer=initializer,
                                     scope=scope)


@dataclasses.dataclass(frozen=True)
class _Conv:
    """A square convolution of the stem."""
    depth: int
    kernel: int
    stddev: float | None = None

    def __call__(self, net: tf.Tensor, settings: _Settings, scope: str) -> tf.Tensor:
        return _conv(net, settings.depth(self.depth), self.kernel, scope, stddev=self.stddev)


@dataclasses.dataclass(frozen=True)
class _MaxPool:
    """A 3x3 stride-2 max pool."""

    def __call__(self, net: tf.Tensor, settings: _Settings, scope: str) -> tf.Tensor:
        return slim.max_pool2d(net, [3, 3], stride=2, scope=scope)


@dataclasses.dataclass(frozen=True)
class _Mixed:
    """An Inception module: four branches concatenated along the channels.

    Branch_0 is a 1x1 conv; Branch_1 a 1x1 reduction then a 3x3 conv;
    Branch_2 a 1x1 reduction then two 3x3 convs (depths given as (reduction,
    output)); Branch_3 a 3x3 average (or max) pool then a 1x1 conv.
    """
    branch_0: int
    branch_1: tuple[int, int]
    branch_2: tuple[int, int]
    branch_3: int
    max_pool: bool = False

    def __call__(self, net: tf.Tensor, settings: _Settings, scope: str) -> tf.Tensor:
        depth = settings.depth
        with tf.variable_scope(scope):
            with tf.variable_scope('Branch_0'):
                branch_0 = _conv(net, depth(self.branch_0), 1, 'Conv2d_0a_1x1')
            with tf.variable_scope('Branch_1'):
                branch_1 = _conv(net, depth(self.branch_1[0]), 1, 'Conv2d_0a_1x1', stddev=0.09)
                branch_1 = _conv(branch_1, depth(self.branch_1[1]), 3, 'Conv2d_0b_3x3')
            with tf.variable_scope('Branch_2'):
                branch_2 = _conv(net, depth(self.branch_2[0]), 1, 'Conv2d_0a_1x1', stddev=0.09)
                branch_2 = _conv(branch_2, depth(self.branch_2[1]), 3, 'Conv2d_0b_3x3')
                branch_2 = _conv(branch_2, depth(self.branch_2[1]), 3, 'Conv2d_0c_3x3')
            with tf.variable_scope('Branch_3'):
                if self.max_pool:
                    branch_3 = slim.max_pool2d(net, [3, 3], scope='MaxPool_0a_3x3')
                else:
                    branch_3 = slim.avg_pool2d(net, [3, 3], scope='AvgPool_0a_3x3')
                branch_3 = _conv(branch_3, depth(self.branch_3), 1, 'Conv2d_0b_1x1', stddev=0.1)
            return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=settings.concat_axis)


@dataclasses.dataclass(frozen=True)
class _Reduction:
    """A grid reduction: three stride-2 branches concatenated along the channels.

    Branch_0 is a 1x1 reduction then a stride-2 3x3 conv; Branch_1 a 1x1
    reduction, a 3x3 conv and a stride-2 3x3 conv (depths given as
    (reduction, output)); Branch_2 a stride-2 3x3 max pool of the input.
    """
    branch_0: tuple[int, int]
    branch_1: tuple[int, int]

    def __call__(self, net: tf.Tensor, settings: _Settings, scope: str) -> tf.Tensor:
        depth = settings.depth
        with tf.variable_scope(scope):
            with tf.variable_scope('Branch_0'):
                branch_0 = _conv(net, depth(self.branch_0[0]), 1, 'Conv2d_0a_1x1', stddev=0.09)
                branch_0 = _conv(branch_0, depth(self.branch_0[1]), 3, 'Conv2d_1a_3x3', stride=2)
            with tf.variable_scope('Branch_1'):
                branch_1 = _conv(net, depth(self.branch_1[0]), 1, 'Conv2d_0a_1x1', stddev=0.09)
                branch_1 = _conv(branch_1, depth(self.branch_1[1]), 3, 'Conv2d_0b_3x3')
                branch_1 = _conv(branch_1, depth(self.branch_1[1]), 3, 'Conv2d_1a_3x3', stride=2)
            with tf.variable_scope('Branch_2'):
                branch_2 = slim.max_pool2d(net, [3, 3], stride=2, scope='MaxPool_1a_3x3')
            return tf.concat([branch_0, branch_1, branch_2], axis=settings.concat_axis)


# (end point, layer) in order; the comment is the layer's output at 224 x 224.
_ROOT_LAYERS = (
    ('Conv2d_1a_7x7', _FirstConv(64)),                               # 112 x 112 x 64
    ('MaxPool_2a_3x3', _MaxPool()),                                  # 56 x 56 x 64
    ('Conv2d_2b_1x1', _Conv(64, 1, stddev=0.1)),                     # 56 x 56 x 64
    ('Conv2d_2c_3x3', _Conv(192, 3)),                                # 56 x 56 x 192
    ('MaxPool_3a_3x3', _MaxPool()),                                  # 28 x 28 x 192
)
_INCEPTION_LAYERS = (
    ('Mixed_3b', _Mixed(64, (64, 64), (64, 96), 32)),                # 28 x 28 x 256
    ('Mixed_3c', _Mixed(64, (64, 96), (64, 96), 64)),                # 28 x 28 x 320
    ('Mixed_4a', _Reduction((128, 160), (64, 96))),                  # 14 x 14 x 576
    ('Mixed_4b', _Mixed(224, (64, 96), (96, 128), 128)),             # 14 x 14 x 576
    ('Mixed_4c', _Mixed(192, (96, 128), (96, 128), 128)),            # 14 x 14 x 576
    ('Mixed_4d', _Mixed(160, (128, 160), (128, 160), 96)),           # 14 x 14 x 576
    ('Mixed_4e', _Mixed(96, (128, 192), (160, 192), 96)),            # 14 x 14 x 576
    ('Mixed_5a', _Reduction((128, 192), (192, 256))),                # 7 x 7 x 1024
    ('Mixed_5b', _Mixed(352, (192, 320), (160, 224), 128)),          # 7 x 7 x 1024
    ('Mixed_5c', _Mixed(352, (192, 320), (192, 224), 128, max_pool=True)),  # 7 x 7 x 1024
)

_LAYERS = _ROOT_LAYERS + _INCEPTION_LAYERS

END_POINTS = tuple(name for name, _ in _LAYERS)

_HEAD = inception_utils.LogitsHead(
    window=7, window_stride=2, window_scope='AvgPool_1a', window_end_point='AvgPool_1a',
    global_pool_name='global_pool', dropout_scope='Dropout_1b', logits_scope='Conv2d_1c_1x1',
    has_pre_logits=True)


def _settings(min_depth: int, depth_multiplier: float, use_separable_conv: bool,
              data_format: str) -> _Settings:
    """Validates the base network's arguments.

    Raises:
      ValueError: naming the first argument that is out of range.
    """
    depth = inception_utils.depth_fn(depth_multiplier, min_depth)
    if data_format not in DATA_FORMATS:
        raise ValueError('data_format must be one of %s; got %r'
                         % (', '.join(DATA_FORMATS), data_format))
    if use_separable_conv and data_format != 'NHWC':
        raise ValueError("use_separable_conv=True needs data_format='NHWC'; got %r"
                         % (data_format,))
    return _Settings(depth, use_separable_conv, concat_axis=3 if data_format == 'NHWC' else 1)


def inception_v2_base(inputs: tf.Tensor,
                      final_endpoint: str = 'Mixed_5c',
                      min_depth: int = 16,
                      depth_multiplier: float = 1.0,
                      use_separable_conv: bool = True,
                      data_format: str = 'NHWC',
                      include_root_block: bool = True,
                      scope: str | tf.VariableScope | None = None,
                      ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds Inception v2 from the input up to `final_endpoint`.

    Args:
      inputs: images, [batch, height, width, channels] (or [batch, channels,
        height, width] for 'NCHW'); without the root block, a map shaped like
        the root's output (28 x 28 x 192 for a 224 x 224 image).
      final_endpoint: the last end point to build, one of `END_POINTS` (one
        of the Inception blocks' without the root block).
      min_depth: the fewest channels any convolution gets after scaling.
      depth_multiplier: scales the channels of every convolution, as
        max(int(depth * depth_multiplier), min_depth).
      use_separable_conv: make the first layer a separable convolution, as
        the public checkpoint has it; False makes it a plain one.
      data_format: 'NHWC' or 'NCHW'; 'NCHW' needs `use_separable_conv=False`.
      include_root_block: build the root block (Conv2d_1a_7x7 to
        MaxPool_3a_3x3); False starts at Mixed_3b.
      scope: variable scope (name or `tf.VariableScope`); default
        'InceptionV2'.

    Returns:
      (net, end_points): the `final_endpoint` tensor, and every end point
      built so far by name, in build order.

    Raises:
      ValueError: if `final_endpoint` is not one of the layers built,
        `data_format` is unknown, `depth_multiplier` <= 0, `min_depth` < 1,
        or a separable first layer is asked for with 'NCHW'.
    """
    layers = _LAYERS if include_root_block else _INCEPTION_LAYERS
    layers = inception_utils.layers_up_to(layers, final_endpoint)
    settings = _settings(min_depth, depth_multiplier, use_separable_conv, data_format)
    with tf.variable_scope(scope, 'InceptionV2', [inputs]):
        # Batch norm must know the layout too, or 'NCHW' normalises per image column.
        with (slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d],
                             stride=1, padding='SAME', data_format=data_format),
              slim.arg_scope([slim.batch_norm], data_format=data_format)):
            return inception_utils.build_layers(inputs, layers, settings=settings)


def inception_v2(inputs: tf.Tensor,
                 num_classes: int | None = 1000,
                 is_training: bool = True,
                 dropout_keep_prob: float = 0.8,
                 min_depth: int = 16,
                 depth_multiplier: float = 1.0,
                 prediction_fn: Callable[..., tf.Tensor] = slim.softmax,
                 spatial_squeeze: bool = True,
                 reuse: bool | None = None,
                 scope: str = 'InceptionV2',
                 global_pool: bool = False,
                 ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds Inception v2 with its classification head.

    Args:
      inputs: images, [batch, height, width, channels].
      num_classes: number of logits; 0 or None returns the pooled features
        [batch, 1, 1, channels] instead.
      is_training: whether batch norm and dropout run in training mode.
      dropout_keep_prob: fraction of the pooled features kept by dropout.
      min_depth: the fewest channels any convolution gets after scaling.
      depth_multiplier: scales the channels of every convolution.
      prediction_fn: maps the logits to the 'Predictions' end point.
      spatial_squeeze: squeeze the logits to [batch, num_classes].
      reuse: reuse the variables of an earlier build in the same scope.
      scope: variable scope.
      global_pool: average over the whole final feature map, whatever its
        size, instead of a 7 x 7 window (smaller for small known inputs).

    Returns:
      (logits, end_points): logits [batch, num_classes] (or the pooled
      features, see `num_classes`) and the end points by name.

    Raises:
      ValueError: for a bad `depth_multiplier` or `min_depth`.
    """
    with inception_utils.classifier_scope(scope, 'InceptionV2', inputs, reuse,
                                          is_training) as net_scope:
        net, end_points = inception_v2_base(inputs, min_depth=min_depth,
                                            depth_multiplier=depth_multiplier, scope=net_scope)
        logits = inception_utils.logits_head(
            net, end_points, _HEAD, num_classes=num_classes, global_pool=global_pool,
            dropout_keep_prob=dropout_keep_prob, spatial_squeeze=spatial_squeeze,
            prediction_fn=prediction_fn)
    return logits, end_points
