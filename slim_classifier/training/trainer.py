"""The trainer of train_image_classifier.py, as a library: `train(config)`.

It reads top to bottom: check the configuration, record it, build the graph
(training/graph.py), open a session that initialises, resumes or fine-tunes
the variables (training/sessions.py), and step (training/loop.py). It never
loses work:

* a `train_dir` holding a checkpoint is resumed (the global step carries on);
* SIGINT/SIGTERM finish the current step, save a checkpoint and return;
* checkpoints are saved every `save_interval_secs`, so SIGKILL loses at most
  one interval (TensorFlow writes the checkpoint index and the `checkpoint`
  state file only once the data is complete);
* a NaN or infinite loss stops training without saving, so the last good
  checkpoint stays the newest one;
* a fine-tuning checkpoint whose variables do not fit is refused before the
  first step, with the `--checkpoint_exclude_scopes` value that would fit.

With `eval_every_n_steps`, the chief evaluates a checkpoint on a held-out split
every N steps and at the end, keeps the best one in `<train_dir>/best/`, and
can stop early or lower a reduce_on_plateau learning rate
(training/periodic_eval.py).

Given a cluster (`TrainConfig.cluster_role`, see training/cluster.py), it is one
worker of between-graph replication: the variables live on the parameter
servers, each worker trains on its own batches, and only the chief initialises
or restores the variables and writes checkpoints and summaries. The other
workers wait, at most `cluster_timeout_secs`, for the chief to make the
variables ready, so a worker that dies can be restarted and rejoins. Updates
are asynchronous unless `sync_replicas` (training/sync_replicas.py).
"""

import contextlib
import logging
import os
import shutil

import tensorflow.compat.v1 as tf
from tensorflow.python.framework import config as tf_config

from slim_classifier.errors import TrainingError
from slim_classifier.runtime import checkpoints, files, run_config, session_config
from slim_classifier.training import cluster, periodic_eval, sessions
from slim_classifier.training.config import TrainConfig
from slim_classifier.training.graph import build_training_graph
from slim_classifier.training.loop import METRICS_FILENAME, TrainResult, run_loop

__all__ = ['TrainConfig', 'TrainResult', 'TrainingError', 'train']

log = logging.getLogger('train')


def train(config: TrainConfig) -> TrainResult:
    """Trains the configured net and returns where it stopped.

    Raises:
      TrainingError: for bad data, a diverging loss, a checkpoint that does not
        fit the net, a chief that does not make the variables ready in time,
        or a cluster lost during training.
      cluster.ClusterError: if this worker's server cannot start or a parameter
        server cannot be reached within `cluster_timeout_secs`.
      ValueError: for an unknown dataset, split or network (from the factories),
        or inconsistent distribution settings.
    """
    _check_distribution(config)
    _check_evaluation(config)
    role = config.cluster_role
    is_chief = role is None or role.is_chief
    created = is_chief and not tf.gfile.Exists(config.train_dir)
    if is_chief:
        _prepare_train_dir(config.train_dir)
    try:
        return _train(config, role, is_chief)
    except BaseException:
        if created:
            _remove_unfinished_run(config.train_dir)
        raise


def _prepare_train_dir(train_dir: str) -> None:
    """Creates train_dir, proves it writable, and removes a save's leftovers, before any step.

    A directory that cannot be written would otherwise be found out at the
    first checkpoint, after the steps before it were computed. The temporary
    files of a save that did not complete are removed; nothing else is.

    Raises:
      TrainingError: if train_dir is a file or cannot be written.
    """
    if '://' in train_dir:  # remote file systems: TensorFlow reports problems itself
        tf.gfile.MakeDirs(train_dir)
        return
    if os.path.exists(train_dir) and not os.path.isdir(train_dir):
        raise TrainingError('--train_dir %s is a file; it must be a directory for the '
                            'checkpoints' % train_dir)
    probe = os.path.join(train_dir, '.writable-%d' % os.getpid())
    try:
        os.makedirs(train_dir, exist_ok=True)
        with open(probe, 'x'):
            pass
        os.remove(probe)
    except OSError as error:
        raise TrainingError('--train_dir %s cannot be written (%s); choose a directory this '
                            'user can write' % (train_dir, error.strerror or error)) from None
    checkpoints.remove_save_leftovers(train_dir)
    files.remove_stale_temporaries(train_dir, (run_config.RUN_CONFIG_FILENAME,))


