"""Inception v1 (GoogLeNet) with the variable names of TF-Slim's public checkpoint.

Szegedy et al., "Going Deeper with Convolutions", 2014 (arXiv:1409.4842),
batch-normalised as in `inception_v1_2016_08_28`. Like that checkpoint, the
third branch of every mixed block uses a 3x3 convolution where the paper has
a 5x5 one.

The network is a table of layers, the root block (`_ROOT_LAYERS`) then the
Inception blocks (`_INCEPTION_LAYERS`); `inception_v1_base` builds it row by
row and stops at `final_endpoint`.
"""

import dataclasses
from collections.abc import Callable

import tensorflow.compat.v1 as tf

from nets import inception_utils
from slim_classifier.compat import slim

# As in TF-Slim, every Inception net has its `inception_vN_arg_scope`: the shared one.
inception_v1_arg_scope = inception_utils.inception_arg_scope


@dataclasses.dataclass(frozen=True)
class _Conv:
    """A square convolution of the stem."""
    depth: int
    kernel: int
    stride: int = 1

    def __call__(self, net: tf.Tensor, scope: str) -> tf.Tensor:
        return slim.conv2d(net, self.depth, [self.kernel, self.kernel],
                           stride=self.stride, scope=scope)


@dataclasses.dataclass(frozen=True)
class _MaxPool:
    """A square max pool that halves the feature map."""
    kernel: int

    def __call__(self, net: tf.Tensor, scope: str) -> tf.Tensor:
        return slim.max_pool2d(net, [self.kernel, self.kernel], stride=2, scope=scope)


@dataclasses.dataclass(frozen=True)
class _Mixed:
    """An Inception module: four branches concatenated along the channels.

    Branch_0 is a 1x1 conv, Branch_1 and Branch_2 a 1x1 reduction then a 3x3
    conv (depths given as (reduction, output)), Branch_3 a 3x3 max pool then
    a 1x1 conv.
    """
    branch_0: int
    branch_1: tuple[int, int]
    branch_2: tuple[int, int]
    branch_3: int
    # The public checkpoint names Mixed_5b's Branch_2 3x3 conv 'Conv2d_0a_3x3'.
    branch_2_conv_scope: str = 'Conv2d_0b_3x3'

    def __call__(self, net: tf.Tensor, scope: str) -> tf.Tensor:
        with tf.variable_scope(scope):
            with tf.variable_scope('Branch_0'):
                branch_0 = slim.conv2d(net, self.branch_0, [1, 1], scope='Conv2d_0a_1x1')
            with tf.variable_scope('Branch_1'):
                branch_1 = slim.conv2d(net, self.branch_1[0], [1, 1], scope='Conv2d_0a_1x1')
                branch_1 = slim.conv2d(branch_1, self.branch_1[1], [3, 3], scope='Conv2d_0b_3x3')
            with tf.variable_scope('Branch_2'):
                branch_2 = slim.conv2d(net, self.branch_2[0], [1, 1], scope='Conv2d_0a_1x1')
                branch_2 = slim.conv2d(branch_2, self.branch_2[1], [3, 3],
                                       scope=self.branch_2_conv_scope)
            with tf.variable_scope('Branch_3'):
                branch_3 = slim.max_pool2d(net, [3, 3], scope='MaxPool_0a_3x3')
                branch_3 = slim.conv2d(branch_3, self.branch_3, [1, 1], scope='Conv2d_0b_1x1')
            return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


# (end point, layer) in order; the comment is the layer's output at 224 x 224.
_ROOT_LAYERS = (
    ('Conv2d_1a_7x7', _Conv(64, 7, stride=2)),                       # 112 x 112 x 64
    ('MaxPool_2a_3x3', _MaxPool(3)),                                 # 56 x 56 x 64
    ('Conv2d_2b_1x1', _Conv(64, 1)),                                 # 56 x 56 x 64
    ('Conv2d_2c_3x3', _Conv(192, 3)),                                # 56 x 56 x 192
    ('MaxPool_3a_3x3', _MaxPool(3)),                                 # 28 x 28 x 192
)
_INCEPTION_LAYERS = (
    ('Mixed_3b', _Mixed(64, (96, 128), (16, 32), 32)),               # 28 x 28 x 256
    ('Mixed_3c', _Mixed(128, (128, 192), (32, 96), 64)),             # 28 x 28 x 480
    ('MaxPool_4a_3x3', _MaxPool(3)),                                 # 14 x 14 x 480
    ('Mixed_4b', _Mixed(192, (96, 208), (16, 48), 64)),              # 14 x 14 x 512
    ('Mixed_4c', _Mixed(160, (112, 224), (24, 64), 64)),             # 14 x 14 x 512
    ('Mixed_4d', _Mixed(128, (128, 256), (24, 64), 64)),             # 14 x 14 x 512
    ('Mixed_4e', _Mixed(112, (144, 288), (32, 64), 64)),             # 14 x 14 x 528
    ('Mixed_4f', _Mixed(256, (160, 320), (32, 128), 128)),           # 14 x 14 x 832
    ('MaxPool_5a_2x2', _MaxPool(2)),                                 # 7 x 7 x 832
    ('Mixed_5b', _Mixed(256, (160, 320), (32, 128), 128,
                        branch_2_conv_scope='Conv2d_0a_3x3')),       # 7 x 7 x 832
    ('Mixed_5c', _Mixed(384, (192, 384), (48, 128), 128)),           # 7 x 7 x 1024
)

