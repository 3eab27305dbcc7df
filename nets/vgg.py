"""VGG nets (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks ...").

Every configuration is five blocks of 3x3 convolutions, each block closed by
a 2x2 max pool, then the fully connected layers written as convolutions (fc6
7x7, fc7 and fc8 1x1). The configurations differ only in how many
convolutions each block repeats, so one builder, `vgg`, reads them from
`CONV_REPEATS`; `vgg_a`, `vgg_16` and `vgg_19` are thin named variants.

Layer names follow TF-Slim's `slim.repeat` scheme (`vgg_16/conv3/conv3_2`)
so the public checkpoints restore without renaming; end point keys carry the
full scope (`vgg_16/conv1/conv1_1`, `vgg_16/pool1`, `vgg_16/fc8`).
"""

import tensorflow.compat.v1 as tf

from nets.conv_head import classifier_head
from slim_classifier.compat import slim

# Convolutions per block: configurations A, D and E of the paper.
CONV_REPEATS: dict[str, tuple[int, ...]] = {
    'vgg_a': (1, 1, 2, 2, 2),
    'vgg_16': (2, 2, 3, 3, 3),
    'vgg_19': (2, 2, 4, 4, 4),
}

# Output channels of the five blocks, the same in every configuration.
_BLOCK_DEPTHS = (
    64,   # conv1: 224 x 224 x 64, pool1: 112 x 112 x 64
    128,  # conv2: 112 x 112 x 128, pool2: 56 x 56 x 128
    256,  # conv3: 56 x 56 x 256, pool3: 28 x 28 x 256
    512,  # conv4: 28 x 28 x 512, pool4: 14 x 14 x 512
    512,  # conv5: 14 x 14 x 512, pool5: 7 x 7 x 512
)

_FC_CONV_PADDINGS = ('VALID', 'SAME')


