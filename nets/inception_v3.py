"""Inception v3, as in "Rethinking the Inception Architecture for Computer
Vision" (Szegedy et al., 2015, https://arxiv.org/abs/1512.00567).

Variable and end point names follow the public TF-Slim checkpoint
(inception_v3_2016_08_28), including its irregular scope names, so that the
checkpoint restores without renaming.
"""

import functools
from collections.abc import Callable, Sequence

import tensorflow.compat.v1 as tf

from slim_compat import slim

DepthFn = Callable[[int], int]
# A layer of the base network, called as `layer(net, depth, end_point_name)`.
Layer = Callable[[tf.Tensor, DepthFn, str], tf.Tensor]

_BASE_SCOPE = 'InceptionV3'

# Mixed_5c names its 5x5 branch differently from Mixed_5b and Mixed_5d; the
# public checkpoint keeps the irregular names.
_BRANCH_1_SCOPES_5X5 = ('Conv2d_0a_1x1', 'Conv2d_0b_5x5')
_BRANCH_1_SCOPES_5C = ('Conv2d_0b_1x1', 'Conv_1_0c_5x5')


def _depth_fn(depth_multiplier: float, min_depth: int) -> DepthFn:
    """Returns `depth(d)`: `d` scaled by `depth_multiplier`, at least `min_depth`.

    Raises:
      ValueError: if `depth_multiplier` is not positive or `min_depth` < 1.
    """
    if depth_multiplier <= 0:
        raise ValueError('depth_multiplier must be > 0; got %r' % (depth_multiplier,))
    if min_depth < 1:
        raise ValueError('min_depth must be >= 1; got %r' % (min_depth,))
    return lambda depth: max(int(depth * depth_multiplier), min_depth)


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


def _split_1x3_3x1(net: tf.Tensor, depth: int, scope_1x3: str,
                   scope_3x1: str) -> tf.Tensor:
    """A 1x3 and a 3x1 convolution side by side, concatenated."""
    return tf.concat([slim.conv2d(net, depth, [1, 3], scope=scope_1x3),
                      slim.conv2d(net, depth, [3, 1], scope=scope_3x1)], axis=3)


def _block_8x8(net: tf.Tensor, depth: DepthFn, scope: str,
               branch_1_scope_3x1: str) -> tf.Tensor:
    """Mixed_7b and 7c: branches that widen into parallel 1x3 and 3x1 convolutions."""
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, depth(320), [1, 1], scope='Conv2d_0a_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, depth(384), [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = _split_1x3_3x1(branch_1, depth(384), 'Conv2d_0b_1x3',
                                      branch_1_scope_3x1)
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(net, depth(448), [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, depth(384), [3, 3], scope='Conv2d_0b_3x3')
            branch_2 = _split_1x3_3x1(branch_2, depth(384), 'Conv2d_0c_1x3',
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
    if final_endpoint not in END_POINTS:
        raise ValueError('final_endpoint must be one of %s; got %r'
                         % (', '.join(END_POINTS), final_endpoint))
    depth = _depth_fn(depth_multiplier, min_depth)
    end_points = {}
    with tf.variable_scope(scope, _BASE_SCOPE, [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d],
                            stride=1, padding='SAME'):
            net = inputs
            for name, layer in _LAYERS:
                net = layer(net, depth, name)
                end_points[name] = net
                if name == final_endpoint:
                    break
    return net, end_points


def _reduced_kernel_size_for_small_input(tensor: tf.Tensor,
                                         kernel_size: list[int]) -> list[int]:
    """Shrinks `kernel_size` to the spatial size of `tensor` where that is smaller.

    A spatial size unknown when the graph is built is taken to be large
    enough, so the kernel is kept as asked.
    """
    height, width = tensor.get_shape().as_list()[1:3]
    if height is None or width is None:
        return list(kernel_size)
    return [min(height, kernel_size[0]), min(width, kernel_size[1])]


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
        kernel_size = _reduced_kernel_size_for_small_input(net, [5, 5])
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


def _pool_features(net: tf.Tensor, global_pool: bool,
                   end_points: dict[str, tf.Tensor]) -> tf.Tensor:
    """Averages the final 8 x 8 grid into one vector per image."""
    if global_pool:
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name='GlobalPool')
        end_points['global_pool'] = net
        return net
    kernel_size = _reduced_kernel_size_for_small_input(net, [8, 8])
    net = slim.avg_pool2d(net, kernel_size, padding='VALID',
                          scope='AvgPool_1a_{}x{}'.format(*kernel_size))
    end_points['AvgPool_1a'] = net
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
    depth = _depth_fn(depth_multiplier, min_depth)
    with tf.variable_scope(scope, _BASE_SCOPE, [inputs], reuse=reuse) as net_scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v3_base(inputs, min_depth=min_depth,
                                                depth_multiplier=depth_multiplier,
                                                scope=net_scope)
            if create_aux_logits and num_classes:
                end_points['AuxLogits'] = _aux_logits(end_points['Mixed_6e'],
                                                      num_classes, depth,
                                                      spatial_squeeze)
            with tf.variable_scope('Logits'):
                net = _pool_features(net, global_pool, end_points)
                if not num_classes:
                    return net, end_points
                # 1 x 1 x 2048
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope='Dropout_1b')
                end_points['PreLogits'] = net
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                     normalizer_fn=None, scope='Conv2d_1c_1x1')
                if spatial_squeeze:
                    logits = tf.squeeze(logits, [1, 2], name='SpatialSqueeze')
                # num_classes
            end_points['Logits'] = logits
            end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points
