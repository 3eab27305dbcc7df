"""The Keras 3 side of run_all.py: `fit()` on the same records, one job per process.

The model is the Keras build of the same architecture (`bench_nets.keras_model`:
keras.applications VGG16, InceptionV3, ResNet50, MobileNetV2, InceptionResNetV2,
NASNetMobile; a Sequential LeNet). The data is the same TFRecords through the
same tf.data pipeline and preprocessing as our trainer's (`training_batches`
with the net's training preprocessing, the trainer's default reader and
preprocessing threads), so the two sides differ only in what runs the model.
The optimizer is SGD with momentum, as our trainer's `--optimizer=momentum`.

The job prints one JSON line: per window of `--log_every` steps, the images
it trained on and the wall-clock and CPU seconds it took (CPU time of the
whole process, all threads).

    python benchmarks/keras_jobs.py --model_name=lenet --dataset_name=digits \\
        --dataset_dir=/tmp/digits --batch_size=64 --image_size=28 --steps=100 --log_every=20
"""

import argparse
import json
import time

import common  # noqa: F401  (sets sys.path and logging first)
import keras

from bench_nets import KERAS_NETS, KERAS_POLICIES, keras_model
from datasets import dataset_factory
from nets import nets_factory
from slim_classifier.runtime.batches import training_batches

# Our trainer's defaults for --num_readers and --num_preprocessing_threads.
NUM_READERS = 4
NUM_PREPROCESSING_THREADS = 4


class WindowTimer(keras.callbacks.Callback):
    """Wall-clock and CPU seconds of every `steps` training steps."""

    def __init__(self, steps: int, images_per_step: int):
        super().__init__()
        self.steps = steps
        self.images_per_step = images_per_step
        self.windows: list[dict] = []
        self._start = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, batch, logs=None):
        del logs
        if (batch + 1) % self.steps:
            return
        now = (time.perf_counter(), time.process_time())
        self.windows.append({'images': self.steps * self.images_per_step,
                             'wall_seconds': now[0] - self._start[0],
                             'cpu_seconds': now[1] - self._start[1]})
        self._start = now


def train(args: argparse.Namespace) -> dict:
    """Fits the Keras model for `args.steps` steps; returns the timed windows."""
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[args.precision])
    dataset = dataset_factory.get_dataset(args.dataset_name, 'train', args.dataset_dir)
    batches = training_batches(dataset, args.model_name, args.image_size,
                                       args.batch_size, num_readers=NUM_READERS,
                                       num_parallel_calls=NUM_PREPROCESSING_THREADS)
    channels = nets_factory.get_network_spec(args.model_name).num_channels
    model = keras_model(args.model_name, (args.image_size, args.image_size, channels),
                        dataset.num_classes)
    model.compile(optimizer=keras.optimizers.SGD(args.learning_rate, momentum=args.momentum),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    timer = WindowTimer(args.log_every, args.batch_size)
    model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[timer])
    return {'windows': timer.windows, 'keras_version': keras.__version__,
            'policy': KERAS_POLICIES[args.precision]}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model_name', required=True, choices=KERAS_NETS)
    parser.add_argument('--dataset_name', required=True)
    parser.add_argument('--dataset_dir', required=True)
    parser.add_argument('--batch_size', type=int, required=True)
    parser.add_argument('--image_size', type=int, required=True)
    parser.add_argument('--steps', type=int, required=True)
    parser.add_argument('--log_every', type=int, required=True)
    parser.add_argument('--precision', choices=sorted(KERAS_POLICIES), default='float32')
    parser.add_argument('--learning_rate', type=float, default=1e-4)
    parser.add_argument('--momentum', type=float, default=0.9)
    return parser.parse_args()


if __name__ == '__main__':
    print(json.dumps(train(parse_args())), flush=True)
