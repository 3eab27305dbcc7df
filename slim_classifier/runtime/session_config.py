"""Session settings shared by training and evaluation: precision, XLA and threads.

`bf16` turns on TensorFlow's automatic mixed precision graph rewrite for
oneDNN: convolutions, matrix multiplies and their gradients run in bfloat16
on CPUs that support it (AVX512_BF16 or AMX), with float32 variables, so
checkpoints do not change. Depthwise convolutions stay float32: oneDNN's
bfloat16 depthwise kernels are slower than its float32 ones on AVX512_BF16
CPUs (the backprops 3x, `benchmarks/bench_depthwise.py`), which made MobileNet
and NASNet slower in bf16 than in float32. For NASNet-A Mobile, batch norm
and its gradient stay float32 too (`model_name`): oneDNN's bfloat16 batch-norm
kernels took 1.8x the time of its float32 ones on its cells (785 against 442
ms a step, `benchmarks/bench_step_profile.py`), while on ResNet, Inception and
MobileNet v2 the float32 ones and their casts made the step up to 1.2x slower.
Only the nets measured are listed (`FLOAT32_BATCH_NORM_NETS`).
The rewrite reads its lists from the environment when it runs; a list a user
set (TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE,
..._INFERLIST_REMOVE) is left as it is.

`float16` turns on the rewrite for GPUs: the same ops run in float16, and the
trainer adds dynamic loss scaling (`optimization.with_loss_scaling`), as
float16 gradients would otherwise underflow. Without a GPU the rewrite
emulates float16 on the CPU (casts to float16 and back around float32
math): the numerics of a float16 run, at no gain in speed.

`xla` compiles clusters of ops with XLA. TensorFlow clusters ops on CPUs only
when a process-wide switch is on as well, and that switch is read once, when
the process creates its first device (its first Session or eager op), so ask
for the config before then, as the train and eval commands do.
"""

import logging
import os

import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.client import pywrap_tf_session

from slim_classifier.runtime.options import PRECISIONS

log = logging.getLogger('precision')

# Read by the mixed precision rewrite each time it runs (TensorFlow's UpdateList).
ALLOWLIST_REMOVE = 'TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE'
INFERLIST_REMOVE = 'TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_INFERLIST_REMOVE'
FLOAT32_IN_BF16 = ('DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropInput',
                   'DepthwiseConv2dNativeBackpropFilter')
# Batch norm, which the rewrite runs in bfloat16 after a bfloat16 convolution.
BATCH_NORM_OPS = ('FusedBatchNormV2', 'FusedBatchNormGradV2', 'FusedBatchNormV3',
                  'FusedBatchNormGradV3', '_FusedBatchNormEx')
# The nets whose batch norm is faster in float32 under bf16, as measured (see the module doc).
FLOAT32_BATCH_NORM_NETS = ('nasnet_mobile',)
# What this module last wrote to each list's variable: a value it did not write is the user's.
_written: dict[str, str] = {}


def float32_ops_in_bf16(model_name: str | None = None) -> dict[str, tuple[str, ...]]:
    """{the rewrite's list variable: the ops taken off that list} for `model_name` in bf16."""
    return {ALLOWLIST_REMOVE: FLOAT32_IN_BF16,
            INFERLIST_REMOVE: BATCH_NORM_OPS if model_name in FLOAT32_BATCH_NORM_NETS else ()}


def _set_lists(lists: dict[str, tuple[str, ...]]) -> None:
    for variable, ops in lists.items():
        current = os.environ.get(variable)
        if current is not None and current != _written.get(variable):
            continue  # the user's own
        if ops:
            os.environ[variable] = _written[variable] = ','.join(ops)
        elif current is not None:
            del os.environ[variable]
            del _written[variable]


def make_session_config(precision: str = 'float32', xla: bool = False,
                        intra_op_threads: int = 0, inter_op_threads: int = 0,
                        model_name: str | None = None) -> tf.ConfigProto:
    """A ConfigProto for the given compute precision, JIT setting and thread pools.

    Args:
      precision: 'float32'; 'bf16' for oneDNN automatic mixed precision;
        'float16' for GPU automatic mixed precision (emulated without a GPU).
      xla: compile clusters of ops with XLA (on CPUs too, see the module doc).
      intra_op_threads: threads that share the work of one op; 0 lets
        TensorFlow choose (one per core).
      inter_op_threads: ops run at the same time; 0 lets TensorFlow choose.
      model_name: the net the session runs, for the ops bf16 keeps in float32
        for it (`float32_ops_in_bf16`); None: those of every net.

    Returns:
      The ConfigProto, with soft placement on so that ops without a kernel on
      the requested device fall back to the CPU.

    Raises:
      ValueError: for an unknown precision or a negative thread count.
    """
    if precision not in PRECISIONS:
        raise ValueError('--precision must be one of %s; got %r' % (', '.join(PRECISIONS),
                                                                    precision))
    for name, threads in (('intra_op_threads', intra_op_threads),
                          ('inter_op_threads', inter_op_threads)):
        if threads < 0:
            raise ValueError('%s must be >= 0 (0: one per core); got %d' % (name, threads))
    config = tf.ConfigProto(allow_soft_placement=True,
                            intra_op_parallelism_threads=intra_op_threads,
                            inter_op_parallelism_threads=inter_op_threads)
    if xla:
        # Without the switch, CPU ops join XLA clusters only when marked one by one.
        pywrap_tf_session.TF_SetTfXlaCpuGlobalJit(True)
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
    rewrites = config.graph_options.rewrite_options
    if precision == 'bf16':
        rewrites.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
        _set_lists(float32_ops_in_bf16(model_name))
    elif precision == 'float16':
        rewrites.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
        if not tf.config.list_physical_devices('GPU'):
            log.warning('--precision=float16 without a GPU: float16 is emulated on the CPU, '
                        'which checks its numerics but is slower; use --precision=bf16 for '
                        'speed on CPUs')
            rewrites.auto_mixed_precision_cpu = rewriter_config_pb2.RewriterConfig.ON
    return config
