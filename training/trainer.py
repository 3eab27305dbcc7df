"""The training loop of train_image_classifier.py, as a library.

`train(config)` builds the graph (input pipeline -> clones of the net ->
losses -> optimizer), restores or initialises the variables, then steps
until `max_number_of_steps`, a signal, or an error. It never loses work:

* a `train_dir` holding a checkpoint is resumed (the global step carries on);
* SIGINT/SIGTERM finish the current step, save a checkpoint and return;
* checkpoints are saved every `save_interval_secs`, so SIGKILL loses at most
  one interval (TensorFlow writes the checkpoint index and the `checkpoint`
  state file only once the data is complete);
* a NaN or infinite loss stops training without saving, so the last good
  checkpoint stays the newest one;
* a fine-tuning checkpoint whose variables do not fit is refused before the
  first step, with the `--checkpoint_exclude_scopes` value that would fit.

Given a cluster (`TrainConfig.cluster_role`, see training/cluster.py), it is one
worker of between-graph replication: the variables live on the parameter
servers, each worker trains on its own batches, and only the chief initialises
or restores the variables and writes checkpoints and summaries. The other
workers wait, at most `cluster_timeout_secs`, for the chief to make the
variables ready, so a worker that dies can be restarted and rejoins. Updates
are asynchronous unless `sync_replicas`, where the chief applies the average of
`replicas_to_aggregate` workers' gradients per step.
"""

import contextlib
import dataclasses
import datetime
import functools
import logging
import os
import signal
import threading
import time

import numpy as np
import tensorflow.compat.v1 as tf

from datasets import dataset_factory, input_pipeline
from deployment import model_deploy
from nets import nets_factory
from preprocessing import preprocessing_factory
from slim_compat import slim
from training import checkpoints, cluster, optimization, session_config

log = logging.getLogger('train')

AUX_LOGITS_WEIGHT = 0.4
_LABEL_CHECK = 'label outside [0, num_classes)'


class TrainingError(Exception):
    """A problem the user can act on; its message is one line."""


@dataclasses.dataclass
class TrainConfig:
    """Everything one training run needs; the defaults are the original trainer's."""
    train_dir: str
    dataset_dir: str
    dataset_name: str = 'imagenet'
    dataset_split_name: str = 'train'
    model_name: str = 'inception_v3'
    preprocessing_name: str | None = None
    labels_offset: int = 0
    use_grayscale: bool = False
    train_image_size: int | None = None
    batch_size: int = 32
    num_readers: int = 4
    num_preprocessing_threads: int = 4
    weight_decay: float = 0.00004
    label_smoothing: float = 0.0
    optimizer: str = 'rmsprop'
    optimizer_params: dict = dataclasses.field(default_factory=dict)
    learning_rate: float = 0.01
    learning_rate_decay_type: str = 'exponential'
    learning_rate_decay_factor: float = 0.94
    num_epochs_per_decay: float = 2.0
    end_learning_rate: float = 0.0001
    warmup_epochs: float = 0.0
    clip_gradient_norm: float = 0.0
    moving_average_decay: float | None = None
    max_number_of_steps: int | None = None
    log_every_n_steps: int = 10
    save_interval_secs: int = 600
    save_summaries_secs: int = 600
    summarize_activations: bool = False
    checkpoint_path: str | None = None
    checkpoint_exclude_scopes: list[str] = dataclasses.field(default_factory=list)
    trainable_scopes: list[str] = dataclasses.field(default_factory=list)
    ignore_missing_vars: bool = False
    num_clones: int = 1
    clone_on_cpu: bool = False
    master: str = ''
    seed: int | None = None
    deterministic: bool = False
    precision: str = 'float32'
    xla: bool = False
    cluster_role: cluster.ClusterRole | None = None  # None trains in this process alone
    sync_replicas: bool = False
    replicas_to_aggregate: int | None = None  # with sync_replicas; None: every worker
    cluster_timeout_secs: float = 300.0
    virtual_gpus: int = 0  # split the first GPU into this many; 0 leaves it whole
    virtual_gpu_memory_mb: int = 2048


@dataclasses.dataclass
class TrainResult:
    global_step: int
    checkpoint: str | None  # None on a worker other than the chief
    stopped_by: str  # 'max_number_of_steps' or the signal's name


