"""MobileNet v2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks").

A 3x3 stem convolution, seventeen inverted bottlenecks (Table 2 of the
paper, `BOTTLENECKS`) and a 1x1 convolution to 1280 channels, all with
ReLU6, under scope 'MobilenetV2'. `V2_DEF` is the table the generic builder
of `mobilenet.py` reads; `mobilenet_v2_140`, `mobilenet_v2_050` and
`mobilenet_v2_035` are the published thinner and wider variants.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import tensorflow.compat.v1 as tf

from nets.mobilenet import conv_blocks
from nets.mobilenet import mobilenet as lib
from slim_classifier.compat import slim

# (expansion factor t, output channels c, repeats n, stride of the first s),
# as in Table 2 of the paper; shapes at 224 x 224.
BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),    # 112 x 112 x 16
    (6, 24, 2, 2),    # 56 x 56 x 24
    (6, 32, 3, 2),    # 28 x 28 x 32
    (6, 64, 4, 2),    # 14 x 14 x 64
    (6, 96, 3, 1),    # 14 x 14 x 96
    (6, 160, 3, 2),   # 7 x 7 x 160
    (6, 320, 1, 1),   # 7 x 7 x 320
)


def _spec() -> tuple[lib.Op, ...]:
    """The layers of MobileNet v2: stem, the bottlenecks of `BOTTLENECKS`, last conv."""
    layers = [lib.op(slim.conv2d, num_outputs=32, kernel_size=[3, 3], stride=2)]  # 112x112x32
    for expansion, depth, repeats, stride in BOTTLENECKS:
        layers.append(lib.bottleneck(expansion, depth, stride=stride))
        layers.extend(lib.bottleneck(expansion, depth) for _ in range(repeats - 1))
    layers.append(lib.op(slim.conv2d, num_outputs=1280, kernel_size=[1, 1]))  # 7 x 7 x 1280
    return tuple(layers)


V2_DEF = lib.ConvDefs(
    spec=_spec(),
    defaults=(
        ((slim.batch_norm,), {'center': True, 'scale': True}),
        ((slim.conv2d, slim.fully_connected, slim.separable_conv2d),
         {'normalizer_fn': slim.batch_norm, 'activation_fn': tf.nn.relu6}),
        ((slim.conv2d, slim.separable_conv2d), {'padding': 'SAME'}),
        ((conv_blocks.expanded_conv,), {'residual': True}),
    ),
)


@slim.add_arg_scope
def mobilenet(input_tensor: tf.Tensor,
              num_classes: int | None = 1001,
              depth_multiplier: float = 1.0,
              scope: str = 'MobilenetV2',
              conv_defs: lib.ConvDefs | None = None,
              finegrain_classification_mode: bool = False,
              min_depth: int | None = None,
              divisible_by: int | None = None,
              activation_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
              **kwargs: Any) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """MobileNet v2: `V2_DEF` (or `conv_defs`) built by `mobilenet.mobilenet`.

    Args:
      input_tensor: [batch, height, width, 3] images; 224 x 224 by default.
      num_classes: number of logits; 0 or None returns the pooled features.
      depth_multiplier: scales the depth of every layer.
      scope: variable scope of the net.
      conv_defs: the table to build; `V2_DEF` when None.
      finegrain_classification_mode: with depth_multiplier < 1, keep the last
        layer at its full depth (1280), as the published thin checkpoints do.
      min_depth: the fewest channels any scaled layer gets (default 8).
      divisible_by: every scaled depth is a multiple of it (default 8).
      activation_fn: replaces ReLU6 in every convolution.
      **kwargs: passed to `mobilenet.mobilenet` (is_training, reuse,
        final_endpoint, output_stride, base_only, ...).

    Returns:
      (logits, end_points), as `mobilenet.mobilenet`.

    Raises:
      ValueError: if `multiplier` is given (use depth_multiplier), or as
        `mobilenet.mobilenet`.
    """
    if 'multiplier' in kwargs:
        raise ValueError('mobilenet_v2 takes depth_multiplier, not multiplier')
    conv_defs = V2_DEF if conv_defs is None else conv_defs
    if finegrain_classification_mode and depth_multiplier < 1:
        conv_defs = conv_defs.with_last_layer_unscaled()
    if activation_fn is not None:
        conv_defs = conv_defs.with_defaults(
            (slim.conv2d, slim.fully_connected, slim.separable_conv2d),
            activation_fn=activation_fn)
    if min_depth is not None:
        conv_defs = dataclasses.replace(conv_defs, min_depth=min_depth)
    if divisible_by is not None:
        conv_defs = dataclasses.replace(conv_defs, divisible_by=divisible_by)
    return lib.mobilenet(input_tensor, num_classes=num_classes, conv_defs=conv_defs,
                         scope=scope, multiplier=depth_multiplier, **kwargs)


mobilenet.default_image_size = 224

mobilenet_v2_140 = lib.named_variant(
    mobilenet, 'mobilenet_v2_140', 'MobileNet v2 at depth multiplier 1.4.',
    depth_multiplier=1.4)
mobilenet_v2_050 = lib.named_variant(
    mobilenet, 'mobilenet_v2_050', 'MobileNet v2 at depth multiplier 0.5, last layer at 1280.',
    depth_multiplier=0.5, finegrain_classification_mode=True)
mobilenet_v2_035 = lib.named_variant(
    mobilenet, 'mobilenet_v2_035', 'MobileNet v2 at depth multiplier 0.35, last layer at 1280.',
    depth_multiplier=0.35, finegrain_classification_mode=True)


@slim.add_arg_scope
def mobilenet_base(input_tensor: tf.Tensor, depth_multiplier: float = 1.0,
                   **kwargs: Any) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The MobileNet v2 layers without the head; the arguments are those of `mobilenet`."""
    return mobilenet(input_tensor, depth_multiplier=depth_multiplier, base_only=True, **kwargs)


def training_scope(**kwargs: Any) -> dict:
    """`mobilenet.training_scope`, which takes the same arguments."""
    return lib.training_scope(**kwargs)
