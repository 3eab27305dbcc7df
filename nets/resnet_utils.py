"""What ResNet v1 and v2 share: the block description, padded strided and
atrous convolutions, stacking blocks at a chosen output stride, the root
block, the classifier head and the arg_scope.

A net is a list of `Block`s. Each block is a run of residual units built by
one unit function (`bottleneck` of resnet_v1 or resnet_v2), each unit from
one dict of keyword arguments (`depth`, `depth_bottleneck`, `stride`).
`stack_blocks_dense` chains them, turning strides into atrous rates once the
requested `output_stride` is reached, so that the same variables serve dense
prediction (He et al. 2016, "Deep Residual Learning for Image Recognition";
Chen et al. 2016, "DeepLab").
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim

# conv1 and pool1 each halve the grid.
ROOT_STRIDE = 4

# Bottleneck units in each of the four blocks, by number of layers.
UNITS_PER_BLOCK: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}

# Bottleneck depth of each block; a unit outputs four times as many channels.
_BASE_DEPTHS = (64, 128, 256, 512)
# Applied by the last unit of each block, so block4 keeps block3's grid.
_BLOCK_STRIDES = (2, 2, 2, 1)


class Block(NamedTuple):
    """A run of residual units under one variable scope.

    scope: the block's variable scope, such as 'block1'.
    unit_fn: builds one unit, called as `unit_fn(net, rate=..., **unit_args)`.
    args: one dict of keyword arguments per unit, in order.
    """
    scope: str
    unit_fn: Callable[..., tf.Tensor]
    args: Sequence[dict[str, Any]]


# Returns the Block named `scope` of `num_units` units of bottleneck depth
# `base_depth`, the last one applying `stride`.
BlockFn = Callable[..., Block]


def imagenet_blocks(block_fn: BlockFn, num_layers: int,
                    depth: Callable[[int], int] = int) -> list[Block]:
    """The four blocks of the ImageNet ResNet of `num_layers` layers.

    Args:
      block_fn: makes one block, called as
        `block_fn(scope, base_depth=..., num_units=..., stride=...)`.
      num_layers: a key of `UNITS_PER_BLOCK`.
      depth: maps each published bottleneck depth to the one to build; by
        default (`int`) the depths are kept.

    Returns:
      block1 to block4. At a 224 x 224 input their outputs are 28 x 28 x 256,
      14 x 14 x 512, 7 x 7 x 1024 and 7 x 7 x 2048 (bottleneck depths 64,
      128, 256 and 512 times 4).
    """
    return [block_fn('block%d' % index, base_depth=depth(base_depth), num_units=num_units,
                     stride=stride)
            for index, (base_depth, num_units, stride)
            in enumerate(zip(_BASE_DEPTHS, UNITS_PER_BLOCK[num_layers], _BLOCK_STRIDES),
                         start=1)]


def units_with_last_stride(depth: int, depth_bottleneck: int, num_units: int,
                           stride: int) -> list[dict[str, int]]:
    """Arguments of `num_units` bottleneck units; only the last one strides.

    Args:
      depth: output channels of every unit.
      depth_bottleneck: channels of the 3x3 convolution inside each unit.
      num_units: how many units the block has.
      stride: stride of the last unit.

    Returns:
      One `Block.args` entry per unit.
    """
    unit = {'depth': depth, 'depth_bottleneck': depth_bottleneck, 'stride': 1}
    return [dict(unit) for _ in range(num_units - 1)] + [dict(unit, stride=stride)]


def subsample(inputs: tf.Tensor, factor: int, scope: str | None = None) -> tf.Tensor:
    """Keeps every `factor`-th row and column of `inputs`.

    Args:
      inputs: a [batch, height, width, channels] tensor.
      factor: the subsampling factor; 1 returns `inputs` itself.
      scope: name scope of the pooling op.

    Returns:
      [batch, ceil(height / factor), ceil(width / factor), channels].
    """
    if factor == 1:
        return inputs
    return slim.max_pool2d(inputs, [1, 1], stride=factor, scope=scope)


def conv2d_same(inputs: tf.Tensor, num_outputs: int, kernel_size: int, stride: int,
                rate: int = 1, scope: str | None = None) -> tf.Tensor:
    """A square convolution whose output does not depend on the input being even.

    With stride 1 it is a 'SAME' convolution. With a larger stride 'SAME'
    padding would pad more at the bottom and right than at the top and
    left, depending on the input size; here the input is padded explicitly
    and symmetrically, as if for a stride-1 convolution, then convolved with
    'VALID' padding, so a strided output is a subsample of the stride-1 one.

    Args:
      inputs: a [batch, height, width, channels] tensor.
      num_outputs: output channels.
      kernel_size: side of the square kernel.
      stride: the convolution's stride.
      rate: atrous rate of the kernel.
      scope: variable scope of the convolution.

    Returns:
      [batch, ceil(height / stride), ceil(width / stride), num_outputs].
    """
    if stride == 1:
        return slim.conv2d(inputs, num_outputs, kernel_size, stride=1, rate=rate,
                           padding='SAME', scope=scope)
    dilated_kernel_size = kernel_size + (kernel_size - 1) * (rate - 1)
    pad_total = dilated_kernel_size - 1
    pad_begin = pad_total // 2
    pad_end = pad_total - pad_begin
    inputs = tf.pad(inputs, [[0, 0], [pad_begin, pad_end], [pad_begin, pad_end], [0, 0]])
    return slim.conv2d(inputs, num_outputs, kernel_size, stride=stride, rate=rate,
                       padding='VALID', scope=scope)


def reachable_output_strides(blocks: Sequence[Block], input_stride: int = 1) -> list[int]:
    """The output strides the blocks can be built at, smallest first.

    Args:
      blocks: the blocks, in order.
      input_stride: the stride of the blocks' input relative to the image.

    Returns:
      Every product of `input_stride` and the strides of the first n units,
      n from 0 to all of them.
    """
    strides = [input_stride]
    for block in blocks:
        for unit in block.args:
            strides.append(strides[-1] * unit.get('stride', 1))
    return sorted(set(strides))


def check_output_stride(output_stride: int | None, blocks: Sequence[Block],
                        input_stride: int = 1) -> None:
    """Raises ValueError unless the blocks can be built at `output_stride`.

    Args:
      output_stride: the requested ratio of image size to output size, or
        None for the blocks' own strides.
      blocks: the blocks, in order.
      input_stride: the stride of the blocks' input relative to the image.

    Raises:
      ValueError: naming `output_stride`, the reachable values and the one given.
    """
    if output_stride is None:
        return
    reachable = reachable_output_strides(blocks, input_stride)
    if output_stride not in reachable:
        raise ValueError('output_stride must be one of %s (or None); got %r'
                         % (', '.join(str(stride) for stride in reachable), output_stride))


def blocks_output_stride(output_stride: int | None, blocks: Sequence[Block],
                         include_root_block: bool) -> int | None:
    """Checks a whole net's `output_stride`; returns it relative to the blocks' input.

    Args:
      output_stride: the requested ratio of image size to final map size, or None.
      blocks: the net's blocks, in order.
      include_root_block: whether `root_block` (stride `ROOT_STRIDE`) precedes them.

    Returns:
      The `output_stride` argument of `stack_blocks_dense`.

    Raises:
      ValueError: naming `output_stride`, the reachable values and the one given.
    """
    root_stride = ROOT_STRIDE if include_root_block else 1
    check_output_stride(output_stride, blocks, root_stride)
    return None if output_stride is None else output_stride // root_stride


@dataclasses.dataclass
class _AtrousSchedule:
    """Turns the strides units ask for into the (stride, rate) they are built with.

    Units stride normally until the product of strides reaches
    `output_stride`; later units keep the grid (stride 1) and dilate their
    kernels by the product of the strides they skipped, so each sees the
    same receptive field as it would at its own stride.
    """
    output_stride: int | None
    current_stride: int = 1
    rate: int = 1

    def next(self, stride: int) -> tuple[int, int]:
        """Returns (stride, atrous rate) for a unit that asks for `stride`."""
        if self.output_stride is not None and self.current_stride == self.output_stride:
            rate = self.rate
            self.rate *= stride
            return 1, rate
        self.current_stride *= stride
        return stride, 1


def _unit(net: tf.Tensor, block: Block, unit_args: dict[str, Any],
          schedule: _AtrousSchedule) -> tf.Tensor:
    """One unit of `block`, at the stride and rate `schedule` gives it."""
    stride, rate = schedule.next(unit_args.get('stride', 1))
    return block.unit_fn(net, rate=rate, **dict(unit_args, stride=stride))


def _block(net: tf.Tensor, block: Block, schedule: _AtrousSchedule,
           store_non_strided_activations: bool,
           outputs_collections: str | None) -> tf.Tensor:
    """The units of `block` in its variable scope; the output is the block's end point."""
    with tf.variable_scope(block.scope, 'block', [net]) as block_scope:
        last = len(block.args) - 1
        deferred_stride = 1
        for index, unit_args in enumerate(block.args):
            if store_non_strided_activations and index == last:
                deferred_stride = unit_args.get('stride', 1)
                unit_args = dict(unit_args, stride=1)
            with tf.variable_scope('unit_%d' % (index + 1), values=[net]):
                net = _unit(net, block, unit_args, schedule)
        net = slim.utils.collect_named_outputs(outputs_collections, block_scope.name, net)
    # The end point above keeps the full grid; the stride is applied after it.
    stride, _ = schedule.next(deferred_stride)
    return subsample(net, stride)


