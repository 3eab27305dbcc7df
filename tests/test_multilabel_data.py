"""Multi-label data and training: --labels_csv conversions, digit_tiles, sigmoid losses."""

import collections
import glob
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from datasets import converters, dataset_factory, dataset_format, input_pipeline
from datasets.convert_digit_tiles import convert_digit_tiles
from datasets.convert_labels_csv import convert_labels_csv
from slim_classifier.runtime import batches
from slim_classifier.training import graph
from tests.training_helpers import lenet_config, run_command

# Relative path -> labels of the photos the CSV lists; 'sky' is rare, 'person' common.
PHOTO_LABELS = {
    **{'street/%02d.jpg' % i: ('person', 'car') for i in range(8)},
    **{'park/%02d.png' % i: ('dog', 'person') for i in range(8)},
    **{'park/alone %02d.png' % i: ('dog',) for i in range(6)},
    **{'beach/%02d.jpg' % i: ('person', 'sky') for i in range(4)},
    'empty/nothing.png': (),
    'empty/nothing too.jpg': (),
}
BROKEN_PHOTO = 'street/broken.jpg'
LABEL_NAMES = ['car', 'dog', 'person', 'sky']
VALIDATION_PERCENTAGE = 25.0
_LABEL_FEATURES = {
    'image/class/labels': tf.io.VarLenFeature(tf.int64),
    'image/class/label': tf.io.FixedLenFeature([], tf.int64),
    'image/filename': tf.io.FixedLenFeature([], tf.string),
    'image/encoded': tf.io.FixedLenFeature([], tf.string),
}


def _write_photos(root):
    for number, relative in enumerate(sorted(PHOTO_LABELS)):
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pixels = np.random.RandomState(number).randint(0, 256, (6, 8, 3)).astype(np.uint8)
        Image.fromarray(pixels).save(path, 'JPEG' if path.endswith('.jpg') else 'PNG')
    with open(os.path.join(root, BROKEN_PHOTO), 'wb') as broken:
        broken.write(b'not a JPEG at all')


def _write_csv(path, rows):
    with open(path, 'w', encoding='utf-8') as csv_file:
        csv_file.write(''.join(row + '\n' for row in rows))


def _csv_rows():
    rows = ['# path,labels']
    for relative, labels in sorted(PHOTO_LABELS.items()):
        rows.append('%s,%s' % (relative, ';'.join(labels)))
    rows.append('%s,car' % BROKEN_PHOTO)
    return rows


def _records(dataset_dir, name, split, pixels_of=0):
    """(filename, label ids, image/class/label, pixels) of a split, read with plain TensorFlow.

    Only the first `pixels_of` records have their pixels decoded; the others have None.
    """
    paths = sorted(glob.glob(os.path.join(dataset_dir, '%s_%s_*.tfrecord' % (name, split))))
    found = []
    with tf.Graph().as_default():
        parsed = tf.data.TFRecordDataset(paths).map(
            lambda record: tf.io.parse_single_example(record, _LABEL_FEATURES))
        features = tf.data.make_one_shot_iterator(parsed).get_next()
        pixels = tf.io.decode_image(features['image/encoded'], channels=1)[..., 0]
        no_pixels = tf.no_op()
        with tf.Session() as session:
            while True:
                try:
                    values, image = session.run(
                        [features, pixels if len(found) < pixels_of else no_pixels])
                except tf.errors.OutOfRangeError:
                    return found
                found.append((values['image/filename'].decode('utf-8'),
                              tuple(values['image/class/labels'].values.tolist()),
                              int(values['image/class/label']), image))


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """(image folder, labels CSV, the dataset converted from them in-process)."""
    root = tmp_path_factory.mktemp('ml_photos')
    image_dir = str(root / 'photos')
    _write_photos(image_dir)
    csv_path = str(root / 'labels.csv')
    _write_csv(csv_path, _csv_rows())
    dataset_dir = str(root / 'dataset')
    convert_labels_csv(image_dir, csv_path, dataset_dir, 'scenes',
                       validation_percentage=VALIDATION_PERCENTAGE, num_shards=2)
    return image_dir, csv_path, dataset_dir


@pytest.fixture(scope='module')
def tiles_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('digit_tiles'))
    convert_digit_tiles(directory)
    return directory


# --- Conversion from a labels CSV ---------------------------------------------------------------