def train(config: TrainConfig) -> TrainResult:
    """Trains the configured net and returns where it stopped.

    Raises:
      TrainingError: for bad data, a diverging loss, a fine-tuning checkpoint that
        does not fit the net, a chief that does not make the variables ready in
        time, or a cluster lost during training.
      cluster.ClusterError: if this worker's server cannot start or a parameter
        server cannot be reached within `cluster_timeout_secs`.
      ValueError: for an unknown dataset, split or network (from the factories),
        or inconsistent distribution settings.
    """
    _check_distribution(config)
    role = config.cluster_role
    is_chief = role is None or role.is_chief
    if is_chief:
        tf.gfile.MakeDirs(config.train_dir)
    session_settings = _session_settings(config)
    master, server = config.master, None  # the server serves until train() returns
    if role is not None:
        server = cluster.start_server(role, session_settings)
        master = server.target
        log.info('Training as %s%s', role.describe(), ' (chief)' if is_chief else '')
    graph = tf.Graph()
    with graph.as_default():
        if config.seed is not None:
            tf.set_random_seed(config.seed)
        model = _build_training_graph(config, is_chief)
        saver = tf.train.Saver(max_to_keep=5, keep_checkpoint_every_n_hours=10000.0)
        graph.finalize()
        if role is not None:
            cluster.wait_for_parameter_servers(role, config.cluster_timeout_secs)
        open_session = _chief_session if is_chief else _worker_session
        with open_session(master, session_settings, saver, model, config) as sess:
            return _run_loop(sess, saver, model, config, is_chief)


def _check_distribution(config):
    role = config.cluster_role
    if role is not None and role.is_ps:
        raise ValueError('train() runs a worker; %s is a parameter server: run it with '
                         'cluster.serve' % role.describe())
    if role is not None and config.master:
        raise ValueError('--master=%s cannot be combined with a cluster: the cluster gives '
                         'the master' % config.master)
    if config.sync_replicas and role is None:
        raise ValueError('--sync_replicas needs a cluster of workers: give --ps_hosts and '
                         '--worker_hosts, or TF_CONFIG')
    if config.sync_replicas and config.precision == 'float16':
        raise ValueError('--precision=float16 does not combine with --sync_replicas: the '
                         'aggregated update cannot skip a step whose gradients overflow; use '
                         'float32 or bf16, or asynchronous updates')
    if config.replicas_to_aggregate is not None and not config.sync_replicas:
        raise ValueError('--replicas_to_aggregate=%d applies only with --sync_replicas'
                         % config.replicas_to_aggregate)
    if config.replicas_to_aggregate is not None and config.replicas_to_aggregate < 1:
        raise ValueError('--replicas_to_aggregate must be > 0; got %d'
                         % config.replicas_to_aggregate)
    if config.cluster_timeout_secs <= 0:
        raise ValueError('--cluster_timeout_secs must be > 0; got %g'
                         % config.cluster_timeout_secs)
    if config.virtual_gpus < 0:
        raise ValueError('--virtual_gpus must be >= 0; got %d' % config.virtual_gpus)


def _session_settings(config):
    """The ConfigProto of this worker's server and sessions."""
    settings = session_config.make_session_config(config.precision, config.xla)
    if config.virtual_gpus:
        if tf.config.list_physical_devices('GPU'):
            settings = cluster.split_first_gpu(settings, config.virtual_gpus,
                                               config.virtual_gpu_memory_mb)
        else:
            log.info('--virtual_gpus=%d ignored: this machine has no GPU', config.virtual_gpus)
    if config.cluster_role is not None:
        settings = cluster.worker_session_config(config.cluster_role, settings)
    return settings


def _replicas_to_aggregate(config):
    if not config.sync_replicas:
        return 1
    return config.replicas_to_aggregate or config.cluster_role.num_workers


@dataclasses.dataclass
class _SyncOps:
    """The ops of SyncReplicasOptimizer that the trainer runs itself."""
    chief_init_op: tf.Operation  # the chief, after initialising or restoring
    init_tokens_op: tf.Operation  # the chief, to let the first step start
    update_op: tf.Operation  # the chief, in a loop: apply averaged gradients, hand out tokens
    release_tokens_op: tf.Operation  # the chief, at the end: let waiting workers finish
    local_step_init_op: tf.Operation  # the other workers, once the variables are ready


