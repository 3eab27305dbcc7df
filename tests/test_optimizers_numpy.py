"""The optimizers written here, and Nesterov momentum, against NumPy reference computations.

Each reference follows the published update rule, written independently of the TensorFlow
code: a few steps on a small least-squares problem, with a learning rate that changes from
step to step, must agree to 1e-6. A run saved after N steps and resumed in a fresh graph
must end where the same run uninterrupted does.
"""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from slim_classifier.training import optimization

# A least-squares problem: loss = 0.5 * |x @ weights + bias - y|^2.
X = np.array([[1.0, 2.0, -1.0], [0.5, -1.0, 2.0], [-1.5, 0.5, 1.0], [2.0, 1.0, 0.0]])
Y = np.array([[1.0, -1.0], [0.0, 2.0], [-2.0, 0.5], [1.0, 1.0]])
WEIGHTS = np.array([[0.5, -0.3], [0.2, 0.1], [-0.4, 0.6]])
BIAS = np.array([0.1, -0.2])
RATES = [0.05, 0.04, 0.03, 0.05, 0.02, 0.01]
BETA1, BETA2, EPSILON, MOMENTUM, DECAY = 0.9, 0.99, 1e-3, 0.8, 0.1

OPTIONS = {'adam_beta1': BETA1, 'adam_beta2': BETA2, 'opt_epsilon': EPSILON}
CASES = {
    'nesterov': ('momentum', {'momentum': MOMENTUM, 'use_nesterov': True}),
    'adamax': ('adamax', OPTIONS),
    'nadam': ('nadam', OPTIONS),
    'nadamax': ('nadamax', OPTIONS),
    'adamw': ('adamw', {**OPTIONS, 'adamw_weight_decay': DECAY}),
}


def _gradients(weights, bias):
    residual = X @ weights + bias - Y
    return X.T @ residual, residual.sum(axis=0)


def _nesterov(params, rates):
    """Sutskever et al. 2013 as TensorFlow states it: a = mu a + g; p -= lr (g + mu a)."""
    accumulators = [np.zeros_like(p) for p in params]
    for rate in rates:
        for p, g, a in zip(params, _gradients(*params), accumulators):
            a[...] = MOMENTUM * a + g
            p -= rate * (g + MOMENTUM * a)
    return params


def _adam_family(params, rates, nesterov, infinity_norm):
    """AdaMax (Kingma & Ba 2015, Alg. 2), Nadam and Nadamax (Dozat 2016, Alg. 2, constant mu)."""
    m = [np.zeros_like(p) for p in params]
    s = [np.zeros_like(p) for p in params]
    for t, rate in enumerate(rates, start=1):
        for p, g, m_i, s_i in zip(params, _gradients(*params), m, s):
            m_i[...] = BETA1 * m_i + (1 - BETA1) * g
            if infinity_norm:
                s_i[...] = np.maximum(BETA2 * s_i, np.abs(g))
                denominator = s_i + EPSILON
            else:
                s_i[...] = BETA2 * s_i + (1 - BETA2) * g * g
                denominator = np.sqrt(s_i / (1 - BETA2 ** t)) + EPSILON
            if nesterov:
                direction = ((1 - BETA1) * g / (1 - BETA1 ** t)
                             + BETA1 * m_i / (1 - BETA1 ** (t + 1)))
            else:
                direction = m_i / (1 - BETA1 ** t)
            p -= rate * direction / denominator
    return params