_LAYERS = _ROOT_LAYERS + _INCEPTION_LAYERS

END_POINTS = tuple(name for name, _ in _LAYERS)

# The logits average-pool this many pixels square, the Mixed_5c map of a 224 x 224 image.
_POOL_SIZE = 7

_HEAD = inception_utils.LogitsHead(
    window=_POOL_SIZE, window_stride=1, window_scope='AvgPool_0a',
    window_end_point='AvgPool_0a_7x7', global_pool_name='global_pool',
    dropout_scope='Dropout_0b', logits_scope='Conv2d_0c_1x1', has_pre_logits=False,
    predictions_in_logits_scope=True)


def inception_v1_base(inputs: tf.Tensor,
                      final_endpoint: str = 'Mixed_5c',
                      include_root_block: bool = True,
                      scope: str | tf.VariableScope = 'InceptionV1',
                      ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds Inception v1 from the input up to `final_endpoint`.

    Args:
      inputs: images, [batch, height, width, channels]; without the root
        block, a map shaped like the root's output (28 x 28 x 192 for a
        224 x 224 image).
      final_endpoint: the last end point to build, one of `END_POINTS` (one
        of the Inception blocks' without the root block).
      include_root_block: build the root block (Conv2d_1a_7x7 to
        MaxPool_3a_3x3); False starts at Mixed_3b.
      scope: variable scope (name or `tf.VariableScope`).

    Returns:
      (net, end_points): the `final_endpoint` tensor, and every end point
      built so far by name, in build order.

    Raises:
      ValueError: if `final_endpoint` is not one of the layers built.
    """
    layers = _LAYERS if include_root_block else _INCEPTION_LAYERS
    layers = inception_utils.layers_up_to(layers, final_endpoint)
    with tf.variable_scope(scope, 'InceptionV1', [inputs]):
        with slim.arg_scope([slim.conv2d, slim.fully_connected],
                            weights_initializer=tf.truncated_normal_initializer(stddev=0.01)):
            with slim.arg_scope([slim.conv2d, slim.max_pool2d], stride=1, padding='SAME'):
                return inception_utils.build_layers(inputs, layers)


def _check_pool_fits(net: tf.Tensor) -> None:
    """Raises ValueError if `net` is known to be smaller than the 7 x 7 pool."""
    height, width = net.shape.as_list()[1:3]
    if (height is not None and height < _POOL_SIZE) or (width is not None and width < _POOL_SIZE):
        raise ValueError('inception_v1 average-pools a Mixed_5c map of at least %d x %d '
                         '(a 224 x 224 image); got %s x %s, pass global_pool=True for '
                         'smaller images' % (_POOL_SIZE, _POOL_SIZE, height, width))


def inception_v1(inputs: tf.Tensor,
                 num_classes: int | None = 1000,
                 is_training: bool = True,
                 dropout_keep_prob: float = 0.8,
                 prediction_fn: Callable[..., tf.Tensor] = slim.softmax,
                 spatial_squeeze: bool = True,
                 reuse: bool | None = None,
                 scope: str = 'InceptionV1',
                 global_pool: bool = False,
                 ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds Inception v1 with its classification head.

    Args:
      inputs: images, [batch, height, width, channels]; 224 x 224 unless
        `global_pool` is set.
      num_classes: number of logits; 0 or None returns the pooled features
        [batch, 1, 1, channels] instead.
      is_training: whether batch norm and dropout run in training mode.
      dropout_keep_prob: fraction of the pooled features kept by dropout.
      prediction_fn: maps the logits to the 'Predictions' end point.
      spatial_squeeze: squeeze the logits to [batch, num_classes].
      reuse: reuse the variables of an earlier build in the same scope.
      scope: variable scope.
      global_pool: average over the whole final feature map, whatever its
        size, instead of a fixed 7 x 7 window.

    Returns:
      (logits, end_points): logits [batch, num_classes] (or the pooled
      features, see `num_classes`) and the end points by name.

    Raises:
      ValueError: for a final map known to be smaller than 7 x 7 without
        `global_pool`.
    """
    with inception_utils.classifier_scope(scope, 'InceptionV1', inputs, reuse,
                                          is_training) as net_scope:
        net, end_points = inception_v1_base(inputs, scope=net_scope)
        if not global_pool:
            # v1 refuses, rather than shrinks, a window the map cannot fill.
            _check_pool_fits(net)
        logits = inception_utils.logits_head(
            net, end_points, _HEAD, num_classes=num_classes, global_pool=global_pool,
            dropout_keep_prob=dropout_keep_prob, spatial_squeeze=spatial_squeeze,
            prediction_fn=prediction_fn)
    return logits, end_points
