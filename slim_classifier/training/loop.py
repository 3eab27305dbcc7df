"""The training loop and its bookkeeping: checkpoints, summaries, metrics.jsonl, signals.

`run_loop` steps until `max_number_of_steps`, a signal or an error. The chief
saves a checkpoint every `save_interval_secs` and at the end, writes summaries
every `save_summaries_secs`, and appends one JSON object per logged step to
`<train_dir>/metrics.jsonl` (step, loss, learning rate, images/sec, wall
time), across resumes. SIGINT/SIGTERM finish the current step, save and
return; a NaN or infinite loss stops without saving, so the last good
checkpoint stays the newest. A bad record or label stops training too, after
saving the steps done before it. A full device stops it with the path that
did not fit and the last good checkpoint, whose save leftovers are removed;
a step out of memory names the --batch_size to lower. With
`eval_every_n_steps`, the chief saves and evaluates a checkpoint every N steps
and at the end (training/periodic_eval.py), and stops early when the
evaluations say so.
"""

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import tensorflow.compat.v1 as tf

from datasets import input_pipeline
from slim_classifier.errors import TrainingError
from slim_classifier.runtime import checkpoints, files
from slim_classifier.training import cluster
from slim_classifier.training.config import TrainConfig
from slim_classifier.training.graph import LABEL_CHECK, TrainingGraph

if TYPE_CHECKING:
    from slim_classifier.training.periodic_eval import PeriodicEvaluation

log = logging.getLogger('train')

METRICS_FILENAME = 'metrics.jsonl'
# How TensorFlow's ResourceExhaustedError tells a tensor that does not fit in memory.
_OUT_OF_MEMORY = 'OOM when allocating'


class LabelError(TrainingError):
    """A label of the dataset outside [0, num_classes)."""


@dataclasses.dataclass
class TrainResult:
    global_step: int
    checkpoint: str | None  # None on a worker other than the chief
    stopped_by: str  # 'max_number_of_steps', 'early_stopping' or the signal's name


class StopSignals:
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


def run_loop(sess: tf.Session, saver: tf.train.Saver, model: TrainingGraph, config: TrainConfig,
             is_chief: bool, evaluation: 'PeriodicEvaluation | None' = None) -> TrainResult:
    """Steps, saves and logs; `evaluation`, on the chief, evaluates every N steps and at the end."""
    with _cluster_loss_explained(config.cluster_role):
        return _steps(sess, saver, model, config, is_chief, evaluation)


