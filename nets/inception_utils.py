"""The arg_scope shared by the Inception nets (v1 to v4)."""

from slim_compat import slim
import tensorflow.compat.v1 as tf


def inception_arg_scope(weight_decay: float = 0.00004,
                        use_batch_norm: bool = True,
                        batch_norm_decay: float = 0.9997,
                        batch_norm_epsilon: float = 0.001,
                        activation_fn=tf.nn.relu,
                        batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                        batch_norm_scale: bool = False):
    """Defaults for the convolutions of every Inception net.

    Args:
      weight_decay: L2 regularisation of the convolution and fully connected weights.
      use_batch_norm: batch-normalise every convolution (the public checkpoints do).
      batch_norm_decay: decay of the batch-norm moving averages.
      batch_norm_epsilon: added to the variance to avoid dividing by zero.
      activation_fn: activation after each convolution.
      batch_norm_updates_collections: where batch norm puts its update ops.
      batch_norm_scale: learn a gamma per channel; the public checkpoints have none.

    Returns:
      An arg_scope for `slim.conv2d` and `slim.fully_connected`.
    """
    batch_norm_params = {
        'decay': batch_norm_decay,
        'epsilon': batch_norm_epsilon,
        'updates_collections': batch_norm_updates_collections,
        'fused': None,
        'scale': batch_norm_scale,
    }
    normalizer_fn = slim.batch_norm if use_batch_norm else None
    normalizer_params = batch_norm_params if use_batch_norm else {}
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay)):
        with slim.arg_scope([slim.conv2d],
                            weights_initializer=slim.variance_scaling_initializer(),
                            activation_fn=activation_fn,
                            normalizer_fn=normalizer_fn,
                            normalizer_params=normalizer_params) as scope:
            return scope
