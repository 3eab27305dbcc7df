"""Synchronous replicas: the ops of SyncReplicasOptimizer that the trainer runs itself.

With `--sync_replicas` the chief applies the average of `replicas_to_aggregate`
workers' gradients per step; the moving averages (if any) move with each
aggregated update, as in the original trainer. Everything the trainer does
differently for sync replicas is here.
"""

import dataclasses
import logging
import threading

import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim
from slim_classifier.training.config import TrainConfig

log = logging.getLogger('train')


def replicas_to_aggregate(config: TrainConfig) -> int:
    """Workers whose gradients make one update (1 without sync replicas)."""
    if not config.sync_replicas:
        return 1
    return config.replicas_to_aggregate or config.cluster_role.num_workers


def wrap_optimizer(optimizer: tf.train.Optimizer, config: TrainConfig,
                   averages: tf.train.ExponentialMovingAverage | None) -> tf.train.Optimizer:
    """The optimizer that aggregates the workers' gradients and moves the averages."""
    return tf.train.SyncReplicasOptimizer(
        optimizer, replicas_to_aggregate=replicas_to_aggregate(config),
        total_num_replicas=config.cluster_role.num_workers, variable_averages=averages,
        variables_to_average=slim.get_model_variables() if averages else None)


@dataclasses.dataclass
class SyncOps:
    """The ops of SyncReplicasOptimizer that the trainer runs itself."""
    chief_init_op: tf.Operation  # the chief, after initialising or restoring
    init_tokens_op: tf.Operation  # the chief, to let the first step start
    update_op: tf.Operation  # the chief, in a loop: apply averaged gradients, hand out tokens
    release_tokens_op: tf.Operation  # the chief, at the end: let waiting workers finish
    local_step_init_op: tf.Operation  # the other workers, once the variables are ready


def sync_ops(optimizer: tf.train.SyncReplicasOptimizer, config: TrainConfig) -> SyncOps:
    # The optimizer builds its own readiness check for hooks the trainer does not use;
    # the sessions' readiness check covers it.
    optimizer.ready_for_local_init_op.mark_used()
    tokens_per_step = max(config.cluster_role.num_workers, replicas_to_aggregate(config))
    return SyncOps(
        chief_init_op=optimizer.chief_init_op,
        init_tokens_op=optimizer.get_init_tokens_op(),
        update_op=optimizer.get_chief_queue_runner().enqueue_ops[0],
        release_tokens_op=optimizer.get_init_tokens_op(num_tokens=tokens_per_step),
        local_step_init_op=optimizer.local_step_init_op)


class SyncUpdates:
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
