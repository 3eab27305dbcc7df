"""Tests for deployment/model_deploy.py: devices, validation, losses, training."""

import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from deployment import model_deploy
from slim_classifier.compat import slim

# --- Device strings ---------------------------------------------------------


def test_single_clone_defaults_to_first_gpu_and_local_cpu():
    config = model_deploy.DeploymentConfig()
    assert config.clone_device(0) == '/device:GPU:0'
    assert config.clone_scope(0) == ''
    assert config.optimizer_device() == '/device:CPU:0'
    assert config.inputs_device() == '/device:CPU:0'
    assert config.variables_device() == '/device:CPU:0'
    assert config.caching_device() is None


def test_clone_on_cpu_puts_the_clone_on_the_cpu():
    config = model_deploy.DeploymentConfig(clone_on_cpu=True)
    assert config.clone_device(0) == '/device:CPU:0'
    assert config.clone_scope(0) == ''
    assert config.variables_device() == '/device:CPU:0'


def test_several_clones_get_one_gpu_and_one_scope_each():
    config = model_deploy.DeploymentConfig(num_clones=3)
    assert [config.clone_device(i) for i in range(3)] == [
        '/device:GPU:0', '/device:GPU:1', '/device:GPU:2']
    assert [config.clone_scope(i) for i in range(3)] == [
        'clone_0', 'clone_1', 'clone_2']
    assert config.optimizer_device() == '/device:CPU:0'
    assert config.inputs_device() == '/device:CPU:0'


def test_several_clones_on_cpu_share_the_cpu():
    config = model_deploy.DeploymentConfig(num_clones=2, clone_on_cpu=True)
    assert [config.clone_device(i) for i in range(2)] == ['/device:CPU:0'] * 2
    assert [config.clone_scope(i) for i in range(2)] == ['clone_0', 'clone_1']


def test_ps_tasks_prefix_the_worker_job():
    config = model_deploy.DeploymentConfig(num_clones=2, num_ps_tasks=1)
    assert config.worker_device == '/job:worker'
    assert config.ps_device == '/job:ps'
    assert config.clone_device(1) == '/job:worker/device:GPU:1'
    assert config.optimizer_device() == '/job:worker/device:CPU:0'
    assert config.inputs_device() == '/job:worker/device:CPU:0'
    assert callable(config.variables_device())


def test_custom_job_names_are_used():
    config = model_deploy.DeploymentConfig(
        clone_on_cpu=True, num_ps_tasks=1, worker_job_name='trainer',
        ps_job_name='params')
    assert config.clone_device(0) == '/job:trainer/device:CPU:0'
    assert config.inputs_device() == '/job:trainer/device:CPU:0'
    with tf.Graph().as_default():
        with tf.device(config.variables_device()):
            variable = tf.get_variable('v', shape=[1])
    assert variable.device == '/job:params/task:0/device:CPU:0'


def test_variables_device_deals_variables_to_ps_tasks_in_turn():
    config = model_deploy.DeploymentConfig(num_replicas=2, replica_id=1,
                                           num_ps_tasks=3)
    with tf.Graph().as_default():
        with tf.device(config.variables_device()):
            variables = [tf.get_variable('v%d' % i, shape=[2]) for i in range(4)]
            not_a_variable = tf.constant(1.0)
    assert [v.device for v in variables] == [
        '/job:ps/task:0/device:CPU:0', '/job:ps/task:1/device:CPU:0',
        '/job:ps/task:2/device:CPU:0', '/job:ps/task:0/device:CPU:0']
    assert not_a_variable.device == ''


def test_caching_device_caches_next_to_the_reader_with_ps_tasks_only():
    assert model_deploy.DeploymentConfig().caching_device() is None
    caching_device = model_deploy.DeploymentConfig(num_ps_tasks=2).caching_device()
    with tf.Graph().as_default():
        with tf.device('/job:worker/device:GPU:0'):
            reader = tf.constant(1.0)
    assert caching_device(reader.op) == '/job:worker/device:GPU:0'


def _two_variable_net(inputs: tf.Tensor) -> tf.Tensor:
    """A 2-layer net on 4x4 inputs."""
    net = slim.conv2d(inputs, 2, [3, 3], scope='conv')
    return slim.fully_connected(slim.flatten(net), 3, activation_fn=None,
                                scope='logits')


