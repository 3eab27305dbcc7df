"""Inception-ResNet v2, as in "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning" (Szegedy et al., 2016,
https://arxiv.org/abs/1602.07261).

Variable and end point names follow the public TF-Slim checkpoint
(inception_resnet_v2_2016_08_30), so that it restores without renaming. The
residual blocks repeated inside a stage have no end points of their own.
"""

import dataclasses
from collections.abc import Callable

import tensorflow.compat.v1 as tf

from nets import inception_utils
from slim_classifier.compat import slim

_BASE_SCOPE = 'InceptionResnetV2'
# The kernel that turns the auxiliary head's 5 x 5 grid (at 299 x 299 input)
# into one vector, used when the grid size is unknown at graph-building time.
_OUTPUT_STRIDES = (8, 16)

ActivationFn = Callable[[tf.Tensor], tf.Tensor]


def _residual_update(net: tf.Tensor, branches: list[tf.Tensor], scale: float,
                     activation_fn: ActivationFn | None) -> tf.Tensor:
    """Adds the projected branches, scaled, to `net`, then applies `activation_fn`.

    Args:
      net: the block's input, [batch, height, width, channels].
      branches: the block's branch outputs, concatenated along the channels.
      scale: multiplies the residual before it is added; small values keep
        the sum of many blocks stable.
      activation_fn: applied to the sum; None leaves it linear.

    Returns:
      A tensor shaped like `net`.
    """
    mixed = tf.concat(branches, axis=3)
    # A linear 1x1 convolution (with biases, no batch norm) back to the input width.
    residual = slim.conv2d(mixed, net.get_shape().as_list()[3], [1, 1], normalizer_fn=None,
                           activation_fn=None, scope='Conv2d_1x1')
    residual *= scale
    if activation_fn is tf.nn.relu6:
        # The sum below then stays within the range relu6 can express.
        residual = tf.clip_by_value(residual, -6.0, 6.0)
    net += residual
    return activation_fn(net) if activation_fn else net


def block35(net: tf.Tensor, scale: float = 1.0,
            activation_fn: ActivationFn | None = tf.nn.relu,
            scope: str | None = None, reuse: bool | None = None) -> tf.Tensor:
    """Inception-ResNet-A, the residual block of the 35 x 35 grid.

    Args:
      net: a [batch, 35, 35, 320] tensor at the default image size.
      scale: multiplies the residual before it is added to `net`.
      activation_fn: applied after the addition; None leaves it linear.
      scope: variable scope; defaults to 'Block35'.
      reuse: reuse the variables of an earlier build under `scope`.

    Returns:
      A tensor shaped like `net`.
    """
    with tf.variable_scope(scope, 'Block35', [net], reuse=reuse):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, 32, [1, 1], scope='Conv2d_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, 32, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 32, [3, 3], scope='Conv2d_0b_3x3')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(net, 32, [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, 48, [3, 3], scope='Conv2d_0b_3x3')
            branch_2 = slim.conv2d(branch_2, 64, [3, 3], scope='Conv2d_0c_3x3')
        return _residual_update(net, [branch_0, branch_1, branch_2], scale, activation_fn)


def block17(net: tf.Tensor, scale: float = 1.0,
            activation_fn: ActivationFn | None = tf.nn.relu,
            scope: str | None = None, reuse: bool | None = None) -> tf.Tensor:
    """Inception-ResNet-B, the residual block of the 17 x 17 grid.

    Args:
      net: a [batch, 17, 17, 1088] tensor at the default image size.
      scale: multiplies the residual before it is added to `net`.
      activation_fn: applied after the addition; None leaves it linear.
      scope: variable scope; defaults to 'Block17'.
      reuse: reuse the variables of an earlier build under `scope`.

    Returns:
      A tensor shaped like `net`.
    """
    with tf.variable_scope(scope, 'Block17', [net], reuse=reuse):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, 192, [1, 1], scope='Conv2d_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, 128, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 160, [1, 7], scope='Conv2d_0b_1x7')
            branch_1 = slim.conv2d(branch_1, 192, [7, 1], scope='Conv2d_0c_7x1')
        return _residual_update(net, [branch_0, branch_1], scale, activation_fn)


