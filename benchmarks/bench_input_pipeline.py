"""Input pipeline images/sec: our tf.data pipeline against slim's queue-based reader.

Both read the same JPEG records (photo-sized crops and flips of scikit-learn's
sample photos, written to a temporary directory), apply Inception training
preprocessing at 299x299 and batch them, with the same number of threads:
`--threads` shard readers and preprocessing threads on each side, and session
thread pools of that size. The queue-based side is the original TF-Slim
training input: DatasetDataProvider (which decodes the whole JPEG), then
tf.train.batch, then a prefetch queue. Our side hands Inception's random crop
to the pipeline, which decodes only the crop's window of each JPEG. The two
alternate in one process, so a slow spell of the machine hits both; the best
round of each is reported, as images/sec and as CPU time per image.

    python benchmarks/bench_input_pipeline.py
    python benchmarks/bench_input_pipeline.py --records 1024 --batches 40 --threads 8
"""

import argparse
import io
import json
import os
import tempfile
import time

import numpy as np
from PIL import Image

import common  # before the project's imports: it puts the repository on sys.path
import tensorflow.compat.v1 as tf
from sklearn.datasets import load_sample_images

from datasets import dataset_factory, input_pipeline
from preprocessing import inception_preprocessing
from slim_classifier.compat import slim

# The queue-based side's deprecation warnings would bury the figures.
tf.get_logger().setLevel('ERROR')

# Photo size of the records: the common 500x375 landscape camera shape.
PHOTO_HEIGHT, PHOTO_WIDTH = 375, 500
NUM_CLASSES = 5


def write_photo_records(dataset_dir: str, num_records: int, num_shards: int, seed: int) -> None:
    """Writes `num_records` JPEG records in `num_shards` shards, with a dataset_info.json."""
    photos = load_sample_images().images
    rng = np.random.RandomState(seed)
    writers = [tf.io.TFRecordWriter(os.path.join(
        dataset_dir, 'photos_train_%05d-of-%05d.tfrecord' % (index, num_shards)))
        for index in range(num_shards)]
    for index in range(num_records):
        label = int(rng.randint(NUM_CLASSES))
        writers[index % num_shards].write(_photo_example(_random_view(photos, rng), label))
    for writer in writers:
        writer.close()
    info = {'format_version': 1, 'name': 'photos', 'num_classes': NUM_CLASSES,
            'classes': ['class_%d' % label for label in range(NUM_CLASSES)],
            'splits': {'train': num_records}, 'file_pattern': 'photos_%s_*.tfrecord',
            'image_format': 'jpeg', 'options': {'seed': seed}}
    with open(os.path.join(dataset_dir, 'dataset_info.json'), 'w') as info_file:
        json.dump(info, info_file)


def _random_view(photos: list[np.ndarray], rng: np.random.RandomState) -> np.ndarray:
    """A random PHOTO_HEIGHT x PHOTO_WIDTH crop of a sample photo, flipped half the time."""
    photo = photos[rng.randint(len(photos))]
    top = rng.randint(photo.shape[0] - PHOTO_HEIGHT + 1)
    left = rng.randint(photo.shape[1] - PHOTO_WIDTH + 1)
    view = photo[top:top + PHOTO_HEIGHT, left:left + PHOTO_WIDTH]
    return view[:, ::-1] if rng.rand() < 0.5 else view