def test_create_clones_places_ops_on_clone_devices_and_variables_on_cpu():
    config = model_deploy.DeploymentConfig(num_clones=2)
    with tf.Graph().as_default():
        images = tf.zeros([1, 4, 4, 1])
        clones = model_deploy.create_clones(config, _two_variable_net, [images])
        model_variables = slim.get_model_variables()
    assert [(clone.scope, clone.device) for clone in clones] == [
        ('clone_0/', '/device:GPU:0'), ('clone_1/', '/device:GPU:1')]
    assert [clone.outputs.device for clone in clones] == [
        '/device:GPU:0', '/device:GPU:1']
    assert [clone.outputs.op.name.split('/')[0] for clone in clones] == [
        'clone_0', 'clone_1']
    # The second clone reuses the first clone's weights and biases.
    assert len(model_variables) == 4
    assert {v.device for v in model_variables} == {'/device:CPU:0'}


def test_create_clones_with_ps_tasks_spreads_variables_over_ps_tasks():
    config = model_deploy.DeploymentConfig(num_replicas=2, replica_id=0,
                                           num_ps_tasks=2)
    with tf.Graph().as_default():
        images = tf.zeros([1, 4, 4, 1])
        clones = model_deploy.create_clones(config, _two_variable_net,
                                            kwargs={'inputs': images})
        model_variables = slim.get_model_variables()
    assert clones[0].outputs.device == '/job:worker/device:GPU:0'
    assert [v.device for v in model_variables] == [
        '/job:ps/task:0/device:CPU:0', '/job:ps/task:1/device:CPU:0',
        '/job:ps/task:0/device:CPU:0', '/job:ps/task:1/device:CPU:0']


# --- Validation ---------------------------------------------------------------


@pytest.mark.parametrize('kwargs, message', [
    ({'num_clones': 0}, 'num_clones must be >= 1; got 0'),
    ({'num_replicas': 0}, 'num_replicas must be >= 1; got 0'),
    ({'num_ps_tasks': -1}, 'num_ps_tasks must be >= 0; got -1'),
    ({'replica_id': 2, 'num_replicas': 2, 'num_ps_tasks': 1},
     'replica_id must be in [0, num_replicas); got replica_id=2 with num_replicas=2'),
    ({'replica_id': -1},
     'replica_id must be in [0, num_replicas); got replica_id=-1 with num_replicas=1'),
    ({'num_replicas': 2},
     'num_ps_tasks must be > 0 when num_replicas > 1 (the replicas share variables '
     'through the ps tasks); got num_ps_tasks=0 with num_replicas=2'),
    ({'num_ps_tasks': 1, 'worker_job_name': ''},
     "worker_job_name must be a non-empty job name when num_ps_tasks > 0; got ''"),
    ({'num_ps_tasks': 1, 'ps_job_name': ''},
     "ps_job_name must be a non-empty job name when num_ps_tasks > 0; got ''"),
])
def test_impossible_configs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match='^%s$' % re.escape(message)):
        model_deploy.DeploymentConfig(**kwargs)


@pytest.mark.parametrize('method', ['clone_device', 'clone_scope'])
@pytest.mark.parametrize('clone_index', [-1, 2])
def test_clone_index_out_of_range_is_rejected(method, clone_index):
    config = model_deploy.DeploymentConfig(num_clones=2)
    message = ('clone_index must be in [0, num_clones); got clone_index=%d '
               'with num_clones=2' % clone_index)
    with pytest.raises(ValueError, match='^%s$' % re.escape(message)):
        getattr(config, method)(clone_index)


# --- Losses and gradients -----------------------------------------------------

_RNG = np.random.RandomState(7)
_CONV_WEIGHTS = _RNG.normal(size=(3, 3, 1, 2)).astype(np.float32)
_LOGITS_WEIGHTS = _RNG.normal(size=(32, 3)).astype(np.float32)
_IMAGES = _RNG.normal(size=(6, 4, 4, 1)).astype(np.float32)
_LABELS = np.array([0, 1, 2, 2, 1, 0])


def _batch_per_call(batches):
    """Returns a model_fn that takes the next batch at each call, like a queue."""
    pending = list(batches)

    def model_fn():
        images, labels = pending.pop(0)
        net = slim.conv2d(tf.constant(images), 2, [3, 3],
                          weights_initializer=tf.constant_initializer(_CONV_WEIGHTS),
                          weights_regularizer=slim.l2_regularizer(0.01),
                          scope='conv')
        logits = slim.fully_connected(
            slim.flatten(net), 3, activation_fn=None,
            weights_initializer=tf.constant_initializer(_LOGITS_WEIGHTS),
            scope='logits')
        tf.losses.softmax_cross_entropy(tf.one_hot(labels, 3), logits)
        return logits
    return model_fn


def _loss_and_gradients(num_clones, batches):
    """Runs optimize_clones once; returns the total loss and gradients by name."""
    config = model_deploy.DeploymentConfig(num_clones=num_clones, clone_on_cpu=True)
    with tf.Graph().as_default():
        clones = model_deploy.create_clones(config, _batch_per_call(batches))
        total_loss, grads_and_vars = model_deploy.optimize_clones(
            clones, tf.train.GradientDescentOptimizer(0.1))
        names = [variable.op.name for _, variable in grads_and_vars]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            loss, grads = session.run(
                (total_loss, [grad for grad, _ in grads_and_vars]))
    return loss, dict(zip(names, grads))


