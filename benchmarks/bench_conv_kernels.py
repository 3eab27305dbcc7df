"""How fast a net's training step could be if it were nothing but its convolutions.

Every convolution of the net's graph is timed on its own, with the shapes it
has in training: the forward product, the gradient with respect to its input
(except for the first layer, whose input needs none) and the gradient with
respect to its weights. These are TensorFlow's oneDNN kernels, the ones both
our trainer and Keras run. Their summed time per batch bounds the training
step from below: no framework running these kernels can train faster.

The table puts each side's whole training step (as in bench_nets.py: same
random batch, SGD with momentum, no input pipeline) against that bound, and
gives the largest ratio over Keras that any framework running these kernels
could reach. The kernels' own rate is given as a fraction of the
matrix-multiply peak of the same precision, measured in the same run. In bf16
the kernels run on bfloat16 tensors, our step under `--precision=bf16`'s
rewrite and Keras's under its `mixed_bfloat16` policy.

    python benchmarks/bench_conv_kernels.py
    python benchmarks/bench_conv_kernels.py --nets inception_v3 --rounds 3 --precision bf16
"""

import argparse
import dataclasses
import time

import numpy as np

import common  # noqa: F401  (sets sys.path and logging first)
import tensorflow.compat.v1 as tf

import bench_nets
import compute
from nets import nets_factory
from slim_classifier.runtime import session_config

DEFAULT_BATCH = {'vgg_16': 4, 'inception_v3': 8, 'lenet': 64}


@dataclasses.dataclass(frozen=True)
class Convolution:
    """One convolution of a net, as its training graph runs it."""
    input_shape: tuple[int, ...]  # NHWC
    filter_shape: tuple[int, ...]  # HWIO
    output_shape: tuple[int, ...]  # NHWC
    strides: tuple[int, ...]
    padding: str
    needs_input_gradient: bool

    @property
    def flops(self) -> float:
        """Multiply-adds x 2 of the forward product (each gradient costs the same)."""
        height, width, in_channels, _ = self.filter_shape
        return 2.0 * np.prod(self.output_shape) * height * width * in_channels


def net_convolutions(name: str, batch_size: int) -> list[Convolution]:
    """The Conv2D ops of the net's training graph, in graph order."""
    spec = nets_factory.get_network_spec(name)
    size = spec.default_image_size
    with tf.Graph().as_default() as graph:
        images = tf.placeholder(tf.float32, [batch_size, size, size, spec.num_channels])
        kwargs = {'create_aux_logits': False} if name == 'inception_v3' else {}
        logits, _ = nets_factory.get_network_fn(name, spec.default_num_classes,
                                                is_training=True)(images, **kwargs)
    needed = _ops_needed_for(logits)
    convolutions = []
    for op in graph.get_operations():
        # VGG's head keeps convolutions that its matmuls replace; they never run.
        if op.type != 'Conv2D' or op not in needed:
            continue
        data, kernel = op.inputs
        convolutions.append(Convolution(
            tuple(data.shape.as_list()), tuple(kernel.shape.as_list()),
            tuple(op.outputs[0].shape.as_list()), tuple(op.get_attr('strides')),
            op.get_attr('padding').decode(), needs_input_gradient=data.op.type != 'Placeholder'))
    return convolutions


def _ops_needed_for(tensor: tf.Tensor) -> set[tf.Operation]:
    """The ops that computing `tensor` runs."""
    needed, pending = set(), [tensor.op]
    while pending:
        op = pending.pop()
        if op not in needed:
            needed.add(op)
            pending.extend(source.op for source in op.inputs)
    return needed


def kernel_seconds(convolutions: list[Convolution], rounds: int, runs: int,
                   precision: str = 'float32') -> float:
    """The best over rounds of the summed time of every forward and backward kernel."""
    dtype = compute.DTYPES[precision]
    with tf.Graph().as_default():
        fetches = []
        for conv in convolutions:
            data = tf.Variable(tf.cast(tf.random.normal(conv.input_shape), dtype))
            kernel = tf.Variable(tf.cast(tf.random.normal(conv.filter_shape) * 0.05, dtype))
            gradient = tf.Variable(tf.cast(tf.random.normal(conv.output_shape), dtype))
            ops = [tf.nn.conv2d(data, kernel, conv.strides, conv.padding),
                   tf.raw_ops.Conv2DBackpropFilter(
                       input=data, filter_sizes=conv.filter_shape, out_backprop=gradient,
                       strides=conv.strides, padding=conv.padding)]
            if conv.needs_input_gradient:
                ops.append(tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=conv.input_shape, filter=kernel, out_backprop=gradient,
                    strides=conv.strides, padding=conv.padding))
            # One element out of each result: the kernels run whole, nothing is copied.
            fetches.append([tf.reshape(op, [-1])[0] for op in ops])
        with tf.Session(config=session_config.make_session_config()) as session:
            session.run(tf.global_variables_initializer())
            best = float('inf')
            for _ in range(rounds):
                total = 0.0
                for fetch in fetches:
                    session.run(fetch)  # warm-up: oneDNN builds its primitives
                    start = time.perf_counter()
                    for _ in range(runs):
                        session.run(fetch)
                    total += (time.perf_counter() - start) / runs
                best = min(best, total)
    return best


def training_steps_per_second(name: str, batch_size: int, rounds: int,
                              precision: str = 'float32') -> dict[str, float]:
    """Whole training steps per second of our net and of Keras's, as bench_nets measures."""
    images, labels, classes = bench_nets.random_batch(name, batch_size)
    ours, _, session = bench_nets.slim_runners(
        name, images, labels, classes, (0, 0),
        config=session_config.make_session_config(precision))
    theirs, _ = bench_nets.keras_runners(name, images, labels, classes, precision)
    rates = {'ours': 0.0, 'keras': 0.0}
    for _ in range(rounds):
        for side, step in (('ours', ours), ('keras', theirs)):
            rates[side] = max(rates[side], common.items_per_second(step, 1, 1, 3))
    session.close()
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nets', nargs='+', default=['vgg_16', 'inception_v3'],
                        choices=sorted(DEFAULT_BATCH))
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--runs', type=int, default=3, help='timed runs of each kernel per round')
    parser.add_argument('--precision', choices=list(compute.DTYPES), default='float32')
    args = parser.parse_args()
    peak = compute.matmul_peak(args.precision)
    rows = []
    for name in args.nets:
        batch_size = DEFAULT_BATCH[name]
        convolutions = net_convolutions(name, batch_size)
        seconds = kernel_seconds(convolutions, args.rounds, args.runs, args.precision)
        flops = sum(conv.flops * (3 if conv.needs_input_gradient else 2)
                    for conv in convolutions)
        steps = training_steps_per_second(name, batch_size, args.rounds, args.precision)
        bound = 1.0 / seconds
        rows.append([name, batch_size, len(convolutions), flops / seconds / 1e9 / peak.gflops,
                     bound * batch_size, steps['ours'] * batch_size,
                     steps['keras'] * batch_size, steps['ours'] / bound,
                     steps['keras'] / bound, bound / steps['keras']])
        print('measured', name, flush=True)
    print('\n%s matmul peak: %.0f GFLOP/s\n' % (args.precision, peak.gflops))
    common.print_table(['net', 'batch', 'convs', 'kernels / peak', 'bound img/s', 'ours img/s',
                        'keras img/s', 'ours / bound', 'keras / bound', 'most over keras'],
                       rows)


if __name__ == '__main__':
    main()
