"""PNASNet-5 for ImageNet, as in "Progressive Neural Architecture Search"
(Liu et al., 2017, https://arxiv.org/abs/1712.00559).

PNASNet repeats one cell: stride 2 where NASNet would put a reduction cell,
stride 1 elsewhere, and twice in the stem. The stem, the heads, the config
type and the arg_scope are NASNet's (`nasnet.py`). Variable names follow the
public checkpoints pnasnet-5_mobile_2017_12_13 and pnasnet-5_large_2017_12_13,
which restore without renaming.
"""

import tensorflow.compat.v1 as tf

from nets.nasnet import nasnet, nasnet_utils
from nets.nasnet.nasnet import NasNetConfig

# The PNASNet-5 cell, figure 1 of Liu et al. (2017).
PNASNET_5 = nasnet_utils.CellSpec(
    combinations=(
        nasnet_utils.Combination(nasnet_utils.SEPARABLE_5X5, 1, nasnet_utils.MAX_POOL_3X3, 1),
        nasnet_utils.Combination(nasnet_utils.SEPARABLE_7X7, 0, nasnet_utils.MAX_POOL_3X3, 0),
        nasnet_utils.Combination(nasnet_utils.SEPARABLE_5X5, 0, nasnet_utils.SEPARABLE_3X3, 0),
        nasnet_utils.Combination(nasnet_utils.SEPARABLE_3X3, 4, nasnet_utils.MAX_POOL_3X3, 0),
        nasnet_utils.Combination(nasnet_utils.SEPARABLE_3X3, 1, nasnet_utils.IDENTITY, 0),
    ),
    output_states=(2, 3, 4, 5, 6))


def large_imagenet_config() -> NasNetConfig:
    """PNASNet-5 Large (4320 channels at the end), trained at 331 x 331."""
    return NasNetConfig(
        stem_multiplier=3.0,
        dense_dropout_keep_prob=0.5,
        num_cells=12,
        filter_scaling_rate=2.0,
        num_conv_filters=216,
        drop_path_keep_prob=0.6,
        use_aux_head=True,
        num_reduction_layers=2,
        data_format=nasnet_utils.DATA_FORMAT_NHWC,
        skip_reduction_layer_input=True,
        total_training_steps=250000,
        use_bounded_activation=False,
    )


def mobile_imagenet_config() -> NasNetConfig:
    """PNASNet-5 Mobile (1080 channels at the end), trained at 224 x 224."""
    return NasNetConfig(
        stem_multiplier=1.0,
        dense_dropout_keep_prob=0.5,
        num_cells=9,
        filter_scaling_rate=2.0,
        num_conv_filters=54,
        drop_path_keep_prob=1.0,
        use_aux_head=True,
        num_reduction_layers=2,
        data_format=nasnet_utils.DATA_FORMAT_NHWC,
        skip_reduction_layer_input=True,
        total_training_steps=250000,
        use_bounded_activation=False,
    )


def pnasnet_large_arg_scope(weight_decay: float = 0.00004, batch_norm_decay: float = 0.9997,
                            batch_norm_epsilon: float = 0.001):
    """NASNet's arg_scope with the weight decay PNASNet-5 Large was trained with."""
    return nasnet.nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def pnasnet_mobile_arg_scope(weight_decay: float = 0.00004, batch_norm_decay: float = 0.9997,
                             batch_norm_epsilon: float = 0.001):
    """NASNet's arg_scope with the weight decay PNASNet-5 Mobile was trained with."""
    return nasnet.nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


class PNasNetNormalCell(nasnet_utils.NasNetABaseCell):
    """The PNASNet-5 cell; called with stride 2 it halves the grid."""

    def __init__(self, num_conv_filters: int, drop_path_keep_prob: float, total_num_cells: int,
                 total_training_steps: int, use_bounded_activation: bool = False):
        super().__init__(num_conv_filters, PNASNET_5, drop_path_keep_prob, total_num_cells,
                         total_training_steps, use_bounded_activation)


def end_point_names(config: NasNetConfig) -> list[str]:
    """The end points PNASNet builds with `config`, in build order ('AuxLogits' aside)."""
    return (['Stem'] + ['Cell_%d' % cell_num for cell_num in range(config.num_cells)]
            + list(nasnet.CLASSIFIER_END_POINTS))


