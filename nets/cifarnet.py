"""CifarNet, the CIFAR-10 model of the TensorFlow tutorial, as TF-Slim names it.

Two 5x5 convolutions, each followed by max pooling and local response
normalisation, then three fully connected layers. Variable names follow the
TF-Slim definition (`CifarNet/conv1/weights`, ..., `CifarNet/logits/biases`).
"""

from collections.abc import Callable

import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim

# Local response normalisation as in the CIFAR-10 tutorial (after AlexNet).
_LRN_PARAMS = {'depth_radius': 4, 'bias': 1.0, 'alpha': 0.001 / 9.0, 'beta': 0.75}


def cifarnet(images: tf.Tensor,
             num_classes: int | None = 10,
             is_training: bool = False,
             dropout_keep_prob: float = 0.5,
             prediction_fn: Callable[..., tf.Tensor] = slim.softmax,
             scope: str = 'CifarNet') -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds CifarNet for 32 x 32 images.

    Args:
      images: a float tensor [batch, 32, 32, channels]. The fully connected
        layers need the height and width to be known when the graph is built.
      num_classes: number of logits; 0 or None skips the logits layer and
        returns the `fc4` activations instead.
      is_training: apply dropout.
      dropout_keep_prob: fraction of `fc3` activations kept while training.
      prediction_fn: turns the logits into the `Predictions` end point.
      scope: the variable scope of the whole net.

    Returns:
      (logits, end_points): logits [batch, num_classes] (or the `fc4` features
      [batch, 192] when num_classes is 0 or None), and a dict from end point
      name to tensor.

    Raises:
      ValueError: if num_classes is negative.
    """
    if num_classes is not None and num_classes < 0:
        raise ValueError('num_classes must be >= 0 or None; got %d' % num_classes)
    end_points = {}
    with tf.variable_scope(scope, 'CifarNet', [images]):
        # 32 x 32 x 64
        net = end_points['conv1'] = slim.conv2d(images, 64, [5, 5], scope='conv1')
        # 16 x 16 x 64
        net = end_points['pool1'] = slim.max_pool2d(net, [2, 2], 2, scope='pool1')
        net = tf.nn.lrn(net, name='norm1', **_LRN_PARAMS)
        # 16 x 16 x 64
        net = end_points['conv2'] = slim.conv2d(net, 64, [5, 5], scope='conv2')
        net = tf.nn.lrn(net, name='norm2', **_LRN_PARAMS)
        # 8 x 8 x 64
        net = end_points['pool2'] = slim.max_pool2d(net, [2, 2], 2, scope='pool2')
        # 4096
        net = end_points['Flatten'] = slim.flatten(net)
        # 384
        net = end_points['fc3'] = slim.fully_connected(net, 384, scope='fc3')
        net = slim.dropout(net, dropout_keep_prob, is_training=is_training,
                           scope='dropout3')
        # 192
        net = end_points['fc4'] = slim.fully_connected(net, 192, scope='fc4')
        if not num_classes:
            return net, end_points
        # The logits layer is initialised and regularised on its own terms:
        # small weights scaled to its 192 inputs, zero biases, no weight decay.
        logits = end_points['Logits'] = slim.fully_connected(
            net, num_classes, activation_fn=None,
            weights_initializer=tf.truncated_normal_initializer(stddev=1 / 192.0),
            biases_initializer=tf.zeros_initializer(),
            weights_regularizer=None, scope='logits')
        end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


def cifarnet_arg_scope(weight_decay: float = 0.004) -> dict:
    """Defaults for CifarNet's layers.

    Args:
      weight_decay: L2 regularisation of the fully connected weights (the
        convolutions are not regularised).

    Returns:
      An arg_scope for `slim.conv2d` and `slim.fully_connected`.
    """
    with slim.arg_scope([slim.conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=5e-2),
                        activation_fn=tf.nn.relu):
        with slim.arg_scope([slim.fully_connected],
                            weights_initializer=tf.truncated_normal_initializer(stddev=0.04),
                            biases_initializer=tf.constant_initializer(0.1),
                            weights_regularizer=slim.l2_regularizer(weight_decay),
                            activation_fn=tf.nn.relu) as scope:
            return scope
