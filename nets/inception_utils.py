"""What the Inception nets (v1 to v4) share: arg_scope, depth scaling,
building a base network up to `final_endpoint`, and the logits head.
"""

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim

DepthFn = Callable[[int], int]
# A layer of a base network, called as `layer(net, scope=end_point_name, ...)`.
Layer = Callable[..., tf.Tensor]


def inception_arg_scope(weight_decay: float = 0.00004,
                        use_batch_norm: bool = True,
                        batch_norm_decay: float = 0.9997,
                        batch_norm_epsilon: float = 0.001,
                        activation_fn=tf.nn.relu,
                        batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                        batch_norm_scale: bool = False):
    """Defaults for the convolutions of every Inception net.

    Args:
      weight_decay: L2 regularisation of the convolution and fully connected weights.
      use_batch_norm: batch-normalise every convolution (the public checkpoints do).
      batch_norm_decay: decay of the batch-norm moving averages.
      batch_norm_epsilon: added to the variance to avoid dividing by zero.
      activation_fn: activation after each convolution.
      batch_norm_updates_collections: where batch norm puts its update ops.
      batch_norm_scale: learn a gamma per channel; the public checkpoints have none.

    Returns:
      An arg_scope for `slim.conv2d` and `slim.fully_connected`.
    """
    batch_norm_params = {
        'decay': batch_norm_decay,
        'epsilon': batch_norm_epsilon,
        'updates_collections': batch_norm_updates_collections,
        'fused': None,
        'scale': batch_norm_scale,
    }
    normalizer_fn = slim.batch_norm if use_batch_norm else None
    normalizer_params = batch_norm_params if use_batch_norm else {}
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay)):
        with slim.arg_scope([slim.conv2d],
                            weights_initializer=slim.variance_scaling_initializer(),
                            activation_fn=activation_fn,
                            normalizer_fn=normalizer_fn,
                            normalizer_params=normalizer_params) as scope:
            return scope


def depth_fn(depth_multiplier: float, min_depth: int) -> DepthFn:
    """Returns depth(d) = max(int(d * depth_multiplier), min_depth).

    Args:
      depth_multiplier: scales the channels of every convolution.
      min_depth: the fewest channels any convolution gets after scaling.

    Returns:
      The function every layer passes its published channel count through.

    Raises:
      ValueError: if `depth_multiplier` <= 0 or `min_depth` < 1.
    """
    if depth_multiplier <= 0:
        raise ValueError('depth_multiplier must be > 0; got %r' % (depth_multiplier,))
    if min_depth < 1:
        raise ValueError('min_depth must be >= 1; got %r' % (min_depth,))
    return lambda depth: max(int(depth * depth_multiplier), min_depth)


def layers_up_to(layers: Sequence[tuple[str, Layer]],
                 final_endpoint: str) -> Sequence[tuple[str, Layer]]:
    """The (end point, layer) rows of a base network up to `final_endpoint`.

    Nets call this before validating anything else and before opening a
    scope, so a bad `final_endpoint` is the first error and creates nothing.

    Args:
      layers: the whole base network as (end point name, layer), in order.
      final_endpoint: the last end point to keep.

    Returns:
      The rows from the first one to `final_endpoint`, inclusive.

    Raises:
      ValueError: if `final_endpoint` names none of the rows.
    """
    names = [name for name, _ in layers]
    if final_endpoint not in names:
        raise ValueError('final_endpoint must be one of %s; got %r'
                         % (', '.join(names), final_endpoint))
    return layers[:names.index(final_endpoint) + 1]


