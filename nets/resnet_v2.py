"""ResNet v2, as in "Identity Mappings in Deep Residual Networks" (He et al.,
2016, https://arxiv.org/abs/1603.05027), with bottleneck units.

Version 2 moves batch norm and ReLU in front of the convolutions
("pre-activation"): each unit starts with a batch norm + ReLU (`preact`)
and adds its 1x1 - 3x3 - 1x1 residual branch to an untouched shortcut, so
the identity path runs from the first block to the last. The first unit's
batch norm therefore serves conv1, which has neither batch norm nor ReLU,
and a final batch norm + ReLU (`postnorm`) closes the last block. Convolutions
followed directly by an addition have biases instead of batch norm.
Variable and end point names follow the public TF-Slim checkpoints
(`resnet_v2_50/block1/unit_1/bottleneck_v2/preact/gamma`).

`resnet_v2` builds any list of blocks; `resnet_v2_50`, `_101`, `_152` and
`_200` are thin named variants.
"""

import tensorflow.compat.v1 as tf

from nets import resnet_utils
from slim_classifier.compat import slim

# Re-exported so that `nets.resnet_v2.resnet_arg_scope` works as in TF-Slim.
resnet_arg_scope = resnet_utils.resnet_arg_scope


@slim.add_arg_scope
def bottleneck(inputs: tf.Tensor,
               depth: int,
               depth_bottleneck: int,
               stride: int,
               rate: int = 1,
               outputs_collections: str | None = None,
               scope: str | None = None) -> tf.Tensor:
    """A pre-activation bottleneck residual unit.

    Args:
      inputs: [batch, height, width, channels], not yet normalised.
      depth: output channels of the unit.
      depth_bottleneck: channels of the 1x1 and 3x3 convolutions inside it.
      stride: stride of the unit, applied by its 3x3 convolution.
      rate: atrous rate of the 3x3 convolution.
      outputs_collections: collection the unit's output and its convolutions'
        outputs are added to.
      scope: variable scope; defaults to 'bottleneck_v2'.

    Returns:
      [batch, ceil(height / stride), ceil(width / stride), depth], the sum of
      shortcut and residual, not normalised.
    """
    with tf.variable_scope(scope, 'bottleneck_v2', [inputs]) as unit_scope:
        depth_in = slim.utils.last_dimension(inputs.get_shape(), min_rank=4)
        preact = slim.batch_norm(inputs, activation_fn=tf.nn.relu, scope='preact')
        if depth == depth_in:
            shortcut = resnet_utils.subsample(inputs, stride, 'shortcut')
        else:
            # A projection takes the normalised input, as the residual branch does.
            shortcut = slim.conv2d(preact, depth, [1, 1], stride=stride, normalizer_fn=None,
                                   activation_fn=None, scope='shortcut')
        residual = slim.conv2d(preact, depth_bottleneck, [1, 1], stride=1, scope='conv1')
        residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride,
                                            rate=rate, scope='conv2')
        residual = slim.conv2d(residual, depth, [1, 1], stride=1, normalizer_fn=None,
                               activation_fn=None, scope='conv3')
        output = shortcut + residual
        return slim.utils.collect_named_outputs(outputs_collections, unit_scope.name, output)


