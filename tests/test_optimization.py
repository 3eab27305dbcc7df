"""Each optimizer and learning-rate schedule builds and steps."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from datasets import dataset_factory
from deployment import model_deploy
from slim_classifier.compat import slim
from slim_classifier.training import optimization, trainer
from tests import training_helpers as helpers


def _rates(schedule, steps, **kwargs):
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        rate = optimization.make_learning_rate(schedule, 0.1, step, **kwargs)
        with tf.Session() as sess:
            return [float(sess.run(rate, {step: s})) for s in steps]


@pytest.mark.parametrize('name', optimization.OPTIMIZERS)
def test_each_optimizer_steps_downhill(name):
    with tf.Graph().as_default():
        weights = tf.Variable([1.0, -2.0])
        loss = tf.reduce_sum(tf.square(weights))
        global_step = tf.train.get_or_create_global_step()
        optimizer = optimization.make_optimizer(name, 0.05)
        train_op = optimizer.minimize(loss, global_step=global_step)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            before = sess.run(loss)
            for _ in range(5):
                sess.run(train_op)
            assert sess.run(global_step) == 5
            assert sess.run(loss) < before


def test_unknown_optimizer_names_the_choices():
    with pytest.raises(ValueError, match=r"--optimizer must be one of adadelta, .*sgd; got 'lamb'"):
        optimization.make_optimizer('lamb', 0.1)


def test_nesterov_is_passed_on_to_momentum():
    with tf.Graph().as_default():
        assert not optimization.make_optimizer('momentum', 0.1)._use_nesterov
        assert optimization.make_optimizer('momentum', 0.1, use_nesterov=True)._use_nesterov


def test_optimizer_parameters_are_passed_on():
    with tf.Graph().as_default():
        optimizer = optimization.make_optimizer('rmsprop', 0.1, rmsprop_decay=0.8,
                                                rmsprop_momentum=0.7, opt_epsilon=0.5)
    assert (optimizer._decay, optimizer._momentum, optimizer._epsilon) == (0.8, 0.7, 0.5)


def test_fixed_rate():
    assert _rates('fixed', [0, 1000], decay_steps=10) == pytest.approx([0.1, 0.1])


def test_exponential_rate_decays_in_stairs():
    rates = _rates('exponential', [0, 9, 10, 25], decay_steps=10, decay_factor=0.5)
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_polynomial_rate_reaches_the_end_rate():
    rates = _rates('polynomial', [0, 50, 100, 200], decay_steps=100, end_learning_rate=0.01)
    assert rates == pytest.approx([0.1, 0.055, 0.01, 0.01])


def test_cosine_rate_follows_half_a_cosine():
    rates = _rates('cosine', [0, 25, 100], decay_steps=7, total_steps=100, end_learning_rate=0.0)
    expected = [0.1, 0.05 * (1 + math.cos(math.pi * 0.25)), 0.0]
    assert rates == pytest.approx(expected, abs=1e-7)


def test_warmup_rises_linearly_then_hands_over():
    rates = _rates('fixed', [0, 4, 9, 10, 50], decay_steps=10, warmup_steps=10)
    assert rates == pytest.approx([0.01, 0.05, 0.1, 0.1, 0.1])


def test_schedule_errors_name_the_argument():
    with pytest.raises(ValueError, match='--learning_rate_decay_type must be one of'):
        _rates('step', [0], decay_steps=10)
    with pytest.raises(ValueError, match='decay_steps must be >= 1; got 0'):
        _rates('fixed', [0], decay_steps=0)


def test_piecewise_rate_changes_at_each_boundary():
    rates = _rates('piecewise', [0, 9, 10, 11, 29, 30, 1000], decay_steps=1,
                   boundaries=[10, 30], values=[0.5, 0.05, 0.005])
    assert rates == pytest.approx([0.5, 0.5, 0.05, 0.05, 0.05, 0.005, 0.005])


def test_piecewise_warmup_rises_to_the_first_value():
    rates = _rates('piecewise', [0, 3, 4, 7, 8], decay_steps=1, warmup_steps=4,
                   boundaries=[8], values=[0.4, 0.04])
    assert rates == pytest.approx([0.1, 0.4, 0.4, 0.4, 0.04])


@pytest.mark.parametrize('schedule, boundaries, values, message', [
    ('piecewise', [10], [], '--learning_rate_decay_type=piecewise needs --values: the learning '
     'rate before the first of --boundaries_epochs and after each'),
    ('piecewise', [10, 20], [0.1, 0.01],
     '--values must hold one rate more than --boundaries_epochs; got 2 values for 2 boundaries'),
    ('piecewise', [10, 10], [0.1, 0.01, 0.001],
     '--boundaries_epochs must increase, each at least one step after the last; they fall on '
     'steps 10, 10'),
    ('cosine', [], [0.1], '--boundaries_epochs and --values apply only with '
     '--learning_rate_decay_type=piecewise; got cosine'),
])
def test_piecewise_errors_are_one_line(schedule, boundaries, values, message):
    with pytest.raises(ValueError) as error:
        _rates(schedule, [0], decay_steps=1, boundaries=boundaries, values=values)
    assert str(error.value) == message


def test_decay_steps_per_epochs():
    assert optimization.decay_steps_per(1000, 32, 2.0) == 62
    assert optimization.decay_steps_per(1000, 32, 2.0, num_replicas=2) == 31
    assert optimization.decay_steps_per(10, 32, 0.1) == 1


# Gradient accumulation: a linear softmax classifier, deterministic, deployed as the trainer does.
_EXAMPLES = np.random.RandomState(0).normal(size=(96, 5)).astype(np.float32)
_LABELS = np.random.RandomState(1).randint(0, 3, size=96).astype(np.int64)
_INITIAL_WEIGHTS = np.random.RandomState(2).normal(size=(5, 3)).astype(np.float32)


def _train_linear(batch_size, micro_steps, *, accumulation_steps=1, num_clones=1,
                  optimizer='momentum', clip_norm=0.0, first_batch=0, restore=None, save=None):
    """(weights, bias, global step, variable names) after `micro_steps` runs of the train op."""
    with tf.Graph().as_default():
        start = first_batch * batch_size
        batches = tf.data.Dataset.from_tensor_slices(
            (_EXAMPLES[start:], _LABELS[start:])).batch(batch_size)
        iterator = tf.data.make_one_shot_iterator(batches)
        deploy_config = model_deploy.DeploymentConfig(num_clones=num_clones, clone_on_cpu=True)
        global_step = tf.train.get_or_create_global_step()

        def clone_fn():
            examples, labels = iterator.get_next()
            logits = slim.fully_connected(
                examples, 3, activation_fn=None, scope='linear',
                weights_initializer=tf.constant_initializer(_INITIAL_WEIGHTS))
            tf.losses.sparse_softmax_cross_entropy(labels, logits)

        clones = model_deploy.create_clones(deploy_config, clone_fn)
        # A small epsilon, so that Adam moves the weights by more than rounding.
        update_rule = optimization.make_optimizer(
            optimizer, 0.1, **({'opt_epsilon': 1e-3} if optimizer == 'adam' else {}))
        if accumulation_steps > 1:
            update_rule = optimization.GradientAccumulationOptimizer(
                update_rule, accumulation_steps, clip_norm)
        total_loss, gradients = model_deploy.optimize_clones(clones, update_rule)
        if clip_norm and accumulation_steps == 1:
            clipped, _ = tf.clip_by_global_norm([g for g, _ in gradients], clip_norm)
            gradients = list(zip(clipped, [v for _, v in gradients]))
        train_op = model_deploy.make_train_op(deploy_config, clones, update_rule, total_loss,
                                              gradients, global_step)
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            if restore:
                saver.restore(sess, restore)
            for _ in range(micro_steps):
                sess.run(train_op)
            if save:
                saver.save(sess, save)
            weights, bias, step = sess.run(
                [slim.get_variables_by_name('linear/weights')[0],
                 slim.get_variables_by_name('linear/biases')[0], global_step])
            return weights, bias, step, [v.op.name for v in tf.global_variables()]


@pytest.mark.parametrize('optimizer, num_clones, clip_norm', [
    ('momentum', 1, 0.0), ('adam', 2, 0.05)], ids=['momentum', 'adam-2-clones-clipped'])
def test_accumulated_updates_equal_steps_on_the_larger_batch(optimizer, num_clones, clip_norm):
    accumulation_steps, micro_batch, updates = 3, 4, 2
    large = _train_linear(micro_batch * num_clones * accumulation_steps, updates,
                          optimizer=optimizer, clip_norm=clip_norm)
    accumulated = _train_linear(micro_batch, updates * accumulation_steps,
                                accumulation_steps=accumulation_steps, num_clones=num_clones,
                                optimizer=optimizer, clip_norm=clip_norm)
    assert not np.allclose(large[0], _INITIAL_WEIGHTS, atol=1e-3)
    np.testing.assert_allclose(accumulated[0], large[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(accumulated[1], large[1], rtol=0, atol=1e-6)
    assert (large[2], accumulated[2]) == (updates, updates * accumulation_steps)
    assert 'linear/weights/GradientAccumulation' in accumulated[3]


def test_accumulation_waits_for_the_last_micro_batch():
    initial = _train_linear(4, 0, accumulation_steps=3)[0]
    np.testing.assert_array_equal(_train_linear(4, 2, accumulation_steps=3)[0], initial)
    assert not np.allclose(_train_linear(4, 3, accumulation_steps=3)[0], initial, atol=1e-3)


def test_accumulation_resumed_between_updates_goes_on_exactly(tmp_path):
    prefix = str(tmp_path / 'model.ckpt')
    _train_linear(4, 4, accumulation_steps=3, optimizer='adam', save=prefix)
    resumed = _train_linear(4, 5, accumulation_steps=3, optimizer='adam', first_batch=4,
                            restore=prefix)
    uninterrupted = _train_linear(4, 9, accumulation_steps=3, optimizer='adam')
    assert resumed[2] == uninterrupted[2] == 9
    np.testing.assert_array_equal(resumed[0], uninterrupted[0])
    np.testing.assert_array_equal(resumed[1], uninterrupted[1])


def test_accumulation_steps_below_one_is_an_error():
    with tf.Graph().as_default(), pytest.raises(
            ValueError, match='--gradient_accumulation_steps must be >= 1; got 0'):
        optimization.GradientAccumulationOptimizer(optimization.make_optimizer('sgd', 0.1), 0)


def _train_lenet(digits_dir, train_dir, *flags, check=True):
    return helpers.run_command(
        'train_image_classifier.py', '--dataset_name=digits', '--dataset_dir=' + digits_dir,
        '--model_name=lenet', '--train_dir=%s' % train_dir, '--batch_size=8',
        '--log_every_n_steps=1', '--num_readers=1', '--num_preprocessing_threads=1', *flags,
        check=check)


def test_adamw_accumulation_and_piecewise_from_the_command_line(digits_dir, tmp_path):
    num_samples = dataset_factory.get_dataset('digits', 'train', digits_dir).num_samples
    # The boundary falls on step 3 (of 8 images): steps 0-2 take 0.1, the later ones 0.01.
    boundary = 3.5 * 8 / num_samples
    result = _train_lenet(digits_dir, tmp_path, '--optimizer=adamw', '--adamw_weight_decay=0.05',
                          '--gradient_accumulation_steps=2', '--max_number_of_steps=6',
                          '--learning_rate_decay_type=piecewise',
                          '--boundaries_epochs=%r' % boundary, '--values=0.1,0.01')
    assert 'an effective batch of 16 images' in result.stderr
    assert "L2 regularization losses (--weight_decay) are left out" in result.stderr
    with open(os.path.join(tmp_path, 'metrics.jsonl')) as f:
        # Each line has the step after the update and the rate that the update used.
        rates = {record['step']: record['learning_rate'] for record in map(json.loads, f)}
    assert rates == pytest.approx({1: 0.1, 2: 0.1, 3: 0.1, 4: 0.01, 5: 0.01, 6: 0.01})
    values = helpers.checkpoint_values(tf.train.latest_checkpoint(str(tmp_path)))
    assert values['global_step'] == 6
    assert {'LeNet/conv1/weights/AdamW', 'LeNet/conv1/weights/AdamW_1',
            'LeNet/conv1/weights/GradientAccumulation'} <= set(values)
    # Six micro-batches are three whole updates: nothing is left accumulated.
    assert not values['LeNet/conv1/weights/GradientAccumulation'].any()


def test_nesterov_momentum_from_the_command_line(digits_dir, tmp_path):
    _train_lenet(digits_dir, tmp_path, '--max_number_of_steps=3', '--optimizer=momentum',
                 '--use_nesterov')
    values = helpers.checkpoint_values(tf.train.latest_checkpoint(str(tmp_path)))
    assert values['global_step'] == 3
    assert [name for name in values if name.startswith('LeNet/fc4/weights/')] == [
        'LeNet/fc4/weights/Momentum']


@pytest.mark.parametrize('optimizer', ['adamax', 'nadam', 'nadamax'])
def test_adam_relatives_train_lenet(digits_dir, tmp_path, optimizer):
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=3,
                                                optimizer=optimizer, opt_epsilon=1e-3))
    values = helpers.checkpoint_values(result.checkpoint)
    assert values['global_step'] == 3
    assert len([name for name in values if name.startswith('LeNet/fc4/weights/')]) == 2
    # beta1^t after 3 updates is beta1^4, as Adam keeps it; the infinity norm needs no beta2^t.
    assert values['beta1_power'] == pytest.approx(0.9 ** 4)
    assert ('beta2_power' in values) == (optimizer == 'nadam')


def test_bad_piecewise_flags_are_one_line(digits_dir, tmp_path):
    result = _train_lenet(digits_dir, tmp_path / 'run', '--max_number_of_steps=1',
                          '--learning_rate_decay_type=piecewise', '--boundaries_epochs=1,2',
                          '--values=0.1,0.01', check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'error: --values must hold one rate more than --boundaries_epochs; got 2 values for 2 '
        'boundaries')
    assert not os.path.exists(tmp_path / 'run')


@pytest.mark.parametrize('options, message', [
    ({'values': ['0.1']}, '--boundaries_epochs and --values apply only with '
     '--learning_rate_decay_type=piecewise; got fixed'),
    ({'gradient_accumulation_steps': 2, 'precision': 'float16'},
     '--gradient_accumulation_steps=2 does not combine with --precision=float16: an accumulated '
     'update cannot skip the micro-batch whose gradients overflow; use float32 or bf16'),
], ids=['not-piecewise', 'float16'])
def test_bad_update_rule_combinations(digits_dir, tmp_path, options, message):
    with pytest.raises(ValueError) as error:
        trainer.train(helpers.lenet_config(tmp_path / 'run', digits_dir, max_number_of_steps=1,
                                           **options))
    assert str(error.value) == message
    assert not os.path.exists(tmp_path / 'run')


@pytest.mark.parametrize('options, message', [
    ({'learning_rate_decay_type': 'piecewise', 'boundaries_epochs': ['1', 'two'],
      'values': [1, 2, 3]},
     "--boundaries_epochs must be comma-separated numbers > 0; got ['1', 'two']"),
    ({'values': [0.1, -0.01]}, '--values must be comma-separated numbers > 0; got [0.1, -0.01]'),
    ({'gradient_accumulation_steps': 0},
     '--gradient_accumulation_steps must be > 0 and finite; got 0'),
    ({'adamw_weight_decay': -1.0}, '--adamw_weight_decay must be >= 0 and finite; got -1.0'),
])
def test_bad_update_rule_values_name_the_flag(tmp_path, options, message):
    with pytest.raises(ValueError) as error:
        helpers.lenet_config(tmp_path, str(tmp_path), **options)
    assert str(error.value) == message
