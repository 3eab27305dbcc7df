"""Input pipeline images/sec: our tf.data pipeline against slim's queue-based reader.

Both read the same JPEG records (photo-sized crops and flips of scikit-learn's
sample photos, written to a temporary directory), apply Inception training
preprocessing at 299x299 and batch them, with the same number of threads:
`--threads` shard readers and preprocessing threads on each side, and session
thread pools of that size. The queue-based side is the original TF-Slim
training input: DatasetDataProvider (which decodes the whole JPEG), then
tf.train.batch, then a prefetch queue. Our side is the trainer's
(`batches.training_batches`): Inception's random crop is handed to the
pipeline, which decodes only the crop's window of each JPEG. The two
alternate in one process, so a slow spell of the machine hits both; the best
round of each is reported, as images/sec and as CPU time per image.

`--stages` profiles where the CPU goes instead: the CPU per image of each
side stopped after each stage (reading and parsing, decoding the crop, then
the Inception training steps that both sides share: resize, flip, colour
jitter, scaling), and the most any pipeline could save over the queues if
everything but the shared stages were free.

    python benchmarks/bench_input_pipeline.py
    python benchmarks/bench_input_pipeline.py --records 1024 --batches 40 --threads 8
    python benchmarks/bench_input_pipeline.py --stages
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
from slim_classifier.runtime import batches

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


def tf_data_batches(dataset: slim.dataset.Dataset, batch_size: int, image_size: int,
                    threads: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The (images, labels) tensors of the trainer's pipeline, in a graph of their own."""
    training = batches.training_batches(dataset, 'inception', image_size, batch_size,
                                        num_readers=threads, num_parallel_calls=threads)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return input_pipeline.one_shot_batch(training.with_options(options))


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


# The stages of the profile. Each row runs the stages above it as well: reading
# and parsing the records, decoding the training crop (ours: only its window of
# the JPEG; the queues: the whole image, then the crop), then the steps of the
# Inception training preprocessing that both sides share.
READ_STAGE, DECODE_STAGE = 'read + parse', 'decode'
SHARED_STAGES = tuple(name for name, _ in inception_preprocessing.training_stages(1, 1))
STAGES = (READ_STAGE, DECODE_STAGE) + SHARED_STAGES
# The row of each side's whole pipeline, as the comparison builds it.
WHOLE_PIPELINE = 'the pipeline'


def _shared_stages(image: tf.Tensor, image_size: int, num_stages: int) -> tf.Tensor:
    """The first `num_stages` shared stages of the training preprocessing of a crop."""
    for _, stage in inception_preprocessing.training_stages(image_size, image_size)[:num_stages]:
        image = stage(image)
    return image


def _stage_output(image: tf.Tensor, image_size: int, stage: str) -> tf.Tensor:
    """The crop through the shared stages up to `stage`; before them, the crop's shape.

    The shape needs the crop decoded, but batches without padding crops of
    different sizes.
    """
    if stage == DECODE_STAGE:
        return tf.shape(image)
    return _shared_stages(image, image_size, SHARED_STAGES.index(stage) + 1)


def tf_data_stage_batch(dataset: slim.dataset.Dataset, stage: str, batch_size: int,
                        image_size: int, threads: int) -> tuple[tf.Tensor, ...]:
    """Our side, stopped after `stage`.

    `input_pipeline.build_dataset`'s reading, shuffling, windowed decode and
    batching, written out with the label and the image in one map function.
    """
    files = input_pipeline.data_files(dataset.data_sources)
    records = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=min(threads, len(files)),
        num_parallel_calls=min(threads, len(files)), deterministic=False)
    records = records.shuffle(input_pipeline.DEFAULT_SHUFFLE_BUFFER_SIZE).repeat()

    def preprocess(record):
        example = tf.io.parse_single_example(record, {
            'image/encoded': tf.io.FixedLenFeature((), tf.string),
            'image/class/label': tf.io.FixedLenFeature((), tf.int64)})
        label = example['image/class/label']
        if stage == READ_STAGE:
            return (label,)
        encoded = example['image/encoded']
        window = inception_preprocessing.sample_crop_window(tf.image.extract_jpeg_shape(encoded))
        image = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
        return _stage_output(image, image_size, stage), label

    examples = records.map(preprocess, num_parallel_calls=threads, deterministic=False)
    stage_batches = examples.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return input_pipeline.one_shot_batch(stage_batches.with_options(options))


