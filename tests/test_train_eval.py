"""Evaluation while training: eval_metrics.jsonl, best/, early stopping, reduce_on_plateau."""

import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from slim_classifier.runtime import checkpoints, run_config
from slim_classifier.training import trainer
from tests import training_helpers as helpers


def _rows(train_dir):
    with open(os.path.join(train_dir, 'eval_metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


def _best(train_dir):
    with open(os.path.join(train_dir, 'best', 'best.json')) as f:
        return json.load(f)


def _plateau_rate(checkpoint):
    return float(tf.train.NewCheckpointReader(checkpoint).get_tensor('plateau_learning_rate'))


def _event_steps(directory, tag):
    steps = []
    for path in tf.gfile.Glob(os.path.join(directory, 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            steps.extend(event.step for value in event.summary.value if value.tag == tag)
    return sorted(steps)


def test_evaluations_every_n_steps_keep_the_best_checkpoint(digits_dir, tmp_path):
    run = str(tmp_path / 'run')
    result = trainer.train(helpers.lenet_config(run, digits_dir, max_number_of_steps=50,
                                                eval_every_n_steps=20))
    assert result.stopped_by == 'max_number_of_steps'
    rows = _rows(run)
    # Every 20 steps and at the end, on the test split (digits has no validation split).
    assert [row['step'] for row in rows] == [20, 40, 50]
    assert {row['dataset_split_name'] for row in rows} == {'test'}
    assert {row['num_examples'] for row in rows} == {359}
    # The rows measure the checkpoints of their steps, as a computation outside the evaluator.
    assert rows[-1]['accuracy'] == pytest.approx(
        helpers.digits_test_accuracy(result.checkpoint, digits_dir), abs=1e-6)
    assert rows[-1]['log_loss'] == pytest.approx(
        helpers.digits_test_loss(result.checkpoint, digits_dir), rel=1e-3)
    # The eval TensorBoard run beside the training one.
    assert _event_steps(os.path.join(run, 'eval'), 'eval/Accuracy') == [20, 40, 50]
    # best/ holds the checkpoint of the first row with the highest accuracy.
    best_row = max(rows, key=lambda row: (row['accuracy'], -row['step']))
    best = _best(run)
    assert (best['step'], best['metric'], best['value']) == (
        best_row['step'], 'accuracy', best_row['accuracy'])
    assert best['metrics'] == best_row
    best_checkpoint = checkpoints.resolve_checkpoint(os.path.join(run, 'best'))
    assert best_checkpoint == os.path.join(run, 'best', 'model.ckpt-%d' % best_row['step'])
    saved = helpers.checkpoint_values(os.path.join(run, 'model.ckpt-%d' % best_row['step']))
    kept = helpers.checkpoint_values(best_checkpoint)
    assert saved.keys() == kept.keys()
    assert all(np.array_equal(saved[name], kept[name]) for name in saved)
    # RUN/best finds the run's train_config.json in its parent.
    assert run_config.find_run_dir(os.path.join(run, 'best')) == run


def test_early_stopping_stops_after_patience_evaluations(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(
        tmp_path, digits_dir, max_number_of_steps=200, eval_every_n_steps=10,
        early_stopping_patience=1, early_stopping_min_delta=10.0))
    # The first evaluation sets the reference; the second does not beat it by 10.
    assert (result.global_step, result.stopped_by) == (20, 'early_stopping')
    assert [row['step'] for row in _rows(str(tmp_path))] == [10, 20]
    assert helpers.checkpoint_step(str(tmp_path)) == 20


def test_plateau_rate_and_patience_carry_over_a_resume(digits_dir, tmp_path):
    def config(steps):
        return helpers.lenet_config(
            tmp_path, digits_dir, max_number_of_steps=steps, eval_every_n_steps=10,
            learning_rate_decay_type='reduce_on_plateau', plateau_factor=0.5,
            plateau_patience=1, early_stopping_patience=4, early_stopping_min_delta=10.0)

    first = trainer.train(config(30))
    # No evaluation after the first improves by 10: the rate halves at steps 20 and 30.
    assert first.stopped_by == 'max_number_of_steps'
    assert _plateau_rate(first.checkpoint) == pytest.approx(0.0025)
    second = trainer.train(config(200))
    # The patience counter carried on: evaluations 20, 30, 40 and 50 did not improve.
    assert (second.global_step, second.stopped_by) == (50, 'early_stopping')
    assert [row['step'] for row in _rows(str(tmp_path))] == [10, 20, 30, 40, 50]
    # The resumed run started from the lowered rate and halved it twice more.
    assert _plateau_rate(second.checkpoint) == pytest.approx(0.000625)


@pytest.mark.parametrize('options, message', [
    ({'eval_every_n_steps': 0}, '--eval_every_n_steps must be > 0 and finite; got 0'),
    ({'keep_best_by': 'top5'}, '--keep_best_by must be one of accuracy, recall_at_5'),
    ({'plateau_factor': 1.0}, '--plateau_factor must be in (0, 1); got 1.0'),
    ({'early_stopping_min_delta': -1.0}, '--early_stopping_min_delta must be >= 0'),
    ({'early_stopping_patience': 0}, '--early_stopping_patience must be > 0'),
])
def test_bad_values_are_one_line(digits_dir, tmp_path, options, message):
    with pytest.raises(ValueError) as raised:
        helpers.lenet_config(tmp_path, digits_dir, **options)
    assert str(raised.value).startswith(message) and '\n' not in str(raised.value)


@pytest.mark.parametrize('options, message', [
    ({'early_stopping_patience': 3},
     '--early_stopping_patience=3 needs --eval_every_n_steps: early stopping follows the '
     'evaluations'),
    ({'learning_rate_decay_type': 'reduce_on_plateau'},
     '--learning_rate_decay_type=reduce_on_plateau needs --eval_every_n_steps: the rate is '
     'lowered when the evaluations stop improving'),
])
def test_options_that_need_evaluations_refuse_to_run_without(digits_dir, tmp_path, options,
                                                              message):
    with pytest.raises(ValueError) as raised:
        trainer.train(helpers.lenet_config(tmp_path / 'run', digits_dir,
                                           max_number_of_steps=5, **options))
    assert str(raised.value) == message
    assert not os.path.exists(tmp_path / 'run')


def test_command_line_stops_early_and_evaluates_the_best(digits_dir, tmp_path):
    run = str(tmp_path / 'run')
    result = helpers.run_command(
        'train_image_classifier.py', '--dataset_name=digits', '--dataset_dir=%s' % digits_dir,
        '--model_name=lenet', '--train_dir=%s' % run, '--batch_size=32', '--optimizer=sgd',
        '--learning_rate=0.01', '--weight_decay=0', '--max_number_of_steps=200', '--seed=1',
        '--eval_every_n_steps=10', '--eval_dataset_split_name=test', '--keep_best_by=loss',
        '--early_stopping_patience=2', '--early_stopping_min_delta=100',
        '--learning_rate_decay_type=reduce_on_plateau', '--plateau_factor=0.5',
        '--plateau_patience=1')
    assert 'Early stopping at step 30: log_loss has not improved by at least 100 in 2 ' \
        'evaluations' in result.stderr
    assert 'step 10: accuracy ' in result.stderr and 'on test (359 examples)' in result.stderr
    assert 'learning rate 0.01 -> 0.005' in result.stderr
    rows = _rows(run)
    assert [row['step'] for row in rows] == [10, 20, 30]
    best_row = min(rows, key=lambda row: (row['log_loss'], row['step']))
    assert (_best(run)['step'], _best(run)['metric']) == (best_row['step'], 'log_loss')
    assert _plateau_rate(os.path.join(run, 'model.ckpt-30')) == pytest.approx(0.0025)
    # eval_image_classifier.py takes RUN/best, and the net and data from RUN's config.
    eval_dir = str(tmp_path / 'eval')
    helpers.run_command('eval_image_classifier.py', '--checkpoint_path=%s/best' % run,
                        '--eval_dir=%s' % eval_dir)
    with open(os.path.join(eval_dir, 'metrics.json')) as f:
        evaluated = json.load(f)
    assert evaluated['global_step'] == best_row['step']
    assert evaluated['accuracy'] == pytest.approx(best_row['accuracy'])


@pytest.mark.parametrize('flag, message', [
    ('--plateau_patience=0', 'error: --plateau_patience must be > 0 and finite; got 0'),
    ('--learning_rate_decay_type=reduce_on_plateau',
     'error: --learning_rate_decay_type=reduce_on_plateau needs --eval_every_n_steps: the rate '
     'is lowered when the evaluations stop improving'),
])
def test_command_line_bad_values_are_one_line(digits_dir, tmp_path, flag, message):
    result = helpers.run_command('train_image_classifier.py', '--dataset_name=digits',
                                 '--dataset_dir=%s' % digits_dir, '--model_name=lenet',
                                 '--train_dir=%s' % (tmp_path / 'run'), flag, check=False)
    assert result.returncode != 0
    assert result.stderr.strip() == message
    assert not os.path.exists(tmp_path / 'run')