@dataclasses.dataclass
class _Readiness:
    """What a worker checks before training on variables that the chief initialises."""
    ready_op: tf.Tensor  # the names of the variables not initialised yet
    ready_for_local_init_op: tf.Tensor  # the same, for the global variables only


@dataclasses.dataclass
class _TrainingGraph:
    train_op: tf.Tensor
    global_step: tf.Variable
    step_after_train: tf.Tensor  # the global step once train_op has run
    learning_rate: tf.Tensor
    summary_op: tf.Tensor
    init_op: tf.Operation
    local_init_op: tf.Operation
    readiness: '_Readiness | None'  # on a worker other than the chief
    sync: _SyncOps | None
    fine_tune: 'checkpoints.FineTuneRestore | None'
    dataset: slim.dataset.Dataset
    images_per_step: int


def _deployment(config):
    role = config.cluster_role
    if role is None:
        return model_deploy.DeploymentConfig(num_clones=config.num_clones,
                                             clone_on_cpu=config.clone_on_cpu)
    return model_deploy.DeploymentConfig(
        num_clones=config.num_clones, clone_on_cpu=config.clone_on_cpu,
        replica_id=role.replica_id, num_replicas=role.num_workers,
        num_ps_tasks=role.num_ps_tasks, worker_job_name=role.job_name,
        ps_job_name=cluster.PS_JOB)


def _build_training_graph(config: TrainConfig, is_chief: bool) -> _TrainingGraph:
    dataset = dataset_factory.get_dataset(config.dataset_name, config.dataset_split_name,
                                          config.dataset_dir)
    num_classes = dataset.num_classes - config.labels_offset
    deploy_config = _deployment(config)
    network_fn = nets_factory.get_network_fn(config.model_name, num_classes,
                                             weight_decay=config.weight_decay, is_training=True)
    with tf.device(deploy_config.variables_device()):
        global_step = tf.train.get_or_create_global_step()
    with tf.device(deploy_config.inputs_device()):
        batches = _input_batches(config, dataset, network_fn.default_image_size,
                                 deploy_config.replica_id)

    def clone_fn():
        images, labels = batches.get_next()
        labels = _checked_labels(labels, num_classes)
        logits, end_points = network_fn(images)
        _add_losses(logits, end_points, labels, num_classes, config.label_smoothing)
        return end_points

    clones = model_deploy.create_clones(deploy_config, clone_fn)
    first_clone_scope = clones[0].scope
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS, first_clone_scope)
    _add_model_summaries(clones[0].outputs, config.summarize_activations)

    averages = None
    if config.moving_average_decay:
        averages = tf.train.ExponentialMovingAverage(config.moving_average_decay, global_step)
        if not config.sync_replicas:
            update_ops.append(averages.apply(slim.get_model_variables()))

    with tf.device(deploy_config.optimizer_device()):
        learning_rate = _learning_rate(config, dataset.num_samples, global_step)
        optimizer = optimization.make_optimizer(config.optimizer, learning_rate,
                                                **config.optimizer_params)
        if config.precision == 'float16':
            optimizer = optimization.with_loss_scaling(optimizer)
            tf.summary.scalar('loss_scale', optimization.loss_scale(optimizer))
        if config.sync_replicas:
            # As in the original trainer, the averages move with each aggregated
            # update, which the chief alone applies.
            optimizer = tf.train.SyncReplicasOptimizer(
                optimizer, replicas_to_aggregate=_replicas_to_aggregate(config),
                total_num_replicas=config.cluster_role.num_workers, variable_averages=averages,
                variables_to_average=slim.get_model_variables() if averages else None)
        tf.summary.scalar('learning_rate', learning_rate)

    total_loss, gradients = model_deploy.optimize_clones(
        clones, optimizer, var_list=_variables_to_train(config.trainable_scopes))
    if config.clip_gradient_norm > 0:
        gradients = _clip_by_global_norm(gradients, config.clip_gradient_norm)
    tf.summary.scalar('total_loss', total_loss)
    for loss in tf.get_collection(tf.GraphKeys.LOSSES, first_clone_scope):
        tf.summary.scalar('losses/%s' % loss.op.name, loss)

    apply_op = optimizer.apply_gradients(gradients, global_step=global_step)
    with tf.control_dependencies([apply_op, *update_ops]):
        train_op = tf.identity(total_loss, name='train_op')
    with tf.control_dependencies([train_op]):
        step_after_train = global_step.read_value()

    fine_tune = None
    if is_chief and config.checkpoint_path and not tf.train.latest_checkpoint(config.train_dir):
        try:
            fine_tune = checkpoints.FineTuneRestore(
                config.checkpoint_path, config.checkpoint_exclude_scopes,
                config.ignore_missing_vars)
        except checkpoints.CheckpointMismatch as error:
            raise TrainingError(str(error)) from None
    return _TrainingGraph(
        train_op=train_op, global_step=global_step, step_after_train=step_after_train,
        learning_rate=learning_rate,
        summary_op=_merged_summaries(clones),
        init_op=tf.group(tf.global_variables_initializer(), tf.local_variables_initializer()),
        local_init_op=tf.local_variables_initializer(),
        readiness=None if is_chief else _readiness(),
        sync=_sync_ops(optimizer, config) if config.sync_replicas else None,
        fine_tune=fine_tune, dataset=dataset,
        images_per_step=config.batch_size * config.num_clones)


