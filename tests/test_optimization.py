"""Each optimizer and learning-rate schedule builds and steps."""

import math

import pytest
import tensorflow.compat.v1 as tf

from slim_classifier.training import optimization


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
    with pytest.raises(ValueError, match=r"--optimizer must be one of adadelta, .*sgd; got 'adamw'"):
        optimization.make_optimizer('adamw', 0.1)


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


def test_decay_steps_per_epochs():
    assert optimization.decay_steps_per(1000, 32, 2.0) == 62
    assert optimization.decay_steps_per(1000, 32, 2.0, num_replicas=2) == 31
    assert optimization.decay_steps_per(10, 32, 0.1) == 1
