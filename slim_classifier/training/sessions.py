"""The training sessions: the chief's (initialise, resume or fine-tune) and the workers'."""

import contextlib
import logging

import tensorflow.compat.v1 as tf

from slim_classifier.errors import TrainingError
from slim_classifier.runtime import checkpoints, run_config
from slim_classifier.training import sync_replicas
from slim_classifier.training.config import TrainConfig
from slim_classifier.training.graph import TrainingGraph

log = logging.getLogger('train')


@contextlib.contextmanager
def chief_session(master: str, settings: tf.ConfigProto, saver: tf.train.Saver,
                  model: TrainingGraph, config: TrainConfig):
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
            updates = sync_replicas.SyncUpdates(sess, model.sync.update_op)
        yield sess
    finally:
        if updates is not None:
            updates.stopping.set()
        sess.close()
        if updates is not None:
            updates.join()


@contextlib.contextmanager
def worker_session(master: str, settings: tf.ConfigProto, saver: tf.train.Saver,
                   model: TrainingGraph, config: TrainConfig):
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


def _restore_or_initialize(sess, saver, model, config):
    latest = checkpoints.latest_intact(config.train_dir)
    if latest:
        _check_resumable(latest, sess.graph, config)
        saver.restore(sess, latest)
        # The saver of this process then counts the checkpoints of earlier ones
        # towards --max_to_keep, and keeps listing them in the `checkpoint` file.
        saver.recover_last_checkpoints(checkpoints.checkpoints_in(config.train_dir))
        sess.run(model.local_init_op)
        step = sess.run(model.global_step)
        log.info('Resuming from %s at step %d', latest, step)
        if config.checkpoint_path:
            log.info('Ignoring --checkpoint_path=%s: %s already holds a checkpoint',
                     config.checkpoint_path, config.train_dir)
        return
    if model.fine_tune is None:
        sess.run(model.init_op)
    else:
        model.fine_tune.initialize_and_restore(sess)
        log.info('Fine-tuning from %s (%d variables restored)', model.fine_tune.path,
                 model.fine_tune.num_restored)


def _check_resumable(checkpoint, graph, config):
    """Refuses a train_dir checkpoint written by a different run set-up."""
    with graph.as_default():
        variables = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    problem = checkpoints.mismatch(checkpoint, variables)
    if problem is None:
        return
    changed = run_config.changed_options(config.train_dir, config)
    advice = ('resume with the options of %s (%s differ) or choose a new --train_dir'
              % (run_config.RUN_CONFIG_FILENAME, ', '.join(changed)) if changed else
              'resume with the flags it was trained with or choose a new --train_dir')
    raise TrainingError('cannot resume from %s: it does not match this run (%s); %s'
                       % (checkpoint, problem, advice))