def block8(net: tf.Tensor, scale: float = 1.0,
           activation_fn: ActivationFn | None = tf.nn.relu,
           scope: str | None = None, reuse: bool | None = None) -> tf.Tensor:
    """Inception-ResNet-C, the residual block of the 8 x 8 grid.

    Args:
      net: a [batch, 8, 8, 2080] tensor at the default image size.
      scale: multiplies the residual before it is added to `net`.
      activation_fn: applied after the addition; None leaves it linear.
      scope: variable scope; defaults to 'Block8'.
      reuse: reuse the variables of an earlier build under `scope`.

    Returns:
      A tensor shaped like `net`.
    """
    with tf.variable_scope(scope, 'Block8', [net], reuse=reuse):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, 192, [1, 1], scope='Conv2d_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, 192, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 224, [1, 3], scope='Conv2d_0b_1x3')
            branch_1 = slim.conv2d(branch_1, 256, [3, 1], scope='Conv2d_0c_3x1')
        return _residual_update(net, [branch_0, branch_1], scale, activation_fn)


@dataclasses.dataclass(frozen=True)
class _BaseOptions:
    """What the stages of the base network read from its arguments."""
    # Padding of the layers that shrink the grid: 'VALID' as published,
    # 'SAME' to align the feature maps with the input.
    padding: str
    # Output stride 8: Mixed_6a keeps the 35 x 35 grid and the 17 x 17 blocks
    # dilate their convolutions instead.
    atrous: bool
    # Activation after each residual addition.
    activation_fn: ActivationFn | None


# A stage of the base network, called as `stage(net, scope, options)`.
Stage = Callable[[tf.Tensor, str, _BaseOptions], tf.Tensor]


def _conv(num_outputs: int, kernel: int, stride: int = 1, shrinks: bool = False) -> Stage:
    """A square convolution; `shrinks` gives it the options' padding instead of 'SAME'."""
    def stage(net: tf.Tensor, scope: str, options: _BaseOptions) -> tf.Tensor:
        padding = options.padding if shrinks else 'SAME'
        return slim.conv2d(net, num_outputs, [kernel, kernel], stride=stride,
                           padding=padding, scope=scope)
    return stage


def _max_pool_3x3(net: tf.Tensor, scope: str, options: _BaseOptions) -> tf.Tensor:
    """A stem max pool that halves the grid."""
    return slim.max_pool2d(net, [3, 3], stride=2, padding=options.padding, scope=scope)