def _readiness():
    readiness = _Readiness(
        ready_op=tf.report_uninitialized_variables(),
        ready_for_local_init_op=tf.report_uninitialized_variables(tf.global_variables()))
    # A worker that gives up before the chief is ready never runs ready_op; TensorFlow
    # would then warn about it at exit, after the worker's error message.
    readiness.ready_op.mark_used()
    readiness.ready_for_local_init_op.mark_used()
    return readiness


def _sync_ops(optimizer, config):
    # The optimizer builds its own readiness check for hooks the trainer does not use;
    # _Readiness covers it.
    optimizer.ready_for_local_init_op.mark_used()
    tokens_per_step = max(config.cluster_role.num_workers, _replicas_to_aggregate(config))
    return _SyncOps(
        chief_init_op=optimizer.chief_init_op,
        init_tokens_op=optimizer.get_init_tokens_op(),
        update_op=optimizer.get_chief_queue_runner().enqueue_ops[0],
        release_tokens_op=optimizer.get_init_tokens_op(num_tokens=tokens_per_step),
        local_step_init_op=optimizer.local_step_init_op)


def _input_batches(config, dataset, default_image_size, replica_id):
    # Each worker of a cluster shuffles differently, so they train on different batches.
    seed = None if config.seed is None else config.seed + replica_id
    batches = training_batches(
        dataset, config.preprocessing_name or config.model_name,
        config.train_image_size or default_image_size, config.batch_size,
        use_grayscale=config.use_grayscale, num_readers=config.num_readers,
        num_parallel_calls=config.num_preprocessing_threads, seed=seed,
        deterministic=config.deterministic, labels_offset=config.labels_offset)
    return tf.data.make_one_shot_iterator(batches)


def training_batches(dataset: slim.dataset.Dataset, preprocessing_name: str, image_size: int,
                     batch_size: int, use_grayscale: bool = False,
                     **pipeline_args) -> tf.data.Dataset:
    """The trainer's input: shuffled, preprocessed batches repeated without end.

    Where the preprocessing's random crop can be drawn before decoding
    (`preprocessing_factory.get_training_crop_window`), a JPEG is decoded
    only inside it and the preprocessing crops no further.

    Args:
      dataset: a Dataset from `dataset_factory.get_dataset`.
      preprocessing_name: a preprocessing or network name.
      image_size: height and width of the images.
      batch_size: examples per batch.
      use_grayscale: 1-channel images whatever the network.
      **pipeline_args: further arguments of `input_pipeline.build_dataset`
        (num_readers, num_parallel_calls, seed, deterministic, labels_offset).
    """
    preprocess_fn = preprocessing_factory.get_preprocessing(
        preprocessing_name, is_training=True, use_grayscale=use_grayscale)
    crop_window_fn = preprocessing_factory.get_training_crop_window(preprocessing_name)
    if crop_window_fn is not None:
        preprocess_fn = functools.partial(preprocess_fn, crop_image=False)
    return input_pipeline.build_dataset(dataset, preprocess_fn, image_size, batch_size,
                                        is_training=True, crop_window_fn=crop_window_fn,
                                        **pipeline_args)


