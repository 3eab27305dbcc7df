"""Inception v3, as in "Rethinking the Inception Architecture for Computer
Vision" (Szegedy et al., 2015, https://arxiv.org/abs/1512.00567).

Variable and end point names follow the public TF-Slim checkpoint
(inception_v3_2016_08_28), including its irregular scope names, so that the
checkpoint restores without renaming.
"""

import functools
from collections.abc import Callable, Sequence

import tensorflow.compat.v1 as tf

from nets import inception_utils
from nets.inception_utils import DepthFn, Layer
from slim_classifier.compat import slim

# As in TF-Slim, every Inception net has its `inception_vN_arg_scope`: the shared one.
inception_v3_arg_scope = inception_utils.inception_arg_scope

_BASE_SCOPE = 'InceptionV3'

# Mixed_5c names its 5x5 branch differently from Mixed_5b and Mixed_5d; the
# public checkpoint keeps the irregular names.
_BRANCH_1_SCOPES_5X5 = ('Conv2d_0a_1x1', 'Conv2d_0b_5x5')
_BRANCH_1_SCOPES_5C = ('Conv2d_0b_1x1', 'Conv_1_0c_5x5')


def _block_35x35(net: tf.Tensor, depth: DepthFn, scope: str, pool_depth: int,
                 branch_1_scopes: Sequence[str]) -> tf.Tensor:
    """Mixed_5b..5d: 1x1, 5x5, double 3x3 and pooled branches."""
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, depth(64), [1, 1], scope='Conv2d_0a_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, depth(48), [1, 1], scope=branch_1_scopes[0])
            branch_1 = slim.conv2d(branch_1, depth(64), [5, 5], scope=branch_1_scopes[1])
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(net, depth(64), [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, depth(96), [3, 3], scope='Conv2d_0b_3x3')
            branch_2 = slim.conv2d(branch_2, depth(96), [3, 3], scope='Conv2d_0c_3x3')
        with tf.variable_scope('Branch_3'):
            branch_3 = slim.avg_pool2d(net, [3, 3], scope='AvgPool_0a_3x3')
            branch_3 = slim.conv2d(branch_3, depth(pool_depth), [1, 1],
                                   scope='Conv2d_0b_1x1')
        return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


def _reduction_35_to_17(net: tf.Tensor, depth: DepthFn, scope: str) -> tf.Tensor:
    """Mixed_6a: halves the grid with strided 3x3 convolutions and a max pool."""
    # Both strided 3x3 convolutions are named '_1x1' in the public checkpoint.
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, depth(384), [3, 3], stride=2, padding='VALID',
                                   scope='Conv2d_1a_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, depth(64), [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, depth(96), [3, 3], scope='Conv2d_0b_3x3')
            branch_1 = slim.conv2d(branch_1, depth(96), [3, 3], stride=2,
                                   padding='VALID', scope='Conv2d_1a_1x1')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.max_pool2d(net, [3, 3], stride=2, padding='VALID',
                                       scope='MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1, branch_2], axis=3)


def _block_17x17(net: tf.Tensor, depth: DepthFn, scope: str,
                 inner_depth: int) -> tf.Tensor:
    """Mixed_6b..6e: 7x7 convolutions factorised into 1x7 and 7x1 ones."""
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, depth(192), [1, 1], scope='Conv2d_0a_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, depth(inner_depth), [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, depth(inner_depth), [1, 7],
                                   scope='Conv2d_0b_1x7')
            branch_1 = slim.conv2d(branch_1, depth(192), [7, 1], scope='Conv2d_0c_7x1')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(net, depth(inner_depth), [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, depth(inner_depth), [7, 1],
                                   scope='Conv2d_0b_7x1')
            branch_2 = slim.conv2d(branch_2, depth(inner_depth), [1, 7],
                                   scope='Conv2d_0c_1x7')
            branch_2 = slim.conv2d(branch_2, depth(inner_depth), [7, 1],
                                   scope='Conv2d_0d_7x1')
            branch_2 = slim.conv2d(branch_2, depth(192), [1, 7], scope='Conv2d_0e_1x7')
        with tf.variable_scope('Branch_3'):
            branch_3 = slim.avg_pool2d(net, [3, 3], scope='AvgPool_0a_3x3')
            branch_3 = slim.conv2d(branch_3, depth(192), [1, 1], scope='Conv2d_0b_1x1')
        return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


def _reduction_17_to_8(net: tf.Tensor, depth: DepthFn, scope: str) -> tf.Tensor:
    """Mixed_7a: halves the grid again, one branch through a factorised 7x7."""
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, depth(192), [1, 1], scope='Conv2d_0a_1x1')
            branch_0 = slim.conv2d(branch_0, depth(320), [3, 3], stride=2,
                                   padding='VALID', scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, depth(192), [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, depth(192), [1, 7], scope='Conv2d_0b_1x7')
            branch_1 = slim.conv2d(branch_1, depth(192), [7, 1], scope='Conv2d_0c_7x1')
            branch_1 = slim.conv2d(branch_1, depth(192), [3, 3], stride=2,
                                   padding='VALID', scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.max_pool2d(net, [3, 3], stride=2, padding='VALID',
                                       scope='MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1, branch_2], axis=3)


def _block_8x8(net: tf.Tensor, depth: DepthFn, scope: str,
               branch_1_scope_3x1: str) -> tf.Tensor:
    """Mixed_7b and 7c: branches that widen into parallel 1x3 and 3x1 convolutions."""
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, depth(320), [1, 1], scope='Conv2d_0a_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, depth(384), [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = inception_utils.split_1x3_3x1(branch_1, depth(384), 'Conv2d_0b_1x3',
                                                     branch_1_scope_3x1)
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(net, depth(448), [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, depth(384), [3, 3], scope='Conv2d_0b_3x3')
            branch_2 = inception_utils.split_1x3_3x1(branch_2, depth(384), 'Conv2d_0c_1x3',
                                                     'Conv2d_0d_3x1')
        with tf.variable_scope('Branch_3'):
            branch_3 = slim.avg_pool2d(net, [3, 3], scope='AvgPool_0a_3x3')
            branch_3 = slim.conv2d(branch_3, depth(192), [1, 1], scope='Conv2d_0b_1x1')
        return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


def _conv(num_outputs: int, kernel_size: list[int], **kwargs) -> Layer:
    """A stem convolution with `num_outputs` channels before depth scaling."""
    def layer(net: tf.Tensor, depth: DepthFn, scope: str) -> tf.Tensor:
        return slim.conv2d(net, depth(num_outputs), kernel_size, scope=scope, **kwargs)
    return layer


def _max_pool_3x3(net: tf.Tensor, depth: DepthFn, scope: str) -> tf.Tensor:
    """A stem max pool that halves the grid (`depth` unused: pools keep channels)."""
    del depth
    return slim.max_pool2d(net, [3, 3], stride=2, padding='VALID', scope=scope)


# The base network, input to output, as (end point name, layer).
_LAYERS: tuple[tuple[str, Layer], ...] = (
    # 299 x 299 x 3
    ('Conv2d_1a_3x3', _conv(32, [3, 3], stride=2, padding='VALID')),
    # 149 x 149 x 32
    ('Conv2d_2a_3x3', _conv(32, [3, 3], padding='VALID')),
    # 147 x 147 x 32
    ('Conv2d_2b_3x3', _conv(64, [3, 3])),
    # 147 x 147 x 64
    ('MaxPool_3a_3x3', _max_pool_3x3),
    # 73 x 73 x 64
    ('Conv2d_3b_1x1', _conv(80, [1, 1], padding='VALID')),
    # 73 x 73 x 80
    ('Conv2d_4a_3x3', _conv(192, [3, 3], padding='VALID')),
    # 71 x 71 x 192
    ('MaxPool_5a_3x3', _max_pool_3x3),
    # 35 x 35 x 192
    ('Mixed_5b', functools.partial(_block_35x35, pool_depth=32,
                                   branch_1_scopes=_BRANCH_1_SCOPES_5X5)),
    # 35 x 35 x 256
    ('Mixed_5c', functools.partial(_block_35x35, pool_depth=64,
                                   branch_1_scopes=_BRANCH_1_SCOPES_5C)),
    # 35 x 35 x 288
    ('Mixed_5d', functools.partial(_block_35x35, pool_depth=64,
                                   branch_1_scopes=_BRANCH_1_SCOPES_5X5)),
    # 35 x 35 x 288
    ('Mixed_6a', _reduction_35_to_17),
    # 17 x 17 x 768
    ('Mixed_6b', functools.partial(_block_17x17, inner_depth=128)),
    # 17 x 17 x 768
    ('Mixed_6c', functools.partial(_block_17x17, inner_depth=160)),
    # 17 x 17 x 768
    ('Mixed_6d', functools.partial(_block_17x17, inner_depth=160)),
    # 17 x 17 x 768
    ('Mixed_6e', functools.partial(_block_17x17, inner_depth=192)),
    # 17 x 17 x 768
    ('Mixed_7a', _reduction_17_to_8),
    # 8 x 8 x 1280
    ('Mixed_7b', functools.partial(_block_8x8, branch_1_scope_3x1='Conv2d_0b_3x1')),
    # 8 x 8 x 2048
    ('Mixed_7c', functools.partial(_block_8x8, branch_1_scope_3x1='Conv2d_0c_3x1')),
    # 8 x 8 x 2048
)

END_POINTS = tuple(name for name, _ in _LAYERS)

_HEAD = inception_utils.LogitsHead(
    window=8, window_stride=2, window_scope='AvgPool_1a', window_end_point='AvgPool_1a',
    global_pool_name='GlobalPool', dropout_scope='Dropout_1b', logits_scope='Conv2d_1c_1x1',
    has_pre_logits=True)


def inception_v3_base(inputs: tf.Tensor,
                      final_endpoint: str = 'Mixed_7c',
                      min_depth: int = 16,
                      depth_multiplier: float = 1.0,
                      scope: str | tf.VariableScope | None = None,
                      ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Inception v3 from its input up to `final_endpoint`.

    Args:
      inputs: images, a float tensor [batch, height, width, channels].
      final_endpoint: the last layer to build, one of `END_POINTS`.
      min_depth: the fewest channels any convolution gets when
        `depth_multiplier` shrinks the net.
      depth_multiplier: scales the channel count of every convolution.
      scope: variable scope; defaults to 'InceptionV3'.

    Returns:
      The output of `final_endpoint` and a dict from end point name to tensor
      holding every layer built.

    Raises:
      ValueError: if `final_endpoint` is not one of `END_POINTS`,
        `depth_multiplier` is not positive or `min_depth` < 1.
    """
    layers = inception_utils.layers_up_to(_LAYERS, final_endpoint)
    depth = inception_utils.depth_fn(depth_multiplier, min_depth)
    with tf.variable_scope(scope, _BASE_SCOPE, [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d],
                            stride=1, padding='SAME'):
            return inception_utils.build_layers(inputs, layers, depth=depth)


def _aux_logits(mixed_6e: tf.Tensor, num_classes: int, depth: DepthFn,
                spatial_squeeze: bool) -> tf.Tensor:
    """The auxiliary classifier on Mixed_6e that regularises training."""
    with tf.variable_scope('AuxLogits'):
        # 17 x 17 x 768
        net = slim.avg_pool2d(mixed_6e, [5, 5], stride=3, padding='VALID',
                              scope='AvgPool_1a_5x5')
        # 5 x 5 x 768
        net = slim.conv2d(net, depth(128), [1, 1], scope='Conv2d_1b_1x1')
        # 5 x 5 x 128
        kernel_size = inception_utils.reduced_kernel_size(net, [5, 5])
        net = slim.conv2d(
            net, depth(768), kernel_size, padding='VALID',
            weights_initializer=tf.truncated_normal_initializer(stddev=0.01),
            scope='Conv2d_2a_{}x{}'.format(*kernel_size))
        # 1 x 1 x 768
        net = slim.conv2d(
            net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
            weights_initializer=tf.truncated_normal_initializer(stddev=0.001),
            scope='Conv2d_2b_1x1')
        if spatial_squeeze:
            net = tf.squeeze(net, [1, 2], name='SpatialSqueeze')
        return net


def inception_v3(inputs: tf.Tensor,
                 num_classes: int | None = 1000,
                 is_training: bool = True,
                 dropout_keep_prob: float = 0.8,
                 min_depth: int = 16,
                 depth_multiplier: float = 1.0,
                 prediction_fn: Callable[..., tf.Tensor] = slim.softmax,
                 spatial_squeeze: bool = True,
                 reuse: bool | None = None,
                 create_aux_logits: bool = True,
                 scope: str = 'InceptionV3',
                 global_pool: bool = False,
                 ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Inception v3 classifier; the public checkpoint restores into it as is.

    Args:
      inputs: images, a float tensor [batch, height, width, channels]; 299 x 299
        is the size the public checkpoint was trained at.
      num_classes: number of logits; 0 or None skips the logits layer (and the
        auxiliary head) and returns the pooled features [batch, 1, 1, 2048].
      is_training: training mode for batch norm and dropout.
      dropout_keep_prob: fraction of pre-logits activations kept by dropout.
      min_depth: the fewest channels any convolution gets when
        `depth_multiplier` shrinks the net.
      depth_multiplier: scales the channel count of every convolution.
      prediction_fn: turns logits into the 'Predictions' end point.
      spatial_squeeze: drop the 1 x 1 spatial dimensions of the logits.
      reuse: reuse the variables of an earlier build under `scope`.
      create_aux_logits: build the auxiliary classifier on Mixed_6e.
      scope: variable scope of the whole net.
      global_pool: average over the whole final grid, whatever its size,
        instead of a fixed 8 x 8 window.

    Returns:
      The logits [batch, num_classes] (or the pooled features, see
      `num_classes`) and a dict of end points, including 'AuxLogits',
      'PreLogits', 'Logits' and 'Predictions' when they are built.

    Raises:
      ValueError: if `depth_multiplier` is not positive or `min_depth` < 1.
    """
    depth = inception_utils.depth_fn(depth_multiplier, min_depth)
    with inception_utils.classifier_scope(scope, _BASE_SCOPE, inputs, reuse,
                                          is_training) as net_scope:
        net, end_points = inception_v3_base(inputs, min_depth=min_depth,
                                            depth_multiplier=depth_multiplier, scope=net_scope)
        if create_aux_logits and num_classes:
            end_points['AuxLogits'] = _aux_logits(end_points['Mixed_6e'], num_classes, depth,
                                                  spatial_squeeze)
        # 8 x 8 x 2048
        logits = inception_utils.logits_head(
            net, end_points, _HEAD, num_classes=num_classes, global_pool=global_pool,
            dropout_keep_prob=dropout_keep_prob, spatial_squeeze=spatial_squeeze,
            prediction_fn=prediction_fn)
    return logits, end_points