def _pnasnet_cells(images: tf.Tensor, num_classes: int | None, is_training: bool,
                   end_points: nasnet.EndPoints, config: NasNetConfig) -> tf.Tensor:
    """The stem and every cell, with the auxiliary head; stops at the final end point."""
    # Drop path's depth counts the two stem cells.
    cell = PNasNetNormalCell(config.num_conv_filters, config.drop_path_keep_prob,
                             config.num_cells + 2, config.total_training_steps,
                             config.use_bounded_activation)
    net, outputs = nasnet.imagenet_stem(images, config, cell)
    if end_points.add('Stem', net):
        return net
    reductions = nasnet_utils.calc_reduction_layers(config.num_cells,
                                                    config.num_reduction_layers)
    aux_cells = nasnet.aux_cell_numbers(config, num_classes, is_training)
    filter_scaling = 1.0
    prev_layer = None
    for cell_num in range(config.num_cells):
        is_reduction = cell_num in reductions
        if is_reduction:
            filter_scaling *= config.filter_scaling_rate
        # Without skip_reduction_layer_input a strided cell is fed the same
        # previous output as the cell before it.
        if config.skip_reduction_layer_input or not is_reduction:
            prev_layer = outputs[-2]
        # `outputs` holds None and the first convolution before the cells.
        net = cell(net, scope='cell_%d' % cell_num, filter_scaling=filter_scaling,
                   stride=2 if is_reduction else 1, prev_layer=prev_layer,
                   cell_num=len(outputs) - 2)
        outputs.append(net)
        if end_points.add('Cell_%d' % cell_num, net):
            return net
        if cell_num in aux_cells:
            end_points['AuxLogits'] = nasnet.aux_head(net, num_classes, config,
                                                      scope='aux_%d' % cell_num)
    return net


def _build_pnasnet(images: tf.Tensor, num_classes: int | None, is_training: bool,
                   final_endpoint: str | None,
                   config: NasNetConfig) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """PNASNet-5 with `config`; see `build_pnasnet_mobile`."""
    config = nasnet.config_for(config, is_training)
    nasnet.check_final_endpoint(final_endpoint, end_point_names(config))
    end_points = nasnet.EndPoints(final_endpoint)
    with nasnet.network_arg_scope(is_training, config.data_format):
        net = _pnasnet_cells(nasnet.to_data_format(images, config.data_format), num_classes,
                             is_training, end_points, config)
        if final_endpoint not in end_points:
            net = nasnet.classifier_head(net, end_points, num_classes, config)
    return net, dict(end_points)


def build_pnasnet_mobile(images: tf.Tensor,
                         num_classes: int | None,
                         is_training: bool = True,
                         final_endpoint: str | None = None,
                         config: NasNetConfig | None = None,
                         ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """PNASNet-5 Mobile; the public checkpoint restores into it as is.

    Args:
      images: [batch, height, width, 3] float images; 224 x 224 is the size
        the public checkpoint was trained at.
      num_classes: number of logits; 0 or None stops after the global pool
        (and builds no auxiliary head).
      is_training: training mode for batch norm, dropout and drop path; the
        auxiliary head is built only while training.
      final_endpoint: the last end point to build; None builds them all.
      config: hyperparameters; None uses `mobile_imagenet_config()`.

    Returns:
      The logits [batch, num_classes] (the pooled features [batch, channels]
      without `num_classes`, or the tensor of `final_endpoint`), and a dict of
      every end point built: 'Stem', 'Cell_<n>', 'AuxLogits', 'global_pool',
      'Logits', 'Predictions'.

    Raises:
      ValueError: if `final_endpoint` is not an end point of the network or
        the config's data_format is neither 'NHWC' nor 'NCHW'.
    """
    return _build_pnasnet(images, num_classes, is_training, final_endpoint,
                          config or mobile_imagenet_config())


build_pnasnet_mobile.default_image_size = 224


def build_pnasnet_large(images: tf.Tensor,
                        num_classes: int | None,
                        is_training: bool = True,
                        final_endpoint: str | None = None,
                        config: NasNetConfig | None = None,
                        ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """PNASNet-5 Large, trained at 331 x 331; see `build_pnasnet_mobile`.

    `config` None uses `large_imagenet_config()`, whose drop path creates the
    global step (inside the first cell's scope) when there is none.
    """
    return _build_pnasnet(images, num_classes, is_training, final_endpoint,
                          config or large_imagenet_config())


build_pnasnet_large.default_image_size = 331