def _adamw(params, rates):
    """Loshchilov & Hutter 2019 (decay scaled by the rate, as PyTorch), then Adam's step."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, rate in enumerate(rates, start=1):
        for p, g, m_i, v_i in zip(params, _gradients(*params), m, v):
            if p.ndim >= 2:
                p -= rate * DECAY * p
            m_i[...] = BETA1 * m_i + (1 - BETA1) * g
            v_i[...] = BETA2 * v_i + (1 - BETA2) * g * g
            # Adam as tf.train.AdamOptimizer states it (epsilon outside the bias correction).
            p -= (rate * np.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)) * m_i / (np.sqrt(v_i)
                                                                              + EPSILON)
    return params


REFERENCES = {
    'nesterov': _nesterov,
    'adamax': lambda params, rates: _adam_family(params, rates, False, True),
    'nadam': lambda params, rates: _adam_family(params, rates, True, False),
    'nadamax': lambda params, rates: _adam_family(params, rates, True, True),
    'adamw': _adamw,
}


class _Problem:
    """The least-squares problem and one optimizer's train op, in the default graph."""

    def __init__(self, case, dtype, use_resource=True, sparse=False):
        name, options = CASES[case]
        self.weights = tf.Variable(WEIGHTS, dtype=dtype, name='weights',
                                   use_resource=use_resource)
        self.bias = tf.Variable(BIAS, dtype=dtype, name='bias', use_resource=use_resource)
        self.rate = tf.placeholder(tf.float32, [])
        # Gathering every row gives the weights a sparse gradient of the same value.
        weights = tf.gather(self.weights, [0, 1, 2]) if sparse else self.weights
        residual = tf.matmul(tf.constant(X, dtype), weights) + self.bias - tf.constant(Y, dtype)
        loss = 0.5 * tf.reduce_sum(tf.square(residual))
        self.global_step = tf.train.get_or_create_global_step()
        optimizer = optimization.make_optimizer(name, self.rate, **options)
        self.train_op = optimizer.minimize(loss, global_step=self.global_step)

    def run(self, sess, rates):
        for rate in rates:
            sess.run(self.train_op, {self.rate: rate})
        return sess.run([self.weights, self.bias])


def _trained(case, rates, **problem_args):
    with tf.Graph().as_default():
        problem = _Problem(case, **problem_args)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return problem.run(sess, rates)


@pytest.mark.parametrize('case', CASES)
def test_matches_the_numpy_reference_in_float64(case):
    expected = REFERENCES[case]([WEIGHTS.copy(), BIAS.copy()], RATES)
    weights, bias = _trained(case, RATES, dtype=tf.float64)
    assert not np.allclose(weights, WEIGHTS, atol=1e-3)  # the steps went somewhere
    np.testing.assert_allclose(weights, expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(bias, expected[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize('case', CASES)
def test_matches_the_numpy_reference_in_float32(case):
    expected = REFERENCES[case]([WEIGHTS.copy(), BIAS.copy()], RATES)
    weights, bias = _trained(case, RATES, dtype=tf.float32)
    np.testing.assert_allclose(weights, expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(bias, expected[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize('case', ['adamax', 'nadam', 'nadamax', 'adamw'])
@pytest.mark.parametrize('use_resource', [True, False], ids=['resource', 'ref'])
def test_sparse_and_reference_variables_update_as_dense(case, use_resource):
    expected = REFERENCES[case]([WEIGHTS.copy(), BIAS.copy()], RATES)
    weights, bias = _trained(case, RATES, dtype=tf.float64, use_resource=use_resource,
                             sparse=True)
    np.testing.assert_allclose(weights, expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(bias, expected[1], rtol=0, atol=1e-6)


def test_adamw_decays_only_the_weights_of_rank_two_and_more():
    with tf.Graph().as_default():
        weights = tf.Variable(WEIGHTS, dtype=tf.float64)
        bias = tf.Variable(BIAS, dtype=tf.float64)
        optimizer = optimization.make_optimizer('adamw', 0.5, adamw_weight_decay=0.2)
        # Zero gradients: Adam's step is 0, what moves is the decay alone.
        train_op = optimizer.apply_gradients([(tf.zeros_like(weights), weights),
                                              (tf.zeros_like(bias), bias)])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train_op)
            decayed, kept = sess.run([weights, bias])
    np.testing.assert_allclose(decayed, WEIGHTS * (1 - 0.5 * 0.2), rtol=1e-7)
    np.testing.assert_array_equal(kept, BIAS)


@pytest.mark.parametrize('case', CASES)
def test_resumed_run_ends_where_the_uninterrupted_one_does(case, tmp_path):
    prefix = str(tmp_path / 'model.ckpt')
    first, second = RATES[:3], RATES[3:]
    with tf.Graph().as_default():
        problem = _Problem(case, tf.float32)
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            problem.run(sess, first)
            saver.save(sess, prefix)
    saved = tf.train.NewCheckpointReader(prefix).get_variable_to_shape_map()
    # The optimizer's state is in the checkpoint: two slots of each variable (one for momentum).
    slots = [name for name in saved if name.startswith('weights/')]
    assert len(slots) == (1 if case == 'nesterov' else 2)
    with tf.Graph().as_default():
        problem = _Problem(case, tf.float32)
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, prefix)
            resumed = problem.run(sess, second)
            assert sess.run(problem.global_step) == len(RATES)
    uninterrupted = _trained(case, RATES, dtype=tf.float32)
    for resumed_value, value in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(resumed_value, value)
