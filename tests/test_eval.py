"""eval_image_classifier: one honest pass, metrics checked against an independent computation."""

import glob
import io
import json
import os
import shutil
import threading

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image
from sklearn import metrics as sklearn_metrics

from nets import nets_factory
from slim_classifier.evaluation import confusion_image, evaluator, metrics
from slim_classifier.runtime.checkpoints import CheckpointMismatch
from slim_classifier.training import trainer
from tests import training_helpers as helpers

# ITU-R 601-2 luma weights, which tf.image.rgb_to_grayscale applies.
LUMA = np.array([0.2989, 0.5870, 0.1140], np.float32)
NUM_CLASSES = 10
BATCH_SIZE = 32
EMA_DECAY = 0.99


@pytest.fixture(scope='module')
def trained(digits_dir, tmp_path_factory):
    """A LeNet checkpoint trained on digits, keeping moving averages of its weights."""
    train_dir = tmp_path_factory.mktemp('train')
    result = trainer.train(helpers.lenet_config(train_dir, digits_dir, max_number_of_steps=300,
                                                moving_average_decay=EMA_DECAY))
    return result.checkpoint


@pytest.fixture(scope='module')
def test_split(digits_dir):
    """(LeNet inputs, labels) of the test split, read and preprocessed without project code."""
    images, labels = [], []
    for path in sorted(glob.glob(os.path.join(digits_dir, 'digits_test_*.tfrecord'))):
        for record in tf.data.TFRecordDataset(path):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            encoded = feature['image/encoded'].bytes_list.value[0]
            images.append(np.asarray(Image.open(io.BytesIO(encoded)).convert('RGB')))
            labels.append(feature['image/class/label'].int64_list.value[0])
    gray = (np.stack(images).astype(np.float32) * LUMA).sum(axis=-1, keepdims=True)
    return (gray - 128.0) / 128.0, np.array(labels)


def _config(checkpoint_path, digits_dir, eval_dir, **overrides):
    values = dict(checkpoint_path=str(checkpoint_path), eval_dir=str(eval_dir),
                  dataset_dir=digits_dir, dataset_name='digits', model_name='lenet',
                  batch_size=BATCH_SIZE, num_readers=2, num_preprocessing_threads=2)
    values.update(overrides)
    return evaluator.EvalConfig(**values)


def _logits(checkpoint, images, moving_average_decay=None):
    with tf.Graph().as_default():
        inputs = tf.placeholder(tf.float32, [None, 28, 28, 1])
        logits, _ = nets_factory.get_network_fn('lenet', NUM_CLASSES)(inputs)
        variables = (tf.train.ExponentialMovingAverage(moving_average_decay)
                     .variables_to_restore() if moving_average_decay else None)
        with tf.Session() as session:
            tf.train.Saver(variables).restore(session, checkpoint)
            return session.run(logits, {inputs: images})


def _save_checkpoint(prefix, values, global_step):
    """Saves `values` (checkpoint name -> array) as a checkpoint; returns its path."""
    with tf.Graph().as_default():
        variables = {name: tf.Variable(value) for name, value in values.items()}
        variables['global_step'] = tf.Variable(np.int64(global_step))
        saver = tf.train.Saver(variables)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return saver.save(session, str(prefix), global_step=global_step)


def _lenet_weights(checkpoint):
    return {name: value for name, value in helpers.checkpoint_values(checkpoint).items()
            if name.startswith('LeNet/') and not name.endswith('ExponentialMovingAverage')}


def test_metrics_match_an_independent_computation(trained, digits_dir, test_split, tmp_path):
    images, labels = test_split
    results = evaluator.evaluate(_config(trained, digits_dir, tmp_path))

    logits = _logits(trained, images)
    predictions = logits.argmax(axis=1)
    confusion = sklearn_metrics.confusion_matrix(labels, predictions,
                                                 labels=range(NUM_CLASSES))
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        labels, predictions, labels=range(NUM_CLASSES), zero_division=0)
    # in_top_k counts ties as hits: the label is in the top 5 when fewer than
    # five logits are strictly greater than its own.
    above = (logits > logits[np.arange(len(labels)), labels][:, None]).sum(axis=1)

    assert results['confusion_matrix'] == confusion.tolist()
    assert results['num_examples'] == len(labels)
    assert results['accuracy'] == pytest.approx(np.mean(predictions == labels))
    assert results['recall_at_5'] == pytest.approx(np.mean(above < 5))
    assert results['top_k'] == 5
    assert results['mean_per_class_accuracy'] == pytest.approx(np.mean(recall[support > 0]))
    for row, expected in zip(results['per_class'], zip(precision, recall, f1, support)):
        assert (row['precision'], row['recall'], row['f1']) == pytest.approx(expected[:3])
        assert row['support'] == expected[3]
    assert [row['name'] for row in results['per_class']] == [str(d) for d in range(10)]
    assert results['checkpoint'] == trained
    assert results['global_step'] == helpers.checkpoint_values(trained)['global_step']
    with open(tmp_path / evaluator.METRICS_FILENAME, encoding='utf-8') as metrics_file:
        assert json.load(metrics_file) == results


