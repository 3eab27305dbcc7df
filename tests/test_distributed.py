"""Training on a cluster: ps and workers as processes on 127.0.0.1, TF_CONFIG, clones."""

import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from datasets import dataset_factory, input_pipeline
from deployment import model_deploy
from nets import nets_factory
from preprocessing import preprocessing_factory
from slim_classifier.training import cluster, trainer
from slim_classifier.training.graph import build_training_graph
from tests import training_helpers as helpers

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over the 10 digits
# Stale asynchronous updates of LeNet's large first gradients left the net dead (at the
# chance loss) in about one run of three; clipping them did not in seven of seven.
LENET_FLAGS = ('--dataset_name=digits', '--model_name=lenet', '--batch_size=16',
               '--optimizer=momentum', '--learning_rate=0.01', '--clip_gradient_norm=5',
               '--learning_rate_decay_type=fixed', '--weight_decay=0', '--num_readers=1',
               '--num_preprocessing_threads=1', '--save_interval_secs=3600',
               '--save_summaries_secs=3600', '--log_every_n_steps=1')


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(('127.0.0.1', 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class LocalCluster:
    """The processes of a 1 ps + 2 workers cluster; each task's output goes to a file."""

    def __init__(self, log_dir):
        ps_port, *worker_ports = _free_ports(3)
        self.ps_hosts = '127.0.0.1:%d' % ps_port
        self.worker_hosts = ','.join('127.0.0.1:%d' % port for port in worker_ports)
        self._log_dir = log_dir
        self._processes = {}
        self._starts = {}

    def start(self, job, task, *args):
        name = '%s%d' % (job, task)
        self._starts[name] = self._starts.get(name, 0) + 1
        log_file = open(self.log_path(name), 'w')
        self._processes[name] = subprocess.Popen(
            [sys.executable, os.path.join(helpers.REPO, 'train_image_classifier.py'),
             '--ps_hosts=' + self.ps_hosts, '--worker_hosts=' + self.worker_hosts,
             '--job_name=' + job, '--task=%d' % task, *args],
            cwd=helpers.REPO, stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
        log_file.close()

    def log_path(self, name):
        return os.path.join(self._log_dir, '%s.%d.log' % (name, self._starts[name]))

    def log(self, name):
        with open(self.log_path(name)) as log_file:
            return log_file.read()

    def wait(self, name, timeout):
        return self._processes[name].wait(timeout=timeout)

    def kill(self, name):
        self._processes[name].kill()
        self._processes[name].wait(timeout=30)

    def kill_all(self):
        for process in self._processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def local_cluster(tmp_path):
    started = LocalCluster(str(tmp_path))
    yield started
    started.kill_all()


def _logged_steps(log_text):
    return [line for line in log_text.splitlines() if 'train: step ' in line]


def _first_summary_loss(train_dir):
    """The total loss the chief summarised at its first step."""
    events = []
    for path in tf.gfile.Glob(os.path.join(train_dir, 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            events.extend((event.step, value.simple_value) for value in event.summary.value
                          if value.tag == 'total_loss')
    return min(events)[1]


# --- Processes on 127.0.0.1 ----------------------------------------------------


def test_async_workers_train_and_a_restarted_worker_rejoins(digits_dir, tmp_path,
                                                             local_cluster):
    train_dir = str(tmp_path / 'train')
    args = (*LENET_FLAGS, '--dataset_dir=' + digits_dir, '--train_dir=' + train_dir,
            '--max_number_of_steps=600')
    local_cluster.start('ps', 0)
    # Alone, worker 1 gives up waiting for the chief with one clear line.
    local_cluster.start('worker', 1, *args, '--cluster_timeout_secs=2')
    assert local_cluster.wait('worker1', 120) == 1
    assert local_cluster.log('worker1').strip().splitlines()[-1] == (
        'error: worker 1 of 2 at %s waited 2 s for the chief at %s to initialise the '
        'variables; start the chief (task 0) or raise --cluster_timeout_secs'
        % tuple(local_cluster.worker_hosts.split(',')[::-1]))

    args += ('--cluster_timeout_secs=120',)
    local_cluster.start('worker', 0, *args)
    local_cluster.start('worker', 1, *args)
    helpers.wait_for(lambda: len(_logged_steps(local_cluster.log('worker1'))) >= 3, 120,
                     'worker 1 to train')
    local_cluster.kill('worker1')
    local_cluster.start('worker', 1, *args)

    assert local_cluster.wait('worker0', 240) == 0, local_cluster.log('worker0')[-3000:]
    assert local_cluster.wait('worker1', 60) == 0, local_cluster.log('worker1')[-3000:]
    assert _logged_steps(local_cluster.log('worker1')), 'the restarted worker did not train'
    assert helpers.checkpoint_step(train_dir) >= 600
    final_loss = helpers.digits_test_loss(tf.train.latest_checkpoint(train_dir), digits_dir)
    assert final_loss < 0.5 * min(CHANCE_LOSS, _first_summary_loss(train_dir))


def test_sync_workers_through_the_launcher_average_gradients_and_weights(digits_dir, tmp_path):
    train_dir = str(tmp_path / 'train')
    result = helpers.run_command(
        'launch_local_cluster.py', '--num_ps=1', '--num_workers=2', '--',
        *LENET_FLAGS, '--dataset_dir=' + digits_dir, '--train_dir=' + train_dir,
        '--max_number_of_steps=80', '--sync_replicas', '--replicas_to_aggregate=2',
        '--moving_average_decay=0.9', timeout=300)
    assert 'worker 0 exited 0' in result.stdout and 'worker 1 exited 0' in result.stdout
    # Each global step averaged two workers' gradients: the workers ran about twice as
    # many steps as the global step counts (asynchronous workers would run as many).
    worker_steps = [line for line in result.stdout.splitlines()
                    if line.startswith('[worker ') and 'train: step ' in line]
    assert all(any(line.startswith('[worker %d]' % task) for line in worker_steps)
               for task in (0, 1))
    assert len(worker_steps) >= 1.5 * 80
    checkpoint = tf.train.latest_checkpoint(train_dir)
    assert helpers.checkpoint_step(train_dir) >= 80
    values = helpers.checkpoint_values(checkpoint)
    averaged = sorted(name for name in values if name.endswith('/ExponentialMovingAverage'))
    assert len(averaged) == 8 and 'LeNet/fc4/weights/ExponentialMovingAverage' in averaged
    assert not any('sync_rep_local_step' in name for name in values)
    first_loss = min(CHANCE_LOSS, _first_summary_loss(train_dir))
    assert helpers.digits_test_loss(checkpoint, digits_dir) < 0.5 * first_loss
    # The averages moved with the aggregated updates: they predict well too.
    assert helpers.digits_test_loss(checkpoint, digits_dir, moving_average_decay=0.9) < 0.5 * first_loss


def test_unreachable_ps_from_tf_config_is_one_line_within_the_timeout(digits_dir, tmp_path):
    ps_port, worker_port = _free_ports(2)  # nothing listens on either
    tf_config = {'cluster': {'ps': ['127.0.0.1:%d' % ps_port],
                             'worker': ['127.0.0.1:%d' % worker_port]},
                 'task': {'type': 'worker', 'index': 0}}
    started = time.monotonic()
    result = helpers.run_command(
        'train_image_classifier.py', *LENET_FLAGS, '--dataset_dir=' + digits_dir,
        '--train_dir=%s' % tmp_path, '--cluster_timeout_secs=3', timeout=120, check=False,
        env={'TF_CONFIG': json.dumps(tf_config)})
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'error: could not reach the parameter server at 127.0.0.1:%d within 3 s; start it '
        '(--job_name=ps), check --ps_hosts or TF_CONFIG, or raise --cluster_timeout_secs'
        % ps_port)
    assert elapsed < 60  # the start-up of TensorFlow, then 3 s: no endless wait


def test_the_launcher_gives_every_task_its_place_and_refuses_cluster_flags():
    import launch_local_cluster
    tasks = launch_local_cluster.task_commands(2, 3, ['--model_name=lenet'])
    assert [name for name, _ in tasks] == ['ps 0', 'ps 1', 'worker 0', 'worker 1', 'worker 2']
    flags = [dict(arg[2:].split('=', 1) for arg in command if arg.startswith('--'))
             for _, command in tasks]
    ps_hosts, worker_hosts = flags[0]['ps_hosts'].split(','), flags[0]['worker_hosts'].split(',')
    assert len(set(ps_hosts + worker_hosts)) == 5
    assert all(host.startswith('127.0.0.1:') for host in ps_hosts + worker_hosts)
    assert [(f['job_name'], f['task']) for f in flags] == [
        ('ps', '0'), ('ps', '1'), ('worker', '0'), ('worker', '1'), ('worker', '2')]
    assert all(f.get('model_name') == 'lenet' for f in flags[2:])
    assert not any('model_name' in f for f in flags[:2])
    with pytest.raises(ValueError, match=r'^--worker_hosts is set by the launcher'):
        launch_local_cluster.check_worker_args(['--model_name=lenet', '--worker_hosts=h:1'])


# --- Cluster descriptions --------------------------------------------------------


def test_flags_describe_the_task_and_derive_the_counts():
    role = cluster.resolve_role('ps0:2222, ps1:2222', 'w0:2222,w1:2222,w2:2222', 'worker', 2,
                                tf_config='{"cluster": {"ps": ["elsewhere:1"]}}')
    assert (role.job_name, role.task_index, role.address) == ('worker', 2, 'w2:2222')
    assert (role.num_ps_tasks, role.num_workers, role.replica_id) == (2, 3, 2)
    assert not role.is_chief and not role.is_ps
    assert role.chief_address == 'w0:2222'
    assert role.cluster_spec().as_dict() == {'ps': ['ps0:2222', 'ps1:2222'],
                                             'worker': ['w0:2222', 'w1:2222', 'w2:2222']}
    assert cluster.resolve_role('p:1', 'w:2', 'worker', 0, None).is_chief
    assert cluster.resolve_role('p:1', 'w:2', 'ps', 0, None).is_ps
    assert cluster.resolve_role(None, None, None, 0, None) is None
    assert cluster.resolve_role(None, None, None, 0, ' ') is None


def test_tf_config_with_a_chief_job_makes_it_replica_zero():
    jobs = {'chief': ['c:1'], 'worker': ['w0:1', 'w1:1'], 'ps': ['p:1']}
    chief = cluster.role_from_tf_config(json.dumps(
        {'cluster': jobs, 'task': {'type': 'chief', 'index': 0}}))
    worker = cluster.role_from_tf_config(json.dumps(
        {'cluster': jobs, 'task': {'type': 'worker', 'index': 0}}))
    assert chief.is_chief and not worker.is_chief
    assert (chief.replica_id, worker.replica_id, worker.num_workers) == (0, 1, 3)
    assert worker.chief_address == 'c:1'
    assert cluster.role_from_tf_config('{"task": {"type": "worker"}}') is None


@pytest.mark.parametrize('tf_config, message', [
    ('{not json', 'TF_CONFIG must be JSON'),
    ('{"cluster": {"worker": ["w:1"]}, "task": {"type": "worker"}}',
     "TF_CONFIG's cluster needs a 'ps' job and a 'worker' or 'chief' job; got worker"),
    ('{"cluster": {"ps": ["p:1"], "worker": ["w:1"], "evaluator": ["e:1"]}}',
     "TF_CONFIG's cluster may hold the jobs chief, worker, ps; got evaluator"),
    ('{"cluster": {"ps": ["p:1"], "worker": ["w:1"]}, "task": {"type": "worker", "index": 1}}',
     "TF_CONFIG's task index must be in [0, 1): the worker job has 1 task(s); got 1"),
    ('{"cluster": {"ps": ["p"], "worker": ["w:1"]}, "task": {"type": "worker"}}',
     "TF_CONFIG entries must be host:port with a port in [1, 65535]; got 'p'"),
    ('{"cluster": {"ps": ["p:1"], "worker": ["w:1"]}, "task": {"type": "chief"}}',
     "TF_CONFIG's task type must be one of its jobs (worker, ps); got 'chief'"),
])
def test_bad_tf_config_is_one_clear_error(tf_config, message):
    with pytest.raises(ValueError, match='^' + re.escape(message)):
        cluster.role_from_tf_config(tf_config)


@pytest.mark.parametrize('args, message', [
    (('p:1', None, 'worker', 0), 'a cluster needs both --ps_hosts and --worker_hosts'),
    (('p:1', 'w:1', None, 0), '--job_name must be one of ps, worker'),
    (('p:1', 'w:1,w:2', 'worker', 2),
     '--task must be in [0, 2): the worker job has 2 task(s); got 2'),
    (('p:99999', 'w:1', 'ps', 0), '--ps_hosts entries must be host:port with a port'),
    ((' , ', 'w:1', 'ps', 0), '--ps_hosts must list host:port entries'),
    ((None, None, 'worker', 0), '--job_name=worker needs --ps_hosts and --worker_hosts'),
])
def test_bad_cluster_flags_are_one_clear_error(args, message):
    with pytest.raises(ValueError, match='^' + re.escape(message)):
        cluster.resolve_role(*args, tf_config=None)


def test_given_replica_counts_must_match_the_cluster():
    role = cluster.resolve_role('p:1', 'w:1,w:2', 'worker', 0, None)
    cluster.check_replica_counts(role, num_ps_tasks=1, worker_replicas=2)
    cluster.check_replica_counts(None, num_ps_tasks=0, worker_replicas=1)
    with pytest.raises(ValueError, match=r'^--worker_replicas=3 disagrees with the cluster, '
                                         r'which has 2'):
        cluster.check_replica_counts(role, num_ps_tasks=None, worker_replicas=3)
    with pytest.raises(ValueError, match=r'^--num_ps_tasks=2 needs a cluster'):
        cluster.check_replica_counts(None, num_ps_tasks=2, worker_replicas=None)


def test_a_worker_sees_only_the_ps_tasks_and_itself():
    role = cluster.resolve_role('p:1', 'w:1,w:2', 'worker', 1, None)
    base = tf.ConfigProto(allow_soft_placement=True, device_filters=['/job:stale'])
    config = cluster.worker_session_config(role, base)
    assert list(config.device_filters) == ['/job:ps', '/job:worker/task:1']
    assert config.allow_soft_placement
    assert list(base.device_filters) == ['/job:stale']


def test_sync_replicas_without_a_cluster_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r'^--sync_replicas needs a cluster of workers'):
        trainer.train(helpers.lenet_config(tmp_path, str(tmp_path), sync_replicas=True))
    with pytest.raises(ValueError, match=r'^--replicas_to_aggregate=2 applies only with '
                                         r'--sync_replicas'):
        trainer.train(helpers.lenet_config(tmp_path, str(tmp_path), replicas_to_aggregate=2))


def test_float16_with_sync_replicas_is_refused(tmp_path):
    role = cluster.resolve_role('127.0.0.1:1', '127.0.0.1:2,127.0.0.1:3', 'worker', 0, None)
    with pytest.raises(ValueError, match=r'^--precision=float16 does not combine with '
                                         r'--sync_replicas'):
        trainer.train(helpers.lenet_config(tmp_path, str(tmp_path), sync_replicas=True,
                                           precision='float16', cluster_role=role))


# --- Clones and logical GPUs -----------------------------------------------------


def _clone_loss_and_gradients(dataset_dir, num_clones, batch_size, initial_values):
    """LeNet's loss and summed gradients when each clone dequeues its own batch."""
    deploy_config = model_deploy.DeploymentConfig(num_clones=num_clones, clone_on_cpu=True)
    network_fn = nets_factory.get_network_fn('lenet', 10, is_training=False)
    with tf.Graph().as_default():
        dataset = dataset_factory.get_dataset('digits', 'train', dataset_dir)
        batches = tf.data.make_one_shot_iterator(input_pipeline.build_dataset(
            dataset, preprocessing_factory.get_preprocessing('lenet', is_training=True), 28,
            batch_size, is_training=True, num_readers=1, seed=5, deterministic=True))

        def clone_fn():
            images, labels = batches.get_next()
            logits, _ = network_fn(images)
            tf.losses.softmax_cross_entropy(tf.one_hot(labels, 10), logits)

        clones = model_deploy.create_clones(deploy_config, clone_fn)
        total_loss, grads_and_vars = model_deploy.optimize_clones(
            clones, tf.train.GradientDescentOptimizer(0.1))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            if initial_values is None:
                initial_values = {v.op.name: sess.run(v) for v in tf.global_variables()}
            for variable in tf.global_variables():
                variable.load(initial_values[variable.op.name], sess)
            loss, grads = sess.run([total_loss, [grad for grad, _ in grads_and_vars]])
    names = [variable.op.name for _, variable in grads_and_vars]
    return loss, dict(zip(names, grads)), initial_values


def test_two_cpu_clones_match_one_clone_on_the_same_images(digits_dir):
    one_loss, one_grads, initial = _clone_loss_and_gradients(digits_dir, 1, 16, None)
    two_loss, two_grads, _ = _clone_loss_and_gradients(digits_dir, 2, 8, initial)
    assert len(one_grads) == 8 and sorted(two_grads) == sorted(one_grads)
    np.testing.assert_allclose(two_loss, one_loss, rtol=1e-5)
    for name, grad in one_grads.items():
        np.testing.assert_allclose(two_grads[name], grad, rtol=1e-3, atol=1e-5)


_CONVOLUTIONS = ('Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput')


def test_gpu_clones_compute_on_their_gpu_with_inputs_and_variables_on_the_cpu(digits_dir,
                                                                              tmp_path):
    # The graph of `--num_clones=2` is built, not run: placement needs no GPU to check.
    config = helpers.lenet_config(tmp_path, digits_dir, num_clones=2)
    with tf.Graph().as_default() as graph:
        build_training_graph(config, is_chief=True)
    devices = {}
    for op in graph.get_operations():
        scope = op.name.split('/')[0] if op.name.startswith('clone_') else 'shared'
        devices.setdefault((scope, op.type), set()).add(op.device)
    for clone in (0, 1):
        for op_type in _CONVOLUTIONS:
            assert devices[('clone_%d' % clone, op_type)] == {'/device:GPU:%d' % clone}
        # Each clone takes its own batch from the one input pipeline, on the CPU.
        assert devices[('clone_%d' % clone, 'IteratorGetNext')] == {'/device:CPU:0'}
    assert devices[('shared', 'VarHandleOp')] == {'/device:CPU:0'}
    assert devices[('shared', 'ResourceApplyMomentum')] == {'/device:CPU:0'}


def test_virtual_gpus_are_harmless_without_a_gpu(digits_dir, tmp_path, caplog):
    has_gpu = bool(tf.config.list_physical_devices('GPU'))
    caplog.set_level('INFO', logger='train')
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=2,
                                                batch_size=8, num_clones=2, virtual_gpus=2))
    assert result.global_step == 2
    ignored = '--virtual_gpus=2 ignored: this machine has no GPU' in caplog.text
    assert ignored == (not has_gpu)


def test_splitting_the_first_gpu_keeps_the_other_settings():
    base = tf.ConfigProto(allow_soft_placement=True)
    config = cluster.split_first_gpu(base, 3, 1024)
    assert config.allow_soft_placement
    assert config.gpu_options.visible_device_list == '0'
    (device,) = config.gpu_options.experimental.virtual_devices
    assert list(device.memory_limit_mb) == [1024.0] * 3
    assert not base.gpu_options.experimental.virtual_devices
    with pytest.raises(ValueError, match=r'^virtual GPUs need a count and a memory size > 0'):
        cluster.split_first_gpu(base, 0, 1024)


# --- Failures of the parameter server ------------------------------------------


class _NotTensorFlow:
    """A listener on a free port of 127.0.0.1 that accepts and stays silent, or answers HTTP."""

    def __init__(self, answers_http):
        self._listener = socket.socket()
        self._listener.bind(('127.0.0.1', 0))
        self._listener.listen(16)
        self.address = '127.0.0.1:%d' % self._listener.getsockname()[1]
        self._answers_http = answers_http
        self._connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            self._connections.append(connection)
            if self._answers_http:
                connection.recv(1024)
                connection.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')

    def close(self):
        for connection in self._connections:
            connection.close()
        self._listener.close()


@pytest.fixture(params=['silent', 'http'])
def not_tensorflow(request):
    listener = _NotTensorFlow(answers_http=request.param == 'http')
    yield listener
    listener.close()


def test_a_worker_whose_ps_port_holds_another_program_says_so(digits_dir, tmp_path,
                                                               not_tensorflow):
    (worker_port,) = _free_ports(1)
    started = time.monotonic()
    result = helpers.run_command(
        'train_image_classifier.py', *LENET_FLAGS, '--dataset_dir=' + digits_dir,
        '--train_dir=%s' % tmp_path, '--ps_hosts=' + not_tensorflow.address,
        '--worker_hosts=127.0.0.1:%d' % worker_port, '--job_name=worker', '--task=0',
        '--cluster_timeout_secs=3', timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'error: the parameter server address %s (ps 0) is held by a program that is not a '
        "TensorFlow server: it accepts connections but does not answer TensorFlow's gRPC; "
        'stop it, or give the ps another port in --ps_hosts or TF_CONFIG'
        % not_tensorflow.address)
    assert time.monotonic() - started < 60  # TensorFlow's start-up, then 3 s


def test_a_ps_whose_port_holds_another_program_says_so(not_tensorflow):
    (worker_port,) = _free_ports(1)
    result = helpers.run_command(
        'train_image_classifier.py', '--ps_hosts=' + not_tensorflow.address,
        '--worker_hosts=127.0.0.1:%d' % worker_port, '--job_name=ps', '--task=0',
        timeout=120, check=False)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'error: could not start the ps server at %s: the port is held by a program that is '
        'not a TensorFlow server; stop it, or choose another port' % not_tensorflow.address)


