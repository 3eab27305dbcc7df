"""LeNet, the small convolutional net of LeCun et al. (1998), as TF-Slim names it.

Two 5x5 convolutions with max pooling, then two fully connected layers. The
variable names (`LeNet/conv1/weights`, ..., `LeNet/fc4/biases`) are those of
the TF-Slim definition, so its checkpoints restore without renaming.
"""

from collections.abc import Callable

import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim


def lenet(images: tf.Tensor,
          num_classes: int | None = 10,
          is_training: bool = False,
          dropout_keep_prob: float = 0.5,
          prediction_fn: Callable[..., tf.Tensor] = slim.softmax,
          scope: str = 'LeNet') -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Builds LeNet for 28 x 28 images (MNIST-sized).

    Args:
      images: a float tensor [batch, 28, 28, channels]. The fully connected
        layers need the height and width to be known when the graph is built.
      num_classes: number of logits; 0 or None skips the logits layer and
        returns the `fc3` activations (before dropout) instead.
      is_training: apply dropout.
      dropout_keep_prob: fraction of `fc3` activations kept while training.
      prediction_fn: turns the logits into the `Predictions` end point.
      scope: the variable scope of the whole net.

    Returns:
      (logits, end_points): logits [batch, num_classes] (or the `fc3` features
      [batch, 1024] when num_classes is 0 or None), and a dict from end point
      name to tensor.

    Raises:
      ValueError: if num_classes is negative.
    """
    if num_classes is not None and num_classes < 0:
        raise ValueError('num_classes must be >= 0 or None; got %d' % num_classes)
    end_points = {}
    with tf.variable_scope(scope, 'LeNet', [images]):
        # 28 x 28 x 32
        net = end_points['conv1'] = slim.conv2d(images, 32, [5, 5], scope='conv1')
        # 14 x 14 x 32
        net = end_points['pool1'] = slim.max_pool2d(net, [2, 2], 2, scope='pool1')
        # 14 x 14 x 64
        net = end_points['conv2'] = slim.conv2d(net, 64, [5, 5], scope='conv2')
        # 7 x 7 x 64
        net = end_points['pool2'] = slim.max_pool2d(net, [2, 2], 2, scope='pool2')
        # 3136
        net = end_points['Flatten'] = slim.flatten(net)
        # 1024
        net = end_points['fc3'] = slim.fully_connected(net, 1024, scope='fc3')
        if not num_classes:
            return net, end_points
        net = end_points['dropout3'] = slim.dropout(
            net, dropout_keep_prob, is_training=is_training, scope='dropout3')
        logits = end_points['Logits'] = slim.fully_connected(
            net, num_classes, activation_fn=None, scope='fc4')
    # As in TF-Slim, the predictions op sits outside the LeNet scope.
    end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


def lenet_arg_scope(weight_decay: float = 0.0) -> dict:
    """Defaults for LeNet's layers.

    Args:
      weight_decay: L2 regularisation of the convolution and fully connected weights.

    Returns:
      An arg_scope for `slim.conv2d` and `slim.fully_connected`.
    """
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        weights_initializer=tf.truncated_normal_initializer(stddev=0.1),
                        activation_fn=tf.nn.relu) as scope:
        return scope