def _mixed_5b(net: tf.Tensor, scope: str, options: _BaseOptions) -> tf.Tensor:
    """Mixed_5b: widens the stem's 192 channels to 320 on the 35 x 35 grid."""
    del options  # Every layer keeps the grid.
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, 96, [1, 1], scope='Conv2d_1x1')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, 48, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 64, [5, 5], scope='Conv2d_0b_5x5')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(net, 64, [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = slim.conv2d(branch_2, 96, [3, 3], scope='Conv2d_0b_3x3')
            branch_2 = slim.conv2d(branch_2, 96, [3, 3], scope='Conv2d_0c_3x3')
        with tf.variable_scope('Branch_3'):
            branch_3 = slim.avg_pool2d(net, [3, 3], scope='AvgPool_0a_3x3')
            branch_3 = slim.conv2d(branch_3, 64, [1, 1], scope='Conv2d_0b_1x1')
        return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


def _mixed_6a(net: tf.Tensor, scope: str, options: _BaseOptions) -> tf.Tensor:
    """Mixed_6a: 35 x 35 x 320 to 17 x 17 x 1088 (or 33 x 33 when atrous)."""
    stride = 1 if options.atrous else 2
    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = slim.conv2d(net, 384, [3, 3], stride=stride, padding=options.padding,
                                   scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_1'):
            branch_1 = slim.conv2d(net, 256, [1, 1], scope='Conv2d_0a_1x1')
            branch_1 = slim.conv2d(branch_1, 256, [3, 3], scope='Conv2d_0b_3x3')
            branch_1 = slim.conv2d(branch_1, 384, [3, 3], stride=stride,
                                   padding=options.padding, scope='Conv2d_1a_3x3')
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.max_pool2d(net, [3, 3], stride=stride, padding=options.padding,
                                       scope='MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1, branch_2], axis=3)


def _mixed_7a(net: tf.Tensor, scope: str, options: _BaseOptions) -> tf.Tensor:
    """Mixed_7a: 17 x 17 x 1088 to 8 x 8 x 2080."""
    def shrink(branch: tf.Tensor, num_outputs: int) -> tf.Tensor:
        return slim.conv2d(branch, num_outputs, [3, 3], stride=2, padding=options.padding,
                           scope='Conv2d_1a_3x3')

    with tf.variable_scope(scope):
        with tf.variable_scope('Branch_0'):
            branch_0 = shrink(slim.conv2d(net, 256, [1, 1], scope='Conv2d_0a_1x1'), 384)
        with tf.variable_scope('Branch_1'):
            branch_1 = shrink(slim.conv2d(net, 256, [1, 1], scope='Conv2d_0a_1x1'), 288)
        with tf.variable_scope('Branch_2'):
            branch_2 = slim.conv2d(net, 256, [1, 1], scope='Conv2d_0a_1x1')
            branch_2 = shrink(slim.conv2d(branch_2, 288, [3, 3], scope='Conv2d_0b_3x3'), 320)
        with tf.variable_scope('Branch_3'):
            branch_3 = slim.max_pool2d(net, [3, 3], stride=2, padding=options.padding,
                                       scope='MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1, branch_2, branch_3], axis=3)


def _repeat(block: Callable[..., tf.Tensor], count: int, scale: float,
            dilates: bool = False) -> Stage:
    """`count` copies of a residual block, named '<block name>_1' ... under the stage's scope.

    Args:
      block: block35, block17 or block8.
      count: how many blocks to chain.
      scale: each block's residual scale.
      dilates: dilate the blocks' convolutions by 2 when the options are atrous.

    Returns:
      The stage.
    """
    def stage(net: tf.Tensor, scope: str, options: _BaseOptions) -> tf.Tensor:
        rate = 2 if dilates and options.atrous else 1
        with tf.variable_scope(scope), slim.arg_scope([slim.conv2d], rate=rate):
            for index in range(count):
                net = block(net, scale=scale, activation_fn=options.activation_fn,
                            scope='%s_%d' % (block.__name__, index + 1))
        return net
    return stage


def _linear_block8(net: tf.Tensor, scope: str, options: _BaseOptions) -> tf.Tensor:
    """The last 8 x 8 block, with no activation after its addition."""
    del options  # Its activation is fixed.
    return block8(net, activation_fn=None, scope=scope)


@dataclasses.dataclass(frozen=True)
class _Row:
    """One stage of the base network."""
    scope: str
    stage: Stage
    # The stage's output is recorded under this name; None records nothing.
    end_point: str | None


def _end_point(scope: str, stage: Stage) -> _Row:
    """A stage recorded under the name of its scope."""
    return _Row(scope, stage, scope)


# The base network, input to output.
_ROWS: tuple[_Row, ...] = (
    # 299 x 299 x 3
    _end_point('Conv2d_1a_3x3', _conv(32, 3, stride=2, shrinks=True)),
    # 149 x 149 x 32
    _end_point('Conv2d_2a_3x3', _conv(32, 3, shrinks=True)),
    # 147 x 147 x 32
    _end_point('Conv2d_2b_3x3', _conv(64, 3)),
    # 147 x 147 x 64
    _end_point('MaxPool_3a_3x3', _max_pool_3x3),
    # 73 x 73 x 64
    _end_point('Conv2d_3b_1x1', _conv(80, 1)),
    # 73 x 73 x 80
    _end_point('Conv2d_4a_3x3', _conv(192, 3, shrinks=True)),
    # 71 x 71 x 192
    _end_point('MaxPool_5a_3x3', _max_pool_3x3),
    # 35 x 35 x 192
    _end_point('Mixed_5b', _mixed_5b),
    # 35 x 35 x 320
    _Row('Repeat', _repeat(block35, 10, scale=0.17), None),
    # 35 x 35 x 320
    _end_point('Mixed_6a', _mixed_6a),
    # 17 x 17 x 1088
    _Row('Repeat_1', _repeat(block17, 20, scale=0.10, dilates=True), 'PreAuxLogits'),
    # 17 x 17 x 1088
    _end_point('Mixed_7a', _mixed_7a),
    # 8 x 8 x 2080
    _Row('Repeat_2', _repeat(block8, 9, scale=0.20), None),
    # 8 x 8 x 2080
    _Row('Block8', _linear_block8, None),
    # 8 x 8 x 2080
    _end_point('Conv2d_7b_1x1', _conv(1536, 1)),
    # 8 x 8 x 1536
)

END_POINTS = tuple(row.end_point for row in _ROWS if row.end_point)
# The last end point an output stride of 8 reaches.
_LAST_ATROUS_END_POINT = 'PreAuxLogits'


def _rows_up_to(final_endpoint: str, output_stride: int) -> tuple[_Row, ...]:
    """The rows to build, after checking the base network's arguments.

    Raises:
      ValueError: if `final_endpoint` is not one of `END_POINTS`, `output_stride`
        is neither 8 nor 16, or it is 8 with a `final_endpoint` past
        'PreAuxLogits'.
    """
    if final_endpoint not in END_POINTS:
        raise ValueError('final_endpoint must be one of %s; got %r'
                         % (', '.join(END_POINTS), final_endpoint))
    if output_stride not in _OUTPUT_STRIDES:
        raise ValueError('output_stride must be 8 or 16; got %r' % (output_stride,))
    if (output_stride == 8
            and END_POINTS.index(final_endpoint) > END_POINTS.index(_LAST_ATROUS_END_POINT)):
        raise ValueError('output_stride 8 is supported only up to final_endpoint %r; got %r'
                         % (_LAST_ATROUS_END_POINT, final_endpoint))
    last = next(index for index, row in enumerate(_ROWS) if row.end_point == final_endpoint)
    return _ROWS[:last + 1]


def inception_resnet_v2_base(inputs: tf.Tensor,
                             final_endpoint: str = 'Conv2d_7b_1x1',
                             output_stride: int = 16,
                             align_feature_maps: bool = False,
                             scope: str | tf.VariableScope | None = None,
                             activation_fn: ActivationFn | None = tf.nn.relu,
                             ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Inception-ResNet v2 from its input up to `final_endpoint`.

    Args:
      inputs: images, a float tensor [batch, height, width, channels].
      final_endpoint: the last end point to build, one of `END_POINTS`.
      output_stride: 16 as published, or 8: Mixed_6a then keeps the grid and
        the 17 x 17 blocks use dilated convolutions (supported only up to
        'PreAuxLogits').
      align_feature_maps: pad the grid-shrinking layers 'SAME' instead of
        'VALID', so each feature map is the input size divided by its stride,
        rounded up (150 x 150 after Conv2d_1a_3x3 at 299 x 299).
      scope: variable scope; defaults to 'InceptionResnetV2'.
      activation_fn: activation after each residual addition.

    Returns:
      The output of `final_endpoint` and a dict from end point name to tensor
      holding every end point built.

    Raises:
      ValueError: if `final_endpoint` is not one of `END_POINTS`, `output_stride`
        is neither 8 nor 16, or it is 8 with a `final_endpoint` past
        'PreAuxLogits'.
    """
    rows = _rows_up_to(final_endpoint, output_stride)
    options = _BaseOptions(padding='SAME' if align_feature_maps else 'VALID',
                           atrous=output_stride == 8, activation_fn=activation_fn)
    end_points = {}
    net = inputs
    with tf.variable_scope(scope, _BASE_SCOPE, [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d],
                            stride=1, padding='SAME'):
            for row in rows:
                net = row.stage(net, row.scope, options)
                if row.end_point:
                    end_points[row.end_point] = net
    return net, end_points


def _global_average(net: tf.Tensor) -> tf.Tensor:
    """Averages each channel over the whole grid, keeping 1 x 1 spatial dims."""
    grid = net.get_shape()[1:3]
    if grid.is_fully_defined():
        return slim.avg_pool2d(net, grid.as_list(), padding='VALID', scope='AvgPool_1a_8x8')
    return tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')


def inception_resnet_v2(inputs: tf.Tensor,
                        num_classes: int | None = 1001,
                        is_training: bool = True,
                        dropout_keep_prob: float = 0.8,
                        reuse: bool | None = None,
                        scope: str = 'InceptionResnetV2',
                        create_aux_logits: bool = True,
                        activation_fn: ActivationFn | None = tf.nn.relu,
                        ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Inception-ResNet v2 classifier; the public checkpoint restores into it as is.

    The final grid is always averaged as a whole, so any input size that
    survives the strided layers works, known or not when the graph is built.

    Args:
      inputs: images, a float tensor [batch, height, width, channels]; 299 x 299
        is the size the public checkpoint was trained at.
      num_classes: number of logits (the public checkpoint has 1001, class 0
        being 'background'); 0 or None skips the logits layer (and the
        auxiliary head) and returns the pooled features [batch, 1, 1, 1536].
      is_training: training mode for batch norm and dropout.
      dropout_keep_prob: fraction of pre-logits activations kept by dropout.
      reuse: reuse the variables of an earlier build under `scope`.
      scope: variable scope of the whole net.
      create_aux_logits: build the auxiliary classifier on PreAuxLogits.
      activation_fn: activation after each residual addition.

    Returns:
      The logits [batch, num_classes] (or the pooled features, see
      `num_classes`) and a dict of end points, including 'AuxLogits',
      'global_pool', 'PreLogitsFlatten', 'Logits' and 'Predictions' when they
      are built.
    """
    with inception_utils.classifier_scope(scope, _BASE_SCOPE, inputs, reuse,
                                          is_training) as net_scope:
        net, end_points = inception_resnet_v2_base(inputs, scope=net_scope,
                                                   activation_fn=activation_fn)
        if create_aux_logits and num_classes:
            end_points['AuxLogits'] = inception_utils.aux_logits(
                end_points['PreAuxLogits'], num_classes, pool_scope='Conv2d_1a_3x3',
                conv_scope='Conv2d_2a_5x5', logits_scope='Logits')
        with tf.variable_scope('Logits'):
            # 8 x 8 x 1536
            net = _global_average(net)
            end_points['global_pool'] = net
            if not num_classes:
                return net, end_points
            # 1 x 1 x 1536
            net = slim.flatten(net)
            net = slim.dropout(net, dropout_keep_prob, scope='Dropout')
            end_points['PreLogitsFlatten'] = net
            # 1536
            logits = slim.fully_connected(net, num_classes, activation_fn=None, scope='Logits')
            end_points['Logits'] = logits
            end_points['Predictions'] = tf.nn.softmax(logits, name='Predictions')
    return logits, end_points


inception_resnet_v2.default_image_size = 299


def inception_resnet_v2_arg_scope(weight_decay: float = 0.00004,
                                  batch_norm_decay: float = 0.9997,
                                  batch_norm_epsilon: float = 0.001,
                                  activation_fn: ActivationFn = tf.nn.relu,
                                  batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                                  batch_norm_scale: bool = False):
    """Defaults for the convolutions and fully connected layers of Inception-ResNet v2.

    Args:
      weight_decay: L2 regularisation of the weights and biases.
      batch_norm_decay: decay of the batch-norm moving averages.
      batch_norm_epsilon: added to the variance to avoid dividing by zero.
      activation_fn: activation after each convolution.
      batch_norm_updates_collections: where batch norm puts its update ops.
      batch_norm_scale: learn a gamma per channel; the public checkpoint has none.

    Returns:
      An arg_scope for `slim.conv2d` and `slim.fully_connected`.
    """
    regularizer = slim.l2_regularizer(weight_decay)
    batch_norm_params = {
        'decay': batch_norm_decay,
        'epsilon': batch_norm_epsilon,
        'updates_collections': batch_norm_updates_collections,
        'fused': None,
        'scale': batch_norm_scale,
    }
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=regularizer, biases_regularizer=regularizer):
        with slim.arg_scope([slim.conv2d], activation_fn=activation_fn,
                            normalizer_fn=slim.batch_norm,
                            normalizer_params=batch_norm_params) as scope:
            return scope
