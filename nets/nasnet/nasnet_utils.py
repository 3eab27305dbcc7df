"""The cells of NASNet-A and PNASNet-5, described as data, and what builds them.

A cell starts from two hidden states: state 0 is its input after a 1x1
convolution, state 1 the output of the cell before (matched to the input's
size). Each of its combinations applies one operation to each of two
earlier hidden states and adds the results, which becomes the next hidden
state. The cell's output concatenates the hidden states its spec names.

Variable scopes follow the public checkpoints: `<cell>/comb_iter_<i>/left`
and `.../right` hold each operation's variables, so those checkpoints restore
without renaming.
"""

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim
from slim_classifier.runtime import determinism

DATA_FORMAT_NHWC = 'NHWC'
DATA_FORMAT_NCHW = 'NCHW'
DATA_FORMATS = (DATA_FORMAT_NHWC, DATA_FORMAT_NCHW)
# Bounds what the cells output when `use_bounded_activation` is set, as relu6 does.
CLIP_BY_VALUE_CAP = 6


def calc_reduction_layers(num_cells: int, num_reduction_layers: int) -> list[int]:
    """The cell numbers before which a reduction halves the grid.

    Args:
      num_cells: number of normal cells of the network.
      num_reduction_layers: number of reductions, spread evenly among them.

    Returns:
      One cell number per reduction, ascending.
    """
    return [int(num_cells * pool_num / (num_reduction_layers + 1))
            for pool_num in range(1, num_reduction_layers + 1)]


def check_data_format(data_format: str, argument: str = 'data_format') -> None:
    """Refuses a data format other than 'NHWC' and 'NCHW'.

    Raises:
      ValueError: naming `argument`, the valid formats and `data_format`.
    """
    if data_format not in DATA_FORMATS:
        raise ValueError('%s must be one of %s; got %r'
                         % (argument, ', '.join(DATA_FORMATS), data_format))


@slim.add_arg_scope
def get_channel_index(data_format: str = DATA_FORMAT_NHWC) -> int:
    """The axis of the channels in a 4-D tensor laid out as `data_format`.

    Args:
      data_format: 'NHWC' or 'NCHW'; the builders set it through arg_scope.

    Returns:
      3 for 'NHWC', 1 for 'NCHW'.

    Raises:
      ValueError: if `data_format` is neither.
    """
    check_data_format(data_format)
    return 3 if data_format == DATA_FORMAT_NHWC else 1


@slim.add_arg_scope
def get_channel_dim(shape: tf.TensorShape, data_format: str = DATA_FORMAT_NHWC) -> int:
    """The number of channels of a 4-D tensor of static `shape`.

    Args:
      shape: the tensor's shape, channels known when the graph is built.
      data_format: 'NHWC' or 'NCHW'; the builders set it through arg_scope.

    Returns:
      The channel count.
    """
    return int(shape[get_channel_index(data_format=data_format)])


def _spatial_size(net: tf.Tensor) -> int:
    """One spatial side of `net`: axis 2 is spatial in both NHWC and NCHW."""
    return int(net.shape[2])


@slim.add_arg_scope
def global_avg_pool(net: tf.Tensor, data_format: str = DATA_FORMAT_NHWC) -> tf.Tensor:
    """Averages a 4-D feature map over its spatial axes.

    Args:
      net: [batch, height, width, channels] (or NCHW) feature map.
      data_format: 'NHWC' or 'NCHW'; the builders set it through arg_scope.

    Returns:
      [batch, channels].
    """
    spatial_axes = [1, 2] if get_channel_index(data_format=data_format) == 3 else [2, 3]
    return tf.reduce_mean(net, axis=spatial_axes)