@contextlib.contextmanager
def _cluster_loss_explained(role: cluster.ClusterRole | None) -> Iterator[None]:
    """Turns a parameter server lost in a step, a save or a read into a one-line TrainingError."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if role is None:
            raise
        raise TrainingError(
            'lost the cluster: %s; restart what stopped, then this worker (the chief resumes '
            'from its last checkpoint)' % cluster.explain_lost_cluster(role, error.message)
        ) from None


def _steps(sess, saver, model, config, is_chief, evaluation):
    records = _Records(sess, saver, config) if is_chief else _NoRecords()
    step = sess.run(model.global_step)
    if evaluation is not None:
        evaluation.resume(step)
    window = Throughput(model.images_per_step)
    stopped_by = 'max_number_of_steps'
    with StopSignals() as signals:
        while config.max_number_of_steps is None or step < config.max_number_of_steps:
            final_step = (config.max_number_of_steps is not None
                          and step + 1 >= config.max_number_of_steps)
            write_summary = records.summary_due(final_step or signals.received is not None)
            fetches = [model.train_op, model.step_after_train, model.learning_rate]
            if write_summary:
                fetches.append(model.summary_op)
            try:
                results = _run_step(sess, fetches, model.dataset, config)
            except (input_pipeline.DataError, LabelError):
                records.save_before_stopping(step)
                raise
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
                rate = window.rate()
                records.append_metrics(step, loss, learning_rate, rate)
                _log_progress(step, loss, learning_rate, rate, window.images_per_step,
                              config.max_number_of_steps)
                window.restart()
            if signals.received:
                stopped_by = signals.received
                log.info('%s received: %s at step %d and stopping', stopped_by,
                         records.final_action, step)
                break
            if evaluation is not None and evaluation.due(step):
                if _evaluate(sess, records, evaluation, step, window):
                    stopped_by = 'early_stopping'
                    log.info('Early stopping at step %d: %s', step, evaluation.stop_reason())
                    break
            records.save_if_due(step)
        checkpoint = records.finish(step, window)
        if (evaluation is not None and stopped_by == 'max_number_of_steps'
                and not evaluation.evaluated(step)):
            _evaluate(sess, records, evaluation, step, window)
            checkpoint = records.last_good_checkpoint()
    if model.sync is not None and is_chief:
        # Workers waiting for an aggregated update that will not come get a token:
        # they see the final global step, or a stop signal of their own, and stop;
        # others push one more gradient and wait for the chief to come back.
        sess.run(model.sync.release_tokens_op)
    log.info('Stopped at step %d (%s); checkpoint %s', step, stopped_by,
             checkpoint or 'written by the chief')
    return TrainResult(global_step=int(step), checkpoint=checkpoint, stopped_by=stopped_by)


class _Records:
    """The chief's checkpoints, summaries and metrics, each written when due."""

    final_action = 'saving a checkpoint'

    def __init__(self, sess, saver, config):
        self._sess = sess
        self._saver = saver
        self._train_dir = config.train_dir
        with self._space_for('the TensorBoard events in %s' % config.train_dir):
            self._writer = tf.summary.FileWriter(config.train_dir, sess.graph)
        self._prefix = os.path.join(config.train_dir, 'model.ckpt')
        self._metrics_path = os.path.join(config.train_dir, METRICS_FILENAME)
        self._save_interval_secs = config.save_interval_secs
        self._summaries_interval_secs = config.save_summaries_secs
        self._last_checkpoint = checkpoints.latest_intact(config.train_dir)
        self._last_save = time.monotonic()
        self._last_summary = None  # the first step writes summaries

    def last_good_checkpoint(self) -> str:
        return self._last_checkpoint or 'none yet'

    def summary_due(self, forced: bool) -> bool:
        return (forced or self._last_summary is None
                or time.monotonic() - self._last_summary >= self._summaries_interval_secs)

    def write_summaries(self, summary, window, step):
        with self._space_for('the TensorBoard events in %s' % self._train_dir):
            self._writer.add_summary(summary, step)
            self._writer.add_summary(window.summary(), step)
        self._last_summary = time.monotonic()

    def append_metrics(self, step, loss, learning_rate, images_per_sec):
        record = {'step': int(step), 'loss': float(loss), 'learning_rate': float(learning_rate),
                  'images_per_sec': round(float(images_per_sec), 3),
                  'wall_time': round(time.time(), 3)}
        with self._space_for(self._metrics_path), open(self._metrics_path, 'a') as f:
            f.write(json.dumps(record) + '\n')

    def save_if_due(self, step):
        if time.monotonic() - self._last_save >= self._save_interval_secs:
            self._save(step)

    def checkpoint_of(self, step, again=False) -> str:
        """The checkpoint of `step`, saved now unless it already is (or `again`)."""
        if again or not self._saved(step):
            self._save(step)
        return self._last_checkpoint

    def save_before_stopping(self, step):
        """Saves the steps done since the last checkpoint, when training stops on bad data."""
        if step and not self._saved(step):
            self._save(step)
            log.info('Saved %s before stopping: the steps before the bad data are kept',
                     self._last_checkpoint)

    def finish(self, step, window) -> str:
        """Saves the final step unless already saved; returns the last checkpoint."""
        if not self._saved(step):
            self._save(step)
        with self._space_for('the TensorBoard events in %s' % self._train_dir):
            self._writer.add_summary(window.summary(), step)
            self._writer.close()
        return self._last_checkpoint

    def _saved(self, step) -> bool:
        return self._last_checkpoint is not None and self._last_checkpoint.endswith('-%d' % step)

    def _save(self, step):
        with self._space_for('checkpoint %s-%d' % (self._prefix, step)):
            self._last_checkpoint = self._saver.save(self._sess, self._prefix, global_step=step)
        self._last_save = time.monotonic()

    @contextlib.contextmanager
    def _space_for(self, path):
        """Turns a full device met in the block into a TrainingError naming `path`.

        The leftovers of a save that did not fit are removed, so the space they
        took is free again and the last good checkpoint stays the newest.
        """
        try:
            yield
        except Exception as error:  # OSError, or any of TensorFlow's error classes
            if not files.is_disk_full(error):
                raise
            checkpoints.remove_save_leftovers(self._train_dir)
            raise TrainingError(
                'no space left on the device to write %s: training stopped; the last good '
                'checkpoint (%s) is kept. Free space there or choose another --train_dir'
                % (path, checkpoints.latest_intact(self._train_dir) or 'none yet')) from None


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

    def append_metrics(self, step, loss, learning_rate, images_per_sec):
        del step, loss, learning_rate, images_per_sec

    def save_if_due(self, step):
        del step

    def save_before_stopping(self, step):
        del step

    def finish(self, step, window) -> None:
        del step, window


