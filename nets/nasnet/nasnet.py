"""NASNet-A for ImageNet, as in "Learning Transferable Architectures for Scalable
Image Recognition" (Zoph et al., 2017, https://arxiv.org/abs/1707.07012).

The network: a strided 3x3 convolution and two reduction cells (the stem),
then `num_cells` normal cells with a reduction cell before each third of
them, an auxiliary classifier while training, and global pooling into a
fully connected layer. Variables have no network-level scope (`cell_0/...`,
`final_layer/FC/...`), as in the public checkpoints nasnet-a_mobile_04_10_2017
and nasnet-a_large_04_10_2017, which restore without renaming.

The stem, the heads, the config and the arg_scope are shared with PNASNet
(`pnasnet.py`).
"""

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

import tensorflow.compat.v1 as tf

from nets.nasnet import nasnet_utils
from slim_classifier.compat import slim

# The end points after the last cell, in build order.
CLASSIFIER_END_POINTS = ('global_pool', 'Logits', 'Predictions')


@dataclasses.dataclass(frozen=True)
class NasNetConfig:
    """The hyperparameters of a NASNet or PNASNet network."""
    # Scales the channels of the first convolution (32 at 1).
    stem_multiplier: float
    # Fraction of the pooled features kept by dropout before the logits.
    dense_dropout_keep_prob: float
    # Number of normal cells (PNASNet: of all cells after the stem).
    num_cells: int
    # Channels multiply by this at each reduction.
    filter_scaling_rate: float
    # Channels of each hidden state of the first normal cells.
    num_conv_filters: int
    # Drop-path keep probability of the last cell at the end of training; 1 disables it.
    drop_path_keep_prob: float
    # Build the auxiliary classifier (while training, with logits).
    use_aux_head: bool
    # Reductions of the grid after the stem.
    num_reduction_layers: int
    # 'NHWC' or 'NCHW'; images are always given as NHWC.
    data_format: str
    # Feed a cell after a reduction the cell before the reduction's input
    # rather than the reduction's input itself.
    skip_reduction_layer_input: bool
    # Steps over which drop path is phased in.
    total_training_steps: int
    # relu6 in place of relu, and cell operations clipped to +-6.
    use_bounded_activation: bool


def large_imagenet_config() -> NasNetConfig:
    """NASNet-A 6 @ 4032 of the paper, trained at 331 x 331."""
    return NasNetConfig(
        stem_multiplier=3.0,
        dense_dropout_keep_prob=0.5,
        num_cells=18,
        filter_scaling_rate=2.0,
        num_conv_filters=168,
        drop_path_keep_prob=0.7,
        use_aux_head=True,
        num_reduction_layers=2,
        data_format=nasnet_utils.DATA_FORMAT_NHWC,
        skip_reduction_layer_input=True,
        total_training_steps=250000,
        use_bounded_activation=False,
    )


def mobile_imagenet_config() -> NasNetConfig:
    """NASNet-A 4 @ 1056 of the paper, trained at 224 x 224."""
    return NasNetConfig(
        stem_multiplier=1.0,
        dense_dropout_keep_prob=0.5,
        num_cells=12,
        filter_scaling_rate=2.0,
        num_conv_filters=44,
        drop_path_keep_prob=1.0,
        use_aux_head=True,
        num_reduction_layers=2,
        data_format=nasnet_utils.DATA_FORMAT_NHWC,
        skip_reduction_layer_input=False,
        total_training_steps=250000,
        use_bounded_activation=False,
    )


def nasnet_arg_scope(weight_decay: float, batch_norm_decay: float = 0.9997,
                     batch_norm_epsilon: float = 0.001):
    """Defaults for the layers of NASNet and PNASNet.

    Args:
      weight_decay: L2 regularisation of every convolution and fully connected weight.
      batch_norm_decay: decay of the batch-norm moving averages.
      batch_norm_epsilon: added to the variance to avoid dividing by zero.

    Returns:
      An arg_scope: convolutions without bias or activation (batch norm and
      the cells apply those), linear fully connected layers, batch norm with
      a learned scale.
    """
    batch_norm_params = {
        'decay': batch_norm_decay,
        'epsilon': batch_norm_epsilon,
        'scale': True,
        'fused': True,
    }
    with slim.arg_scope([slim.fully_connected, slim.conv2d, slim.separable_conv2d],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        weights_initializer=slim.variance_scaling_initializer(mode='FAN_OUT')):
        with slim.arg_scope([slim.fully_connected], activation_fn=None):
            with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                                activation_fn=None, biases_initializer=None):
                with slim.arg_scope([slim.batch_norm], **batch_norm_params) as scope:
                    return scope


