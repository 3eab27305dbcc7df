"""What the machine can do and what a training step asks of it, in floating-point operations.

`matmul_peak` measures the machine's practical peak: a large square matrix
multiply in a Session, the op that oneDNN runs closest to the hardware's
limit. `forward_flops_per_image` counts a net's forward work with
TensorFlow's profiler (`graph_float_ops`): the float operations of the
forward graph for one image. `training_flops_per_image` is that times 3,
because the backward pass computes two products of the same size per layer
(the gradient with respect to the layer's input and the one with respect to
its weights).
"""

import dataclasses
import time

import common  # noqa: F401  (sets sys.path and logging first)
import tensorflow.compat.v1 as tf

from nets import nets_factory
from slim_classifier.runtime import session_config

# Forward plus the two backward products of every layer.
TRAINING_TO_FORWARD_FLOPS = 3
# The precisions the suite measures, with the dtype of their matrix products.
DTYPES = {'float32': tf.float32, 'bf16': tf.bfloat16}


@dataclasses.dataclass(frozen=True)
class Peak:
    """A measured matrix-multiply rate."""
    precision: str
    size: int
    gflops: float  # per second of wall-clock time
    gflops_per_cpu_second: float  # per second of this process's CPU time


def matmul_peak(precision: str, size: int = 2048, min_seconds: float = 2.0,
                intra_op_threads: int = 0) -> Peak:
    """The best rate of `size` x `size` matrix multiplies in `precision` over three rounds.

    Args:
      precision: 'float32' or 'bf16' (bfloat16 inputs, as the bf16 rewrite runs them).
      size: the side of the square matrices.
      min_seconds: the least time each round multiplies for.
      intra_op_threads: threads per op; 0 is one per core, as in training.

    Returns:
      The best round's rate, by wall-clock time and by CPU time.

    Raises:
      ValueError: for an unknown precision.
    """
    if precision not in DTYPES:
        raise ValueError('precision must be one of %s; got %r' % (', '.join(DTYPES), precision))
    with tf.Graph().as_default():
        # Variables keep the inputs in memory; summing the product keeps the
        # fetch small, so the rate is the multiply's own.
        left = tf.Variable(tf.cast(tf.random.normal([size, size]), DTYPES[precision]))
        right = tf.Variable(tf.cast(tf.random.normal([size, size]), DTYPES[precision]))
        product = tf.reduce_sum(tf.cast(tf.matmul(left, right), tf.float32))
        config = session_config.make_session_config(intra_op_threads=intra_op_threads)
        with tf.Session(config=config) as session:
            session.run(tf.global_variables_initializer())
            session.run(product)
            rounds = [_multiply_round(session, product, min_seconds) for _ in range(3)]
    flops = 2.0 * size ** 3
    best_wall = max(count * flops / wall for count, wall, _ in rounds)
    best_cpu = max(count * flops / cpu for count, _, cpu in rounds)
    return Peak(precision, size, best_wall / 1e9, best_cpu / 1e9)


def _multiply_round(session: tf.Session, product: tf.Tensor, min_seconds: float
                    ) -> tuple[int, float, float]:
    """(multiplies, wall seconds, CPU seconds) of one round."""
    count = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < min_seconds:
        session.run(product)
        count += 1
    return count, time.perf_counter() - start, time.process_time() - cpu_start


def training_flops_per_image(model_name: str, num_classes: int, image_size: int) -> float:
    """Floating-point operations of one training step per image: the forward ones x 3."""
    return float(TRAINING_TO_FORWARD_FLOPS
                 * forward_flops_per_image(model_name, num_classes, image_size))


def forward_flops_per_image(model_name: str, num_classes: int, image_size: int) -> int:
    """Floating-point operations of the forward pass for one image, counted by the profiler.

    The forward graph is built as training builds it (`is_training=True`,
    auxiliary logits included) for a batch of one. Only the ops the logits
    need are counted: the variables' initializers (a multiply and an add per
    weight) would otherwise add a fifth to LeNet's count.
    """
    spec = nets_factory.get_network_spec(model_name)
    with tf.Graph().as_default() as graph:
        network_fn = nets_factory.get_network_fn(model_name, num_classes, is_training=True)
        logits, end_points = network_fn(
            tf.placeholder(tf.float32, [1, image_size, image_size, spec.num_channels]))
        heads = [logits] + ([end_points['AuxLogits']] if 'AuxLogits' in end_points else [])
        forward = tf.graph_util.extract_sub_graph(graph.as_graph_def(),
                                                  [head.op.name for head in heads])
    with tf.Graph().as_default() as forward_graph:
        tf.import_graph_def(forward, name='')
    return graph_float_ops(forward_graph)


def graph_float_ops(graph: tf.Graph) -> int:
    """The profiler's float_ops of every op of `graph` whose shapes are known.

    The profiler counts the ops that register a flops statistic: convolutions,
    matrix products, element-wise arithmetic, pooling; not fused batch norm.
    """
    options = tf.profiler.ProfileOptionBuilder.float_operation()
    options['output'] = 'none'
    return tf.profiler.profile(graph, options=options).total_float_ops