def test_csv_records_carry_every_label_and_the_smallest_as_the_single_label(photos):
    _, _, dataset_dir = photos
    with open(os.path.join(dataset_dir, 'labels.txt'), encoding='utf-8') as labels_file:
        assert labels_file.read().splitlines() == ['%d:%s' % item
                                                    for item in enumerate(LABEL_NAMES)]
    seen = {}
    for split in ('train', 'validation'):
        for filename, labels, label, _ in _records(dataset_dir, 'scenes', split):
            assert filename not in seen
            seen[filename] = labels
            assert label == (min(labels) if labels else -1)
    assert seen == {path: tuple(sorted(LABEL_NAMES.index(name) for name in names))
                    for path, names in PHOTO_LABELS.items()}
    report = json.load(open(os.path.join(dataset_dir, 'conversion_report.json')))
    assert [(item['file'], item['labels']) for item in report['rejected']] == [
        (BROKEN_PHOTO, ['car'])]
    assert report['rejected'][0]['reason']


def test_csv_dataset_info_counts_the_labels_of_each_split(photos):
    _, _, dataset_dir = photos
    info = json.load(open(os.path.join(dataset_dir, 'dataset_info.json')))
    assert info['multi_label'] is True
    for split in ('train', 'validation'):
        records = _records(dataset_dir, 'scenes', split)
        counted = collections.Counter(LABEL_NAMES[label] for _, labels, _, _ in records
                                      for label in labels)
        assert info['label_counts'][split] == {name: counted[name] for name in LABEL_NAMES}
        assert info['unlabelled_counts'][split] == sum(not labels for _, labels, _, _ in records)
        assert info['splits'][split] == len(records)
    spec = dataset_factory.get_dataset_spec('scenes', dataset_dir)
    assert spec.multi_label
    assert spec.label_counts['train'] == tuple(info['label_counts']['train'][name]
                                               for name in LABEL_NAMES)


def test_csv_split_is_stratified_by_the_rarest_label(photos):
    _, _, dataset_dir = photos
    frequency = collections.Counter(name for names in PHOTO_LABELS.values() for name in names)
    frequency['car'] += 1  # the broken photo is listed with car
    strata = {path: min(names, key=lambda name: (frequency[name], name)) if names else None
              for path, names in PHOTO_LABELS.items()}
    validation = {filename for filename, *_ in _records(dataset_dir, 'scenes', 'validation')}
    share = VALIDATION_PERCENTAGE / 100
    for stratum in set(strata.values()):
        members = [path for path, member_of in strata.items() if member_of == stratum]
        held_out = sum(path in validation for path in members)
        # The broken photo (stratum car) was planned for a split but rejected.
        assert abs(held_out - share * len(members)) <= 1, stratum
    for name in LABEL_NAMES:
        assert any(name in PHOTO_LABELS[path] for path in validation), name


def test_csv_conversion_from_the_command_line_is_byte_identical(photos, tmp_path):
    image_dir, csv_path, dataset_dir = photos
    again = str(tmp_path / 'again')
    result = run_command('download_and_convert_data.py', '--dataset_name=scenes',
                         '--image_dir=%s' % image_dir, '--labels_csv=%s' % csv_path,
                         '--dataset_dir=%s' % again, '--num_shards=2', '--num_workers=2',
                         '--validation_percentage=%g' % VALIDATION_PERCENTAGE)
    assert 'Rejected 1 files' in result.stdout
    names = sorted(os.listdir(dataset_dir))
    assert sorted(os.listdir(again)) == names
    assert sum(name.endswith('.tfrecord') for name in names) == 4
    for name in names:
        with open(os.path.join(dataset_dir, name), 'rb') as first, \
                open(os.path.join(again, name), 'rb') as second:
            assert first.read() == second.read(), name


@pytest.mark.parametrize('bad_row, expected', [
    ('missing.jpg,car', r"'missing.jpg' does not exist in --image_dir"),
    ('../outside.jpg,car', r"'../outside.jpg' is outside --image_dir"),
    ('/etc/hostname,car', r"'/etc/hostname' is outside --image_dir"),
    ('link.jpg,car', r"'link.jpg' is outside --image_dir"),
    (',car', r'the image path is empty'),
    ('street/00.jpg,dog', r"'street/00.jpg' is listed again \(first on line 2\)"),
    ('street/01.jpg,car,dog', r'expected `relative/path,label1;label2;...` \(2 fields\); '
                              r'got 3 fields'),
    ('street/01.jpg', r'got 1 field:'),
    ('street/01.jpg,car;;dog', r"expected label names separated by single ';'"),
    ('"street/01.jpg,car', r'expected `relative/path,label1;label2;...`'),
])
def test_bad_csv_rows_are_refused_with_their_line_before_anything_is_written(
        photos, tmp_path, bad_row, expected):
    image_dir = str(tmp_path / 'photos')
    os.makedirs(os.path.join(image_dir, 'street'))
    for name in ('00.jpg', '01.jpg'):
        Image.new('RGB', (4, 4)).save(os.path.join(image_dir, 'street', name))
    Image.new('RGB', (4, 4)).save(str(tmp_path / 'outside.jpg'))
    os.symlink(str(tmp_path / 'outside.jpg'), os.path.join(image_dir, 'link.jpg'))
    csv_path = str(tmp_path / 'labels.csv')
    _write_csv(csv_path, ['# a comment', 'street/00.jpg,car', bad_row])
    dataset_dir = str(tmp_path / 'dataset')
    with pytest.raises(ValueError) as raised:
        convert_labels_csv(image_dir, csv_path, dataset_dir, 'scenes')
    message = str(raised.value)
    assert message.startswith('--labels_csv %s line 3: ' % csv_path)
    assert '\n' not in message
    assert re.search(expected, message), message
    assert not os.path.exists(dataset_dir)