def nasnet_mobile_arg_scope(weight_decay: float = 0.00004, batch_norm_decay: float = 0.9997,
                            batch_norm_epsilon: float = 0.001):
    """`nasnet_arg_scope` with the weight decay NASNet-A Mobile was trained with."""
    return nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def nasnet_large_arg_scope(weight_decay: float = 0.00005, batch_norm_decay: float = 0.9997,
                           batch_norm_epsilon: float = 0.001):
    """`nasnet_arg_scope` with the weight decay NASNet-A Large was trained with."""
    return nasnet_arg_scope(weight_decay, batch_norm_decay, batch_norm_epsilon)


def config_for(config: NasNetConfig, is_training: bool) -> NasNetConfig:
    """`config` as built: drop path only runs while training.

    Raises:
      ValueError: if `config.data_format` is neither 'NHWC' nor 'NCHW'.
    """
    nasnet_utils.check_data_format(config.data_format, 'config.data_format')
    if is_training:
        return config
    return dataclasses.replace(config, drop_path_keep_prob=1.0)


class EndPoints(dict):
    """The end points of a build, which knows where the build stops."""

    def __init__(self, final_endpoint: str | None):
        super().__init__()
        self.final_endpoint = final_endpoint

    def add(self, name: str, net: tf.Tensor) -> bool:
        """Records `net` as end point `name`; True if the build stops there."""
        self[name] = net
        return name == self.final_endpoint


def check_final_endpoint(final_endpoint: str | None, end_point_names: Sequence[str]) -> None:
    """Refuses, before anything is built, a `final_endpoint` the network does not have.

    Raises:
      ValueError: naming the valid end points.
    """
    if final_endpoint is not None and final_endpoint not in end_point_names:
        raise ValueError('final_endpoint must be one of %s; got %r'
                         % (', '.join(end_point_names), final_endpoint))


@contextlib.contextmanager
def network_arg_scope(is_training: bool, data_format: str) -> Iterator[None]:
    """Training mode and data format for every layer and cell helper of the network."""
    with slim.arg_scope([slim.dropout, nasnet_utils.drop_path, slim.batch_norm],
                        is_training=is_training):
        with slim.arg_scope([slim.avg_pool2d, slim.max_pool2d, slim.conv2d, slim.batch_norm,
                             slim.separable_conv2d, nasnet_utils.factorized_reduction,
                             nasnet_utils.global_avg_pool, nasnet_utils.get_channel_index,
                             nasnet_utils.get_channel_dim],
                            data_format=data_format):
            yield


def to_data_format(images: tf.Tensor, data_format: str) -> tf.Tensor:
    """NHWC images in the layout the network computes in."""
    if data_format == nasnet_utils.DATA_FORMAT_NCHW:
        return tf.transpose(images, [0, 3, 1, 2])
    return images


def activation(net: tf.Tensor, config: NasNetConfig) -> tf.Tensor:
    """The network's activation: relu, or relu6 with `use_bounded_activation`."""
    return tf.nn.relu6(net) if config.use_bounded_activation else tf.nn.relu(net)


def imagenet_stem(images: tf.Tensor, config: NasNetConfig,
                  stem_cell: nasnet_utils.NasNetABaseCell,
                  current_step=None) -> tuple[tf.Tensor, list[tf.Tensor | None]]:
    """A strided 3x3 convolution, then two stride-2 cells: a quarter of the input grid.

    Args:
      images: the network's input.
      config: its hyperparameters.
      stem_cell: the cell the stem repeats (cell numbers 0 and 1).
      current_step: the training step for drop path; None uses the global step.

    Returns:
      (net, cell_outputs): the stem's output, and [None, convolution output,
      first cell output, second cell output] for the cells that follow.
    """
    num_stem_cells = 2
    net = slim.conv2d(images, int(32 * config.stem_multiplier), [3, 3], stride=2,
                      padding='VALID', scope='conv0')
    net = slim.batch_norm(net, scope='conv0_bn')
    cell_outputs = [None, net]
    filter_scaling = 1.0 / config.filter_scaling_rate ** num_stem_cells
    for cell_num in range(num_stem_cells):
        net = stem_cell(net, scope='cell_stem_%d' % cell_num, filter_scaling=filter_scaling,
                        stride=2, prev_layer=cell_outputs[-2], cell_num=cell_num,
                        current_step=current_step)
        cell_outputs.append(net)
        filter_scaling *= config.filter_scaling_rate
    return net, cell_outputs