def test_every_example_is_counted_once_with_a_partial_last_batch(trained, digits_dir,
                                                                 tmp_path):
    with open(os.path.join(digits_dir, 'dataset_info.json'), encoding='utf-8') as info_file:
        split_size = json.load(info_file)['splits']['test']
    assert split_size % BATCH_SIZE, 'the test needs a split that batches leave a remainder of'
    results = evaluator.evaluate(_config(trained, digits_dir, tmp_path))
    assert results['num_examples'] == split_size
    assert np.sum(results['confusion_matrix']) == split_size
    assert sum(row['support'] for row in results['per_class']) == split_size


def _sharded_copy(digits_dir, directory, shards):
    """The digits dataset with its test split cut into `shards` shards, in record order."""
    directory.mkdir()
    for name in ('dataset_info.json', 'labels.txt'):
        shutil.copy(os.path.join(digits_dir, name), directory)
    shutil.copy(glob.glob(os.path.join(digits_dir, 'digits_train_*.tfrecord'))[0], directory)
    records = [record.numpy() for record in tf.data.TFRecordDataset(
        glob.glob(os.path.join(digits_dir, 'digits_test_*.tfrecord')))]
    for shard, part in enumerate(np.array_split(np.arange(len(records)), shards)):
        path = directory / ('digits_test_%05d-of-%05d.tfrecord' % (shard, shards))
        with tf.io.TFRecordWriter(str(path)) as writer:
            for index in part:
                writer.write(records[index])
    return str(directory)


def test_a_pass_in_record_order_gives_each_records_prediction(trained, digits_dir, test_split,
                                                             tmp_path):
    # Shards read in parallel would interleave; in record order they follow one another.
    images, labels = test_split
    sharded = _sharded_copy(digits_dir, tmp_path / 'sharded', shards=3)
    config = _config(trained, sharded, tmp_path, num_readers=4)
    with evaluator.Evaluator(config, in_record_order=True) as ordered:
        measured = ordered.measure(trained)
    assert measured.labels.tolist() == labels.tolist()
    assert measured.predictions.tolist() == _logits(trained, images).argmax(1).tolist()
    assert measured.results['confusion_matrix'] == measured.confusion.tolist()
    assert not (tmp_path / evaluator.METRICS_FILENAME).exists(), 'measure writes nothing'


def test_checkpoint_path_defaults_to_the_originals_unless_an_export_is_named():
    assert evaluator.EvalConfig(dataset_dir='/d').checkpoint_path == '/tmp/tfmodel/'
    assert evaluator.EvalConfig(dataset_dir='/d', model_path='m.tflite').checkpoint_path is None


def test_max_num_batches_stops_early(trained, digits_dir, tmp_path):
    results = evaluator.evaluate(_config(trained, digits_dir, tmp_path, max_num_batches=2))
    assert results['num_examples'] == 2 * BATCH_SIZE


def test_moving_average_decay_restores_the_averaged_weights(trained, digits_dir, test_split,
                                                            tmp_path):
    # The raw weights are zeros and the averages the trained weights, so the
    # two evaluations cannot agree by chance.
    weights = _lenet_weights(trained)
    values = {name: np.zeros_like(value) for name, value in weights.items()}
    values.update({name + '/ExponentialMovingAverage': value for name, value in weights.items()})
    crafted = _save_checkpoint(tmp_path / 'crafted' / 'model.ckpt', values, global_step=7)
    images, labels = test_split

    averaged = evaluator.evaluate(_config(crafted, digits_dir, tmp_path / 'averaged',
                                          moving_average_decay=EMA_DECAY))
    raw = evaluator.evaluate(_config(crafted, digits_dir, tmp_path / 'raw'))

    expected = sklearn_metrics.confusion_matrix(labels, _logits(trained, images).argmax(1),
                                                labels=range(NUM_CLASSES))
    assert averaged['confusion_matrix'] == expected.tolist()
    assert averaged['global_step'] == 7
    # Zero weights give equal logits; argmax picks the first class for all.
    assert np.array_equal(np.array(raw['confusion_matrix'])[:, 0],
                          np.bincount(labels, minlength=NUM_CLASSES))