def test_an_incomplete_csv_dataset_names_the_command_that_remakes_it(photos, tmp_path):
    image_dir, csv_path, dataset_dir = photos
    copy = str(tmp_path / 'copy')
    shutil.copytree(dataset_dir, copy)
    os.remove(os.path.join(copy, 'scenes_validation_00001-of-00002.tfrecord'))
    with pytest.raises(dataset_format.IncompleteDatasetError) as raised:
        dataset_factory.get_dataset('scenes', 'train', copy)
    assert str(raised.value).endswith(
        'run python download_and_convert_data.py --dataset_name=scenes --image_dir=%s '
        '--labels_csv=%s --dataset_dir=%s' % (image_dir, csv_path, copy))


def test_labels_csv_needs_image_dir(photos, tmp_path):
    with pytest.raises(ValueError, match=r'^--labels_csv .* needs --image_dir'):
        converters.convert('scenes', str(tmp_path / 'dataset'), labels_csv=photos[1])
    assert not os.path.exists(str(tmp_path / 'dataset'))


# --- digit_tiles ----------------------------------------------------------------------------------

def test_digit_tiles_hold_one_to_three_digits_and_their_labels(tiles_dir):
    info = json.load(open(os.path.join(tiles_dir, 'dataset_info.json')))
    assert info['multi_label'] and info['splits'] == {'train': 2400, 'test': 600}
    for split, size in info['splits'].items():
        records = _records(tiles_dir, 'digit_tiles', split, pixels_of=100)
        assert len(records) == size
        counted = collections.Counter(label for _, labels, _, _ in records for label in labels)
        assert info['label_counts'][split] == {str(d): counted[d] for d in range(10)}
        for _, labels, _, pixels in records[:100]:
            assert pixels.shape == (56, 56)
            cells = [pixels[row:row + 28, column:column + 28].max() > 0
                     for row in (0, 28) for column in (0, 28)]
            assert 1 <= len(labels) <= sum(cells) <= 3
        assert len({labels for _, labels, _, _ in records}) > 50  # many label combinations


def test_digit_tiles_decode_to_multi_hot_labels_and_labels_offset_drops_columns(tiles_dir):
    expected = np.zeros((600, 10), np.float32)
    for row, (_, labels, _, _) in enumerate(_records(tiles_dir, 'digit_tiles', 'test')):
        expected[row, list(labels)] = 1
    for offset in (0, 1):
        with tf.Graph().as_default():
            dataset = dataset_factory.get_dataset('digit_tiles', 'test', tiles_dir)
            assert dataset.multi_label and dataset.num_classes == 10
            batch = input_pipeline.one_shot_batch(input_pipeline.build_dataset(
                dataset, lambda image, height, width: tf.cast(image, tf.float32), 56, 600,
                is_training=False, labels_offset=offset, num_readers=1, deterministic=True))
            with tf.Session() as session:
                images, labels = session.run(batch)
        assert labels.dtype == np.float32 and images.shape == (600, 56, 56, 3)
        np.testing.assert_array_equal(labels, expected[:, offset:])


def test_single_label_datasets_are_not_multi_label(digits_dir):
    assert [name for name, spec in dataset_factory.DATASETS.items() if spec.multi_label] == [
        'digit_tiles']
    assert not dataset_factory.get_dataset_spec('digits', digits_dir).multi_label
    with tf.Graph().as_default():
        assert dataset_factory.get_dataset('digits', 'train', digits_dir).multi_label is False


# --- Training -------------------------------------------------------------------------------------

def _sigmoid_cross_entropy(logits, targets, positive_weights):
    probabilities = 1 / (1 + np.exp(-logits))
    return -(positive_weights * targets * np.log(probabilities)
             + (1 - targets) * np.log(1 - probabilities))


@pytest.mark.parametrize('labels', [[[1, 0, 1], [0, 0, 0]], [2, 0]],
                         ids=['multi-hot', 'class ids made one-hot'])