def test_two_clones_of_batch_b_match_one_clone_of_batch_2b():
    halves = [(_IMAGES[:3], _LABELS[:3]), (_IMAGES[3:], _LABELS[3:])]
    two_loss, two_grads = _loss_and_gradients(2, halves)
    one_loss, one_grads = _loss_and_gradients(1, [(_IMAGES, _LABELS)])
    assert sorted(two_grads) == sorted(one_grads) == [
        'conv/biases', 'conv/weights', 'logits/biases', 'logits/weights']
    np.testing.assert_allclose(two_loss, one_loss, rtol=1e-5)
    for name, grad in one_grads.items():
        np.testing.assert_allclose(two_grads[name], grad, rtol=1e-4, atol=1e-6)


_W_START = 3.0
_W_DECAY = 0.5


def _scaled_weight_loss(factors):
    """Returns a model_fn whose clone i adds the loss w * factors[i]."""
    pending = list(factors)

    def model_fn():
        weight = slim.model_variable(
            'w', shape=[], initializer=tf.constant_initializer(_W_START),
            regularizer=slim.l2_regularizer(_W_DECAY))
        tf.losses.add_loss(weight * pending.pop(0))
        return weight
    return model_fn


def _run_optimize_clones(factors, **kwargs):
    config = model_deploy.DeploymentConfig(num_clones=len(factors), clone_on_cpu=True)
    with tf.Graph().as_default():
        clones = model_deploy.create_clones(config, _scaled_weight_loss(factors))
        total_loss, grads_and_vars = model_deploy.optimize_clones(
            clones, tf.train.GradientDescentOptimizer(0.1), **kwargs)
        num_regularizers = len(tf.losses.get_regularization_losses())
        summary_names = sorted(s.op.name for s in tf.get_collection(tf.GraphKeys.SUMMARIES))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            loss, grad = session.run((total_loss, grads_and_vars[0][0]))
    return loss, grad, num_regularizers, summary_names


def test_regularization_loss_is_counted_once():
    factors = [1.0, 2.0, 3.0]
    loss, grad, num_regularizers, summary_names = _run_optimize_clones(factors)
    # l2_regularizer(scale)(w) = scale * w**2 / 2, whose gradient is scale * w.
    regularization = _W_DECAY * _W_START ** 2 / 2
    assert num_regularizers == 1
    assert summary_names == ['clone_0/clone_loss', 'clone_0/regularization_loss',
                             'clone_1/clone_loss', 'clone_2/clone_loss']
    assert loss == pytest.approx(_W_START * np.mean(factors) + regularization)
    assert grad == pytest.approx(np.mean(factors) + _W_DECAY * _W_START)


def test_empty_regularization_losses_add_none():
    factors = [1.0, 2.0, 3.0]
    loss, grad, _, _ = _run_optimize_clones(factors, regularization_losses=[])
    assert loss == pytest.approx(_W_START * np.mean(factors))
    assert grad == pytest.approx(np.mean(factors))


def test_optimize_clones_without_a_loss_is_rejected():
    config = model_deploy.DeploymentConfig(clone_on_cpu=True)
    with tf.Graph().as_default():
        clones = model_deploy.create_clones(config, lambda: tf.constant(1.0))
        with pytest.raises(ValueError, match='^optimize_clones needs a loss'):
            model_deploy.optimize_clones(clones, tf.train.GradientDescentOptimizer(0.1))


def test_deploy_without_optimizer_builds_the_total_loss_only():
    factors = [1.0, 2.0]
    config = model_deploy.DeploymentConfig(num_clones=2, clone_on_cpu=True)
    with tf.Graph().as_default():
        model = model_deploy.deploy(config, _scaled_weight_loss(factors))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            loss = session.run(model.total_loss)
    assert model.train_op is None
    assert len(model.clones) == 2
    assert loss == pytest.approx(_W_START * np.mean(factors)
                                 + _W_DECAY * _W_START ** 2 / 2)


# --- Batch-norm updates and training -------------------------------------------

_BN_DECAY = 0.5


def _batch_norm_per_call(batches):
    """Returns a model_fn that batch-normalizes the next batch at each call."""
    pending = list(batches)

    def model_fn():
        net = slim.batch_norm(tf.constant(pending.pop(0)), decay=_BN_DECAY,
                              is_training=True, scope='bn')
        tf.losses.add_loss(tf.reduce_mean(tf.square(net - 1.0)))
        return net
    return model_fn