def test_checkpoint_trained_with_moving_averages_matches_its_own_averages(
        trained, digits_dir, test_split, tmp_path):
    images, labels = test_split
    results = evaluator.evaluate(_config(trained, digits_dir, tmp_path,
                                         moving_average_decay=EMA_DECAY))
    predictions = _logits(trained, images, moving_average_decay=EMA_DECAY).argmax(1)
    assert results['accuracy'] == pytest.approx(np.mean(predictions == labels))


def test_moving_averages_missing_from_the_checkpoint_is_explained(trained, digits_dir,
                                                                  tmp_path):
    plain = _save_checkpoint(tmp_path / 'plain' / 'model.ckpt', _lenet_weights(trained), 1)
    with pytest.raises(CheckpointMismatch, match='holds no moving averages'):
        evaluator.evaluate(_config(plain, digits_dir, tmp_path, moving_average_decay=0.9))


def test_checkpoint_of_another_net_names_what_does_not_match(trained, digits_dir, tmp_path):
    with pytest.raises(CheckpointMismatch) as caught:
        evaluator.evaluate(_config(trained, digits_dir, tmp_path, model_name='cifarnet',
                                   eval_image_size=28))
    message = str(caught.value)
    assert 'does not match cifarnet with 10 classes' in message
    assert 'CifarNet/' in message and 'the checkpoint holds scopes LeNet' in message
    assert '\n' not in message


def test_checkpoint_of_another_class_count_names_the_shapes(trained, digits_dir, tmp_path):
    with pytest.raises(CheckpointMismatch,
                       match=r'does not match lenet with 9 classes: LeNet/fc4/biases is \[10\] '
                             r'in the checkpoint, \[9\] in the net'):
        evaluator.evaluate(_config(trained, digits_dir, tmp_path, labels_offset=1))