@slim.add_arg_scope
def stack_blocks_dense(net: tf.Tensor,
                       blocks: Sequence[Block],
                       output_stride: int | None = None,
                       store_non_strided_activations: bool = False,
                       outputs_collections: str | None = None) -> tf.Tensor:
    """Chains `blocks`, with atrous convolution past `output_stride`.

    Args:
      net: the blocks' input, [batch, height, width, channels].
      blocks: the blocks, in order.
      output_stride: the largest stride of the output relative to `net`;
        None builds every unit at its own stride. Once the strides reach it,
        later units are built with stride 1 and atrous rates instead.
      store_non_strided_activations: build the last unit of each block with
        stride 1 and subsample after the block's end point, so the end point
        keeps the grid of the block's input (for dense prediction heads); the
        variables and the final output are the same.
      outputs_collections: collection each block's output is added to, under
        the block's full scope name.

    Returns:
      The output of the last block.

    Raises:
      ValueError: if `output_stride` is not a stride the blocks can reach.
    """
    check_output_stride(output_stride, blocks)
    schedule = _AtrousSchedule(output_stride)
    for block in blocks:
        net = _block(net, block, schedule, store_non_strided_activations,
                     outputs_collections)
    return net


def root_block(inputs: tf.Tensor) -> tf.Tensor:
    """conv1 (7x7, stride 2, 64 channels) and pool1 (3x3 max, stride 2).

    Args:
      inputs: images, [batch, height, width, channels].

    Returns:
      [batch, height / 4, width / 4, 64] (rounded up): 56 x 56 x 64 at 224 x 224.
    """
    # 224 x 224 x 3
    net = conv2d_same(inputs, 64, 7, stride=2, scope='conv1')
    # 112 x 112 x 64
    return slim.max_pool2d(net, [3, 3], stride=2, padding='SAME', scope='pool1')