def aux_cell_numbers(config: NasNetConfig, num_classes: int | None,
                     is_training: bool) -> list[int]:
    """The cells followed by an auxiliary head: the one before the second reduction.

    The head is built only while training a classifier with `use_aux_head`.
    """
    if not (config.use_aux_head and num_classes and is_training):
        return []
    reductions = nasnet_utils.calc_reduction_layers(config.num_cells,
                                                    config.num_reduction_layers)
    return [reductions[1] - 1] if len(reductions) >= 2 else []


def aux_head(net: tf.Tensor, num_classes: int, config: NasNetConfig, scope: str) -> tf.Tensor:
    """The auxiliary classifier that regularises training from an intermediate cell.

    Args:
      net: the cell's output.
      num_classes: number of logits.
      config: the network's hyperparameters.
      scope: variable scope, 'aux_<cell number>'.

    Returns:
      The auxiliary logits, [batch, num_classes].
    """
    spatial_axes = (1, 2) if config.data_format == nasnet_utils.DATA_FORMAT_NHWC else (2, 3)
    with tf.variable_scope(scope), tf.variable_scope('aux_logits'):
        net = activation(net, config)
        net = slim.avg_pool2d(net, [5, 5], stride=3, padding='VALID')
        net = slim.conv2d(net, 128, [1, 1], scope='proj')
        net = activation(slim.batch_norm(net, scope='aux_bn0'), config)
        # A VALID convolution over the whole remaining grid.
        kernel_size = [int(net.shape[axis]) for axis in spatial_axes]
        net = slim.conv2d(net, 768, kernel_size, padding='VALID')
        net = activation(slim.batch_norm(net, scope='aux_bn1'), config)
        return slim.fully_connected(slim.flatten(net), num_classes, scope='FC')


def classifier_head(net: tf.Tensor, end_points: EndPoints, num_classes: int | None,
                    config: NasNetConfig) -> tf.Tensor:
    """Global average pool, dropout, fully connected logits and softmax under 'final_layer'.

    Args:
      net: the last cell's output.
      end_points: the build's end points; 'global_pool', 'Logits' and
        'Predictions' are added as they are built.
      num_classes: number of logits; 0 or None stops after the pool.
      config: the network's hyperparameters.

    Returns:
      The logits, or the pooled features [batch, channels] without
      `num_classes`, or the final end point's tensor if it comes first.
    """
    with tf.variable_scope('final_layer'):
        net = nasnet_utils.global_avg_pool(activation(net, config))
        if end_points.add('global_pool', net) or not num_classes:
            return net
        net = slim.dropout(net, config.dense_dropout_keep_prob, scope='dropout')
        logits = slim.fully_connected(net, num_classes, scope='FC')
        if end_points.add('Logits', logits):
            return logits
        end_points.add('Predictions', tf.nn.softmax(logits, name='predictions'))
    return logits


def end_point_names(config: NasNetConfig) -> list[str]:
    """The end points NASNet builds with `config`, in build order ('AuxLogits' aside)."""
    reductions = nasnet_utils.calc_reduction_layers(config.num_cells,
                                                    config.num_reduction_layers)
    names = ['Stem']
    for cell_num in range(config.num_cells):
        if cell_num in reductions:
            names.append('Reduction_Cell_%d' % reductions.index(cell_num))
        names.append('Cell_%d' % cell_num)
    return names + list(CLASSIFIER_END_POINTS)