def test_directory_without_checkpoint_is_an_error(digits_dir, tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(CheckpointMismatch, match='no checkpoint found in directory'):
        evaluator.evaluate(_config(tmp_path / 'empty', digits_dir, tmp_path))


def test_outputs_png_and_tensorboard_summaries(trained, digits_dir, tmp_path):
    results = evaluator.evaluate(_config(trained, digits_dir, tmp_path))
    png = (tmp_path / evaluator.CONFUSION_FILENAME).read_bytes()
    image = Image.open(io.BytesIO(png))
    assert image.format == 'PNG' and image.size[0] > 10 * 40
    scalars, images = {}, {}
    for path in glob.glob(str(tmp_path / 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField('image'):
                    images[value.tag] = value.image.encoded_image_string
                elif value.HasField('simple_value'):
                    scalars[value.tag] = (event.step, value.simple_value)
    assert scalars['eval/Accuracy'] == (results['global_step'],
                                        pytest.approx(results['accuracy']))
    assert scalars['eval/Recall_5'][1] == pytest.approx(results['recall_at_5'])
    assert images['eval/Confusion_Matrix'] == png


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_ranking_calibration_pictures_and_predictions_file(trained, digits_dir, test_split,
                                                           tmp_path):
    images, labels = test_split
    predictions_file = tmp_path / 'out' / 'predictions.csv'
    results = evaluator.evaluate(_config(trained, digits_dir, tmp_path, top_k=3, f_beta=2.0,
                                         num_mistakes_shown=8,
                                         predictions_file=str(predictions_file)))
    probabilities = _softmax(_logits(trained, images).astype(np.float64))
    predictions = probabilities.argmax(axis=1)
    # float32 softmax in the graph against float64 here.
    close = dict(abs=1e-4)
    assert results['top_k'] == 3
    assert results['matthews_corrcoef'] == pytest.approx(
        sklearn_metrics.matthews_corrcoef(labels, predictions), **close)
    assert results['macro_f_beta'] == pytest.approx(sklearn_metrics.fbeta_score(
        labels, predictions, beta=2.0, average='macro', zero_division=0), **close)
    assert results['macro_roc_auc'] == pytest.approx(sklearn_metrics.roc_auc_score(
        labels, probabilities, multi_class='ovr'), **close)
    assert results['macro_roc_auc_classes'] == NUM_CLASSES
    assert results['log_loss'] == pytest.approx(sklearn_metrics.log_loss(labels, probabilities),
                                                **close)
    assert 0.0 <= results['expected_calibration_error'] <= 1.0
    assert len(results['reliability']) == results['calibration_bins'] == 15
    with open(tmp_path / evaluator.METRICS_FILENAME, encoding='utf-8') as metrics_file:
        written = json.load(metrics_file)
    assert {'roc_auc', 'roc_auc_missing', 'average_precision', 'npv', 'fpr', 'f_beta'} <= set(
        written['per_class'][0])
    for name in (evaluator.ROC_FILENAME, evaluator.PRECISION_RECALL_FILENAME,
                 evaluator.RELIABILITY_FILENAME, evaluator.MISTAKES_FILENAME):
        image = Image.open(tmp_path / name)
        assert image.format == 'PNG' and 200 <= min(image.size) and max(image.size) <= 1000, name
    rows = (predictions_file.read_text(encoding='utf-8')).splitlines()
    assert rows[0] == ('record,file_name,label,prediction,top_1_id,top_2_id,top_3_id,'
                       'top_1_probability,top_2_probability,top_3_probability')
    assert len(rows) == 1 + len(labels)
    first = rows[1].split(',')
    assert first[0] == '0' and first[1].endswith('.png')
    assert [int(value) for value in first[2:5]] == [labels[0], predictions[0], predictions[0]]
    tags = set()
    for path in glob.glob(str(tmp_path / 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert {'eval/ROC_Curves', 'eval/Most_Confident_Mistakes', 'eval/Log_Loss',
            'eval/Matthews_Correlation'} <= tags


def test_new_checkpoints_are_evaluated_as_they_appear(trained, digits_dir, tmp_path):
    # The loop starts before training has made its directory.
    weights = _lenet_weights(trained)
    watched = tmp_path / 'train'
    config = _config(watched, digits_dir, tmp_path / 'eval', timeout=10)
    results = []
    loop = threading.Thread(target=lambda: results.extend(
        evaluator.evaluate_new_checkpoints(config)))
    loop.start()
    _save_checkpoint(watched / 'model.ckpt', weights, global_step=1)

    def evaluated_step():
        path = tmp_path / 'eval' / evaluator.METRICS_FILENAME
        return json.loads(path.read_text())['global_step'] if path.exists() else None

    helpers.wait_for(lambda: evaluated_step() == 1, 120, 'the first evaluation')
    _save_checkpoint(watched / 'model.ckpt', weights, global_step=2)
    loop.join(timeout=120)
    assert not loop.is_alive()
    assert [result['global_step'] for result in results] == [1, 2]
    assert results[0]['confusion_matrix'] == results[1]['confusion_matrix']


def test_new_checkpoints_need_a_directory(trained, digits_dir, tmp_path):
    with pytest.raises(ValueError, match='needs --checkpoint_path to be the directory'):
        next(evaluator.evaluate_new_checkpoints(_config(trained, digits_dir, tmp_path)))


def test_labels_outside_the_net_classes_are_explained(digits_dir, tmp_path):
    # A 9-class net and --labels_offset=1 turn digit 0 into label -1.
    with tf.Graph().as_default():
        nets_factory.get_network_fn('lenet', 9)(tf.zeros([1, 28, 28, 1]))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            checkpoint = tf.train.Saver().save(session, str(tmp_path / 'model.ckpt'))
    with pytest.raises(evaluator.EvaluationError,
                       match=r'label -1 is outside \[0, 9\) in digits/test: check '
                             r'--labels_offset and --dataset_name'):
        evaluator.evaluate(_config(checkpoint, digits_dir, tmp_path, labels_offset=1))


def test_command_prints_a_table_and_writes_metrics(trained, digits_dir, tmp_path):
    result = helpers.run_command(
        'eval_image_classifier.py', '--checkpoint_path=' + os.path.dirname(trained),
        '--eval_dir=%s' % tmp_path, '--dataset_dir=' + digits_dir, '--dataset_name=digits',
        '--model_name=lenet', '--batch_size=50')
    with open(tmp_path / evaluator.METRICS_FILENAME, encoding='utf-8') as metrics_file:
        written = json.load(metrics_file)
    assert written['checkpoint'] == trained
    assert 'accuracy                 %.4f' % written['accuracy'] in result.stdout
    assert '%5s  %9.4f' % ('9', written['per_class'][9]['precision']) in result.stdout
    assert (tmp_path / evaluator.CONFUSION_FILENAME).exists()


def test_command_reports_a_missing_checkpoint_in_one_line(digits_dir, tmp_path):
    result = helpers.run_command(
        'eval_image_classifier.py', '--checkpoint_path=%s' % (tmp_path / 'nothing'),
        '--eval_dir=%s' % tmp_path, '--dataset_dir=' + digits_dir, '--dataset_name=digits',
        '--model_name=lenet', check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: no checkpoint found at '%s'" % (tmp_path / 'nothing'))


def test_summarize_agrees_with_scikit_learn():
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 4, 200)
    predictions = np.where(rng.rand(200) < 0.6, labels, rng.randint(0, 4, 200))
    confusion = metrics.confusion_counts(labels, predictions, 4)
    results = metrics.summarize(confusion, top_k_hits=150, top_k=3, class_names=list('abcd'))
    precision, recall, f1, _ = sklearn_metrics.precision_recall_fscore_support(
        labels, predictions, labels=range(4), zero_division=0)
    assert confusion.tolist() == sklearn_metrics.confusion_matrix(labels, predictions).tolist()
    assert results['accuracy'] == pytest.approx(np.mean(labels == predictions))
    assert results['recall_at_5'] == pytest.approx(0.75)
    assert [row['precision'] for row in results['per_class']] == pytest.approx(precision)
    assert [row['recall'] for row in results['per_class']] == pytest.approx(recall)
    assert [row['f1'] for row in results['per_class']] == pytest.approx(f1)


def test_classes_without_examples_count_zero_and_leave_the_mean_alone():
    confusion = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    results = metrics.summarize(confusion, top_k_hits=6, top_k=3, class_names=['a', 'b', 'c'])
    absent = results['per_class'][2]
    assert (absent['precision'], absent['recall'], absent['f1'], absent['support']) == (0, 0, 0, 0)
    assert results['mean_per_class_accuracy'] == pytest.approx((3 / 4 + 2 / 2) / 2)


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match=r'label 10 is outside \[0, 10\)'):
        metrics.confusion_counts(np.array([1, 10]), np.array([1, 1]), 10)


def test_table_lists_classes_only_when_there_are_few():
    few = metrics.summarize(np.eye(3, dtype=np.int64), 3, 3, ['a', 'b', 'c'])
    many = metrics.summarize(np.eye(30, dtype=np.int64), 30, 5, [str(i) for i in range(30)])
    assert metrics.format_table(few).splitlines()[-1] == (
        '    c     1.0000  1.0000  1.0000        1')
    assert 'top 3: the net has 3 classes' in metrics.format_table(few)
    assert metrics.format_table(many).splitlines()[-1] == (
        'per-class figures of 30 classes: see metrics.json')


def test_confusion_image_shades_each_cell_by_its_share_of_the_row():
    confusion = np.array([[5, 0, 0], [0, 5, 0], [5, 0, 0]])
    png, layout = confusion_image.draw_confusion_matrix(confusion, ['cat', 'dog', 'bird'])
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))
    assert pixels.shape[:2] == (layout.height, layout.width)

    def corner(row, column):
        x0, y0, _, _ = layout.cell_box(row, column)
        return tuple(pixels[y0 + 1, x0 + 1])

    assert corner(0, 0) == corner(1, 1) == corner(2, 0)
    assert corner(0, 1) == corner(2, 2) == (255, 255, 255)
    assert sum(corner(0, 0)) < 3 * 128


def test_confusion_image_of_many_classes_stays_small():
    png, layout = confusion_image.draw_confusion_matrix(np.eye(500, dtype=np.int64),
                                                        [str(i) for i in range(500)])
    assert layout.cell >= 1
    assert Image.open(io.BytesIO(png)).size[0] <= confusion_image.GRID_PIXELS + 100


def test_command_waiting_in_vain_for_a_checkpoint_says_so(digits_dir, tmp_path):
    result = helpers.run_command(
        'eval_image_classifier.py', '--checkpoint_path=%s' % (tmp_path / 'train'),
        '--eval_dir=%s' % tmp_path, '--dataset_dir=' + digits_dir, '--dataset_name=digits',
        '--model_name=lenet', '--eval_interval_secs=1', '--timeout=1', check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'error: no checkpoint appeared in %s within --timeout=1 seconds' % (tmp_path / 'train'))