def vgg(inputs: tf.Tensor,
        conv_repeats: tuple[int, ...],
        num_classes: int | None = 1000,
        is_training: bool = True,
        dropout_keep_prob: float = 0.5,
        spatial_squeeze: bool = True,
        reuse: bool | None = None,
        scope: str = 'vgg',
        fc_conv_padding: str = 'VALID',
        global_pool: bool = False,
        ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds a VGG net with `conv_repeats[i]` convolutions in block i + 1.

    Args:
      inputs: a float tensor [batch, height, width, 3]; 224 x 224 by default.
      conv_repeats: five positive counts, one per block (see `CONV_REPEATS`).
      num_classes: number of logits; 0 or None skips the logits layer and
        returns the `fc7` activations (or their global average) instead.
      is_training: apply dropout.
      dropout_keep_prob: fraction of `fc6` and `fc7` activations kept while training.
      spatial_squeeze: squeeze the 1 x 1 logits to [batch, num_classes].
      reuse: reuse the variables of an earlier build under the same scope.
      scope: the variable scope of the whole net.
      fc_conv_padding: padding of fc6, 'VALID' (1 x 1 output at 224 x 224)
        or 'SAME' (7 x 7 output: a map of class scores, with
        spatial_squeeze=False).
      global_pool: average `fc7` over its spatial extent, so inputs larger
        than 224 x 224 still give one prediction per image.

    Returns:
      (logits, end_points): logits [batch, num_classes] (4-D without the
      squeeze), and a dict from end point name to tensor. As in TF-Slim there
      is no `Predictions` end point: apply a softmax to the logits.

    Raises:
      ValueError: if conv_repeats is not five positive counts, num_classes is
        negative, fc_conv_padding is neither 'VALID' nor 'SAME', or
        spatial_squeeze is asked of logits whose known height or width is not 1.
    """
    _check_arguments(conv_repeats, num_classes, fc_conv_padding)
    end_points = {}
    with tf.variable_scope(scope, 'vgg', [inputs], reuse=reuse) as net_scope:
        def add(name: str, tensor: tf.Tensor) -> tf.Tensor:
            end_points['%s/%s' % (net_scope.name, name)] = tensor
            return tensor

        net = inputs
        for block, (depth, repeats) in enumerate(zip(_BLOCK_DEPTHS, conv_repeats), start=1):
            with tf.variable_scope('conv%d' % block):
                for layer in range(1, repeats + 1):
                    name = 'conv%d_%d' % (block, layer)
                    net = add('conv%d/%s' % (block, name),
                              slim.conv2d(net, depth, [3, 3], scope=name))
            net = add('pool%d' % block, slim.max_pool2d(net, [2, 2], scope='pool%d' % block))

        # fc6: 1 x 1 x 4096 (7 x 7 x 4096 with fc_conv_padding='SAME');
        # fc7: 1 x 1 x 4096; fc8: 1 x 1 x num_classes
        net = classifier_head(
            net, end_points, net_scope.name, fc6_kernel_size=[7, 7],
            fc6_padding=fc_conv_padding, num_classes=num_classes, is_training=is_training,
            dropout_keep_prob=dropout_keep_prob, global_pool=global_pool,
            spatial_squeeze=spatial_squeeze)
    return net, end_points


def _check_arguments(conv_repeats: tuple[int, ...], num_classes: int | None,
                     fc_conv_padding: str) -> None:
    """Raises ValueError naming the first argument of `vgg` that is out of range."""
    if len(conv_repeats) != len(_BLOCK_DEPTHS) or min(conv_repeats) < 1:
        raise ValueError('conv_repeats must be %d counts >= 1; got %r'
                         % (len(_BLOCK_DEPTHS), tuple(conv_repeats)))
    if num_classes is not None and num_classes < 0:
        raise ValueError('num_classes must be >= 0 or None; got %d' % num_classes)
    if fc_conv_padding not in _FC_CONV_PADDINGS:
        raise ValueError("fc_conv_padding must be one of %s; got %r"
                         % (', '.join(_FC_CONV_PADDINGS), fc_conv_padding))


def vgg_a(inputs: tf.Tensor, num_classes: int | None = 1000, is_training: bool = True,
          dropout_keep_prob: float = 0.5, spatial_squeeze: bool = True,
          reuse: bool | None = None, scope: str = 'vgg_a', fc_conv_padding: str = 'VALID',
          global_pool: bool = False,
          ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """VGG 11 layers (configuration A); the arguments are those of `vgg`."""
    return vgg(inputs, CONV_REPEATS['vgg_a'], num_classes, is_training, dropout_keep_prob,
               spatial_squeeze, reuse, scope, fc_conv_padding, global_pool)


def vgg_16(inputs: tf.Tensor, num_classes: int | None = 1000, is_training: bool = True,
           dropout_keep_prob: float = 0.5, spatial_squeeze: bool = True,
           reuse: bool | None = None, scope: str = 'vgg_16', fc_conv_padding: str = 'VALID',
           global_pool: bool = False,
           ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """VGG 16 layers (configuration D); the arguments are those of `vgg`."""
    return vgg(inputs, CONV_REPEATS['vgg_16'], num_classes, is_training, dropout_keep_prob,
               spatial_squeeze, reuse, scope, fc_conv_padding, global_pool)


def vgg_19(inputs: tf.Tensor, num_classes: int | None = 1000, is_training: bool = True,
           dropout_keep_prob: float = 0.5, spatial_squeeze: bool = True,
           reuse: bool | None = None, scope: str = 'vgg_19', fc_conv_padding: str = 'VALID',
           global_pool: bool = False,
           ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """VGG 19 layers (configuration E); the arguments are those of `vgg`."""
    return vgg(inputs, CONV_REPEATS['vgg_19'], num_classes, is_training, dropout_keep_prob,
               spatial_squeeze, reuse, scope, fc_conv_padding, global_pool)


# The paper's configuration letters, kept as in TF-Slim.
vgg_d = vgg_16
vgg_e = vgg_19


def vgg_arg_scope(weight_decay: float = 0.0005) -> dict:
    """Defaults for the layers of every VGG net.

    Args:
      weight_decay: L2 regularisation of the convolution and fully connected weights.

    Returns:
      An arg_scope for `slim.conv2d` and `slim.fully_connected`.
    """
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        activation_fn=tf.nn.relu,
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        biases_initializer=tf.zeros_initializer()):
        with slim.arg_scope([slim.conv2d], padding='SAME') as scope:
            return scope
