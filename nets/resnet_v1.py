"""ResNet v1, as in "Deep Residual Learning for Image Recognition" (He et al.,
2015, https://arxiv.org/abs/1512.03385), with bottleneck units.

Each unit adds its input (or a 1x1 projection of it) to a 1x1 - 3x3 - 1x1
residual branch and applies a ReLU to the sum. As in the public TF-Slim
checkpoints (converted from the authors' Caffe models), a block's stride is
applied by the 3x3 convolution of its last unit, and every convolution is
batch-normalised. Variable and end point names follow those checkpoints
(`resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/weights`) so they restore
without renaming.

`resnet_v1` builds any list of blocks; `resnet_v1_50`, `_101`, `_152` and
`_200` are thin named variants. Their logits are [batch, num_classes] at
any input size (global average pool), and `output_stride` makes the final
map denser with atrous convolution, for dense prediction.
"""

import tensorflow.compat.v1 as tf

from nets import resnet_utils
from slim_classifier.compat import slim

# Re-exported so that `nets.resnet_v1.resnet_arg_scope` works as in TF-Slim.
resnet_arg_scope = resnet_utils.resnet_arg_scope


@slim.add_arg_scope
def bottleneck(inputs: tf.Tensor,
               depth: int,
               depth_bottleneck: int,
               stride: int,
               rate: int = 1,
               outputs_collections: str | None = None,
               scope: str | None = None) -> tf.Tensor:
    """A bottleneck residual unit with batch norm after every convolution.

    Args:
      inputs: [batch, height, width, channels].
      depth: output channels of the unit.
      depth_bottleneck: channels of the 1x1 and 3x3 convolutions inside it.
      stride: stride of the unit, applied by its 3x3 convolution.
      rate: atrous rate of the 3x3 convolution.
      outputs_collections: collection the unit's output and its convolutions'
        outputs are added to.
      scope: variable scope; defaults to 'bottleneck_v1'.

    Returns:
      [batch, ceil(height / stride), ceil(width / stride), depth].
    """
    with tf.variable_scope(scope, 'bottleneck_v1', [inputs]) as unit_scope:
        depth_in = slim.utils.last_dimension(inputs.get_shape(), min_rank=4)
        if depth == depth_in:
            shortcut = resnet_utils.subsample(inputs, stride, 'shortcut')
        else:
            shortcut = slim.conv2d(inputs, depth, [1, 1], stride=stride, activation_fn=None,
                                   scope='shortcut')
        residual = slim.conv2d(inputs, depth_bottleneck, [1, 1], stride=1, scope='conv1')
        residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride,
                                            rate=rate, scope='conv2')
        residual = slim.conv2d(residual, depth, [1, 1], stride=1, activation_fn=None,
                               scope='conv3')
        output = tf.nn.relu(shortcut + residual)
        return slim.utils.collect_named_outputs(outputs_collections, unit_scope.name, output)


