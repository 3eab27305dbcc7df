"""How fast a net's training step could be if it were nothing but its convolutions.

Every convolution of the net's graph is timed on its own, with the shapes it
has in training: the forward product, the gradient with respect to its input
(except where the input depends on no variable, as the first layer's images)
and the gradient with respect to its weights. Convolutions are the graph's
Conv2D and DepthwiseConv2dNative ops (MobileNet's and NASNet's depthwise
layers). These are TensorFlow's oneDNN kernels, the ones both our trainer and
Keras run. Their summed time per batch bounds the training step from below:
no framework running these kernels can train faster.

The table puts each side's whole training step (as in bench_nets.py: same
random batch, SGD with momentum, no input pipeline) against that bound, and
gives the largest ratio over Keras that any framework running these kernels
could reach. The kernels' own rate is given as a fraction of the
matrix-multiply peak of the same precision, measured in the same run. In bf16
the kernels run on bfloat16 tensors, our step under `--precision=bf16`'s
rewrite and Keras's under its `mixed_bfloat16` policy. Each net runs at its
run_all.py batch. `bench_step_profile.py` puts the bound against the
trainer's own step, input pipeline and auxiliary heads included.

    python benchmarks/bench_conv_kernels.py
    python benchmarks/bench_conv_kernels.py --nets inception_v3 --rounds 3 --precision bf16
    python benchmarks/bench_conv_kernels.py --nets resnet_v1_50 mobilenet_v2 inception_resnet_v2
"""

import argparse
import dataclasses
import inspect
import time

import numpy as np

import common  # noqa: F401  (sets sys.path and logging first)
import tensorflow.compat.v1 as tf

import bench_nets
import compute
import run_all
from nets import nets_factory
from slim_classifier.runtime import session_config

# The forward kernel of each convolution op type, and its gradients with
# respect to the input and to the filter; the three take the same attributes.
KERNELS = {
    'Conv2D': (tf.raw_ops.Conv2D, tf.raw_ops.Conv2DBackpropInput,
               tf.raw_ops.Conv2DBackpropFilter),
    'DepthwiseConv2dNative': (tf.raw_ops.DepthwiseConv2dNative,
                              tf.raw_ops.DepthwiseConv2dNativeBackpropInput,
                              tf.raw_ops.DepthwiseConv2dNativeBackpropFilter),
}
VARIABLE_OPS = ('VariableV2', 'VarHandleOp')


@dataclasses.dataclass(frozen=True)
class Convolution:
    """One convolution of a net, as its training graph runs it."""
    input_shape: tuple[int, ...]  # NHWC
    filter_shape: tuple[int, ...]  # HWIO; HWCM (channels, multiplier) for a depthwise one
    output_shape: tuple[int, ...]  # NHWC
    strides: tuple[int, ...]
    padding: str
    needs_input_gradient: bool
    op_type: str = 'Conv2D'  # a key of KERNELS
    dilations: tuple[int, ...] = (1, 1, 1, 1)

    @property
    def flops(self) -> float:
        """Multiply-adds x 2 of the forward product (each gradient costs the same)."""
        height, width, in_channels, _ = self.filter_shape
        # A depthwise output element reads one input channel; a full one, all of them.
        depth = 1 if self.op_type == 'DepthwiseConv2dNative' else in_channels
        return 2.0 * np.prod(self.output_shape) * height * width * depth

    @property
    def training_flops(self) -> float:
        """The forward product and the gradients the training step computes."""
        return self.flops * (3 if self.needs_input_gradient else 2)


def net_convolutions(name: str, batch_size: int) -> list[Convolution]:
    """The convolutions of the net alone as bench_nets.py trains it, in graph order.

    The net is built at its default image size and class count, without the
    auxiliary head where it has one (Keras's builds have none).
    """
    spec = nets_factory.get_network_spec(name)
    size = spec.default_image_size
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [batch_size, size, size, spec.num_channels])
        kwargs = ({'create_aux_logits': False}
                  if 'create_aux_logits' in inspect.signature(spec.builder).parameters else {})
        logits, _ = nets_factory.get_network_fn(name, spec.default_num_classes,
                                                is_training=True)(images, **kwargs)
    return graph_convolutions(logits)