def _checked_labels(labels, num_classes):
    """Labels, with an assertion that stops training on one outside the classes."""
    check = tf.debugging.Assert(
        tf.reduce_all((labels >= 0) & (labels < num_classes)),
        [_LABEL_CHECK, labels], summarize=8, name='label_check')
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def _add_losses(logits, end_points, labels, num_classes, label_smoothing):
    """Softmax cross-entropy on the logits, and on the auxiliary head weighted 0.4."""
    one_hot = tf.one_hot(labels, num_classes)
    if 'AuxLogits' in end_points:
        tf.losses.softmax_cross_entropy(one_hot, end_points['AuxLogits'],
                                        label_smoothing=label_smoothing,
                                        weights=AUX_LOGITS_WEIGHT, scope='aux_loss')
    tf.losses.softmax_cross_entropy(one_hot, logits, label_smoothing=label_smoothing)


def _add_model_summaries(end_points, summarize_activations):
    """Adds the regularization loss and, if asked, activation summaries to SUMMARIES."""
    tf.summary.scalar('losses/regularization',
                      tf.add_n(tf.losses.get_regularization_losses() or [tf.constant(0.0)]))
    if summarize_activations:
        for name, tensor in end_points.items():
            tf.summary.histogram('activations/' + name, tensor)
            tf.summary.scalar('sparsity/' + name, tf.nn.zero_fraction(tensor))


def _merged_summaries(clones):
    """Merges SUMMARIES, leaving out the copies made by every clone but the first."""
    other_clones = tuple(clone.scope for clone in clones[1:])
    kept = [summary for summary in tf.get_collection(tf.GraphKeys.SUMMARIES)
            if not (other_clones and summary.op.name.startswith(other_clones))]
    return tf.summary.merge(kept)


def _learning_rate(config, num_samples, global_step):
    # A synchronous step applies the batches of replicas_to_aggregate workers.
    images_per_step = config.batch_size * config.num_clones * _replicas_to_aggregate(config)
    decay_steps = optimization.decay_steps_per(num_samples, images_per_step,
                                               config.num_epochs_per_decay)
    warmup_steps = (optimization.decay_steps_per(num_samples, images_per_step,
                                                 config.warmup_epochs)
                    if config.warmup_epochs else 0)
    return optimization.make_learning_rate(
        config.learning_rate_decay_type, config.learning_rate, global_step,
        decay_steps=decay_steps, decay_factor=config.learning_rate_decay_factor,
        end_learning_rate=config.end_learning_rate, total_steps=config.max_number_of_steps,
        warmup_steps=warmup_steps)


def _variables_to_train(trainable_scopes):
    if not trainable_scopes:
        return tf.trainable_variables()
    variables = []
    for scope in trainable_scopes:
        found = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope)
        if not found:
            raise TrainingError('--trainable_scopes names %r, which holds no trainable variable'
                                % scope)
        variables.extend(found)
    return variables


def _clip_by_global_norm(gradients, clip_norm):
    grads, variables = zip(*gradients)
    clipped, _ = tf.clip_by_global_norm(grads, clip_norm)
    return list(zip(clipped, variables))


@contextlib.contextmanager
def _chief_session(master, settings, saver, model, config):
    """A session whose variables this process initialised or restored.

    With sync_replicas it also runs the aggregated updates in a thread, which
    ends when the session closes.
    """
    sess = tf.Session(master, config=settings)
    updates = None
    try:
        _restore_or_initialize(sess, saver, model, config)
        if model.sync is not None:
            sess.run(model.sync.chief_init_op)
            sess.run(model.sync.init_tokens_op)
            updates = _SyncUpdates(sess, model.sync.update_op)
        yield sess
    finally:
        if updates is not None:
            updates.stopping.set()
        sess.close()
        if updates is not None:
            updates.join()


@contextlib.contextmanager
def _worker_session(master, settings, saver, model, config):
    """A session on variables that the chief made ready; waits for it at most the timeout."""
    del saver  # the chief alone restores and saves
    role = config.cluster_role
    manager = tf.train.SessionManager(
        local_init_op=model.local_init_op, ready_op=model.readiness.ready_op,
        ready_for_local_init_op=model.readiness.ready_for_local_init_op, recovery_wait_secs=1)
    log.info('Waiting for the chief (%s) to initialise the variables', role.chief_address)
    try:
        sess = manager.wait_for_session(master, settings,
                                        max_wait_secs=config.cluster_timeout_secs)
    except tf.errors.DeadlineExceededError:
        raise TrainingError(
            '%s waited %g s for the chief at %s to initialise the variables; start the chief '
            '(task 0) or raise --cluster_timeout_secs'
            % (role.describe(), config.cluster_timeout_secs, role.chief_address)) from None
    try:
        if model.sync is not None:
            sess.run(model.sync.local_step_init_op)
        yield sess
    finally:
        sess.close()


