"""Session settings shared by training and evaluation: precision, XLA and placement."""

import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import rewriter_config_pb2

PRECISIONS = ('float32', 'bf16')


def make_session_config(precision: str = 'float32', xla: bool = False) -> tf.ConfigProto:
    """A ConfigProto for the given compute precision and JIT setting.

    `bf16` turns on TensorFlow's automatic mixed precision graph rewrite
    (oneDNN bfloat16 on CPUs): variables and checkpoints stay float32, the
    rewrite casts the compute-heavy ops. `xla` compiles clusters of ops with XLA.

    Raises:
      ValueError: for an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError('--precision must be one of %s; got %r' % (', '.join(PRECISIONS),
                                                                    precision))
    config = tf.ConfigProto(allow_soft_placement=True)
    if precision == 'bf16':
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
            rewriter_config_pb2.RewriterConfig.ON)
    if xla:
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
    return config