def graph_convolutions(fetch: tf.Tensor | tf.Operation) -> list[Convolution]:
    """The forward convolutions that computing `fetch` runs, in graph order.

    `fetch` may be a training op: the gradients' kernels are not forward
    convolutions, and a net's convolutions that never run (VGG's head, whose
    matmuls replace them) are left out.

    Raises:
      ValueError: if a convolution's shapes are not all known.
    """
    needed = _ops_needed_for(fetch)
    fed_by_variables = set()
    convolutions = []
    # Creation order: an op's inputs come before it.
    for op in fetch.graph.get_operations():
        if op not in needed:
            continue
        if op.type in VARIABLE_OPS or any(source.op in fed_by_variables
                                          for source in op.inputs):
            fed_by_variables.add(op)
        if op.type in KERNELS:
            convolutions.append(_convolution(op, op.inputs[0].op in fed_by_variables))
    return convolutions


def _convolution(op: tf.Operation, needs_input_gradient: bool) -> Convolution:
    data, kernel = op.inputs
    shapes = [tensor.shape for tensor in (data, kernel, op.outputs[0])]
    if not all(shape.is_fully_defined() for shape in shapes):
        raise ValueError('convolution %s has shapes %s; the bound needs them all known'
                         % (op.name, ', '.join(str(shape) for shape in shapes)))
    input_shape, filter_shape, output_shape = (tuple(shape.as_list()) for shape in shapes)
    return Convolution(input_shape, filter_shape, output_shape, tuple(op.get_attr('strides')),
                       op.get_attr('padding').decode(), needs_input_gradient, op.type,
                       tuple(op.get_attr('dilations')))


def _ops_needed_for(fetch: tf.Tensor | tf.Operation) -> set[tf.Operation]:
    """The ops that computing `fetch` runs, through data inputs."""
    needed, pending = set(), [fetch if isinstance(fetch, tf.Operation) else fetch.op]
    while pending:
        op = pending.pop()
        if op not in needed:
            needed.add(op)
            pending.extend(source.op for source in op.inputs)
    return needed


def kernel_dtype(conv: Convolution, precision: str) -> tf.DType:
    """The dtype the trainer runs `conv`'s kernels in: bf16 keeps depthwise ones float32."""
    if precision == 'bf16' and conv.op_type in session_config.FLOAT32_IN_BF16:
        return compute.DTYPES['float32']
    return compute.DTYPES[precision]


def kernel_seconds(convolutions: list[Convolution], rounds: int, runs: int,
                   precision: str = 'float32', config: tf.ConfigProto | None = None) -> float:
    """The best over rounds of the summed time of every forward and backward kernel.

    `config` is the session's (threads, rewrites); the trainer's float32 one by default.
    """
    with tf.Graph().as_default():
        fetches = []
        for conv in convolutions:
            dtype = kernel_dtype(conv, precision)
            data = tf.Variable(tf.cast(tf.random.normal(conv.input_shape), dtype))
            kernel = tf.Variable(tf.cast(tf.random.normal(conv.filter_shape) * 0.05, dtype))
            gradient = tf.Variable(tf.cast(tf.random.normal(conv.output_shape), dtype))
            forward, input_gradient, filter_gradient = KERNELS[conv.op_type]
            attributes = {'strides': conv.strides, 'padding': conv.padding,
                          'dilations': conv.dilations}
            ops = [forward(input=data, filter=kernel, **attributes),
                   filter_gradient(input=data, filter_sizes=conv.filter_shape,
                                   out_backprop=gradient, **attributes)]
            if conv.needs_input_gradient:
                ops.append(input_gradient(input_sizes=conv.input_shape, filter=kernel,
                                          out_backprop=gradient, **attributes))
            # One element out of each result: the kernels run whole, nothing is copied.
            fetches.append([tf.reshape(op, [-1])[0] for op in ops])
        with tf.Session(config=config or session_config.make_session_config()) as session:
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
                        choices=sorted(run_all.PLANS))
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--runs', type=int, default=3, help='timed runs of each kernel per round')
    parser.add_argument('--precision', choices=list(compute.DTYPES), default='float32')
    args = parser.parse_args()
    peak = compute.matmul_peak(args.precision)
    rows = []
    for name in args.nets:
        batch_size = run_all.PLANS[name].batch_size
        convolutions = net_convolutions(name, batch_size)
        seconds = kernel_seconds(convolutions, args.rounds, args.runs, args.precision)
        flops = sum(conv.training_flops for conv in convolutions)
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