def _worker_of(ps_address):
    return cluster.ClusterRole({'ps': (ps_address,), 'worker': ('127.0.0.1:1',)}, 'worker', 0)


def test_a_lost_ps_whose_port_another_listener_took_is_named_as_silent():
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen()  # accepts connections, never answers gRPC's greeting
        address = '127.0.0.1:%d' % listener.getsockname()[1]
        assert cluster.explain_lost_cluster(_worker_of(address), 'Graph execution error:\n.') == (
            'the parameter server ps 0 at %s does not answer' % address)


def test_a_ps_that_still_answers_leaves_the_errors_first_line():
    server = tf.train.Server.create_local_server()
    address = server.target[len('grpc://'):]
    assert cluster.explain_lost_cluster(_worker_of(address), 'Graph execution error:\n.') == (
        'Graph execution error:')


def test_a_worker_whose_ps_dies_names_it(digits_dir, tmp_path, local_cluster):
    args = (*LENET_FLAGS, '--dataset_dir=' + digits_dir, '--train_dir=%s' % (tmp_path / 'run'),
            '--max_number_of_steps=100000', '--cluster_timeout_secs=60')
    local_cluster.start('ps', 0)
    local_cluster.start('worker', 0, *args)
    helpers.wait_for(lambda: len(_logged_steps(local_cluster.log('worker0'))) >= 2, 120,
                     'the worker to train')
    local_cluster.kill('ps0')
    assert local_cluster.wait('worker0', 60) == 1
    log = local_cluster.log('worker0')
    assert 'Traceback' not in log
    assert log.strip().splitlines()[-1] == (
        'error: lost the cluster: the parameter server ps 0 at %s does not answer; restart '
        'what stopped, then this worker (the chief resumes from its last checkpoint)'
        % local_cluster.ps_hosts)