def test_multi_label_loss_is_weighted_smoothed_sigmoid_cross_entropy(labels):
    logits = np.array([[2.0, -1.0, 0.5], [-0.3, 1.5, -2.0]], np.float32)
    aux_logits = logits[::-1].copy()
    weights, smoothing = [3.0, 1.0, 0.5], 0.2
    with tf.Graph().as_default():
        dtype = tf.float32 if np.ndim(labels) == 2 else tf.int64
        graph._add_losses(tf.constant(logits), {'AuxLogits': tf.constant(aux_logits)},
                          tf.constant(labels, dtype), 3, smoothing, weights, multi_label=True)
        losses = tf.get_collection(tf.GraphKeys.LOSSES)
        with tf.Session() as session:
            aux_loss, loss = session.run(losses)
    multi_hot = np.array(labels, np.float32) if np.ndim(labels) == 2 else np.eye(3)[labels]
    targets = multi_hot * (1 - smoothing) + 0.5 * smoothing
    assert [value.op.name.split('/')[0] for value in losses] == ['aux_loss', 'sigmoid_loss']
    np.testing.assert_allclose(loss, _sigmoid_cross_entropy(logits, targets, weights).mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(
        aux_loss, 0.4 * _sigmoid_cross_entropy(aux_logits, targets, weights).mean(), rtol=1e-5)


def test_auto_class_weights_are_negatives_over_positives_per_label(tiles_dir, tmp_path):
    with tf.Graph().as_default():
        dataset = dataset_factory.get_dataset('digit_tiles', 'test', tiles_dir)
        config = lenet_config(tmp_path, tiles_dir, dataset_name='digit_tiles',
                              class_weights='auto')
        weights, balance = graph._class_balance(config, dataset)
        records = _records(tiles_dir, 'digit_tiles', 'test')
        positives = np.bincount([label for _, labels, _, _ in records for label in labels],
                                minlength=10)
        np.testing.assert_allclose(weights, (len(records) - positives) / positives)
        assert balance is None
        del dataset.label_counts  # without dataset_info.json's counts, the records are read
        assert batches.class_counts(dataset) == positives.tolist()
        with pytest.raises(ValueError, match=r"^--balanced_sampling cannot balance dataset "
                                             r"'digit_tiles': it is multi-label[^\n]*$"):
            graph._class_balance(lenet_config(tmp_path, tiles_dir, dataset_name='digit_tiles',
                                              balanced_sampling=True), dataset)


def _loss_summaries(train_dir):
    """{tag: {step: value}} of the loss summaries in a train_dir's event files."""
    found = collections.defaultdict(dict)
    for path in glob.glob(os.path.join(train_dir, 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith('losses/'):
                    found[value.tag][event.step] = value.simple_value
    return found


def test_lenet_learns_digit_tiles_with_a_sigmoid_loss_from_the_command_line(tiles_dir, tmp_path):
    train_dir = str(tmp_path / 'train')
    run_command('train_image_classifier.py', '--dataset_name=digit_tiles',
                '--dataset_dir=%s' % tiles_dir, '--model_name=lenet', '--train_image_size=56',
                '--batch_size=16', '--max_number_of_steps=20', '--optimizer=adam',
                '--learning_rate=0.003', '--learning_rate_decay_type=fixed', '--weight_decay=0',
                '--num_readers=1', '--num_preprocessing_threads=2', '--seed=1',
                # Explicit, though a multi-label dataset turns it on by itself.
                '--multi_label', '--train_dir=%s' % train_dir)
    options = json.load(open(os.path.join(train_dir, 'train_config.json')))['options']
    assert options['multi_label'] is True
    summaries = _loss_summaries(train_dir)
    assert not [tag for tag in summaries if 'softmax' in tag]
    sigmoid = summaries['losses/sigmoid_loss/value']
    assert sorted(sigmoid) == [1, 20]
    assert sigmoid[20] < 0.7 * sigmoid[1]


def test_multi_label_option_trains_a_single_label_dataset_per_label(digits_dir, tmp_path):
    config = lenet_config(tmp_path, digits_dir, multi_label=True, class_weights='auto',
                          label_smoothing=0.1)
    with tf.Graph().as_default():
        training = graph.build_training_graph(config, is_chief=True)
        losses = [loss.op.name for loss in tf.get_collection(tf.GraphKeys.LOSSES)]
        weights, _ = graph._class_balance(config, training.dataset)
    assert [name.split('/')[-2] for name in losses] == ['sigmoid_loss']
    per_class = json.load(open(os.path.join(digits_dir, 'conversion_report.json')))['per_class']
    counts = np.array([per_class[str(digit)]['converted'] for digit in range(10)])
    np.testing.assert_allclose(weights, (counts.sum() - counts) / counts)
