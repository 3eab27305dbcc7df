"""Multi-label evaluation end to end: a LeNet trained a few steps on a small multi-label record
set, evaluated in-process and from the command line, checked against an independent pass."""

import csv
import glob
import io
import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image
from sklearn import metrics as sk

from datasets.image_preparation import encode_png
from datasets.tfrecord_writing import NO_LABEL, LabelledImage, SplitSource, write_labelled_dataset
from nets import nets_factory
from slim_classifier.evaluation import evaluator, multilabel_metrics
from slim_classifier.training import periodic_eval, trainer
from tests import training_helpers as helpers

NAME = 'few_labels'
CLASS_NAMES = [str(digit) for digit in range(10)]
ABSENT = 7  # no example carries this label
SPLIT_SIZES = {'train': 64, 'test': 40}
BATCH_SIZE = 16
# ITU-R 601-2 luma weights, which tf.image.rgb_to_grayscale applies.
LUMA = np.array([0.2989, 0.5870, 0.1140], np.float32)


def _examples(images, digits, start, count, multi_label=True):
    """Digits whose labels are their digit and, every third, the next one too (never ABSENT);
    the first has no label at all."""
    examples = []
    for index in range(start, start + count):
        digit = int(digits[index])
        labels = {digit, (digit + 1) % 10} if index % 3 == 0 else {digit}
        labels.discard(ABSENT)
        if index == start:
            labels = set()
        examples.append(LabelledImage(encode_png(images[index]),
                                      NO_LABEL if multi_label else digit,
                                      'digit_%d.png' % index,
                                      tuple(sorted(labels)) if multi_label else None))
    return examples


def _write_dataset(directory, name, multi_label):
    images, digits = helpers.digits_arrays()
    splits, start = {}, 0
    for split, count in SPLIT_SIZES.items():
        splits[split] = SplitSource(count, _examples(images, digits, start, count, multi_label))
        start += count
    write_labelled_dataset(str(directory), name, CLASS_NAMES, splits, {},
                           multi_label=multi_label)
    return str(directory)


@pytest.fixture(scope='module')
def dataset_dir(tmp_path_factory):
    return _write_dataset(tmp_path_factory.mktemp('multi_label'), NAME, multi_label=True)


@pytest.fixture(scope='module')
def single_label_dir(tmp_path_factory):
    return _write_dataset(tmp_path_factory.mktemp('single_label'), 'few_digits',
                          multi_label=False)


@pytest.fixture(scope='module')
def run(dataset_dir, tmp_path_factory):
    """A training directory: LeNet, 4 steps on the multi-label set, evaluated every 2 steps
    and keeping the best checkpoint by mAP."""
    train_dir = tmp_path_factory.mktemp('run')
    result = trainer.train(helpers.lenet_config(
        train_dir, dataset_dir, dataset_name=NAME, batch_size=BATCH_SIZE,
        max_number_of_steps=4, eval_every_n_steps=2, keep_best_by='map'))
    return result.checkpoint


@pytest.fixture(scope='module')
def test_split(dataset_dir):
    """(LeNet inputs, multi-hot truth) of the test split, read without project code."""
    images, truth = [], []
    for path in sorted(glob.glob(os.path.join(dataset_dir, NAME + '_test_*.tfrecord'))):
        for record in tf.data.TFRecordDataset(path):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            encoded = feature['image/encoded'].bytes_list.value[0]
            images.append(np.asarray(Image.open(io.BytesIO(encoded)).convert('RGB')))
            row = np.zeros(len(CLASS_NAMES), np.float32)
            row[list(feature['image/class/labels'].int64_list.value)] = 1.0
            truth.append(row)
    gray = (np.stack(images).astype(np.float32) * LUMA).sum(axis=-1, keepdims=True)
    return (gray - 128.0) / 128.0, np.stack(truth)


def _sigmoid_probabilities(checkpoint, images):
    with tf.Graph().as_default():
        inputs = tf.placeholder(tf.float32, [None, 28, 28, 1])
        logits, _ = nets_factory.get_network_fn('lenet', len(CLASS_NAMES))(inputs)
        with tf.Session() as session:
            tf.train.Saver().restore(session, checkpoint)
            return session.run(tf.sigmoid(logits), {inputs: images})


