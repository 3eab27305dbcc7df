"""Evaluation while training: exact passes over a held-out split, the best checkpoint, and
the early stopping and learning-rate reductions they drive.

Every `eval_every_n_steps` steps, and at the end, the loop saves a checkpoint
and `PeriodicEvaluation` evaluates it with the evaluation library's
`Evaluator` (evaluation preprocessing, moving averages when the run keeps
them), whose graph and session are built once and restored from each
checkpoint. Each evaluation appends a row (step, split, every overall metric)
to `<train_dir>/eval_metrics.jsonl`, writes the `eval/` TensorBoard run (and
its metrics.json and pictures) and logs one line. The best checkpoint by
`keep_best_by` is copied into `<train_dir>/best/` with `best.json`, through a
staging directory and a rename, so `best/` always holds one whole checkpoint.
A resumed run replays its rows, so the best value and the patience counters
carry on.

A multi-label run (a multi-label dataset, or `multi_label`) is evaluated as
one: its rows hold mAP, subset accuracy, F1, Hamming loss, label-ranking
average precision and log loss; `keep_best_by=accuracy` (the default) ranks
by subset accuracy, as scikit-learn's accuracy_score does on multi-label data.
"""

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time

import tensorflow.compat.v1 as tf

from datasets import dataset_factory
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.evaluation.evaluator import Evaluator
from slim_classifier.runtime import session_config
from slim_classifier.training.config import MAXIMIZED_METRICS, MINIMIZED_METRICS, TrainConfig
from slim_classifier.training.graph import PlateauRate

log = logging.getLogger('train')

EVAL_METRICS_FILENAME = 'eval_metrics.jsonl'
EVAL_DIRNAME = 'eval'
BEST_DIRNAME = 'best'
BEST_FILENAME = 'best.json'
_STAGING_PREFIX = '.best.tmp-'
_REPLACED = '.best.old'
# The figures of an evaluation that go into each row; `loss` is an alias.
_ROW_METRICS = tuple(name for name in MAXIMIZED_METRICS + MINIMIZED_METRICS if name != 'loss')
# The figures of a multi-label evaluation, besides map and log_loss, that go into each row.
_MULTI_LABEL_ROW_METRICS = ('subset_accuracy', 'micro_f1', 'macro_f1', 'hamming_loss',
                            'label_ranking_average_precision')
# The --keep_best_by choices a multi-label evaluation measures (accuracy: subset accuracy).
_MULTI_LABEL_RANKINGS = ('map', 'accuracy', 'loss', 'log_loss')


def eval_split(config: TrainConfig) -> str:
    """--eval_dataset_split_name, else 'validation' where the dataset has one, else its default."""
    if config.eval_dataset_split_name is not None:
        return config.eval_dataset_split_name
    splits = dataset_factory.get_dataset_spec(config.dataset_name, config.dataset_dir).splits
    if 'validation' in splits:
        return 'validation'
    return dataset_factory.default_eval_split(config.dataset_name, config.dataset_dir)