@slim.add_arg_scope
def factorized_reduction(net: tf.Tensor, output_filters: int, stride: int,
                         data_format: str = DATA_FORMAT_NHWC) -> tf.Tensor:
    """Brings `net` to `output_filters` channels and, at stride 2, halves its grid.

    At stride 2 two 1x1 convolutions each see every other pixel, the second
    shifted by one pixel, so that together they see the whole grid.

    Args:
      net: the feature map to match.
      output_filters: channels of the result.
      stride: 1 (channels only) or 2.
      data_format: 'NHWC' or 'NCHW'; the builders set it through arg_scope.

    Returns:
      The batch-normalised result.
    """
    if stride == 1:
        net = slim.conv2d(net, output_filters, 1, scope='path_conv')
        return slim.batch_norm(net, scope='path_bn')
    channel_axis = get_channel_index(data_format=data_format)
    strides = [1, stride, stride, 1] if channel_axis == 3 else [1, 1, stride, stride]
    path1 = tf.nn.avg_pool2d(net, ksize=1, strides=strides, padding='VALID',
                             data_format=data_format)
    path1 = slim.conv2d(path1, output_filters // 2, 1, scope='path1_conv')
    # Shift the grid by one pixel: pad at the bottom right, drop the top left.
    if channel_axis == 3:
        shifted = tf.pad(net, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
    else:
        shifted = tf.pad(net, [[0, 0], [0, 0], [0, 1], [0, 1]])[:, :, 1:, 1:]
    path2 = tf.nn.avg_pool2d(shifted, ksize=1, strides=strides, padding='VALID',
                             data_format=data_format)
    # An odd channel count gives the extra channel to the second path.
    path2 = slim.conv2d(path2, output_filters - output_filters // 2, 1, scope='path2_conv')
    net = tf.concat([path1, path2], axis=channel_axis)
    return slim.batch_norm(net, scope='final_path_bn')


@slim.add_arg_scope
def drop_path(net: tf.Tensor, keep_prob, is_training: bool = True) -> tf.Tensor:
    """Zeroes the whole of `net` for some examples, scaling up the rest.

    Args:
      net: [batch, ...] output of one cell operation.
      keep_prob: probability (a float or scalar tensor) of keeping an example.
      is_training: when False, returns `net` unchanged.

    Returns:
      `net` with each example either kept (times 1 / keep_prob) or zeroed.
    """
    if not is_training:
        return net
    noise_shape = [tf.shape(net)[0], 1, 1, 1]
    # Stateless in deterministic training, so a resumed run drops the paths the first dropped.
    keep_mask = tf.floor(keep_prob + determinism.uniform(noise_shape, dtype=tf.float32))
    scale = tf.cast(1.0 / keep_prob, net.dtype)
    return net * scale * tf.cast(keep_mask, net.dtype)


@dataclasses.dataclass(frozen=True)
class DropPathSchedule:
    """How the keep probability of drop path falls with depth and training time.

    A cell's keep probability falls linearly from 1 at the input to
    `keep_prob` at the last cell, and the whole schedule is phased in
    linearly over `total_training_steps`.
    """
    keep_prob: float
    total_num_cells: int
    total_training_steps: int

    @property
    def enabled(self) -> bool:
        return self.keep_prob < 1.0

    def keep_prob_for(self, cell_num: int, current_step=None) -> tf.Tensor:
        """The keep probability of cell `cell_num` (counting the stem cells) now.

        Args:
          cell_num: the cell's position in the network, from 0.
          current_step: the training step; None creates or reuses the global step.

        Returns:
          A scalar float32 tensor.

        Raises:
          ValueError: if `cell_num` is negative (the cell was not told its position).
        """
        if cell_num < 0:
            raise ValueError('drop path needs the cell_num of the cell; got %r' % (cell_num,))
        layer_ratio = (cell_num + 1) / float(self.total_num_cells)
        keep_prob = 1.0 - layer_ratio * (1.0 - self.keep_prob)
        if current_step is None:
            current_step = tf.train.get_or_create_global_step()
        time_ratio = tf.minimum(
            1.0, tf.cast(current_step, tf.float32) / self.total_training_steps)
        return 1.0 - time_ratio * (1.0 - keep_prob)


@dataclasses.dataclass(frozen=True)
class OperationContext:
    """What every operation of one cell shares."""
    # Channels of every hidden state of the cell.
    num_filters: int
    # relu6 in place of relu, and outputs clipped to +-CLIP_BY_VALUE_CAP.
    use_bounded_activation: bool

    def activation(self, net: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu6(net) if self.use_bounded_activation else tf.nn.relu(net)

    def clip(self, net: tf.Tensor) -> tf.Tensor:
        if not self.use_bounded_activation:
            return net
        return tf.clip_by_value(net, -CLIP_BY_VALUE_CAP, CLIP_BY_VALUE_CAP)


class Operation(Protocol):
    """One operation of a cell, applied to a hidden state."""
    # Whether drop path may zero the operation's output while training.
    drops_path: bool

    def __call__(self, net: tf.Tensor, stride: int, context: OperationContext) -> tf.Tensor:
        ...


def _project(net: tf.Tensor, num_filters: int, stride: int = 1) -> tf.Tensor:
    """A 1x1 convolution and batch norm to `num_filters` channels."""
    net = slim.conv2d(net, num_filters, 1, stride=stride, scope='1x1')
    return slim.batch_norm(net, scope='bn_1')


@dataclasses.dataclass(frozen=True)
class SeparableConv:
    """`num_layers` x (activation, separable convolution, batch norm); the first strides."""
    kernel_size: int
    num_layers: int = 2
    drops_path: bool = True

    def __call__(self, net: tf.Tensor, stride: int, context: OperationContext) -> tf.Tensor:
        size = '%dx%d' % (self.kernel_size, self.kernel_size)
        for layer in range(1, self.num_layers + 1):
            net = context.activation(net)
            net = slim.separable_conv2d(net, context.num_filters, self.kernel_size,
                                        depth_multiplier=1, stride=stride,
                                        scope='separable_%s_%d' % (size, layer))
            net = slim.batch_norm(net, scope='bn_sep_%s_%d' % (size, layer))
            stride = 1
        return context.clip(net)


@dataclasses.dataclass(frozen=True)
class Pool:
    """A 'SAME' pool, then a 1x1 projection if the channels differ from the cell's."""
    kind: str
    size: int = 3
    drops_path: bool = True

    def __call__(self, net: tf.Tensor, stride: int, context: OperationContext) -> tf.Tensor:
        input_filters = get_channel_dim(net.shape)
        if context.use_bounded_activation:
            net = tf.nn.relu6(net)
        pool = {'avg': slim.avg_pool2d, 'max': slim.max_pool2d}[self.kind]
        net = pool(net, self.size, stride=stride, padding='SAME')
        if input_filters != context.num_filters:
            net = _project(net, context.num_filters)
        return context.clip(net)


@dataclasses.dataclass(frozen=True)
class Identity:
    """The hidden state as it is, or a strided 1x1 projection when its size must change."""
    drops_path: bool = False

    def __call__(self, net: tf.Tensor, stride: int, context: OperationContext) -> tf.Tensor:
        if context.use_bounded_activation:
            net = tf.nn.relu6(net)
        if stride == 1 and get_channel_dim(net.shape) == context.num_filters:
            return net
        if not context.use_bounded_activation:
            net = tf.nn.relu(net)
        return context.clip(_project(net, context.num_filters, stride))


SEPARABLE_3X3 = SeparableConv(3)
SEPARABLE_5X5 = SeparableConv(5)
SEPARABLE_7X7 = SeparableConv(7)
AVG_POOL_3X3 = Pool('avg')
MAX_POOL_3X3 = Pool('max')
IDENTITY = Identity()


@dataclasses.dataclass(frozen=True)
class Combination:
    """One step of a cell: `left(hidden[left_input]) + right(hidden[right_input])`."""
    left: Operation
    left_input: int
    right: Operation
    right_input: int


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """A cell as data: its combinations, and which hidden states form its output."""
    combinations: tuple[Combination, ...]
    # Indices of the hidden states concatenated, in order, into the output.
    output_states: tuple[int, ...]


# NASNet-A, figure 4 of Zoph et al. (2017).
NASNET_A_NORMAL = CellSpec(
    combinations=(
        Combination(SEPARABLE_5X5, 0, SEPARABLE_3X3, 1),
        Combination(SEPARABLE_5X5, 1, SEPARABLE_3X3, 1),
        Combination(AVG_POOL_3X3, 0, IDENTITY, 1),
        Combination(AVG_POOL_3X3, 1, AVG_POOL_3X3, 1),
        Combination(SEPARABLE_3X3, 0, IDENTITY, 0),
    ),
    output_states=(1, 2, 3, 4, 5, 6))

NASNET_A_REDUCTION = CellSpec(
    combinations=(
        Combination(SEPARABLE_5X5, 0, SEPARABLE_7X7, 1),
        Combination(MAX_POOL_3X3, 0, SEPARABLE_7X7, 1),
        Combination(AVG_POOL_3X3, 0, SEPARABLE_5X5, 1),
        Combination(IDENTITY, 3, AVG_POOL_3X3, 2),
        Combination(SEPARABLE_3X3, 2, MAX_POOL_3X3, 0),
    ),
    output_states=(3, 4, 5, 6))


class NasNetABaseCell:
    """Builds a cell from its `CellSpec`; calling the cell adds one to the graph."""

    def __init__(self, num_conv_filters: int, spec: CellSpec, drop_path_keep_prob: float,
                 total_num_cells: int, total_training_steps: int,
                 use_bounded_activation: bool = False):
        """A cell of `num_conv_filters` channels per hidden state (before scaling).

        Args:
          num_conv_filters: channels of each hidden state at filter scaling 1.
          spec: the cell's combinations and output states.
          drop_path_keep_prob: keep probability of drop path at the last cell
            at the end of training; 1 disables drop path.
          total_num_cells: number of cells in the network, stem cells included.
          total_training_steps: steps over which drop path is phased in.
          use_bounded_activation: relu6 and clipping in place of relu.
        """
        self._num_conv_filters = num_conv_filters
        self._spec = spec
        self._drop_path = DropPathSchedule(drop_path_keep_prob, total_num_cells,
                                           total_training_steps)
        self._use_bounded_activation = use_bounded_activation

    def __call__(self, net: tf.Tensor, scope: str | None = None, filter_scaling: float = 1,
                 stride: int = 1, prev_layer: tf.Tensor | None = None, cell_num: int = -1,
                 current_step=None) -> tf.Tensor:
        """Adds the cell to the graph.

        Args:
          net: the cell's input.
          scope: variable scope of the cell.
          filter_scaling: multiplies `num_conv_filters`.
          stride: 2 halves the grid: operations on the two input states stride.
          prev_layer: the output of the cell before; None uses `net`.
          cell_num: the cell's position in the network (stem cells included),
            which drop path needs.
          current_step: the training step for the drop-path schedule; None
            creates or reuses the global step.

        Returns:
          The concatenated output states.
        """
        context = OperationContext(int(self._num_conv_filters * filter_scaling),
                                   self._use_bounded_activation)
        with tf.variable_scope(scope):
            hidden_states = self._cell_base(net, prev_layer, context)
            for index, combination in enumerate(self._spec.combinations):
                with tf.variable_scope('comb_iter_%d' % index):
                    hidden_states.append(self._combine(
                        hidden_states, combination, stride, context, cell_num, current_step))
            with tf.variable_scope('cell_output'):
                return self._concat_output_states(hidden_states)

    def _reduce_prev_layer(self, prev_layer: tf.Tensor | None, net: tf.Tensor,
                           context: OperationContext) -> tf.Tensor:
        """Matches the previous cell's output to the grid of `net` and the cell's channels."""
        if prev_layer is None:
            return net
        if _spatial_size(prev_layer) != _spatial_size(net):
            return factorized_reduction(context.activation(prev_layer), context.num_filters,
                                        stride=2)
        if get_channel_dim(prev_layer.shape) != context.num_filters:
            prev_layer = slim.conv2d(context.activation(prev_layer), context.num_filters, 1,
                                     scope='prev_1x1')
            return slim.batch_norm(prev_layer, scope='prev_bn')
        return prev_layer

    def _cell_base(self, net: tf.Tensor, prev_layer: tf.Tensor | None,
                   context: OperationContext) -> list[tf.Tensor]:
        """The two input hidden states: `net` through a 1x1 convolution, and the previous cell."""
        prev_layer = self._reduce_prev_layer(prev_layer, net, context)
        net = slim.conv2d(context.activation(net), context.num_filters, 1, scope='1x1')
        net = slim.batch_norm(net, scope='beginning_bn')
        return [net, prev_layer]

    def _combine(self, hidden_states: Sequence[tf.Tensor], combination: Combination,
                 stride: int, context: OperationContext, cell_num: int,
                 current_step) -> tf.Tensor:
        """One combination: an operation on each of two hidden states, added."""
        outputs = []
        for side, operation, index in (('left', combination.left, combination.left_input),
                                       ('right', combination.right, combination.right_input)):
            with tf.variable_scope(side):
                # Only the two input states are on the input grid; the rest
                # are already reduced.
                op_stride = stride if index < 2 else 1
                net = operation(hidden_states[index], op_stride, context)
                if operation.drops_path:
                    net = self._apply_drop_path(net, cell_num, current_step)
                outputs.append(net)
        with tf.variable_scope('combine'):
            net = outputs[0] + outputs[1]
            return tf.nn.relu6(net) if context.use_bounded_activation else net

    def _apply_drop_path(self, net: tf.Tensor, cell_num: int, current_step) -> tf.Tensor:
        if not self._drop_path.enabled:
            return net
        return drop_path(net, self._drop_path.keep_prob_for(cell_num, current_step))

    def _concat_output_states(self, hidden_states: list[tf.Tensor]) -> tf.Tensor:
        """Concatenates the output states, first matching each to the last state's shape."""
        final_state = hidden_states[-1]
        final_filters = get_channel_dim(final_state.shape)
        outputs = []
        for index in self._spec.output_states:
            state = hidden_states[index]
            reduce_grid = _spatial_size(state) != _spatial_size(final_state)
            if reduce_grid or get_channel_dim(state.shape) != final_filters:
                with tf.variable_scope('reduction_%d' % index):
                    state = factorized_reduction(state, final_filters, 2 if reduce_grid else 1)
            outputs.append(state)
        return tf.concat(outputs, axis=get_channel_index())


class NasNetANormalCell(NasNetABaseCell):
    """The NASNet-A normal cell, which keeps the grid size."""

    def __init__(self, num_conv_filters: int, drop_path_keep_prob: float, total_num_cells: int,
                 total_training_steps: int, use_bounded_activation: bool = False):
        super().__init__(num_conv_filters, NASNET_A_NORMAL, drop_path_keep_prob,
                         total_num_cells, total_training_steps, use_bounded_activation)


class NasNetAReductionCell(NasNetABaseCell):
    """The NASNet-A reduction cell, called with stride 2 to halve the grid."""

    def __init__(self, num_conv_filters: int, drop_path_keep_prob: float, total_num_cells: int,
                 total_training_steps: int, use_bounded_activation: bool = False):
        super().__init__(num_conv_filters, NASNET_A_REDUCTION, drop_path_keep_prob,
                         total_num_cells, total_training_steps, use_bounded_activation)