def logits_head(net: tf.Tensor, end_points: dict[str, tf.Tensor], scope_name: str, *,
                num_classes: int | None, global_pool: bool,
                spatial_squeeze: bool) -> tf.Tensor:
    """The optional global average pool, the 1x1 logits and the softmax predictions.

    Call it inside the net's variable scope.

    Args:
      net: the last feature map, [batch, height, width, channels].
      end_points: the net's end points; 'global_pool', '<scope>/logits',
        '<scope>/spatial_squeeze' and 'predictions' are added as built.
      scope_name: the full name of the net's variable scope.
      num_classes: number of logits; 0 or None stops before the logits.
      global_pool: average `net` over its grid to [batch, 1, 1, channels].
      spatial_squeeze: squeeze the logits to [batch, num_classes].

    Returns:
      The logits; without `num_classes`, the (pooled) features.
    """
    if global_pool:
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name='pool5')
        end_points['global_pool'] = net
    if not num_classes:
        return net
    net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                      scope='logits')
    end_points[scope_name + '/logits'] = net
    if spatial_squeeze:
        net = tf.squeeze(net, [1, 2], name='SpatialSqueeze')
        end_points[scope_name + '/spatial_squeeze'] = net
    end_points['predictions'] = slim.softmax(net, scope='predictions')
    return net


def resnet_arg_scope(weight_decay: float = 0.0001,
                     batch_norm_decay: float = 0.997,
                     batch_norm_epsilon: float = 1e-5,
                     batch_norm_scale: bool = True,
                     activation_fn=tf.nn.relu,
                     use_batch_norm: bool = True,
                     batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS):
    """Defaults for the convolutions and batch norms of every ResNet.

    Args:
      weight_decay: L2 regularisation of the convolution weights.
      batch_norm_decay: decay of the batch-norm moving averages.
      batch_norm_epsilon: added to the variance to avoid dividing by zero.
      batch_norm_scale: learn a gamma per channel (the public checkpoints do).
      activation_fn: activation after each convolution.
      use_batch_norm: batch-normalise every convolution.
      batch_norm_updates_collections: where batch norm puts its update ops.

    Returns:
      An arg_scope for `slim.conv2d` and `slim.batch_norm`.
    """
    batch_norm_params = {
        'decay': batch_norm_decay,
        'epsilon': batch_norm_epsilon,
        'scale': batch_norm_scale,
        'updates_collections': batch_norm_updates_collections,
        'fused': None,
    }
    with slim.arg_scope([slim.conv2d],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        weights_initializer=slim.variance_scaling_initializer(),
                        activation_fn=activation_fn,
                        normalizer_fn=slim.batch_norm if use_batch_norm else None,
                        normalizer_params=batch_norm_params):
        # ResNet v2's pre-activations are batch norms outside any convolution.
        with slim.arg_scope([slim.batch_norm], **batch_norm_params) as scope:
            return scope
