"""Training-step and inference images/sec of our nets against Keras 3 on the same architecture.

Both sides get the same batch, image size, random inputs, optimizer (SGD with
momentum on softmax cross-entropy) and thread pools; measurements alternate in
one process and the table prints our/Keras ratios. No input pipeline on either
side: this isolates the model.

    python benchmarks/bench_nets.py                 # lenet, vgg_16, vgg_19, inception_v3
    python benchmarks/bench_nets.py --nets lenet --steps 20
"""

import argparse

import numpy as np

import common  # noqa: F401  (sets sys.path and logging first)
import keras
import tensorflow as tf

import compute
from nets import nets_factory
from slim_classifier.compat import slim

# The keras.applications build of each of our nets that has one; the
# architectures differ in detail (where ResNet strides, NASNet's drop path,
# the auxiliary heads), so the suite prints the FLOPs of both.
KERAS_APPLICATIONS = {
    'vgg_16': keras.applications.VGG16,
    'vgg_19': keras.applications.VGG19,
    'inception_v3': keras.applications.InceptionV3,
    'resnet_v1_50': keras.applications.ResNet50,
    'mobilenet_v2': keras.applications.MobileNetV2,
    'inception_resnet_v2': keras.applications.InceptionResNetV2,
    'nasnet_mobile': keras.applications.NASNetMobile,
}
KERAS_NETS = ['lenet'] + sorted(KERAS_APPLICATIONS)
DEFAULT_BATCH = {'lenet': 64, 'vgg_16': 4, 'vgg_19': 4, 'inception_v3': 4}
# Keras's mixed precision policy for each of our --precision values the benchmarks compare.
KERAS_POLICIES = {'float32': 'float32', 'bf16': 'mixed_bfloat16'}


def keras_lenet(input_shape, classes):
    layers = keras.layers
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(32, 5, padding='same', activation='relu'),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 5, padding='same', activation='relu'),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(1024, activation='relu'),
        layers.Dropout(0.5),
        layers.Dense(classes),
    ])


def keras_model(name, input_shape, classes):
    if name == 'lenet':
        return keras_lenet(input_shape, classes)
    return KERAS_APPLICATIONS[name](weights=None, input_shape=input_shape, classes=classes,
                                    classifier_activation=None)


def keras_forward_flops_per_image(name: str, input_shape: tuple[int, ...], classes: int) -> int:
    """The profiler's float operations of the Keras model's training forward pass, one image.

    The model's call in training mode, as fit() runs it, is traced into a
    graph (a tf.function's concrete function for a batch of one) and counted
    by `compute.graph_float_ops`, as ours is. Keras's batch normalization runs
    as element-wise ops, which the profiler counts; ours runs as fused batch
    norm, which it does not: a few percent of a small net such as MobileNetV2.
    """
    model = keras_model(name, input_shape, classes)
    forward = tf.function(lambda images: model(images, training=True))
    graph = forward.get_concrete_function(tf.TensorSpec((1,) + tuple(input_shape),
                                                        tf.float32)).graph
    return compute.graph_float_ops(graph)


def slim_runners(name, images, labels, classes, threads, config=None):
    """Session-run closures for one training step and one inference batch.

    `config` is the session's ConfigProto; None gives plain float32 with `threads`.
    """
    graph = tf.Graph()
    with graph.as_default():
        image_tensor = tf.constant(images)
        label_tensor = tf.constant(labels)
        kwargs = ({'create_aux_logits': False} if name in ('inception_v3', 'inception_resnet_v2')
                  else {})
        train_fn = nets_factory.get_network_fn(name, classes, is_training=True)
        logits, _ = train_fn(image_tensor, **kwargs)
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(label_tensor, logits)
        optimizer = tf.compat.v1.train.MomentumOptimizer(0.001, 0.9)
        train_op = slim.learning.create_train_op(loss, optimizer)
        eval_fn = nets_factory.get_network_fn(name, classes, is_training=False)
        eval_logits, _ = eval_fn(image_tensor, reuse=True, **kwargs)
        session = tf.compat.v1.Session(config=config or common.session_config(*threads))
        session.run(tf.compat.v1.global_variables_initializer())
    return (lambda: session.run(train_op)), (lambda: session.run(eval_logits)), session


def keras_runners(name, images, labels, classes, precision='float32'):
    """Closures for one Keras training step and one inference batch.

    The model is built under the Keras policy matching `precision`.
    """
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
    try:
        model = keras_model(name, images.shape[1:], classes)
    finally:
        keras.mixed_precision.set_global_policy('float32')
    model.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = tf.constant(images)
    y = tf.constant(labels)
    return (lambda: model.train_on_batch(x, y)), (lambda: model.predict_on_batch(x))


def random_batch(name, batch_size):
    """(images, labels, classes): a fixed random batch at the net's default size and classes."""
    spec = nets_factory.get_network_spec(name)
    size = spec.default_image_size
    classes = spec.default_num_classes
    rng = np.random.RandomState(0)
    images = rng.uniform(-1, 1, [batch_size, size, size, spec.num_channels]).astype(np.float32)
    labels = rng.randint(0, classes, [batch_size]).astype(np.int64)
    return images, labels, classes


def measure(name, batch_size, warmup, steps, threads):
    images, labels, classes = random_batch(name, batch_size)
    slim_train, slim_infer, session = slim_runners(name, images, labels, classes, threads)
    keras_train, keras_infer = keras_runners(name, images, labels, classes)
    rates = {}
    # Alternate the sides so that a slow spell of the machine hits both.
    for side, train, infer in (('slim', slim_train, slim_infer), ('keras', keras_train, keras_infer),
                               ('slim', slim_train, slim_infer), ('keras', keras_train, keras_infer)):
        train_rate = common.items_per_second(train, batch_size, warmup, steps)
        infer_rate = common.items_per_second(infer, batch_size, warmup, steps)
        best = rates.get(side, (0.0, 0.0))
        rates[side] = (max(best[0], train_rate), max(best[1], infer_rate))
    session.close()
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nets', nargs='+', default=['lenet', 'vgg_16', 'vgg_19', 'inception_v3'])
    parser.add_argument('--batch_size', type=int, default=None)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--intra_op_threads', type=int, default=2)
    parser.add_argument('--inter_op_threads', type=int, default=2)
    args = parser.parse_args()
    threads = (args.intra_op_threads, args.inter_op_threads)
    common.configure_threads(*threads)
    rows = []
    for name in args.nets:
        batch_size = args.batch_size or DEFAULT_BATCH.get(name, 8)
        rates = measure(name, batch_size, args.warmup, args.steps, threads)
        (slim_train, slim_infer), (keras_train, keras_infer) = rates['slim'], rates['keras']
        rows.append([name, batch_size, slim_train, keras_train, slim_train / keras_train,
                     slim_infer, keras_infer, slim_infer / keras_infer])
        print('measured', name, flush=True)
    common.print_table(['net', 'batch', 'train img/s', 'keras train', 'ratio',
                        'infer img/s', 'keras infer', 'ratio'], rows)


if __name__ == '__main__':
    main()
