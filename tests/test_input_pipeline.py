"""input_pipeline: batches from real TFRecord shards, and bad records named by file and index.

Each example written here is an image whose pixels all equal its example id,
so a batch tells which examples it holds.
"""

import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from datasets import dataset_factory, input_pipeline

NUM_EXAMPLES = 22
NUM_SHARDS = 3
NUM_CLASSES = 4
SIZE = 6


def _example(encoded, label):
    return tf.train.Example(features=tf.train.Features(feature={
        'image/encoded': tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        'image/format': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'png'])),
        'image/class/label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString()


def _png(example_id, size):
    pixels = np.full((size, size, 3), example_id, np.uint8)
    return tf.io.encode_png(pixels).numpy()


def _label(example_id):
    return example_id % NUM_CLASSES


def _shard_path(dataset_dir, index, num_shards=NUM_SHARDS):
    return os.path.join(dataset_dir, 'toy_train_%05d-of-%05d.tfrecord' % (index, num_shards))


def _write_dataset(dataset_dir, records_per_shard):
    """Writes shards of serialized records and the dataset_info.json that describes them."""
    for index, records in enumerate(records_per_shard):
        with tf.io.TFRecordWriter(_shard_path(dataset_dir, index, len(records_per_shard))) as w:
            for record in records:
                w.write(record)
    info = {'format_version': 1, 'name': 'toy', 'num_classes': NUM_CLASSES,
            'classes': ['c%d' % label for label in range(NUM_CLASSES)],
            'splits': {'train': sum(len(records) for records in records_per_shard)},
            'file_pattern': 'toy_%s_*.tfrecord', 'image_format': 'png', 'options': {}}
    with open(os.path.join(dataset_dir, 'dataset_info.json'), 'w') as info_file:
        json.dump(info, info_file)
    return dataset_factory.get_dataset('toy', 'train', dataset_dir)


@pytest.fixture(name='toy')
def _toy_dataset(tmp_path):
    """NUM_EXAMPLES examples spread round-robin over NUM_SHARDS shards."""
    shards = [[_example(_png(example_id, SIZE), _label(example_id))
               for example_id in range(shard, NUM_EXAMPLES, NUM_SHARDS)]
              for shard in range(NUM_SHARDS)]
    return _write_dataset(str(tmp_path), shards)


def _as_float(image, height, width):
    """Identity-like preprocessing: exact pixels, as float32."""
    return tf.cast(tf.image.resize_with_crop_or_pad(image, height, width), tf.float32)


def _random_crop_and_flip(image, height, width):
    image = tf.image.random_flip_left_right(tf.cast(image, tf.float32))
    image = image + tf.random.uniform([], -8.0, 8.0)
    return tf.image.random_crop(image, [height, width, 3])


def _batches(batches, limit=1000):
    """Runs a graph-mode one-shot iterator until the end or `limit` batches."""
    images, labels = input_pipeline.one_shot_batch(batches)
    results = []
    with tf.Session() as session:
        try:
            while len(results) < limit:
                results.append(session.run([images, labels]))
        except tf.errors.OutOfRangeError:
            pass
    return results


def _ids(results):
    return [int(image[0, 0, 0]) for images, _ in results for image in images]


def _build(dataset, is_training, preprocess_fn=_as_float, **kwargs):
    arguments = dict(image_size=SIZE, batch_size=4, num_readers=2)
    arguments.update(kwargs)
    return input_pipeline.build_dataset(dataset, preprocess_fn, is_training=is_training,
                                        **arguments)


def test_eval_reads_every_example_once_with_exact_pixels(toy):
    with tf.Graph().as_default():
        batches = _build(toy, is_training=False, batch_size=5)
        assert batches.element_spec[0].shape.as_list() == [None, SIZE, SIZE, 3]
        results = _batches(batches)
    assert [len(labels) for _, labels in results] == [5, 5, 5, 5, 2]
    assert sorted(_ids(results)) == list(range(NUM_EXAMPLES))
    for images, labels in results:
        assert images.dtype == np.float32 and labels.dtype == np.int64
        for image, label in zip(images, labels):
            example_id = int(image[0, 0, 0])
            np.testing.assert_array_equal(image, np.full((SIZE, SIZE, 3), example_id))
            assert label == _label(example_id)


def test_eval_without_readers_in_parallel_keeps_the_file_order(toy):
    with tf.Graph().as_default():
        results = _batches(_build(toy, is_training=False, num_readers=1,
                                  num_parallel_calls=1, deterministic=True))
    shard_order = [example_id for shard in range(NUM_SHARDS)
                   for example_id in range(shard, NUM_EXAMPLES, NUM_SHARDS)]
    assert _ids(results) == shard_order