def build_layers(inputs: tf.Tensor, layers: Sequence[tuple[str, Layer]],
                 **layer_kwargs: Any) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Chains `layers`, each under the variable scope of its end point name.

    Args:
      inputs: the input of the first layer.
      layers: (end point name, layer) in order; each is called as
        `layer(net, scope=name, **layer_kwargs)`.
      **layer_kwargs: what every layer of the net needs besides its input,
        such as the depth function.

    Returns:
      (net, end_points): the last layer's output, and every layer's output by
      end point name, in build order.
    """
    net = inputs
    end_points = {}
    for name, layer in layers:
        net = layer(net, scope=name, **layer_kwargs)
        end_points[name] = net
    return net, end_points


@contextlib.contextmanager
def classifier_scope(scope: str, default_name: str, inputs: tf.Tensor, reuse: bool | None,
                     is_training: bool) -> Iterator[tf.VariableScope]:
    """The variable scope a whole classifier builds in.

    Args:
      scope: variable scope of the net.
      default_name: the scope's name when `scope` is None.
      inputs: the images, so the scope's name scope joins their graph.
      reuse: reuse the variables of an earlier build in the same scope.
      is_training: whether batch norm and dropout run in training mode.

    Yields:
      The opened variable scope, for the base network to build in unchanged.
    """
    with tf.variable_scope(scope, default_name, [inputs], reuse=reuse) as net_scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            yield net_scope


def reduced_kernel_size(tensor: tf.Tensor, kernel_size: Sequence[int]) -> list[int]:
    """Shrinks `kernel_size` to the spatial size of `tensor` where that is smaller.

    A small input gives a final map smaller than the window sized for the
    default image; the window shrinks to it rather than failing. A spatial
    size unknown when the graph is built is taken to be large enough.

    Args:
      tensor: a [batch, height, width, channels] feature map.
      kernel_size: [height, width] of the window at the default image size.

    Returns:
      [height, width] of the window to use.
    """
    height, width = tensor.shape.as_list()[1:3]
    if height is None or width is None:
        return list(kernel_size)
    return [min(height, kernel_size[0]), min(width, kernel_size[1])]


def split_1x3_3x1(net: tf.Tensor, depth: int, scope_1x3: str, scope_3x1: str) -> tf.Tensor:
    """A 1x3 and a 3x1 convolution side by side, concatenated along the channels.

    Args:
      net: [batch, height, width, channels] input of both convolutions.
      depth: output channels of each convolution.
      scope_1x3: variable scope of the 1x3 convolution.
      scope_3x1: variable scope of the 3x1 convolution.

    Returns:
      [batch, height, width, 2 * depth].
    """
    return tf.concat([slim.conv2d(net, depth, [1, 3], scope=scope_1x3),
                      slim.conv2d(net, depth, [3, 1], scope=scope_3x1)], axis=3)


@dataclasses.dataclass(frozen=True)
class LogitsHead:
    """How one net sizes and names the ops of its convolutional logits head.

    The names differ per net because the public checkpoints and graphs do.
    """
    # Side of the average-pool window: the final map of a default-size image.
    window: int
    # Stride of that window, which only matters on a map larger than it.
    window_stride: int
    # The pool's scope is '<window_scope>_<height>x<width>' of the window used.
    window_scope: str
    window_end_point: str
    # Op name of the reduce_mean that `global_pool=True` uses instead.
    global_pool_name: str
    dropout_scope: str
    logits_scope: str
    # Whether the dropout output is recorded as the 'PreLogits' end point.
    has_pre_logits: bool
    # Whether the 'Predictions' op is named under 'Logits' (v1) or beside it.
    predictions_in_logits_scope: bool = False


def _pool(net: tf.Tensor, end_points: dict[str, tf.Tensor], head: LogitsHead,
          global_pool: bool) -> tf.Tensor:
    """Averages the final map into one feature vector per image, [batch, 1, 1, channels]."""
    if global_pool:
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name=head.global_pool_name)
        end_points['global_pool'] = net
        return net
    kernel_size = reduced_kernel_size(net, [head.window, head.window])
    net = slim.avg_pool2d(net, kernel_size, stride=head.window_stride, padding='VALID',
                          scope='%s_%dx%d' % (head.window_scope, *kernel_size))
    end_points[head.window_end_point] = net
    return net


def logits_head(net: tf.Tensor,
                end_points: dict[str, tf.Tensor],
                head: LogitsHead,
                *,
                num_classes: int | None,
                global_pool: bool,
                dropout_keep_prob: float,
                spatial_squeeze: bool,
                prediction_fn: Callable[..., tf.Tensor],
                ) -> tf.Tensor:
    """Pool, dropout and 1x1 convolution logits under 'Logits', and 'Predictions'.

    Args:
      net: the base network's final map, [batch, height, width, channels].
      end_points: the base network's end points; the head's are added to it.
      head: the net's window and op names.
      num_classes: number of logits; 0 or None stops after the pool.
      global_pool: average over the whole map instead of `head.window`.
      dropout_keep_prob: fraction of the pooled features kept by dropout.
      spatial_squeeze: squeeze the logits to [batch, num_classes].
      prediction_fn: maps the logits to the 'Predictions' end point.

    Returns:
      The logits, or the pooled features [batch, 1, 1, channels] when
      `num_classes` is 0 or None.
    """
    with tf.variable_scope('Logits'):
        net = _pool(net, end_points, head, global_pool)
        if not num_classes:
            return net
        net = slim.dropout(net, keep_prob=dropout_keep_prob, scope=head.dropout_scope)
        if head.has_pre_logits:
            end_points['PreLogits'] = net
        logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                             normalizer_fn=None, scope=head.logits_scope)
        if spatial_squeeze:
            logits = tf.squeeze(logits, [1, 2], name='SpatialSqueeze')
        end_points['Logits'] = logits
        if head.predictions_in_logits_scope:
            end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    if not head.predictions_in_logits_scope:
        end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits


# The auxiliary head's kernel when the grid is unknown at graph time: the 5 x 5 grid
# that a 299 x 299 input gives.
_AUX_KERNEL_SIZE = [5, 5]


def aux_logits(net: tf.Tensor, num_classes: int, pool_scope: str, conv_scope: str,
               logits_scope: str) -> tf.Tensor:
    """The auxiliary classifier of Inception v4 and Inception-ResNet v2 on a 17 x 17 map.

    Average pool 5x5/3, a 1x1 convolution to 128, a convolution to 768 covering
    the whole grid, then fully connected logits, under 'AuxLogits'. The scope
    names differ between the two nets' public graphs, so they are arguments.
    """
    with tf.variable_scope('AuxLogits'):
        # 17 x 17 x C
        net = slim.avg_pool2d(net, [5, 5], stride=3, padding='VALID', scope=pool_scope)
        # 5 x 5 x C
        net = slim.conv2d(net, 128, [1, 1], scope='Conv2d_1b_1x1')
        # 5 x 5 x 128; the kernel covers the whole grid.
        grid = net.get_shape()[1:3]
        grid_known = grid.is_fully_defined()
        net = slim.conv2d(net, 768, grid.as_list() if grid_known else _AUX_KERNEL_SIZE,
                          padding='VALID', scope=conv_scope)
        if not grid_known:
            # The fully connected layer needs a fixed feature count: insist,
            # when the graph runs, on the 1 x 1 grid a 299 x 299 input gives.
            net = tf.ensure_shape(net, [None, 1, 1, 768])
        # 1 x 1 x 768
        net = slim.flatten(net)
        return slim.fully_connected(net, num_classes, activation_fn=None, scope=logits_scope)