def resnet_v2(inputs: tf.Tensor,
              blocks: list[resnet_utils.Block],
              num_classes: int | None = None,
              is_training: bool = True,
              global_pool: bool = True,
              output_stride: int | None = None,
              include_root_block: bool = True,
              spatial_squeeze: bool = True,
              reuse: bool | None = None,
              scope: str | None = None,
              ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds a ResNet v2 from `blocks`.

    Args:
      inputs: images, a float tensor [batch, height, width, channels].
      blocks: the residual blocks, in order (see `resnet_v2_block`).
      num_classes: number of logits; 0 or None returns the features instead:
        the pooled [batch, 1, 1, channels] with `global_pool`, else the
        `postnorm` map.
      is_training: batch norm normalises with the batch's statistics and
        updates its moving averages.
      global_pool: average the `postnorm` map over its grid before the logits.
      output_stride: the largest ratio of image size to final map size; one
        of the strides the root block and units reach (4, 8, 16 or 32 for the
        ImageNet blocks), or None for 32. Past it units use atrous convolution.
      include_root_block: start with conv1 and pool1 (stride 4); without it
        the blocks take `inputs` directly.
      spatial_squeeze: squeeze the logits to [batch, num_classes]; needs a
        1 x 1 map, which `global_pool` gives.
      reuse: reuse the variables of an earlier build under `scope`.
      scope: variable scope of the whole net; defaults to 'resnet_v2'.

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
    with tf.variable_scope(scope, 'resnet_v2', [inputs], reuse=reuse) as net_scope:
        end_points_collection = net_scope.original_name_scope + '_end_points'
        with slim.arg_scope([slim.conv2d, bottleneck, resnet_utils.stack_blocks_dense],
                            outputs_collections=end_points_collection), \
                slim.arg_scope([slim.batch_norm], is_training=is_training):
            net = inputs
            if include_root_block:
                # The first unit's `preact` normalises and activates conv1.
                with slim.arg_scope([slim.conv2d], activation_fn=None, normalizer_fn=None):
                    net = resnet_utils.root_block(net)
            net = resnet_utils.stack_blocks_dense(net, blocks, blocks_output_stride)
            # Units end in a plain sum, so the last one still needs its activation.
            net = slim.batch_norm(net, activation_fn=tf.nn.relu, scope='postnorm')
            end_points = slim.utils.convert_collection_to_dict(end_points_collection)
            net = resnet_utils.logits_head(net, end_points, net_scope.name,
                                           num_classes=num_classes, global_pool=global_pool,
                                           spatial_squeeze=spatial_squeeze)
    return net, end_points


def resnet_v2_block(scope: str, base_depth: int, num_units: int,
                    stride: int) -> resnet_utils.Block:
    """A block of `num_units` v2 bottleneck units of `4 * base_depth` channels.

    Args:
      scope: the block's variable scope, such as 'block1'.
      base_depth: channels of each unit's 1x1 and 3x3 convolutions.
      num_units: how many units the block has.
      stride: stride of the block, applied by its last unit.

    Returns:
      The block, for `resnet_v2`.
    """
    return resnet_utils.Block(
        scope, bottleneck,
        resnet_utils.units_with_last_stride(base_depth * 4, base_depth, num_units, stride))


def _imagenet_resnet_v2(num_layers: int, inputs: tf.Tensor, *, scope: str,
                        **resnet_v2_kwargs) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The ImageNet ResNet v2 of `num_layers` layers."""
    blocks = resnet_utils.imagenet_blocks(resnet_v2_block, num_layers)
    return resnet_v2(inputs, blocks, scope=scope, **resnet_v2_kwargs)


def resnet_v2_50(inputs: tf.Tensor, num_classes: int | None = None, is_training: bool = True,
                 global_pool: bool = True, output_stride: int | None = None,
                 spatial_squeeze: bool = True, reuse: bool | None = None,
                 scope: str = 'resnet_v2_50') -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """ResNet-50 v2 (3, 4, 6, 3 units); the arguments are those of `resnet_v2`."""
    return _imagenet_resnet_v2(
        50, inputs, num_classes=num_classes, is_training=is_training,
        global_pool=global_pool, output_stride=output_stride,
        spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope)


def resnet_v2_101(inputs: tf.Tensor, num_classes: int | None = None, is_training: bool = True,
                  global_pool: bool = True, output_stride: int | None = None,
                  spatial_squeeze: bool = True, reuse: bool | None = None,
                  scope: str = 'resnet_v2_101') -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """ResNet-101 v2 (3, 4, 23, 3 units); the arguments are those of `resnet_v2`."""
    return _imagenet_resnet_v2(
        101, inputs, num_classes=num_classes, is_training=is_training,
        global_pool=global_pool, output_stride=output_stride,
        spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope)


def resnet_v2_152(inputs: tf.Tensor, num_classes: int | None = None, is_training: bool = True,
                  global_pool: bool = True, output_stride: int | None = None,
                  spatial_squeeze: bool = True, reuse: bool | None = None,
                  scope: str = 'resnet_v2_152') -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """ResNet-152 v2 (3, 8, 36, 3 units); the arguments are those of `resnet_v2`."""
    return _imagenet_resnet_v2(
        152, inputs, num_classes=num_classes, is_training=is_training,
        global_pool=global_pool, output_stride=output_stride,
        spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope)


def resnet_v2_200(inputs: tf.Tensor, num_classes: int | None = None, is_training: bool = True,
                  global_pool: bool = True, output_stride: int | None = None,
                  spatial_squeeze: bool = True, reuse: bool | None = None,
                  scope: str = 'resnet_v2_200') -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """ResNet-200 v2 (3, 24, 36, 3 units); the arguments are those of `resnet_v2`."""
    return _imagenet_resnet_v2(
        200, inputs, num_classes=num_classes, is_training=is_training,
        global_pool=global_pool, output_stride=output_stride,
        spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope)


# The default image size, as TF-Slim's function attributes (the registry in
# nets_factory is the source of truth). The public v2 checkpoints were
# trained at 299 x 299 with Inception preprocessing; TF-Slim lists 224.
for _builder in (resnet_v2, resnet_v2_50, resnet_v2_101, resnet_v2_152, resnet_v2_200):
    _builder.default_image_size = 224
del _builder