def test_training_repeats_shuffles_and_keeps_full_batches(toy):
    with tf.Graph().as_default():
        batches = _build(toy, is_training=True, seed=3, num_epochs=2, batch_size=4)
        assert batches.element_spec[0].shape.as_list() == [4, SIZE, SIZE, 3]
        results = _batches(batches)
    # 44 examples in two epochs: 11 full batches, nothing left over.
    assert len(results) == 2 * NUM_EXAMPLES // 4
    ids = _ids(results)
    assert sorted(ids) == sorted(list(range(NUM_EXAMPLES)) * 2)
    with tf.Graph().as_default():
        unshuffled = _ids(_batches(_build(toy, is_training=False, num_readers=2,
                                          deterministic=True)))
    assert ids[:NUM_EXAMPLES] != unshuffled
    assert ids[:NUM_EXAMPLES] != ids[NUM_EXAMPLES:]


def test_training_drops_only_the_last_partial_batch(toy):
    with tf.Graph().as_default():
        results = _batches(_build(toy, is_training=True, num_epochs=1, batch_size=5))
    assert [len(labels) for _, labels in results] == [5] * (NUM_EXAMPLES // 5)


def test_training_without_num_epochs_repeats_forever(toy):
    with tf.Graph().as_default():
        results = _batches(_build(toy, is_training=True, batch_size=8), limit=6)
    assert len(results) == 6
    assert len(_ids(results)) > 2 * NUM_EXAMPLES


def _deterministic_run(dataset, seed):
    with tf.Graph().as_default():
        batches = _build(dataset, is_training=True, preprocess_fn=_random_crop_and_flip,
                         image_size=4, seed=seed, deterministic=True, num_parallel_calls=4)
        return _batches(batches, limit=8)


def test_deterministic_mode_repeats_the_same_batches(tmp_path):
    # Distinct pixels per position, so flips and crops change the values.
    def noise_png(example_id):
        rng = np.random.RandomState(example_id)
        return tf.io.encode_png(rng.randint(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)).numpy()

    shards = [[_example(noise_png(example_id), _label(example_id))
               for example_id in range(shard, NUM_EXAMPLES, NUM_SHARDS)]
              for shard in range(NUM_SHARDS)]
    dataset = _write_dataset(str(tmp_path), shards)
    first, second = _deterministic_run(dataset, 5), _deterministic_run(dataset, 5)
    for (images_1, labels_1), (images_2, labels_2) in zip(first, second):
        np.testing.assert_array_equal(images_1, images_2)
        np.testing.assert_array_equal(labels_1, labels_2)
    other_seed = _deterministic_run(dataset, 6)
    assert not all(np.array_equal(images_1, images_2)
                   for (images_1, _), (images_2, _) in zip(first, other_seed))


def test_labels_offset_is_subtracted(toy):
    with tf.Graph().as_default():
        results = _batches(_build(toy, is_training=False, labels_offset=1))
    for images, labels in results:
        for image, label in zip(images, labels):
            assert label == _label(int(image[0, 0, 0])) - 1


def test_initializable_batch_restarts_the_pass(toy):
    with tf.Graph().as_default():
        images, labels, initializer = input_pipeline.initializable_batch(
            _build(toy, is_training=False, batch_size=8))
        with tf.Session() as session:
            for _ in range(2):
                session.run(initializer)
                counts = [len(session.run(labels)) for _ in range(3)]
                assert counts == [8, 8, NUM_EXAMPLES - 16]
                with pytest.raises(tf.errors.OutOfRangeError):
                    session.run(images)


def test_rectangular_image_size(toy):
    with tf.Graph().as_default():
        batches = _build(toy, is_training=False, image_size=(4, 3))
        assert batches.element_spec[0].shape.as_list() == [None, 4, 3, 3]


@pytest.mark.parametrize('arguments, message', [
    (dict(batch_size=0), 'batch_size must be > 0; got 0'),
    (dict(num_readers=-1), 'num_readers must be > 0; got -1'),
    (dict(image_size=(0, 5)), r'image_size must be positive; got \(0, 5\)'),
    (dict(is_training=True, deterministic=True),
     'deterministic training needs a seed; got seed=None'),
    (dict(num_epochs=2), 'num_epochs applies to training only; got 2 with is_training=False'),
    (dict(is_training=True, num_epochs=0), 'num_epochs must be > 0; got 0'),
])
def test_bad_arguments_are_named(toy, arguments, message):
    arguments = dict(dict(is_training=False), **arguments)
    with tf.Graph().as_default(), pytest.raises(ValueError, match=message):
        _build(toy, **arguments)


def test_data_files_names_what_matched_nothing(tmp_path):
    pattern = str(tmp_path / 'x_*.tfrecord')
    with pytest.raises(FileNotFoundError, match="no files match '.*x_\\*.tfrecord'"):
        input_pipeline.data_files(pattern)


def _truncate(path, num_bytes):
    with open(path, 'rb+') as shard:
        shard.truncate(os.path.getsize(path) - num_bytes)


def _run_explained(dataset):
    with tf.Graph().as_default():
        images, _ = input_pipeline.one_shot_batch(_build(dataset, is_training=False))
        with tf.Session() as session, input_pipeline.data_errors_explained(dataset):
            while True:
                session.run(images)


def test_truncated_shard_is_named_with_the_record(toy):
    path = _shard_path(toy.dataset_dir, 1)
    _truncate(path, 10)
    # Shard 1 holds 7 examples; cutting its end breaks the last one, record 6.
    bad_record = input_pipeline.find_bad_record(toy.data_sources)
    assert (bad_record.path, bad_record.index) == (path, 6)
    with pytest.raises(input_pipeline.DataError) as raised:
        _run_explained(toy)
    assert str(raised.value).startswith(
        'corrupt record 6 in %s: cannot read the record, the file is truncated or corrupted ('
        % path)
    assert isinstance(raised.value.__cause__, tf.errors.DataLossError)


def test_garbage_image_bytes_are_named_with_the_record(tmp_path):
    shards = [[_example(_png(1, SIZE), 1)] * 5,
              [_example(_png(2, SIZE), 2)] * 3 + [_example(b'not an image', 0)]]
    dataset = _write_dataset(str(tmp_path), shards)
    path = _shard_path(str(tmp_path), 1, num_shards=2)
    with pytest.raises(input_pipeline.DataError) as raised:
        _run_explained(dataset)
    assert str(raised.value).startswith(
        'corrupt record 3 in %s: cannot decode the example (' % path)
    assert (raised.value.path, raised.value.index) == (path, 3)
    # Reading alone does not notice bad image bytes.
    assert input_pipeline.find_bad_record(dataset.data_sources) is None


# TensorFlow's parse error quotes the record; building its message fails unless that is UTF-8.
@pytest.mark.parametrize('payload, tensorflow_error', [
    (b'\xff\xfe not UTF-8', UnicodeDecodeError),
    (b'not an example\nin two lines', tf.errors.InvalidArgumentError)])
def test_a_record_that_is_not_an_example_is_named(tmp_path, payload, tensorflow_error):
    dataset = _write_dataset(str(tmp_path), [[_example(_png(1, SIZE), 1), payload]])
    path = _shard_path(str(tmp_path), 0, num_shards=1)
    with pytest.raises(input_pipeline.DataError) as raised:
        _run_explained(dataset)
    assert str(raised.value) == 'corrupt record 1 in %s: not a tf.train.Example (it starts %r)' % (
        path, payload[:16])
    assert isinstance(raised.value.__cause__, tensorflow_error)


def test_bad_record_after_the_first_scan_chunk_is_found(tmp_path):
    records = [_example(_png(0, 1), 0)] * 300
    records[290] = _example(b'\x89PNG garbage', 0)
    dataset = _write_dataset(str(tmp_path), [records])
    bad_record = input_pipeline.find_bad_record(dataset.data_sources, dataset.decoder)
    assert (bad_record.path, bad_record.index) == (_shard_path(str(tmp_path), 0, 1), 290)


def test_errors_raised_outside_the_input_pass_unchanged(tmp_path):
    dataset = _write_dataset(str(tmp_path), [[_example(b'not an image', 0)]])
    with tf.Graph().as_default():
        value = tf.placeholder(tf.int32, [])
        check = tf.debugging.assert_equal(value, 2, message='not a data problem')
        with tf.Session() as session:
            # The model's error is kept, though the dataset has a bad record.
            with pytest.raises(tf.errors.InvalidArgumentError, match='not a data problem'):
                with input_pipeline.data_errors_explained(dataset):
                    session.run(check, {value: 1})


def test_errors_without_an_op_are_traced_and_kept_if_the_data_is_sound(toy):
    error = tf.errors.InvalidArgumentError(None, None, 'not a data problem')
    assert input_pipeline.explain_data_error(toy, error) is None
    assert input_pipeline.explain_data_error(toy, ValueError('other')) is None


def test_preprocessing_of_the_wrong_size_is_named(toy):
    with tf.Graph().as_default(), pytest.raises(
            ValueError, match=r'preprocess_fn must return \[6, 6, channels\] images; got '
                              r'\(5, 5, 3\)'):
        _build(toy, is_training=False,
               preprocess_fn=lambda image, height, width: _as_float(image, 5, 5))
