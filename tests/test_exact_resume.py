"""An exact resume (issue 16): `--seed=S --deterministic` training SIGKILLed after a save, or
stopped by SIGTERM, and resumed with the same command, ends with the weights of the same run
uninterrupted, bit for bit, on CPU."""

import json
import os
import signal

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from slim_classifier.runtime import determinism
from slim_classifier.training import trainer
from tests import training_helpers as helpers

# LeNet (with dropout) on digits, with augmentation drawn per example and per batch.
LENET = dict(model_name='lenet', batch_size=32, optimizer='momentum', learning_rate=0.01,
             learning_rate_decay_type='fixed', weight_decay=0.0, num_readers=2,
             num_preprocessing_threads=2, save_summaries_secs=3600, log_every_n_steps=1,
             seed=1, deterministic=True, random_erasing_prob=0.5, mixup_alpha=0.2)
# A batch-norm net (with dropout) at a small size, with Inception's random preprocessing.
MOBILENET = dict(LENET, model_name='mobilenet_v1_025', train_image_size=32, batch_size=4,
                 random_erasing_prob=0.0, mixup_alpha=0.0)


def _command_line(train_dir, dataset_dir, **options):
    values = dict(train_dir=train_dir, dataset_dir=dataset_dir, dataset_name='digits', **options)
    return ['--%s=%s' % (name, value) if value is not True else '--%s' % name
            for name, value in values.items()]


def _train(train_dir, dataset_dir, steps, **options):
    config = helpers.lenet_config(train_dir, dataset_dir, max_number_of_steps=steps, **options)
    return trainer.train(config).checkpoint


def _assert_bit_identical(checkpoint, reference):
    weights, expected = helpers.checkpoint_values(checkpoint), helpers.checkpoint_values(reference)
    assert sorted(weights) == sorted(expected)
    differing = [name for name in expected if not np.array_equal(weights[name], expected[name])]
    assert not differing, differing


def _logged_steps(train_dir):
    path = os.path.join(train_dir, 'metrics.jsonl')
    if not os.path.exists(path):
        return []
    with open(path) as lines:
        return [json.loads(line)['step'] for line in lines]


def test_lenet_killed_after_a_save_and_stopped_by_sigterm_resumes_exactly(digits_dir, tmp_path):
    run_dir = str(tmp_path / 'interrupted')
    flags = _command_line(run_dir, digits_dir, max_number_of_steps=1000, save_interval_secs=1,
                          **LENET)
    killed = helpers.start_command('train_image_classifier.py', *flags)
    helpers.wait_for(lambda: helpers.checkpoint_step(run_dir), 120, 'a checkpoint')
    killed.kill()
    killed.communicate(timeout=30)
    saved = helpers.checkpoint_step(run_dir)

    logged = len(_logged_steps(run_dir))
    stopped = helpers.start_command('train_image_classifier.py', *flags)
    helpers.wait_for(lambda: len(_logged_steps(run_dir)) > logged, 120, 'a step after resuming')
    returncode, output = helpers.interrupt(stopped, signal.SIGTERM)
    assert returncode == 0, output
    assert 'Resuming from' in output and 'at step %d' % saved in output
    assert 'SIGTERM received: saving a checkpoint' in output
    stopped_at = helpers.checkpoint_step(run_dir)
    assert stopped_at > saved

    final_step = stopped_at + 3
    resumed = _train(run_dir, digits_dir, final_step, **LENET)
    uninterrupted = _train(tmp_path / 'uninterrupted', digits_dir, final_step, **LENET)
    _assert_bit_identical(resumed, uninterrupted)
    other_seed = _train(tmp_path / 'other_seed', digits_dir, final_step, **dict(LENET, seed=2))
    with pytest.raises(AssertionError):
        _assert_bit_identical(other_seed, uninterrupted)


def test_batch_norm_net_resumes_exactly(digits_dir, tmp_path):
    uninterrupted = _train(tmp_path / 'uninterrupted', digits_dir, 4, **MOBILENET)
    _train(tmp_path / 'resumed', digits_dir, 2, **MOBILENET)
    resumed = _train(tmp_path / 'resumed', digits_dir, 4, **MOBILENET)
    assert any('BatchNorm/moving_variance' in name for name in helpers.checkpoint_values(resumed))
    _assert_bit_identical(resumed, uninterrupted)


def test_a_stateful_random_op_is_refused_in_one_line():
    with tf.Graph().as_default() as graph:
        def drawn(position):
            with determinism.stateless_draws(1, determinism.STREAM_EXAMPLES, position):
                return determinism.uniform([])
        batch = tf.data.make_one_shot_iterator(tf.data.Dataset.range(8).map(drawn)).get_next()
        weights = tf.get_variable('weights', [2], initializer=tf.random_uniform_initializer())
        # Stateless draws, and a random initialiser (run once), are not refused.
        determinism.refuse_stateful_draws(graph, [batch + weights])
    with tf.Graph().as_default() as graph:
        stateful = tf.data.Dataset.range(8).map(lambda _: tf.random.uniform([]))
        batch = tf.data.make_one_shot_iterator(stateful).get_next()
        with pytest.raises(determinism.StatefulDrawError) as error:
            determinism.refuse_stateful_draws(graph, [batch + tf.random.uniform([], name='noise')])
    message = str(error.value)
    assert '\n' not in message
    assert message.startswith('--deterministic cannot resume exactly with stateful random '
                              'op(s) RandomUniform (')
    assert 'RandomUniform (noise/RandomUniform)' in message
    assert message.count('RandomUniform (') == 2  # the graph's and the dataset function's
    assert message.endswith("they are not seeded by the step or the example's position; train "
                            'without --deterministic')


def test_nasnet_drop_path_draws_statelessly_in_deterministic_training():
    from nets.nasnet import nasnet_utils
    with tf.Graph().as_default() as graph:
        net = tf.ones([2, 3, 3, 4])
        with determinism.stateless_draws(1, determinism.STREAM_STEPS, tf.constant(5, tf.int64)):
            dropped = nasnet_utils.drop_path(net, 0.7)
        determinism.refuse_stateful_draws(graph, [dropped])
        with pytest.raises(determinism.StatefulDrawError, match='RandomUniform'):
            determinism.refuse_stateful_draws(graph, [nasnet_utils.drop_path(net, 0.7)])


def test_a_checkpoint_without_the_input_state_is_not_resumed_deterministically(digits_dir,
                                                                               tmp_path):
    _train(tmp_path, digits_dir, 1, **dict(LENET, deterministic=False))
    with pytest.raises(trainer.TrainingError) as error:
        _train(tmp_path, digits_dir, 2, **LENET)
    assert str(error.value) == (
        'cannot resume --deterministic from %s: it holds no input pipeline state '
        '(OneShotIterator:0_STATE), as it was trained without --deterministic; resume without '
        'it or choose a new --train_dir' % os.path.join(tmp_path, 'model.ckpt-1'))