def eval_config(config: TrainConfig) -> EvalConfig:
    """The evaluation of the trained net on the held-out split, written to <train_dir>/eval."""
    return EvalConfig(
        dataset_name=config.dataset_name, dataset_dir=config.dataset_dir,
        dataset_split_name=eval_split(config), labels_offset=config.labels_offset,
        model_name=config.model_name, preprocessing_name=config.preprocessing_name,
        use_grayscale=config.use_grayscale, moving_average_decay=config.moving_average_decay,
        eval_image_size=config.train_image_size, num_readers=config.num_readers,
        num_preprocessing_threads=config.num_preprocessing_threads,
        precision=config.precision, xla=config.xla, checkpoint_path=config.train_dir,
        eval_dir=os.path.join(config.train_dir, EVAL_DIRNAME), num_mistakes_shown=0,
        multi_label=config.multi_label,
        session_config=session_config.make_session_config(config.precision, config.xla,
                                                          model_name=config.model_name))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What one evaluation decided."""
    new_best: bool
    stop: bool  # early stopping: patience evaluations without improvement
    lower_rate: bool  # reduce_on_plateau: patience evaluations without improvement


class Tracker:
    """The best value of the metric and the evaluations since it last improved.

    The best checkpoint follows any improvement; early stopping and
    reduce_on_plateau count the evaluations without an improvement of at
    least `min_delta` over the value of the last one that had it.
    """

    def __init__(self, metric: str, min_delta: float, stop_patience: int | None,
                 plateau_patience: int | None, multi_label: bool = False):
        self.metric = 'log_loss' if metric == 'loss' else metric
        if multi_label and metric == 'accuracy':
            self.metric = 'subset_accuracy'
        self.maximize = metric not in MINIMIZED_METRICS
        self._min_delta = min_delta
        self._stop_patience = stop_patience
        self._plateau_patience = plateau_patience
        self.best_value = None
        self.best_step = None
        self._reference = None
        self.since_improvement = 0
        self._since_reduction = 0

    def _gain(self, value, than) -> float | None:
        if value is None or not math.isfinite(value):
            return None
        if than is None:
            return math.inf
        return value - than if self.maximize else than - value

    def add(self, step: int, row: dict) -> Verdict:
        value = row.get(self.metric)
        best_gain = self._gain(value, self.best_value)
        new_best = best_gain is not None and best_gain > 0
        if new_best:
            self.best_value, self.best_step = value, step
        gain = self._gain(value, self._reference)
        if gain is not None and gain > 0 and gain >= self._min_delta:
            self._reference = value
            self.since_improvement = self._since_reduction = 0
        else:
            self.since_improvement += 1
            self._since_reduction += 1
        stop = (self._stop_patience is not None
                and self.since_improvement >= self._stop_patience)
        lower_rate = (self._plateau_patience is not None
                      and self._since_reduction >= self._plateau_patience)
        if lower_rate:
            self._since_reduction = 0
        return Verdict(new_best=new_best, stop=stop, lower_rate=lower_rate)


class PeriodicEvaluation:
    """The chief's evaluations while training; use as a context manager, which closes them.

    Args:
      config: the training run, with `eval_every_n_steps` set.
      plateau: the learning-rate variable of reduce_on_plateau, or None.

    Raises:
      ValueError: for a `keep_best_by` that the evaluation does not measure
        (map of a single-label run, a single-label figure of a multi-label one).
    """

    def __init__(self, config: TrainConfig, plateau: PlateauRate | None):
        self._every = config.eval_every_n_steps
        self._train_dir = config.train_dir
        self._rows_path = os.path.join(config.train_dir, EVAL_METRICS_FILENAME)
        self._plateau = plateau
        self._factor = config.plateau_factor
        self._min_delta = config.early_stopping_min_delta
        self._last_step = None
        _recover_best_dir(config.train_dir)
        self._evaluator = Evaluator(eval_config(config))
        self.multi_label = self._evaluator.multi_label
        try:
            _check_ranking(config.keep_best_by, self.multi_label)
        except ValueError:
            self._evaluator.__exit__(ValueError, None, None)
            raise
        self.tracker = Tracker(config.keep_best_by, config.early_stopping_min_delta,
                               config.early_stopping_patience,
                               config.plateau_patience if plateau is not None else None,
                               self.multi_label)
        self.split = self._evaluator.config.dataset_split_name

    def __enter__(self) -> 'PeriodicEvaluation':
        return self

    def __exit__(self, error_type, *exc_info) -> None:
        self._evaluator.__exit__(error_type, *exc_info)

    def resume(self, step: int) -> None:
        """Replays the rows of the evaluations up to `step`, so the counters carry on."""
        if not os.path.exists(self._rows_path):
            return
        with open(self._rows_path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        for row in rows:
            if row['step'] <= step:
                self.tracker.add(row['step'], row)
                self._last_step = row['step']
        if self.tracker.best_step is not None:
            log.info('Resuming the evaluations: best %s %.4g at step %d, %d evaluation(s) '
                     'since the last improvement', self.tracker.metric,
                     self.tracker.best_value, self.tracker.best_step,
                     self.tracker.since_improvement)

    def due(self, step: int) -> bool:
        return step % self._every == 0 and not self.evaluated(step)

    def evaluated(self, step: int) -> bool:
        return self._last_step == step

    def evaluate(self, checkpoint: str, step: int) -> Verdict:
        """Evaluates the checkpoint of `step`; records the row, the best, and logs one line."""
        with _quiet('eval'):
            results = self._evaluator.evaluate(checkpoint)
        row = {'step': int(step), 'wall_time': round(time.time(), 3),
               'dataset_split_name': self.split, 'num_examples': results['num_examples']}
        row.update((name, results[name]) for name in _ROW_METRICS + _MULTI_LABEL_ROW_METRICS
                   if name in results)
        with open(self._rows_path, 'a') as f:
            f.write(json.dumps(row) + '\n')
        self._last_step = step
        verdict = self.tracker.add(step, row)
        if verdict.new_best:
            keep_best(self._train_dir, checkpoint, row, self.tracker.metric)
        log.info(self._line(row, verdict))
        return verdict

    def _line(self, row: dict, verdict: Verdict) -> str:
        if self.multi_label:
            figures = ['mAP %s' % _figure(row['map'], '%.3f'),
                       'loss %s' % _figure(row['log_loss'], '%.3g')]
            shown = ('map', 'log_loss')
        else:
            figures = ['accuracy %.3f' % row['accuracy'], 'loss %.3g' % row['log_loss']]
            shown = ('accuracy', 'log_loss')
        if self.tracker.metric not in shown:
            figures.append('%s %s' % (self.tracker.metric,
                                      _figure(row[self.tracker.metric], '%.4g')))
        best = ('new best %s' % self.tracker.metric if verdict.new_best else
                'best %s %.4g at step %d' % (self.tracker.metric, self.tracker.best_value,
                                             self.tracker.best_step)
                if self.tracker.best_step is not None else 'no best yet')
        return 'step %d: %s on %s (%d examples); %s' % (
            row['step'], ', '.join(figures), self.split, row['num_examples'], best)

    def stop_reason(self) -> str:
        return ('%s has not improved by at least %g in %d evaluations (best %.4g at step %d)'
                % (self.tracker.metric, self._min_delta, self.tracker.since_improvement,
                   self.tracker.best_value, self.tracker.best_step))

    def lower_learning_rate(self, sess: tf.Session) -> float:
        """Multiplies the plateau learning rate by --plateau_factor; returns the new rate."""
        rate = float(sess.run(self._plateau.variable))
        lowered = rate * self._factor
        sess.run(self._plateau.assign, {self._plateau.new_value: lowered})
        log.info('reduce_on_plateau: %s has not improved by at least %g; learning rate %.6g '
                 '-> %.6g', self.tracker.metric, self._min_delta, rate, lowered)
        return lowered


def _figure(value: float | None, form: str) -> str:
    """`value` in `form`, or n/a where it is undefined (mAP without any label present)."""
    return 'n/a' if value is None else form % value


def _check_ranking(metric: str, multi_label: bool) -> None:
    """Raises ValueError where the evaluations do not measure --keep_best_by=`metric`."""
    if multi_label and metric not in _MULTI_LABEL_RANKINGS:
        raise ValueError('--keep_best_by=%s is not measured on multi-label data; choose one of '
                         '%s (accuracy ranks by subset accuracy)'
                         % (metric, ', '.join(_MULTI_LABEL_RANKINGS)))
    if not multi_label and metric == 'map':
        raise ValueError('--keep_best_by=map is measured on multi-label data only; this run is '
                         'single-label (train with --multi_label, or rank by another metric)')


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Keeps a logger's info lines (an evaluation's progress) out of the training log."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def keep_best(train_dir: str, checkpoint: str, row: dict, metric: str) -> str:
    """Replaces <train_dir>/best/ with `checkpoint`'s files and best.json; returns the copy.

    The files are hard links where the file system allows (the trainer may
    delete the originals later), else copies, made in a staging directory that
    is then renamed: a crash leaves the previous best or the new one whole.
    """
    staging = os.path.join(train_dir, '%s%d' % (_STAGING_PREFIX, os.getpid()))
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for path in tf.io.gfile.glob(checkpoint + '.*'):
        target = os.path.join(staging, os.path.basename(path))
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    name = os.path.basename(checkpoint)
    with open(os.path.join(staging, 'checkpoint'), 'w') as f:
        f.write('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' % (name, name))
    record = {'step': row['step'], 'metric': metric, 'value': row.get(metric),
              'checkpoint': name, 'metrics': row}
    with open(os.path.join(staging, BEST_FILENAME), 'w') as f:
        f.write(json.dumps(record, indent=2) + '\n')
    best = os.path.join(train_dir, BEST_DIRNAME)
    replaced = os.path.join(train_dir, _REPLACED)
    if os.path.isdir(best):
        shutil.rmtree(replaced, ignore_errors=True)
        os.rename(best, replaced)
    os.rename(staging, best)
    shutil.rmtree(replaced, ignore_errors=True)
    return os.path.join(best, name)


def _recover_best_dir(train_dir: str) -> None:
    """Puts back the previous best/ where a replacement stopped, and removes its leftovers."""
    best = os.path.join(train_dir, BEST_DIRNAME)
    replaced = os.path.join(train_dir, _REPLACED)
    if not os.path.isdir(best) and os.path.isdir(replaced):
        os.rename(replaced, best)
    for name in os.listdir(train_dir):
        if name.startswith(_STAGING_PREFIX) or name == _REPLACED:
            shutil.rmtree(os.path.join(train_dir, name), ignore_errors=True)