class _SyncUpdates:
    """Runs the chief's aggregated updates of sync_replicas in a thread.

    Each run waits for replicas_to_aggregate fresh gradients, applies their
    average, increments the global step and hands every worker a token to start
    its next step. The thread ends when the session closes and cancels the run
    in flight; `stopping` tells that apart from a failure.
    """

    def __init__(self, sess, update_op):
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sess, update_op),
                                        name='sync_updates', daemon=True)
        self._thread.start()

    def _run(self, sess, update_op):
        while not self.stopping.is_set():
            try:
                sess.run(update_op)
            except (tf.errors.OpError, RuntimeError) as error:
                if not self.stopping.is_set():
                    log.error('Aggregated updates stopped: %s',
                              getattr(error, 'message', str(error)).splitlines()[0])
                return

    def join(self):
        self._thread.join(timeout=30)


def _restore_or_initialize(sess, saver, model, config):
    latest = tf.train.latest_checkpoint(config.train_dir)
    if latest:
        _check_resumable(latest, sess.graph)
        saver.restore(sess, latest)
        sess.run(model.local_init_op)
        step = sess.run(model.global_step)
        log.info('Resuming from %s at step %d', latest, step)
        if config.checkpoint_path:
            log.info('Ignoring --checkpoint_path=%s: %s already holds a checkpoint',
                     config.checkpoint_path, config.train_dir)
        return
    sess.run(model.init_op)
    if model.fine_tune is not None:
        model.fine_tune.restore(sess)
        log.info('Fine-tuning from %s (%d variables restored)', model.fine_tune.path,
                 model.fine_tune.num_restored)


def _check_resumable(checkpoint, graph):
    """Refuses a train_dir checkpoint written by a different run set-up."""
    shapes = tf.train.NewCheckpointReader(checkpoint).get_variable_to_shape_map()
    with graph.as_default():
        variables = tf.global_variables()
    different = [v.op.name for v in variables
                 if shapes.get(v.op.name, None) != v.shape.as_list()]
    if different:
        raise TrainingError(
            'cannot resume from %s: it does not match this run (%d variables missing or of '
            'another shape, e.g. %s); resume with the flags it was trained with (--model_name, '
            '--optimizer, --moving_average_decay, ...) or choose a new --train_dir'
            % (checkpoint, len(different), ', '.join(different[:3])))