def resnet_v1(inputs: tf.Tensor,
              blocks: list[resnet_utils.Block],
              num_classes: int | None = None,
              is_training: bool = True,
              global_pool: bool = True,
              output_stride: int | None = None,
              include_root_block: bool = True,
              spatial_squeeze: bool = True,
              store_non_strided_activations: bool = False,
              reuse: bool | None = None,
              scope: str | None = None,
              ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds a ResNet v1 from `blocks`.

    Args:
      inputs: images, a float tensor [batch, height, width, channels].
      blocks: the residual blocks, in order (see `resnet_v1_block`).
      num_classes: number of logits; 0 or None returns the features instead:
        the pooled [batch, 1, 1, channels] with `global_pool`, else the last
        block's map.
      is_training: batch norm normalises with the batch's statistics and
        updates its moving averages.
      global_pool: average the last block's map over its grid before the logits.
      output_stride: the largest ratio of image size to final map size; one
        of the strides the root block and units reach (4, 8, 16 or 32 for the
        ImageNet blocks), or None for 32. Past it units use atrous convolution.
      include_root_block: start with conv1 and pool1 (stride 4); without it
        the blocks take `inputs` directly.
      spatial_squeeze: squeeze the logits to [batch, num_classes]; needs a
        1 x 1 map, which `global_pool` gives.
      store_non_strided_activations: make each block's end point the map
        before its last stride (see `resnet_utils.stack_blocks_dense`).
      reuse: reuse the variables of an earlier build under `scope`.
      scope: variable scope of the whole net; defaults to 'resnet_v1'.

    Returns:
      The logits (or features, see `num_classes`) and a dict of end points:
      every convolution, unit and block by full scope name, then
      'global_pool', '<scope>/logits', '<scope>/spatial_squeeze' and
      'predictions' when they are built.

    Raises:
      ValueError: if `output_stride` cannot be reached with these blocks.
    """
    blocks_output_stride = resnet_utils.blocks_output_stride(output_stride, blocks,
                                                             include_root_block)
    with tf.variable_scope(scope, 'resnet_v1', [inputs], reuse=reuse) as net_scope:
        end_points_collection = net_scope.original_name_scope + '_end_points'
        with slim.arg_scope([slim.conv2d, bottleneck, resnet_utils.stack_blocks_dense],
                            outputs_collections=end_points_collection), \
                slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = inputs
            if include_root_block:
                net = resnet_utils.root_block(net)
            net = resnet_utils.stack_blocks_dense(
                net, blocks, blocks_output_stride, store_non_strided_activations)
            end_points = slim.utils.convert_collection_to_dict(end_points_collection)
            net = resnet_utils.logits_head(net, end_points, net_scope.name,
                                           num_classes=num_classes, global_pool=global_pool,
                                           spatial_squeeze=spatial_squeeze)
    return net, end_points


def resnet_v1_block(scope: str, base_depth: int, num_units: int,
                    stride: int) -> resnet_utils.Block:
    """A block of `num_units` v1 bottleneck units of `4 * base_depth` channels.

    Args:
      scope: the block's variable scope, such as 'block1'.
      base_depth: channels of each unit's 1x1 and 3x3 convolutions.
      num_units: how many units the block has.
      stride: stride of the block, applied by its last unit.

    Returns:
      The block, for `resnet_v1`.
    """
    return resnet_utils.Block(
        scope, bottleneck,
        resnet_utils.units_with_last_stride(base_depth * 4, base_depth, num_units, stride))


def _imagenet_resnet_v1(num_layers: int, inputs: tf.Tensor, *, min_base_depth: int,
                        depth_multiplier: float, scope: str,
                        **resnet_v1_kwargs) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The ImageNet ResNet v1 of `num_layers` layers, its depths scaled."""
    def depth(base_depth: int) -> int:
        return max(int(base_depth * depth_multiplier), min_base_depth)

    blocks = resnet_utils.imagenet_blocks(resnet_v1_block, num_layers, depth)
    return resnet_v1(inputs, blocks, scope=scope, **resnet_v1_kwargs)


# The named variants keep TF-Slim's argument order, which differs between
# them (152 and 200 take store_non_strided_activations before
# spatial_squeeze), so positional calls mean what they meant there.

def resnet_v1_50(inputs: tf.Tensor, num_classes: int | None = None, is_training: bool = True,
                 global_pool: bool = True, output_stride: int | None = None,
                 spatial_squeeze: bool = True, store_non_strided_activations: bool = False,
                 min_base_depth: int = 8, depth_multiplier: float = 1,
                 reuse: bool | None = None, scope: str = 'resnet_v1_50',
                 ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """ResNet-50 v1 (3, 4, 6, 3 units).

    `min_base_depth` and `depth_multiplier` scale each block's bottleneck
    depth d to max(int(d * depth_multiplier), min_base_depth); the other
    arguments are those of `resnet_v1`.
    """
    return _imagenet_resnet_v1(
        50, inputs, num_classes=num_classes, is_training=is_training,
        global_pool=global_pool, output_stride=output_stride,
        spatial_squeeze=spatial_squeeze,
        store_non_strided_activations=store_non_strided_activations,
        min_base_depth=min_base_depth, depth_multiplier=depth_multiplier, reuse=reuse,
        scope=scope)


def resnet_v1_101(inputs: tf.Tensor, num_classes: int | None = None, is_training: bool = True,
                  global_pool: bool = True, output_stride: int | None = None,
                  spatial_squeeze: bool = True, store_non_strided_activations: bool = False,
                  min_base_depth: int = 8, depth_multiplier: float = 1,
                  reuse: bool | None = None, scope: str = 'resnet_v1_101',
                  ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """ResNet-101 v1 (3, 4, 23, 3 units); the arguments are those of `resnet_v1_50`."""
    return _imagenet_resnet_v1(
        101, inputs, num_classes=num_classes, is_training=is_training,
        global_pool=global_pool, output_stride=output_stride,
        spatial_squeeze=spatial_squeeze,
        store_non_strided_activations=store_non_strided_activations,
        min_base_depth=min_base_depth, depth_multiplier=depth_multiplier, reuse=reuse,
        scope=scope)


def resnet_v1_152(inputs: tf.Tensor, num_classes: int | None = None, is_training: bool = True,
                  global_pool: bool = True, output_stride: int | None = None,
                  store_non_strided_activations: bool = False, spatial_squeeze: bool = True,
                  min_base_depth: int = 8, depth_multiplier: float = 1,
                  reuse: bool | None = None, scope: str = 'resnet_v1_152',
                  ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """ResNet-152 v1 (3, 8, 36, 3 units); the arguments are those of `resnet_v1_50`."""
    return _imagenet_resnet_v1(
        152, inputs, num_classes=num_classes, is_training=is_training,
        global_pool=global_pool, output_stride=output_stride,
        spatial_squeeze=spatial_squeeze,
        store_non_strided_activations=store_non_strided_activations,
        min_base_depth=min_base_depth, depth_multiplier=depth_multiplier, reuse=reuse,
        scope=scope)


def resnet_v1_200(inputs: tf.Tensor, num_classes: int | None = None, is_training: bool = True,
                  global_pool: bool = True, output_stride: int | None = None,
                  store_non_strided_activations: bool = False, spatial_squeeze: bool = True,
                  min_base_depth: int = 8, depth_multiplier: float = 1,
                  reuse: bool | None = None, scope: str = 'resnet_v1_200',
                  ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """ResNet-200 v1 (3, 24, 36, 3 units); the arguments are those of `resnet_v1_50`."""
    return _imagenet_resnet_v1(
        200, inputs, num_classes=num_classes, is_training=is_training,
        global_pool=global_pool, output_stride=output_stride,
        spatial_squeeze=spatial_squeeze,
        store_non_strided_activations=store_non_strided_activations,
        min_base_depth=min_base_depth, depth_multiplier=depth_multiplier, reuse=reuse,
        scope=scope)


# The image size the public checkpoints were trained at, as TF-Slim's
# function attributes (the registry in nets_factory is the source of truth).
for _builder in (resnet_v1, resnet_v1_50, resnet_v1_101, resnet_v1_152, resnet_v1_200):
    _builder.default_image_size = 224
del _builder