def test_only_the_first_clones_batch_norm_updates_run():
    first_batch = np.array([[0.0], [2.0]], np.float32)
    second_batch = np.array([[4.0], [6.0]], np.float32)
    config = model_deploy.DeploymentConfig(num_clones=2, clone_on_cpu=True)
    with tf.Graph().as_default():
        model = model_deploy.deploy(
            config, _batch_norm_per_call([first_batch, second_batch]),
            optimizer=tf.train.GradientDescentOptimizer(0.1))
        update_scopes = {op.name.split('/')[0]
                         for op in tf.get_collection(tf.GraphKeys.UPDATE_OPS)}
        moving_mean = [v for v in tf.global_variables()
                       if v.op.name == 'bn/moving_mean'][0]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(model.train_op)
            mean_after_step = session.run(moving_mean)
    # Both clones made update ops; only the first clone's moved the average,
    # from its initial 0 towards the first batch's mean.
    assert update_scopes == {'clone_0', 'clone_1'}
    expected = (1 - _BN_DECAY) * first_batch.mean(axis=0)
    np.testing.assert_allclose(mean_after_step, expected, rtol=1e-6)


def _linear_regression():
    inputs = tf.constant([[1.0], [2.0], [3.0], [4.0]])
    predictions = slim.fully_connected(
        inputs, 1, activation_fn=None,
        weights_initializer=tf.zeros_initializer(), scope='linear')
    tf.losses.mean_squared_error(2.0 * inputs, predictions)


def test_deploy_train_op_steps_and_learns():
    config = model_deploy.DeploymentConfig(num_clones=2, clone_on_cpu=True)
    with tf.Graph().as_default():
        model = model_deploy.deploy(
            config, _linear_regression,
            optimizer=tf.train.GradientDescentOptimizer(0.02),
            summarize_gradients=True)
        global_step = tf.train.get_global_step()
        variable_names = [v.op.name for v in tf.trainable_variables()]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            losses = [session.run(model.train_op) for _ in range(10)]
            steps = session.run(global_step)
            summary = tf.Summary.FromString(session.run(model.summary_op))
    assert steps == 10
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))
    # The loss at the zero initial weights is the mean of (2x)^2 over x = 1..4.
    assert losses[0] == pytest.approx(np.mean((2.0 * np.arange(1, 5)) ** 2))
    tags = {value.tag for value in summary.value}
    assert 'total_loss' in tags
    assert 'clone_0/clone_loss' in tags
    for name in variable_names:
        assert {name + '/gradient', name + '/gradient_norm'} <= tags


def test_deploy_with_ps_tasks_puts_global_step_and_variables_on_ps():
    config = model_deploy.DeploymentConfig(num_replicas=2, replica_id=1,
                                           num_ps_tasks=2, clone_on_cpu=True)
    with tf.Graph().as_default():
        model = model_deploy.deploy(
            config, _linear_regression,
            optimizer=tf.train.GradientDescentOptimizer(0.1))
        global_step = tf.train.get_global_step()
        model_variables = slim.get_model_variables()
    assert isinstance(model, model_deploy.DeployedModel)
    assert global_step.device == '/job:ps/task:0/device:CPU:0'
    assert [v.device for v in model_variables] == [
        '/job:ps/task:0/device:CPU:0', '/job:ps/task:1/device:CPU:0']
    assert model.clones[0].device == '/job:worker/device:CPU:0'
    assert model.train_op.device == '/job:worker/device:CPU:0'


def test_total_loss_is_named_total_loss_and_every_summary_is_on_the_cpu():
    # Two GPU clones: the graph is placed softly on the CPU here, so no GPU is needed.
    config = model_deploy.DeploymentConfig(num_clones=2)
    with tf.Graph().as_default():
        model = model_deploy.deploy(
            config, _linear_regression,
            optimizer=tf.train.GradientDescentOptimizer(0.02), summarize_gradients=True)
        summaries = tf.get_collection(tf.GraphKeys.SUMMARIES)
        clone_devices = {op.device for op in tf.get_default_graph().get_operations()
                         if op.name.startswith('clone_1/')}
        session_config = tf.ConfigProto(allow_soft_placement=True)
        with tf.Session(config=session_config) as session:
            session.run(tf.global_variables_initializer())
            summary = tf.Summary.FromString(session.run(model.summary_op))
    assert model.total_loss.op.name == 'total_loss'
    assert '/device:GPU:1' in clone_devices
    assert len(summaries) > 4
    for summary_tensor in summaries:
        device = tf.DeviceSpec.from_string(summary_tensor.op.device)
        assert device.device_type == 'CPU', summary_tensor.op.name
    tags = {value.tag for value in summary.value}
    assert 'total_loss' in tags and 'total_loss_1' not in tags