def _config(checkpoint, dataset_dir, eval_dir, **overrides):
    values = dict(checkpoint_path=checkpoint, eval_dir=str(eval_dir), dataset_dir=dataset_dir,
                  dataset_name=NAME, model_name='lenet', batch_size=BATCH_SIZE, num_readers=2,
                  num_preprocessing_threads=2)
    values.update(overrides)
    return evaluator.EvalConfig(**values)


def _scalars(eval_dir):
    values = {}
    for path in glob.glob(os.path.join(eval_dir, 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            values.update((value.tag, value.simple_value) for value in event.summary.value
                          if value.HasField('simple_value'))
    return values


def test_training_evaluates_multi_label_and_keeps_the_best_by_map(run):
    train_dir = os.path.dirname(run)
    with open(os.path.join(train_dir, 'eval_metrics.jsonl')) as rows_file:
        rows = [json.loads(line) for line in rows_file]
    assert [row['step'] for row in rows] == [2, 4]
    for row in rows:
        assert row['num_examples'] == SPLIT_SIZES['test']
        assert 0 < row['map'] <= 1 and 0 <= row['subset_accuracy'] <= 1
        assert 'accuracy' not in row  # a single-label figure would be meaningless here
    with open(os.path.join(train_dir, 'best', 'best.json')) as best_file:
        best = json.load(best_file)
    assert best['metric'] == 'map'
    assert best['value'] == max(row['map'] for row in rows)


def test_accuracy_ranks_a_multi_label_run_by_subset_accuracy():
    tracker = periodic_eval.Tracker('accuracy', 0.0, None, None, multi_label=True)
    assert tracker.metric == 'subset_accuracy' and tracker.maximize
    assert tracker.add(2, {'subset_accuracy': 0.5, 'map': 0.7}).new_best
    assert not tracker.add(4, {'subset_accuracy': 0.4, 'map': 0.9}).new_best
    assert (tracker.best_step, tracker.best_value) == (2, 0.5)


def test_evaluation_matches_an_independent_pass(run, dataset_dir, test_split, tmp_path):
    images, truth = test_split
    probabilities = _sigmoid_probabilities(run, images)
    predictions_file = tmp_path / 'predictions.csv'
    results = evaluator.evaluate(_config(run, dataset_dir, tmp_path / 'eval', threshold=0.3,
                                         tune_thresholds=True,
                                         predictions_file=str(predictions_file)))
    close = dict(rel=1e-4, abs=1e-5)
    present = np.flatnonzero(truth.any(axis=0))
    assert ABSENT not in present
    assert results['map'] == pytest.approx(np.mean(
        [sk.average_precision_score(truth[:, label], probabilities[:, label])
         for label in present]), **close)
    predicted = probabilities >= 0.3
    assert results['subset_accuracy'] == pytest.approx(sk.accuracy_score(truth, predicted))
    assert results['hamming_loss'] == pytest.approx(sk.hamming_loss(truth, predicted))
    assert results['label_ranking_average_precision'] == pytest.approx(
        sk.label_ranking_average_precision_score(truth, probabilities), **close)
    assert [[row['tn'], row['fp'], row['fn'], row['tp']] for row in results['per_label']] == (
        sk.multilabel_confusion_matrix(truth, predicted).reshape(-1, 4).tolist())
    absent = results['per_label'][ABSENT]
    assert absent['average_precision'] is None
    assert absent['average_precision_missing'] == multilabel_metrics.NO_POSITIVES
    # The predictions file, in record order: the truth and the probabilities of each example.
    with open(predictions_file) as rows_file:
        rows = list(csv.DictReader(rows_file))
    assert [row['labels'] for row in rows] == [
        ';'.join(str(label) for label in np.flatnonzero(example)) for example in truth]
    assert np.array([[float(row['probability_%d' % label]) for label in range(10)]
                     for row in rows]) == pytest.approx(probabilities, **close)


def test_results_reach_metrics_json_thresholds_json_the_pictures_and_tensorboard(
        run, dataset_dir, tmp_path):
    eval_dir = tmp_path / 'eval'
    results = evaluator.evaluate(_config(run, dataset_dir, eval_dir, tune_thresholds=True))
    with open(eval_dir / evaluator.METRICS_FILENAME) as metrics_file:
        written = json.load(metrics_file)
    assert written['map'] == results['map'] and written['multi_label'] is True
    assert written['per_label'][ABSENT]['average_precision'] is None
    beside_checkpoint = os.path.join(os.path.dirname(run), evaluator.THRESHOLDS_FILENAME)
    assert written['thresholds_files'] == [str(eval_dir / evaluator.THRESHOLDS_FILENAME),
                                           beside_checkpoint]
    for path in written['thresholds_files']:
        with open(path) as thresholds_file:
            record = json.load(thresholds_file)
        assert record == {'labels': CLASS_NAMES,
                          'thresholds': [row['best_threshold'] for row in results['per_label']],
                          'f1': [row['best_f1'] for row in results['per_label']],
                          'split': 'test', 'checkpoint': run}
    # Through a temporary file and a rename: nothing else is left beside them.
    assert sorted(os.listdir(eval_dir)) == sorted([
        evaluator.METRICS_FILENAME, evaluator.THRESHOLDS_FILENAME,
        evaluator.PRECISION_RECALL_FILENAME] + [os.path.basename(path) for path in glob.glob(
            str(eval_dir / 'events.out.tfevents.*'))])
    with Image.open(eval_dir / evaluator.PRECISION_RECALL_FILENAME) as picture:
        assert picture.format == 'PNG'
    scalars = _scalars(str(eval_dir))
    assert scalars['eval/mAP'] == pytest.approx(results['map'], rel=1e-6)
    assert scalars['eval/Subset_Accuracy'] == pytest.approx(results['subset_accuracy'], rel=1e-6)
    assert 'eval/Accuracy' not in scalars


def test_misuse_is_a_one_line_error(run, single_label_dir, dataset_dir, tmp_path):
    with pytest.raises(evaluator.EvaluationError, match=(
            r'^--tune_thresholds tunes the thresholds of a multi-label evaluation; few_digits '
            r'is single-label \(add --multi_label to evaluate it as multi-label\)$')):
        evaluator.evaluate(_config(run, single_label_dir, tmp_path, dataset_name='few_digits',
                                   tune_thresholds=True))
    with pytest.raises(ValueError, match=r'^--threshold must be in \[0, 1\]; got 1.5$'):
        _config(run, dataset_dir, tmp_path, threshold=1.5)
    with pytest.raises(ValueError, match=r'^--keep_best_by=map is measured on multi-label data '
                       r'only; this run is single-label'):
        trainer.train(helpers.lenet_config(
            tmp_path / 'single_run', single_label_dir, dataset_name='few_digits',
            batch_size=BATCH_SIZE, max_number_of_steps=2, eval_every_n_steps=2,
            keep_best_by='map'))


def test_command_line_evaluates_single_label_data_as_multi_label(run, single_label_dir,
                                                                   test_split, tmp_path):
    run_dir = os.path.dirname(run)
    beside_checkpoint = os.path.join(run_dir, evaluator.THRESHOLDS_FILENAME)
    if os.path.exists(beside_checkpoint):
        os.remove(beside_checkpoint)  # left by an in-process test
    eval_dir = tmp_path / 'eval'
    # The run's train_config.json gives the net; the data are the single-label digits.
    result = helpers.run_command(
        'eval_image_classifier.py', '--checkpoint_path=%s' % run_dir,
        '--dataset_name=few_digits', '--dataset_dir=%s' % single_label_dir,
        '--eval_dir=%s' % eval_dir, '--batch_size=16', '--multi_label', '--threshold=0.4',
        '--tune_thresholds')
    with open(eval_dir / evaluator.METRICS_FILENAME) as metrics_file:
        written = json.load(metrics_file)
    assert written['multi_label'] is True and written['threshold'] == 0.4
    # Each example has its one label: the same digits, in the same order, as the test split.
    labels = helpers.digits_arrays()[1][SPLIT_SIZES['train']:sum(SPLIT_SIZES.values())]
    assert [row['support'] for row in written['per_label']] == np.bincount(
        labels, minlength=10).tolist()
    predicted = _sigmoid_probabilities(run, test_split[0]) >= 0.4
    one_hot = np.eye(10)[labels]
    assert written['hamming_loss'] == pytest.approx(sk.hamming_loss(one_hot, predicted))
    assert written['subset_accuracy'] == pytest.approx(sk.accuracy_score(one_hot, predicted))
    assert 'map                              %.4f' % written['map'] in result.stdout
    assert 'Tuned thresholds: %s' % beside_checkpoint in result.stdout
    for path in (eval_dir / evaluator.THRESHOLDS_FILENAME, beside_checkpoint):
        with open(path) as thresholds_file:
            record = json.load(thresholds_file)
        assert record['thresholds'] == [row['best_threshold'] for row in written['per_label']]
        assert record['checkpoint'] == run and record['split'] == 'test'