class _StopSignals:
    """Turns SIGINT/SIGTERM into a request to save and stop after the current step."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc_info):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _run_loop(sess, saver, model, config, is_chief) -> TrainResult:
    records = _Records(sess, saver, config) if is_chief else _NoRecords()
    step = sess.run(model.global_step)
    window = _Throughput(model.images_per_step)
    stopped_by = 'max_number_of_steps'
    with _StopSignals() as signals:
        while config.max_number_of_steps is None or step < config.max_number_of_steps:
            final_step = (config.max_number_of_steps is not None
                          and step + 1 >= config.max_number_of_steps)
            write_summary = records.summary_due(final_step or signals.received is not None)
            fetches = [model.train_op, model.step_after_train, model.learning_rate]
            if write_summary:
                fetches.append(model.summary_op)
            results = _run_step(sess, fetches, model.dataset, config.cluster_role)
            loss, step, learning_rate = results[:3]
            window.add_step()
            if not np.isfinite(loss):
                raise TrainingError(
                    'loss is %s at step %d: training stopped without saving; the last good '
                    'checkpoint (%s) is kept. Lower --learning_rate or set --clip_gradient_norm.'
                    % (loss, step, records.last_good_checkpoint()))
            if write_summary:
                records.write_summaries(results[3], window, step)
            if step % config.log_every_n_steps == 0:
                _log_progress(step, loss, learning_rate, window, config.max_number_of_steps)
            if signals.received:
                stopped_by = signals.received
                log.info('%s received: %s at step %d and stopping', stopped_by,
                         records.final_action, step)
                break
            records.save_if_due(step)
        checkpoint = records.finish(step, window)
    if model.sync is not None and is_chief:
        # Workers waiting for an aggregated update that will not come get a token:
        # they see the final global step, or a stop signal of their own, and stop;
        # others push one more gradient and wait for the chief to come back.
        sess.run(model.sync.release_tokens_op)
    log.info('Stopped at step %d (%s); checkpoint %s', step, stopped_by,
             checkpoint or 'written by the chief')
    return TrainResult(global_step=int(step), checkpoint=checkpoint, stopped_by=stopped_by)


class _Records:
    """The chief's checkpoints and summaries, each written when its interval is due."""

    final_action = 'saving a checkpoint'

    def __init__(self, sess, saver, config):
        self._sess = sess
        self._saver = saver
        self._writer = tf.summary.FileWriter(config.train_dir, sess.graph)
        self._prefix = os.path.join(config.train_dir, 'model.ckpt')
        self._save_interval_secs = config.save_interval_secs
        self._summaries_interval_secs = config.save_summaries_secs
        self._last_checkpoint = tf.train.latest_checkpoint(config.train_dir)
        self._last_save = time.monotonic()
        self._last_summary = None  # the first step writes summaries

    def last_good_checkpoint(self) -> str:
        return self._last_checkpoint or 'none yet'

    def summary_due(self, forced: bool) -> bool:
        return (forced or self._last_summary is None
                or time.monotonic() - self._last_summary >= self._summaries_interval_secs)

    def write_summaries(self, summary, window, step):
        self._writer.add_summary(summary, step)
        self._writer.add_summary(window.summary(), step)
        self._last_summary = time.monotonic()

    def save_if_due(self, step):
        if time.monotonic() - self._last_save >= self._save_interval_secs:
            self._last_checkpoint = self._saver.save(self._sess, self._prefix, global_step=step)
            self._last_save = time.monotonic()

    def finish(self, step, window) -> str:
        """Saves the final step unless already saved; returns the last checkpoint."""
        if self._last_checkpoint is None or not self._last_checkpoint.endswith('-%d' % step):
            self._last_checkpoint = self._saver.save(self._sess, self._prefix, global_step=step)
        self._writer.add_summary(window.summary(), step)
        self._writer.close()
        return self._last_checkpoint


class _NoRecords:
    """What a worker other than the chief writes: nothing."""

    final_action = 'leaving the checkpoint to the chief'

    def last_good_checkpoint(self) -> str:
        return "the chief's latest"

    def summary_due(self, forced: bool) -> bool:
        del forced
        return False

    def write_summaries(self, summary, window, step):
        del summary, window, step

    def save_if_due(self, step):
        del step

    def finish(self, step, window) -> None:
        del step, window


def _run_step(sess, fetches, dataset, role):
    try:
        return sess.run(fetches)
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if role is None:
            raise
        raise TrainingError(
            'lost the cluster during a step: %s; restart what stopped, then this worker (the '
            'chief resumes from its last checkpoint)'
            % cluster.explain_lost_cluster(role, error.message)) from None
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
        if _LABEL_CHECK in error.message:
            raise TrainingError(
                'a label is outside [0, num_classes) for this dataset; check --labels_offset '
                'and --dataset_name (%s)' % error.message.splitlines()[0]) from None
        explained = input_pipeline.explain_data_error(dataset, error)
        if explained is None:
            raise
        raise explained from error


class _Throughput:
    """Images/sec over the steps since the last log line."""

    def __init__(self, images_per_step):
        self.images_per_step = images_per_step
        self._start = time.monotonic()
        self._steps = 0
        self.images_per_sec = 0.0

    def add_step(self):
        self._steps += 1

    def rate(self):
        elapsed = time.monotonic() - self._start
        if self._steps and elapsed > 0:
            self.images_per_sec = self._steps * self.images_per_step / elapsed
        self._start, self._steps = time.monotonic(), 0
        return self.images_per_sec

    def summary(self):
        return tf.Summary(value=[tf.Summary.Value(tag='images_per_sec',
                                                  simple_value=self.images_per_sec)])


def _log_progress(step, loss, learning_rate, window, max_steps):
    rate = window.rate()
    message = 'step %d: loss %.4f, learning rate %.6g, %.1f images/sec' % (
        step, loss, learning_rate, rate)
    if max_steps and rate > 0:
        seconds_left = (max_steps - step) * window.images_per_step / rate
        message += ', %s left' % datetime.timedelta(seconds=int(seconds_left))
    log.info(message)
