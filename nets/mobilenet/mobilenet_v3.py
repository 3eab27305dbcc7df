"""MobileNet v3 (Howard et al. 2019, "Searching for MobileNetV3") and MobileNet EdgeTPU.

Each net is a row table of inverted bottlenecks as the papers list them
(kernel, expanded channels, output channels, stride, squeeze-excite,
activation) between a 3x3 stem convolution and a 1x1 head. The
'minimalistic' variants drop what is costly on some hardware: no
squeeze-excite, no hard-swish, no 5x5 kernels. EdgeTPU fuses the expansion
and depthwise convolutions of its first blocks into one full convolution.
All are built by the generic builder of `mobilenet.py`; `large`, `small`,
`large_minimalistic`, `small_minimalistic`, `edge_tpu` and `edge_tpu_075`
are the published named variants.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import tensorflow.compat.v1 as tf

from nets.mobilenet import conv_blocks
from nets.mobilenet import mobilenet as lib
from slim_classifier.compat import slim

hard_swish = conv_blocks.hard_swish
relu = tf.nn.relu
training_scope = lib.training_scope

# Groups of the group normalisation `use_groupnorm` selects: every depth the
# tables give is rounded to a multiple of 8, so it splits evenly.
_GROUPNORM_GROUPS = 8


class Bneck(NamedTuple):
    """One inverted bottleneck as the papers tabulate it."""
    kernel: int
    # Expanded channels at depth multiplier 1; scaled nets keep the ratio to
    # the block's input channels.
    expansion: int
    depth: int
    stride: int = 1
    squeeze_excite: bool = False
    activation: Callable[[tf.Tensor], tf.Tensor] = relu
    # The expansion is a full kernel x kernel convolution; no depthwise one.
    fused: bool = False
    residual: bool = True


def reduce_to_1x1(input_tensor: tf.Tensor, default_size: int = 7, **pool_args: Any) -> tf.Tensor:
    """Average-pools a square map to 1 x 1; a `default_size` window otherwise.

    Args:
      input_tensor: [batch, height, width, channels].
      default_size: window side when the map is not square or its size unknown.
      **pool_args: passed to `slim.avg_pool2d` (stride, padding).

    Returns:
      The pooled map.
    """
    height, width = input_tensor.shape.as_list()[1:3]
    side = height if height is not None and height == width else default_size
    return slim.avg_pool2d(input_tensor, [side, side], **pool_args)


def _head(depth: int, features: int, activation: Callable[[tf.Tensor], tf.Tensor],
          ) -> tuple[lib.Op, ...]:
    """1x1 convolution to `depth`, pool to 1 x 1, 1x1 convolution (no batch norm) to `features`."""
    return (lib.op(slim.conv2d, num_outputs=depth, kernel_size=[1, 1], activation_fn=activation),
            lib.op(reduce_to_1x1, default_size=7, stride=1, padding='VALID'),
            lib.op(slim.conv2d, num_outputs=features, kernel_size=[1, 1], normalizer_fn=None,
                   activation_fn=activation))


_DEFAULTS = (
    ((slim.batch_norm,), {'center': True, 'scale': True}),
    ((slim.conv2d, slim.fully_connected, slim.separable_conv2d),
     {'normalizer_fn': slim.batch_norm, 'activation_fn': relu}),
    ((slim.conv2d, slim.separable_conv2d), {'padding': 'SAME'}),
    ((conv_blocks.expanded_conv,), {'residual': True}),
)


def _conv_defs(stem_depth: int, stem_activation: Callable[[tf.Tensor], tf.Tensor],
               rows: Sequence[Bneck], head: Sequence[lib.Op]) -> lib.ConvDefs:
    """The table of a net: a stride-2 3x3 stem, one bottleneck per row, then `head`."""
    layers = [lib.op(slim.conv2d, num_outputs=stem_depth, kernel_size=[3, 3], stride=2,
                     activation_fn=stem_activation)]
    input_depth = stem_depth
    for row in rows:
        layers.append(lib.bottleneck(
            row.expansion / input_depth, row.depth, row.kernel, row.stride,
            inner_activation_fn=row.activation, fused=row.fused, residual=row.residual,
            expansion_transform=conv_blocks.squeeze_excite if row.squeeze_excite else None))
        input_depth = row.depth
    return lib.ConvDefs(spec=tuple(layers) + tuple(head), defaults=_DEFAULTS)


def _minimalistic(rows: Sequence[Bneck]) -> tuple[Bneck, ...]:
    """The rows with 3x3 kernels, ReLU and no squeeze-excite."""
    return tuple(row._replace(kernel=3, squeeze_excite=False, activation=relu) for row in rows)


# Table 1 of the paper; shapes at 224 x 224.
_LARGE_ROWS = (
    Bneck(3, 16, 16),                                                # 112 x 112 x 16
    Bneck(3, 64, 24, stride=2),                                      # 56 x 56 x 24
    Bneck(3, 72, 24),
    Bneck(5, 72, 40, stride=2, squeeze_excite=True),                 # 28 x 28 x 40
    Bneck(5, 120, 40, squeeze_excite=True),
    Bneck(5, 120, 40, squeeze_excite=True),
    Bneck(3, 240, 80, stride=2, activation=hard_swish),              # 14 x 14 x 80
    Bneck(3, 200, 80, activation=hard_swish),
    Bneck(3, 184, 80, activation=hard_swish),
    Bneck(3, 184, 80, activation=hard_swish),
    Bneck(3, 480, 112, squeeze_excite=True, activation=hard_swish),  # 14 x 14 x 112
    Bneck(3, 672, 112, squeeze_excite=True, activation=hard_swish),
    Bneck(5, 672, 160, stride=2, squeeze_excite=True, activation=hard_swish),  # 7 x 7 x 160
    Bneck(5, 960, 160, squeeze_excite=True, activation=hard_swish),
    Bneck(5, 960, 160, squeeze_excite=True, activation=hard_swish),
)

# Table 2 of the paper; shapes at 224 x 224.
_SMALL_ROWS = (
    Bneck(3, 16, 16, stride=2, squeeze_excite=True),                 # 56 x 56 x 16
    Bneck(3, 72, 24, stride=2),                                      # 28 x 28 x 24
    Bneck(3, 88, 24),
    Bneck(5, 96, 40, stride=2, squeeze_excite=True, activation=hard_swish),  # 14 x 14 x 40
    Bneck(5, 240, 40, squeeze_excite=True, activation=hard_swish),
    Bneck(5, 240, 40, squeeze_excite=True, activation=hard_swish),
    Bneck(5, 120, 48, squeeze_excite=True, activation=hard_swish),   # 14 x 14 x 48
    Bneck(5, 144, 48, squeeze_excite=True, activation=hard_swish),
    Bneck(5, 288, 96, stride=2, squeeze_excite=True, activation=hard_swish),  # 7 x 7 x 96
    Bneck(5, 576, 96, squeeze_excite=True, activation=hard_swish),
    Bneck(5, 576, 96, squeeze_excite=True, activation=hard_swish),
)

# MobileNet EdgeTPU (ReLU throughout); shapes at 224 x 224.
_EDGETPU_ROWS = (
    (Bneck(3, 32, 16, fused=True),                                   # 112 x 112 x 16
     Bneck(3, 128, 32, stride=2, fused=True))                        # 56 x 56 x 32
    + (Bneck(3, 128, 32, fused=True),) * 3
    + (Bneck(3, 256, 48, stride=2, fused=True),)                     # 28 x 28 x 48
    + (Bneck(3, 192, 48, fused=True),) * 3
    + (Bneck(3, 384, 96, stride=2),)                                 # 14 x 14 x 96
    + (Bneck(3, 384, 96),) * 3
    + (Bneck(3, 768, 96, residual=False),)
    + (Bneck(3, 384, 96),) * 3
    + (Bneck(5, 768, 160, stride=2),)                                # 7 x 7 x 160
    + (Bneck(5, 640, 160),) * 3
    + (Bneck(3, 1280, 192),)                                         # 7 x 7 x 192
)

# Heads: 7 x 7 x 960 (576 small), 1 x 1 pool, 1 x 1 x 1280 (1024 small).
V3_LARGE = _conv_defs(16, hard_swish, _LARGE_ROWS, _head(960, 1280, hard_swish))
V3_SMALL = _conv_defs(16, hard_swish, _SMALL_ROWS, _head(576, 1024, hard_swish))
V3_LARGE_MINIMALISTIC = _conv_defs(16, relu, _minimalistic(_LARGE_ROWS), _head(960, 1280, relu))
V3_SMALL_MINIMALISTIC = _conv_defs(16, relu, _minimalistic(_SMALL_ROWS), _head(576, 1024, relu))
# No pool layer: the 7 x 7 x 1280 map goes to the classifier's global pool.
V3_EDGETPU = _conv_defs(32, relu, _EDGETPU_ROWS,
                        (lib.op(slim.conv2d, num_outputs=1280, kernel_size=[1, 1]),))


@slim.add_arg_scope
def mobilenet(input_tensor: tf.Tensor,
              num_classes: int | None = 1001,
              depth_multiplier: float = 1.0,
              scope: str = 'MobilenetV3',
              conv_defs: lib.ConvDefs | None = None,
              finegrain_classification_mode: bool = False,
              use_groupnorm: bool = False,
              **kwargs: Any) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """A MobileNet v3 or EdgeTPU net: `conv_defs` built by `mobilenet.mobilenet`.

    Args:
      input_tensor: [batch, height, width, 3] images; 224 x 224 by default.
      num_classes: number of logits; 0 or None returns the pooled features.
      depth_multiplier: scales the depth of every layer.
      scope: variable scope of the net ('MobilenetEdgeTPU' for EdgeTPU).
      conv_defs: the table to build; `V3_LARGE` when None.
      finegrain_classification_mode: keep the last layer at its published
        depth whatever the depth multiplier.
      use_groupnorm: normalise with group normalisation (8 groups) instead of
        batch normalisation.
      **kwargs: passed to `mobilenet.mobilenet` (is_training, reuse,
        final_endpoint, output_stride, base_only, ...).

    Returns:
      (logits, end_points), as `mobilenet.mobilenet`.

    Raises:
      ValueError: if `multiplier` is given (use depth_multiplier), or as
        `mobilenet.mobilenet`.
    """
    if 'multiplier' in kwargs:
        raise ValueError('mobilenet_v3 takes depth_multiplier, not multiplier')
    conv_defs = V3_LARGE if conv_defs is None else conv_defs
    if finegrain_classification_mode:
        conv_defs = conv_defs.with_last_layer_unscaled()
    if use_groupnorm:
        conv_defs = conv_defs.with_defaults(
            (slim.conv2d, slim.fully_connected, slim.separable_conv2d),
            normalizer_fn=slim.group_norm,
        ).with_defaults((slim.group_norm,), groups=_GROUPNORM_GROUPS)
    return lib.mobilenet(input_tensor, num_classes=num_classes, conv_defs=conv_defs,
                         scope=scope, multiplier=depth_multiplier, **kwargs)


mobilenet.default_image_size = 224


@slim.add_arg_scope
def mobilenet_base(input_tensor: tf.Tensor, depth_multiplier: float = 1.0,
                   **kwargs: Any) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The layers of a MobileNet v3 net without the head; the arguments are those of `mobilenet`."""
    return mobilenet(input_tensor, depth_multiplier=depth_multiplier, base_only=True, **kwargs)


large = lib.named_variant(mobilenet, 'large', 'MobileNet v3 large.', conv_defs=V3_LARGE)
small = lib.named_variant(mobilenet, 'small', 'MobileNet v3 small.', conv_defs=V3_SMALL)
large_minimalistic = lib.named_variant(
    mobilenet, 'large_minimalistic', 'MobileNet v3 large without SE, hard-swish or 5x5.',
    conv_defs=V3_LARGE_MINIMALISTIC)
small_minimalistic = lib.named_variant(
    mobilenet, 'small_minimalistic', 'MobileNet v3 small without SE, hard-swish or 5x5.',
    conv_defs=V3_SMALL_MINIMALISTIC)
edge_tpu = lib.named_variant(mobilenet, 'edge_tpu', 'MobileNet EdgeTPU.',
                             conv_defs=V3_EDGETPU, scope='MobilenetEdgeTPU')
edge_tpu_075 = lib.named_variant(
    mobilenet, 'edge_tpu_075', 'MobileNet EdgeTPU at depth multiplier 0.75, last layer at 1280.',
    conv_defs=V3_EDGETPU, depth_multiplier=0.75, finegrain_classification_mode=True,
    scope='MobilenetEdgeTPU')