def _remove_unfinished_run(train_dir: str) -> None:
    """Removes a train_dir this run created, when the run failed before any checkpoint.

    Only the files the trainer writes are removed, and the directory only if
    that leaves it empty: a failed first run leaves no empty run behind.
    """
    if not os.path.isdir(train_dir) or checkpoints.checkpoints_in(train_dir):
        return
    for name in os.listdir(train_dir):
        if name in (run_config.RUN_CONFIG_FILENAME, METRICS_FILENAME,
                    periodic_eval.EVAL_METRICS_FILENAME) or name.startswith(
                'events.out.tfevents.'):
            os.remove(os.path.join(train_dir, name))
        elif name == periodic_eval.EVAL_DIRNAME:
            shutil.rmtree(os.path.join(train_dir, name))
    if not os.listdir(train_dir):
        os.rmdir(train_dir)


def _train(config: TrainConfig, role, is_chief: bool) -> TrainResult:
    settings = _session_settings(config)
    master, server = config.master, None  # the server serves until train() returns
    if role is not None:
        server = cluster.start_server(role, settings)
        master = server.target
        log.info('Training as %s%s', role.describe(), ' (chief)' if is_chief else '')
    graph = tf.Graph()
    with graph.as_default():
        if config.seed is not None:
            tf.set_random_seed(config.seed)
        model = build_training_graph(config, is_chief)
        if is_chief and config.deterministic:
            _check_saved_input_state(config.train_dir)
        if is_chief:
            run_config.write_run_config(config.train_dir, config,
                                        model.dataset.num_classes - config.labels_offset)
        saver = tf.train.Saver(max_to_keep=config.max_to_keep,
                               keep_checkpoint_every_n_hours=10000.0)
        graph.finalize()
        if role is not None:
            cluster.wait_for_parameter_servers(role, config.cluster_timeout_secs)
        open_session = sessions.chief_session if is_chief else sessions.worker_session
        # The evaluation's graph is built first: op determinism refuses to build unseeded
        # random ops, such as its variables' initialisers (never run, as it restores them).
        with _evaluation(config, model, is_chief) as evaluation, _op_determinism(
                config.deterministic), open_session(master, settings, saver, model,
                                                    config) as sess:
            return run_loop(sess, saver, model, config, is_chief, evaluation)


@contextlib.contextmanager
def _op_determinism(deterministic: bool):
    """TensorFlow's op determinism for the block, with --deterministic, unless already on."""
    if not deterministic or tf_config.is_op_determinism_enabled():
        yield
        return
    tf_config.enable_op_determinism()
    try:
        yield
    finally:
        tf_config.disable_op_determinism()


def _check_saved_input_state(train_dir: str) -> None:
    """Refuses to resume --deterministic from a checkpoint without the input pipeline's state.

    Such a checkpoint was written by a run without --deterministic: its batches
    cannot be continued exactly.
    """
    latest = checkpoints.latest_intact(train_dir)
    if latest is None:
        return
    saved = tf.train.NewCheckpointReader(latest).get_variable_to_shape_map()
    missing = [spec.name for saveable in tf.get_collection(tf.GraphKeys.SAVEABLE_OBJECTS)
               for spec in saveable.specs if spec.name not in saved]
    if missing:
        raise TrainingError('cannot resume --deterministic from %s: it holds no input pipeline '
                            'state (%s), as it was trained without --deterministic; resume '
                            'without it or choose a new --train_dir' % (latest, missing[0]))


def _evaluation(config: TrainConfig, model, is_chief: bool):
    """The chief's evaluations while training, as a context; a null context without them."""
    if config.eval_every_n_steps is None or not is_chief:
        return contextlib.nullcontext()
    return periodic_eval.PeriodicEvaluation(config, model.plateau)


def _check_evaluation(config: TrainConfig) -> None:
    config.check_evaluation_options()
    if config.eval_every_n_steps is None:
        return
    if '://' in config.train_dir:
        raise ValueError('--eval_every_n_steps keeps the best checkpoint in a local '
                         '--train_dir; got %s' % config.train_dir)
    if config.early_stopping_patience is not None and config.cluster_role is not None:
        raise ValueError('--early_stopping_patience cannot stop the workers of a cluster; '
                         'train with --max_number_of_steps instead')


def _check_distribution(config: TrainConfig) -> None:
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


def _session_settings(config: TrainConfig) -> tf.ConfigProto:
    """The ConfigProto of this worker's server and sessions."""
    settings = session_config.make_session_config(config.precision, config.xla,
                                                  model_name=config.model_name)
    if config.virtual_gpus:
        if tf.config.list_physical_devices('GPU'):
            settings = cluster.split_first_gpu(settings, config.virtual_gpus,
                                               config.virtual_gpu_memory_mb)
        else:
            log.info('--virtual_gpus=%d ignored: this machine has no GPU', config.virtual_gpus)
    if config.cluster_role is not None:
        settings = cluster.worker_session_config(config.cluster_role, settings)
    return settings