def _photo_example(pixels: np.ndarray, label: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format='JPEG', quality=90)
    features = {
        'image/encoded': _bytes_feature(buffer.getvalue()),
        'image/format': _bytes_feature(b'jpeg'),
        'image/class/label': _int_feature(label),
        'image/height': _int_feature(pixels.shape[0]),
        'image/width': _int_feature(pixels.shape[1]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def _preprocess(image: tf.Tensor, height: int, width: int, crop_image: bool = True
                ) -> tf.Tensor:
    return inception_preprocessing.preprocess_image(image, height, width, is_training=True,
                                                    add_image_summaries=False,
                                                    crop_image=crop_image)


def _preprocess_window(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Inception training preprocessing of an image the pipeline has cropped already."""
    return _preprocess(image, height, width, crop_image=False)


def tf_data_batches(dataset: slim.dataset.Dataset, batch_size: int, image_size: int,
                    threads: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The (images, labels) tensors of our pipeline, in a graph of their own."""
    batches = input_pipeline.build_dataset(
        dataset, _preprocess_window, image_size, batch_size, is_training=True,
        num_readers=threads, num_parallel_calls=threads,
        crop_window_fn=inception_preprocessing.sample_crop_window)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return input_pipeline.one_shot_batch(batches.with_options(options))


def queue_batches(dataset: slim.dataset.Dataset, batch_size: int, image_size: int,
                  threads: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The (images, labels) tensors of the original TF-Slim training input."""
    provider = slim.dataset_data_provider.DatasetDataProvider(
        dataset, num_readers=threads, common_queue_capacity=20 * batch_size,
        common_queue_min=10 * batch_size)
    image, label = provider.get(['image', 'label'])
    image = _preprocess(image, image_size, image_size)
    images, labels = tf.train.batch([image, label], batch_size=batch_size,
                                    num_threads=threads, capacity=5 * batch_size)
    return slim.prefetch_queue.prefetch_queue([images, labels], capacity=2).dequeue()


def measure(graph: tf.Graph, batch: tuple[tf.Tensor, tf.Tensor], batch_size: int, threads: int,
            warmup: int, num_batches: int) -> tuple[float, float]:
    """Starts a session (and its queue runners), then times `num_batches` batches.

    Returns:
      (images per second, milliseconds of this process's CPU time per image).
      The CPU cost holds steadier than the rate on a machine shared with
      other work.
    """
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    with graph.as_default(), tf.Session(config=config) as session:
        # Stopping cancels enqueues blocked on full queues: a clean stop here.
        coordinator = tf.train.Coordinator(
            clean_stop_exception_types=(tf.errors.OutOfRangeError, tf.errors.CancelledError))
        runners = tf.train.start_queue_runners(session, coordinator)
        for _ in range(warmup):
            session.run(batch)
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(num_batches):
            session.run(batch)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        coordinator.request_stop()
        coordinator.join(runners)
    num_images = batch_size * num_batches
    return num_images / elapsed, 1000.0 * cpu / num_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--records', type=int, default=256, help='JPEG records written')
    parser.add_argument('--shards', type=int, default=4)
    parser.add_argument('--batch_size', type=int, default=32)
    parser.add_argument('--image_size', type=int, default=299)
    parser.add_argument('--threads', type=int, default=os.cpu_count(),
                        help='readers and preprocessing threads of each pipeline')
    parser.add_argument('--warmup', type=int, default=3, help='untimed batches per round')
    parser.add_argument('--batches', type=int, default=12, help='timed batches per round')
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as dataset_dir:
        start = time.perf_counter()
        write_photo_records(dataset_dir, args.records, args.shards, seed=0)
        print('wrote %d JPEG records of %dx%d in %d shards (%.1f s)'
              % (args.records, PHOTO_WIDTH, PHOTO_HEIGHT, args.shards,
                 time.perf_counter() - start), flush=True)
        dataset = dataset_factory.get_dataset('photos', 'train', dataset_dir)
        sides = {}
        for name, build in (('tf.data', tf_data_batches), ('queues', queue_batches)):
            graph = tf.Graph()
            with graph.as_default():
                sides[name] = (graph, build(dataset, args.batch_size, args.image_size,
                                            args.threads))
        rates = {name: 0.0 for name in sides}
        cpu_costs = {name: float('inf') for name in sides}
        for round_index in range(args.rounds):
            for name, (graph, batch) in sides.items():
                rate, cpu_cost = measure(graph, batch, args.batch_size, args.threads,
                                         args.warmup, args.batches)
                rates[name] = max(rates[name], rate)
                cpu_costs[name] = min(cpu_costs[name], cpu_cost)
                print('round %d  %-8s %7.1f images/sec  %5.2f CPU ms/image'
                      % (round_index + 1, name, rate, cpu_cost), flush=True)
    common.print_table(
        ['pipeline', 'images/sec', 'CPU ms/image', 'threads', 'batch', 'size'],
        [[name, rates[name], cpu_costs[name], args.threads, args.batch_size,
          args.image_size] for name in sides])
    print('tf.data / queues: %.2fx images/sec, %.2fx less CPU per image'
          % (rates['tf.data'] / rates['queues'], cpu_costs['queues'] / cpu_costs['tf.data']))


if __name__ == '__main__':
    main()