def _nasnet_cells(images: tf.Tensor, num_classes: int | None, is_training: bool,
                  end_points: EndPoints, config: NasNetConfig, current_step) -> tf.Tensor:
    """The stem and every cell, with the auxiliary head; stops at the final end point."""
    # Drop path's depth counts the two stem cells and the reduction cells.
    total_num_cells = config.num_cells + config.num_reduction_layers + 2
    cell_args = (config.num_conv_filters, config.drop_path_keep_prob, total_num_cells,
                 config.total_training_steps, config.use_bounded_activation)
    normal_cell = nasnet_utils.NasNetANormalCell(*cell_args)
    reduction_cell = nasnet_utils.NasNetAReductionCell(*cell_args)
    net, outputs = imagenet_stem(images, config, reduction_cell, current_step)
    if end_points.add('Stem', net):
        return net
    reductions = nasnet_utils.calc_reduction_layers(config.num_cells,
                                                    config.num_reduction_layers)
    aux_cells = aux_cell_numbers(config, num_classes, is_training)
    filter_scaling = 1.0
    for cell_num in range(config.num_cells):
        prev_layer = outputs[-2]
        if cell_num in reductions:
            filter_scaling *= config.filter_scaling_rate
            index = reductions.index(cell_num)
            # `outputs` holds None and the first convolution before the cells.
            net = reduction_cell(net, scope='reduction_cell_%d' % index,
                                 filter_scaling=filter_scaling, stride=2, prev_layer=prev_layer,
                                 cell_num=len(outputs) - 2, current_step=current_step)
            outputs.append(net)
            if end_points.add('Reduction_Cell_%d' % index, net):
                return net
            if not config.skip_reduction_layer_input:
                prev_layer = outputs[-2]
        net = normal_cell(net, scope='cell_%d' % cell_num, filter_scaling=filter_scaling,
                          prev_layer=prev_layer, cell_num=len(outputs) - 2,
                          current_step=current_step)
        outputs.append(net)
        if end_points.add('Cell_%d' % cell_num, net):
            return net
        if cell_num in aux_cells:
            end_points['AuxLogits'] = aux_head(net, num_classes, config,
                                               scope='aux_%d' % cell_num)
    return net


def _build_nasnet(images: tf.Tensor, num_classes: int | None, is_training: bool,
                  final_endpoint: str | None, config: NasNetConfig,
                  current_step) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """NASNet-A with `config`; see `build_nasnet_mobile`."""
    config = config_for(config, is_training)
    check_final_endpoint(final_endpoint, end_point_names(config))
    end_points = EndPoints(final_endpoint)
    with network_arg_scope(is_training, config.data_format):
        net = _nasnet_cells(to_data_format(images, config.data_format), num_classes,
                            is_training, end_points, config, current_step)
        if final_endpoint not in end_points:
            net = classifier_head(net, end_points, num_classes, config)
    return net, dict(end_points)


def build_nasnet_mobile(images: tf.Tensor,
                        num_classes: int | None,
                        is_training: bool = True,
                        final_endpoint: str | None = None,
                        config: NasNetConfig | None = None,
                        current_step=None,
                        ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """NASNet-A Mobile (4 @ 1056); the public checkpoint restores into it as is.

    Args:
      images: [batch, height, width, 3] float images; 224 x 224 is the size
        the public checkpoint was trained at.
      num_classes: number of logits; 0 or None stops after the global pool
        (and builds no auxiliary head).
      is_training: training mode for batch norm, dropout and drop path; the
        auxiliary head is built only while training.
      final_endpoint: the last end point to build; None builds them all.
      config: hyperparameters; None uses `mobile_imagenet_config()`.
      current_step: the training step for the drop-path schedule; None
        creates or reuses the global step (only when drop path is on).

    Returns:
      The logits [batch, num_classes] (the pooled features [batch, channels]
      without `num_classes`, or the tensor of `final_endpoint`), and a dict of
      every end point built: 'Stem', 'Cell_<n>', 'Reduction_Cell_<n>',
      'AuxLogits', 'global_pool', 'Logits', 'Predictions'.

    Raises:
      ValueError: if `final_endpoint` is not an end point of the network or
        the config's data_format is neither 'NHWC' nor 'NCHW'.
    """
    return _build_nasnet(images, num_classes, is_training, final_endpoint,
                         config or mobile_imagenet_config(), current_step)


build_nasnet_mobile.default_image_size = 224


def build_nasnet_large(images: tf.Tensor,
                       num_classes: int | None,
                       is_training: bool = True,
                       final_endpoint: str | None = None,
                       config: NasNetConfig | None = None,
                       current_step=None,
                       ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """NASNet-A Large (6 @ 4032), trained at 331 x 331; see `build_nasnet_mobile`.

    `config` None uses `large_imagenet_config()`, whose drop path creates the
    global step (inside the first cell's scope) when there is none and no
    `current_step` is given.
    """
    return _build_nasnet(images, num_classes, is_training, final_endpoint,
                         config or large_imagenet_config(), current_step)


build_nasnet_large.default_image_size = 331