def queue_stage_batch(dataset: slim.dataset.Dataset, stage: str, batch_size: int,
                      image_size: int, threads: int) -> tuple[tf.Tensor, ...]:
    """The queue-based side, stopped after `stage`."""
    provider = slim.dataset_data_provider.DatasetDataProvider(
        dataset, num_readers=threads, common_queue_capacity=20 * batch_size,
        common_queue_min=10 * batch_size)
    if stage == READ_STAGE:
        # The image is left undecoded: the session runs only what the batch needs.
        tensors = provider.get(['label'])
    else:
        image, label = provider.get(['image', 'label'])
        crop, _ = inception_preprocessing.distorted_bounding_box_crop(
            image, tf.constant([[[0.0, 0.0, 1.0, 1.0]]]))
        tensors = [_stage_output(crop, image_size, stage), label]
    batch = tf.train.batch(tensors, batch_size=batch_size, num_threads=threads,
                           capacity=5 * batch_size)
    # A queue of one tensor hands out that tensor rather than a list.
    batch = batch if isinstance(batch, list) else [batch]
    dequeued = slim.prefetch_queue.prefetch_queue(batch, capacity=2).dequeue()
    return tuple(dequeued) if isinstance(dequeued, list) else (dequeued,)


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


def stage_profile(dataset: slim.dataset.Dataset, batch_size: int, image_size: int,
                  threads: int, warmup: int, num_batches: int, rounds: int) -> None:
    """Prints the CPU per image of each stage on both sides, and what the shared stages allow.

    The stages are cumulative, so a stage's own cost is the difference to the
    row above; the best round of each row counts. The last row is each side's
    whole pipeline, as the comparison builds it.
    """
    sides = {'tf.data': (tf_data_stage_batch, tf_data_batches),
             'queues': (queue_stage_batch, queue_batches)}
    graphs = {}
    # Side by side for each row, so that a slow spell of the machine hits both.
    for stage in STAGES + (WHOLE_PIPELINE,):
        for side, (stage_batch, whole_batch) in sides.items():
            graph = tf.Graph()
            with graph.as_default():
                if stage == WHOLE_PIPELINE:
                    batch = whole_batch(dataset, batch_size, image_size, threads)
                else:
                    batch = stage_batch(dataset, stage, batch_size, image_size, threads)
            graphs[side, stage] = (graph, batch)
    costs = {key: float('inf') for key in graphs}
    for round_index in range(rounds):
        for key, (graph, batch) in graphs.items():
            _, cpu_cost = measure(graph, batch, batch_size, threads, warmup, num_batches)
            costs[key] = min(costs[key], cpu_cost)
        print('round %d of the stage profile done' % (round_index + 1), flush=True)
    common.print_table(
        ['stage', 'tf.data CPU ms/image', 'stage ms', 'share',
         'queues CPU ms/image', 'stage ms', 'share'],
        [_stage_row(costs, sides, index) for index in range(len(STAGES))]
        + [[WHOLE_PIPELINE] + [cell for side in sides
                               for cell in (costs[side, WHOLE_PIPELINE], '', '')]])
    _print_shared_bound(costs)


def _stage_row(costs: dict[tuple[str, str], float], sides: dict, index: int) -> list:
    stage = STAGES[index]
    row = [('+ ' if index else '') + stage]
    for side in sides:
        own = costs[side, stage] - (costs[side, STAGES[index - 1]] if index else 0.0)
        row += [costs[side, stage], own, '%.0f%%' % (100.0 * own / costs[side, STAGES[-1]])]
    return row


def _print_shared_bound(costs: dict[tuple[str, str], float]) -> None:
    """The most any pipeline could gain over the queues were all but the shared stages free."""
    shared = {side: costs[side, STAGES[-1]] - costs[side, DECODE_STAGE]
              for side in ('tf.data', 'queues')}
    queues = costs['queues', STAGES[-1]]
    print('shared stages (%s): %.2f CPU ms/image in tf.data, %.2f in the queues'
          % (', '.join(SHARED_STAGES), shared['tf.data'], shared['queues']))
    if shared['tf.data'] <= 0:
        # Stages are measured apart, so on too few batches their noise can
        # exceed what the shared stages cost.
        print('the shared stages cost nothing measurable here: time more --batches or --records '
              'for a bound')
        return
    print('were reading, parsing and decoding free, a pipeline would use at most %.2fx less '
          'CPU per image than the queues (%.2f / %.2f ms); tf.data does %.2fx'
          % (queues / shared['tf.data'], queues, shared['tf.data'],
             queues / costs['tf.data', STAGES[-1]]))


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
    parser.add_argument('--stages', action='store_true',
                        help='profile the CPU per image of each stage instead')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as dataset_dir:
        start = time.perf_counter()
        write_photo_records(dataset_dir, args.records, args.shards, seed=0)
        print('wrote %d JPEG records of %dx%d in %d shards (%.1f s)'
              % (args.records, PHOTO_WIDTH, PHOTO_HEIGHT, args.shards,
                 time.perf_counter() - start), flush=True)
        dataset = dataset_factory.get_dataset('photos', 'train', dataset_dir)
        if args.stages:
            stage_profile(dataset, args.batch_size, args.image_size, args.threads, args.warmup,
                          args.batches, args.rounds)
            return
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