def _run_step(sess, fetches, dataset, config):
    """Runs one step; TensorFlow's errors that the user can act on become one line."""
    try:
        return sess.run(fetches)
    except tf.errors.ResourceExhaustedError as error:
        out_of_memory = [line.strip() for line in error.message.splitlines()
                         if _OUT_OF_MEMORY in line]
        if not out_of_memory:
            raise
        raise TrainingError(
            'out of memory in a training step with --batch_size=%d (%s); choose a smaller '
            '--batch_size' % (config.batch_size, out_of_memory[0])) from None
    except input_pipeline.DATA_ERRORS as error:
        message = getattr(error, 'message', '')
        if LABEL_CHECK in message:
            raise LabelError(
                'a label is outside [0, num_classes) for this dataset; check --labels_offset '
                'and --dataset_name (%s)' % message.splitlines()[0]) from None
        explained = input_pipeline.explain_data_error(dataset, error)
        if explained is None:
            raise
        raise explained from error


class Throughput:
    """Images/sec over the steps of the current window; reading it changes nothing."""

    def __init__(self, images_per_step):
        self.images_per_step = images_per_step
        self._start = time.monotonic()
        self._steps = 0
        self._last_rate = 0.0

    def add_step(self):
        self._steps += 1

    def leave_out(self, seconds: float):
        """Leaves `seconds` spent on something else than steps (an evaluation) out of the rate."""
        self._start += seconds

    def rate(self) -> float:
        """The rate since the window started (the last full window's before any step)."""
        elapsed = time.monotonic() - self._start
        if self._steps and elapsed > 0:
            return self._steps * self.images_per_step / elapsed
        return self._last_rate

    def restart(self):
        """Starts a new window, keeping the finished one's rate."""
        self._last_rate = self.rate()
        self._start, self._steps = time.monotonic(), 0

    def summary(self):
        return tf.Summary(value=[tf.Summary.Value(tag='images_per_sec',
                                                  simple_value=self.rate())])


def _evaluate(sess, records, evaluation, step, window) -> bool:
    """Saves and evaluates the checkpoint of `step`; whether training should stop early.

    A reduce_on_plateau reduction is saved at once in the checkpoint of the
    step, so a resume from it has the rate its evaluations led to.
    """
    started = time.monotonic()
    verdict = evaluation.evaluate(records.checkpoint_of(step), step)
    if verdict.lower_rate:
        evaluation.lower_learning_rate(sess)
        records.checkpoint_of(step, again=True)
    window.leave_out(time.monotonic() - started)
    return verdict.stop


def _log_progress(step, loss, learning_rate, rate, images_per_step, max_steps):
    message = 'step %d: loss %.4f, learning rate %.6g, %.1f images/sec' % (
        step, loss, learning_rate, rate)
    if max_steps and rate > 0:
        seconds_left = (max_steps - step) * images_per_step / rate
        message += ', %s left' % datetime.timedelta(seconds=int(seconds_left))
    log.info(message)
