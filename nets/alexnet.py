"""AlexNet version 2 (Krizhevsky 2014, "One weird trick ..."), as TF-Slim names it.

Five convolutions and three pools, then the fully connected layers written as
convolutions (fc6 5x5 VALID, fc7 and fc8 1x1), so the net also slides over
images larger than 224 x 224. End point keys carry the scope prefix
(`alexnet_v2/conv1`, ..., `alexnet_v2/fc8`) and variable names match the
TF-Slim definition.
"""

import tensorflow.compat.v1 as tf

from nets.conv_head import classifier_head
from slim_classifier.compat import slim


def alexnet_v2(inputs: tf.Tensor,
               num_classes: int | None = 1000,
               is_training: bool = True,
               dropout_keep_prob: float = 0.5,
               spatial_squeeze: bool = True,
               scope: str = 'alexnet_v2',
               global_pool: bool = False,
               ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds AlexNet v2 for 224 x 224 images (or larger, see `global_pool`).

    To build it a second time on the same variables, open the enclosing
    variable scope with reuse=True: as in TF-Slim, there is no `reuse`
    argument.

    Args:
      inputs: a float tensor [batch, height, width, 3].
      num_classes: number of logits; 0 or None skips the logits layer and
        returns the `fc7` activations (or their global average) instead.
      is_training: apply dropout.
      dropout_keep_prob: fraction of `fc6` and `fc7` activations kept while training.
      spatial_squeeze: squeeze the 1 x 1 logits to [batch, num_classes].
      scope: the variable scope of the whole net.
      global_pool: average `fc7` over its spatial extent, so inputs larger
        than 224 x 224 still give one prediction per image.

    Returns:
      (logits, end_points): logits [batch, num_classes] (4-D without the
      squeeze), and a dict from end point name to tensor. As in TF-Slim there
      is no `Predictions` end point: apply a softmax to the logits.

    Raises:
      ValueError: if num_classes is negative, or spatial_squeeze is asked of
        logits whose known height or width is not 1.
    """
    if num_classes is not None and num_classes < 0:
        raise ValueError('num_classes must be >= 0 or None; got %d' % num_classes)
    end_points = {}
    with tf.variable_scope(scope, 'alexnet_v2', [inputs]) as net_scope:
        def add(name: str, tensor: tf.Tensor) -> tf.Tensor:
            end_points['%s/%s' % (net_scope.name, name)] = tensor
            return tensor

        # 54 x 54 x 64
        net = add('conv1', slim.conv2d(inputs, 64, [11, 11], 4, padding='VALID',
                                       scope='conv1'))
        # 26 x 26 x 64
        net = add('pool1', slim.max_pool2d(net, [3, 3], 2, scope='pool1'))
        # 26 x 26 x 192
        net = add('conv2', slim.conv2d(net, 192, [5, 5], scope='conv2'))
        # 12 x 12 x 192
        net = add('pool2', slim.max_pool2d(net, [3, 3], 2, scope='pool2'))
        # 12 x 12 x 384
        net = add('conv3', slim.conv2d(net, 384, [3, 3], scope='conv3'))
        # 12 x 12 x 384
        net = add('conv4', slim.conv2d(net, 384, [3, 3], scope='conv4'))
        # 12 x 12 x 256
        net = add('conv5', slim.conv2d(net, 256, [3, 3], scope='conv5'))
        # 5 x 5 x 256
        net = add('pool5', slim.max_pool2d(net, [3, 3], 2, scope='pool5'))

        # The fully connected layers start from small random weights and
        # slightly positive biases, as in the original AlexNet; the logits
        # start unbiased.
        with slim.arg_scope([slim.conv2d],
                            weights_initializer=tf.truncated_normal_initializer(stddev=0.005),
                            biases_initializer=tf.constant_initializer(0.1)):
            # fc6, fc7: 1 x 1 x 4096; fc8: 1 x 1 x num_classes
            net = classifier_head(
                net, end_points, net_scope.name, fc6_kernel_size=[5, 5], fc6_padding='VALID',
                num_classes=num_classes, is_training=is_training,
                dropout_keep_prob=dropout_keep_prob, global_pool=global_pool,
                spatial_squeeze=spatial_squeeze, logits_biases_initializer=tf.zeros_initializer())
    return net, end_points


def alexnet_v2_arg_scope(weight_decay: float = 0.0005) -> dict:
    """Defaults for AlexNet v2's layers.

    Args:
      weight_decay: L2 regularisation of the convolution and fully connected weights.

    Returns:
      An arg_scope for `slim.conv2d`, `slim.fully_connected` and `slim.max_pool2d`.
    """
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        activation_fn=tf.nn.relu,
                        biases_initializer=tf.constant_initializer(0.1),
                        weights_regularizer=slim.l2_regularizer(weight_decay)):
        with slim.arg_scope([slim.conv2d], padding='SAME'):
            with slim.arg_scope([slim.max_pool2d], padding='VALID') as scope:
                return scope
