"""The configuration of one training run: every option once, with its flag's help and check.

`TrainConfig`'s fields are the trainer's options and the flags of
train_image_classifier.py (generated from them); their defaults are the
original trainer's. `OPTIMIZERS` is the one table of optimizers: the
TensorFlow class each name makes and the options it reads, from which the
optimizer is built, the `--optimizer` choices come, and `--help` says which
option applies to which optimizer. No TensorFlow is imported here.
"""

import dataclasses
from typing import TYPE_CHECKING

from slim_classifier.runtime.options import (AT_LEAST_ZERO, FINITE, POSITIVE, UNIT_OPEN,
                                             UNIT_RIGHT_OPEN, Check, DataOptions, ModelOptions,
                                             PerformanceOptions, ReaderOptions, option, validate)

if TYPE_CHECKING:
    from slim_classifier.training.cluster import ClusterRole


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """A tf.compat.v1 optimizer class and the options it reads, as {option: its argument}."""
    class_name: str
    reads: dict[str, str]
    name: str | None = None  # the optimizer's variable-scope name, where the original set one
    # Decays the weights itself (decoupled weight decay): the nets' L2 losses are left out.
    decoupled_weight_decay: bool = False


OPTIMIZERS: dict[str, OptimizerSpec] = {
    'adadelta': OptimizerSpec('AdadeltaOptimizer', {'adadelta_rho': 'rho',
                                                    'opt_epsilon': 'epsilon'}),
    'adagrad': OptimizerSpec('AdagradOptimizer', {
        'adagrad_initial_accumulator_value': 'initial_accumulator_value'}),
    'adam': OptimizerSpec('AdamOptimizer', {'adam_beta1': 'beta1', 'adam_beta2': 'beta2',
                                            'opt_epsilon': 'epsilon'}),
    # adamax, adamw, nadam and nadamax are not in tf.compat.v1.train: they are written in
    # slim_classifier/training/optimization.py.
    'adamax': OptimizerSpec('AdaMaxOptimizer', {'adam_beta1': 'beta1', 'adam_beta2': 'beta2',
                                                'opt_epsilon': 'epsilon'}),
    'adamw': OptimizerSpec('AdamWOptimizer', {'adam_beta1': 'beta1', 'adam_beta2': 'beta2',
                                              'opt_epsilon': 'epsilon',
                                              'adamw_weight_decay': 'weight_decay'},
                           decoupled_weight_decay=True),
    'ftrl': OptimizerSpec('FtrlOptimizer', {
        'ftrl_learning_rate_power': 'learning_rate_power',
        'ftrl_initial_accumulator_value': 'initial_accumulator_value',
        'ftrl_l1': 'l1_regularization_strength', 'ftrl_l2': 'l2_regularization_strength'}),
    'momentum': OptimizerSpec('MomentumOptimizer', {'momentum': 'momentum',
                                                    'use_nesterov': 'use_nesterov'},
                              name='Momentum'),
    'nadam': OptimizerSpec('NadamOptimizer', {'adam_beta1': 'beta1', 'adam_beta2': 'beta2',
                                              'opt_epsilon': 'epsilon'}),
    'nadamax': OptimizerSpec('NadamaxOptimizer', {'adam_beta1': 'beta1', 'adam_beta2': 'beta2',
                                                  'opt_epsilon': 'epsilon'}),
    'rmsprop': OptimizerSpec('RMSPropOptimizer', {'rmsprop_decay': 'decay',
                                                  'rmsprop_momentum': 'momentum',
                                                  'opt_epsilon': 'epsilon'}),
    'sgd': OptimizerSpec('GradientDescentOptimizer', {}),
}
LEARNING_RATE_SCHEDULES = ('fixed', 'exponential', 'polynomial', 'cosine', 'piecewise',
                           'reduce_on_plateau')
JOB_NAMES = ('ps', 'worker')  # the values of --job_name


def _read_by(option_name: str) -> str:
    users = [name for name, spec in OPTIMIZERS.items() if option_name in spec.reads]
    return '; read by --optimizer=%s.' % ', '.join(users)


@dataclasses.dataclass(kw_only=True)
class OptimizerOptions:
    """The optimizer and the options of each optimizer (see OPTIMIZERS)."""
    optimizer: str = option('rmsprop', 'The optimizer.', 'optimizer', choices=tuple(OPTIMIZERS))
    opt_epsilon: float = option(1.0, 'Epsilon term of the optimizer' + _read_by('opt_epsilon'),
                                'optimizer', check=POSITIVE)
    adadelta_rho: float = option(0.95, 'The decay rate' + _read_by('adadelta_rho'), 'optimizer',
                                 check=UNIT_OPEN)
    adagrad_initial_accumulator_value: float = option(
        0.1, 'Starting value of the accumulators' + _read_by('adagrad_initial_accumulator_value'),
        'optimizer', check=POSITIVE)
    adam_beta1: float = option(0.9, 'Decay of the 1st moment estimates' + _read_by('adam_beta1'),
                               'optimizer', check=UNIT_RIGHT_OPEN)
    adam_beta2: float = option(0.999, 'Decay of the 2nd moment estimates'
                               + _read_by('adam_beta2'), 'optimizer', check=UNIT_RIGHT_OPEN)
    ftrl_learning_rate_power: float = option(
        -0.5, 'The learning rate power' + _read_by('ftrl_learning_rate_power'), 'optimizer',
        check=FINITE)
    ftrl_initial_accumulator_value: float = option(
        0.1, 'Starting value of the accumulators' + _read_by('ftrl_initial_accumulator_value'),
        'optimizer', check=POSITIVE)
    ftrl_l1: float = option(0.0, 'The l1 regularization strength' + _read_by('ftrl_l1'),
                            'optimizer', check=AT_LEAST_ZERO)
    ftrl_l2: float = option(0.0, 'The l2 regularization strength' + _read_by('ftrl_l2'),
                            'optimizer', check=AT_LEAST_ZERO)
    momentum: float = option(0.9, 'The momentum' + _read_by('momentum'), 'optimizer',
                             check=UNIT_RIGHT_OPEN)
    rmsprop_momentum: float = option(0.9, 'The momentum' + _read_by('rmsprop_momentum'),
                                     'optimizer', check=UNIT_RIGHT_OPEN)
    rmsprop_decay: float = option(0.9, 'The decay term' + _read_by('rmsprop_decay'),
                                  'optimizer', check=UNIT_OPEN)
    clip_gradient_norm: float = option(0.0, 'Clip gradients to this global norm; 0 does not '
                                       'clip.', 'optimizer', check=AT_LEAST_ZERO)
    weight_decay: float = option(0.00004, 'The weight decay on the model weights.', 'optimizer',
                                 check=AT_LEAST_ZERO)

    def optimizer_params(self) -> dict[str, float]:
        """{option: value} of the options the chosen optimizer reads."""
        return {name: getattr(self, name) for name in OPTIMIZERS[self.optimizer].reads}


@dataclasses.dataclass(kw_only=True)
class LearningRateOptions:
    learning_rate: float = option(0.01, 'Initial learning rate.', 'learning rate',
                                  check=POSITIVE)
    learning_rate_decay_type: str = option('exponential', 'How the learning rate decays.',
                                           'learning rate', choices=LEARNING_RATE_SCHEDULES)
    learning_rate_decay_factor: float = option(0.94, 'Learning rate decay factor.',
                                               'learning rate', check=POSITIVE)
    num_epochs_per_decay: float = option(2.0, 'Epochs after which the learning rate decays.',
                                         'learning rate', check=POSITIVE)
    end_learning_rate: float = option(0.0001, 'The minimal end learning rate of the polynomial '
                                      'and cosine schedules.', 'learning rate',
                                      check=AT_LEAST_ZERO)
    warmup_epochs: float = option(0.0, 'Epochs of linear learning-rate warm-up.',
                                  'learning rate', check=AT_LEAST_ZERO)
    label_smoothing: float = option(0.0, 'The amount of label smoothing.', 'learning rate',
                                    check=UNIT_RIGHT_OPEN)


@dataclasses.dataclass(kw_only=True)
class FineTuningOptions:
    checkpoint_path: str | None = option(None, 'A checkpoint file or directory to fine-tune '
                                         'from.', 'fine-tuning')
    checkpoint_exclude_scopes: list[str] = option([], 'Comma-separated scopes not restored from '
                                                  '--checkpoint_path.', 'fine-tuning')
    trainable_scopes: list[str] = option([], 'Comma-separated scopes to train; all if unset.',
                                         'fine-tuning')
    ignore_missing_vars: bool = option(False, 'Skip variables missing from the checkpoint.',
                                       'fine-tuning')


@dataclasses.dataclass(kw_only=True)
class DistributionOptions:
    master: str = option('', 'The address of the TensorFlow master to use; a cluster '
                         '(--ps_hosts/--worker_hosts or TF_CONFIG) gives its own.', 'distribution')
    num_clones: int = option(1, 'Model clones to deploy (one per GPU).', 'distribution',
                             check=POSITIVE)
    clone_on_cpu: bool = option(False, 'Put every clone on the CPU.', 'distribution')
    sync_replicas: bool = option(False, "Aggregate the replicas' gradients synchronously.",
                                 'distribution')
    replicas_to_aggregate: int | None = option(None, "Gradients averaged per update with "
                                               "--sync_replicas; every worker's if unset.",
                                               'distribution', check=POSITIVE)
    cluster_timeout_secs: float = option(300.0, 'How long a worker waits for the parameter '
                                         'servers to answer, and for the chief to initialise '
                                         'the variables, before giving up.', 'distribution',
                                         check=POSITIVE)
    virtual_gpus: int = option(0, 'Split the first GPU into this many logical GPUs, e.g. to try '
                               '--num_clones placement on one GPU; ignored without a GPU, 0 '
                               'leaves it whole.', 'distribution', check=AT_LEAST_ZERO)
    virtual_gpu_memory_mb: int = option(2048, 'Memory of each logical GPU of --virtual_gpus, '
                                        'in MiB.', 'distribution', check=POSITIVE)
    # None trains in this process alone; train_image_classifier.py sets it from ClusterFlags.
    cluster_role: 'ClusterRole | None' = option(None, 'This process in a cluster.',
                                                'distribution', flag=False)


# --- Imbalance and augmentation (issue 16) ------------------------------------------------------

# RandAugment's magnitude scale, that of its paper: 30 is the strongest.
RAND_AUGMENT_MAX_MAGNITUDE = 30.0


def parse_rand_augment(value: str) -> tuple[int, float]:
    """(N, M) of a --rand_augment value 'N,M'.

    Raises:
      ValueError: if it is not N >= 0 operations and a magnitude M in [0, 30].
    """
    parts = value.split(',') if isinstance(value, str) else []
    if len(parts) != 2:
        raise ValueError('--rand_augment must be N,M; got %r' % (value,))
    num_ops, magnitude = int(parts[0]), float(parts[1])
    if num_ops < 0 or not 0 <= magnitude <= RAND_AUGMENT_MAX_MAGNITUDE:
        raise ValueError('--rand_augment must have N >= 0 and M in [0, %g]; got %r'
                         % (RAND_AUGMENT_MAX_MAGNITUDE, value))
    return num_ops, magnitude


def _is_rand_augment(value) -> bool:
    try:
        parse_rand_augment(value)
    except ValueError:
        return False
    return True


RAND_AUGMENT = Check(_is_rand_augment, 'be N,M: N >= 0 operations per image and a magnitude M '
                     'in [0, 30]')
UNIT_CLOSED = Check(lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, 'be in [0, 1]')
CLASS_WEIGHTS = Check(lambda v: isinstance(v, str) and v.strip() != '',
                      'be auto or the path of a weights file')


@dataclasses.dataclass(kw_only=True)
class ImbalanceAugmentationOptions:
    """Class-weighted losses, balanced sampling and augmentations; all off by default."""
    class_weights: str | None = option(
        None, 'Weigh each example of the loss by its class: auto for inverse class frequency '
        "(from the dataset's conversion report, else by counting the labels of the split), or "
        'a file of one weight per line for every class in order, or of `name: weight` lines '
        '(classes not named weigh 1).', 'augmentation and class balance', check=CLASS_WEIGHTS)
    balanced_sampling: bool = option(
        False, 'Draw the training examples evenly over the classes (rejection resampling in '
        'the input pipeline).', 'augmentation and class balance')
    rand_augment: str | None = option(
        None, 'N,M: RandAugment, N operations drawn per image at magnitude M of 30 (e.g. '
        '2,9), before the preprocessing.', 'augmentation and class balance',
        check=RAND_AUGMENT)
    mixup_alpha: float = option(
        0.0, 'Mixup: blend each batch with its mirror image, weights from Beta(alpha, alpha); '
        'the labels become soft. 0 is off.', 'augmentation and class balance',
        check=AT_LEAST_ZERO)
    cutmix_alpha: float = option(
        0.0, 'CutMix: paste a box of the mirrored batch, its area from Beta(alpha, alpha); the '
        'labels become soft. 0 is off; with --mixup_alpha each batch takes one of the two.',
        'augmentation and class balance', check=AT_LEAST_ZERO)
    random_erasing_prob: float = option(
        0.0, 'Probability that a training image has a random rectangle replaced by noise, '
        'after the preprocessing.', 'augmentation and class balance', check=UNIT_CLOSED)

    def augmentation_values(self) -> dict[str, float]:
        """The arguments of `preprocessing.augmentation.Augmentation` for these options."""
        num_ops, magnitude = (parse_rand_augment(self.rand_augment) if self.rand_augment
                              else (0, 0.0))
        return {'rand_augment_ops': num_ops, 'rand_augment_magnitude': magnitude,
                'random_erasing_prob': self.random_erasing_prob,
                'mixup_alpha': self.mixup_alpha, 'cutmix_alpha': self.cutmix_alpha}

# --- end of imbalance and augmentation ----------------------------------------------------------


# --- Update rules: Nesterov, AdamW, piecewise schedule, gradient accumulation (issue 16) --------

def _positive_numbers(values) -> bool:
    """Whether every item is a number > 0, or its text (as a list flag gives it)."""
    try:
        return all(POSITIVE.accepts(float(value)) for value in values)
    except (TypeError, ValueError):
        return False


POSITIVE_NUMBERS = Check(_positive_numbers, 'be comma-separated numbers > 0')


@dataclasses.dataclass(kw_only=True)
class UpdateRuleOptions:
    """How the gradients become updates, beyond the original trainer; all off by default."""
    use_nesterov: bool = option(False, 'Use Nesterov momentum' + _read_by('use_nesterov'),
                                'optimizer')
    adamw_weight_decay: float = option(
        0.01, "Decoupled weight decay: each update shrinks the weights of rank >= 2 by this "
        "times the learning rate; the nets' L2 losses (--weight_decay) are left out of the "
        'loss' + _read_by('adamw_weight_decay'), 'optimizer', check=AT_LEAST_ZERO)
    gradient_accumulation_steps: int = option(
        1, 'Micro-batches of --batch_size (per clone) whose mean gradient makes one update: '
        'the effective batch is batch_size x this x num_clones. The global step, '
        '--max_number_of_steps, the schedules and the moving averages (batch norm, '
        '--moving_average_decay) count micro-batches.', 'optimizer',
        check=POSITIVE)
    boundaries_epochs: list[float] = option(
        [], 'Comma-separated epochs at which --learning_rate_decay_type=piecewise moves to '
        'the next of --values.', 'learning rate', check=POSITIVE_NUMBERS)
    values: list[float] = option(
        [], 'Comma-separated learning rates of --learning_rate_decay_type=piecewise: one '
        'before the first of --boundaries_epochs and one after each (--learning_rate is then '
        'not read).', 'learning rate', check=POSITIVE_NUMBERS)

# --- end of update rules ------------------------------------------------------------------------


# --- Evaluation while training: keep the best, stop early, reduce on plateau (issue 16) ---------

# The overall figures of an evaluation (metrics.json) that rank checkpoints; `loss` is log_loss.
MINIMIZED_METRICS = ('loss', 'log_loss', 'expected_calibration_error')
MAXIMIZED_METRICS = ('accuracy', 'recall_at_5', 'mean_per_class_accuracy', 'macro_f_beta',
                     'weighted_f_beta', 'matthews_corrcoef', 'cohen_kappa', 'macro_roc_auc',
                     'micro_roc_auc', 'macro_average_precision', 'map')
PLATEAU_SCHEDULE = 'reduce_on_plateau'


@dataclasses.dataclass(kw_only=True)
class TrainingEvaluationOptions:
    """Exact passes over a held-out split while training, and what they drive; off by default."""
    eval_every_n_steps: int | None = option(
        None, 'Save a checkpoint and evaluate it on one exact pass over '
        '--eval_dataset_split_name every this many steps and at the end, in this process; '
        'the results go to <train_dir>/eval_metrics.jsonl, the eval/ TensorBoard run and the '
        'log. Unset: no evaluation.', 'evaluation while training', check=POSITIVE)
    eval_dataset_split_name: str | None = option(
        None, "The split evaluated by --eval_every_n_steps; by default 'validation' where the "
        "dataset has one, else 'test'.", 'evaluation while training')
    keep_best_by: str = option(
        'accuracy', 'The metric of the evaluations that ranks the checkpoints: the best one is '
        'kept in <train_dir>/best/ with best.json; loss (log_loss) and '
        'expected_calibration_error are minimised, the others maximised.',
        'evaluation while training', choices=MAXIMIZED_METRICS + MINIMIZED_METRICS)
    early_stopping_patience: int | None = option(
        None, 'Stop training after this many evaluations in a row without an improvement of '
        '--keep_best_by by at least --early_stopping_min_delta. Unset: never stop early.',
        'evaluation while training', check=POSITIVE)
    early_stopping_min_delta: float = option(
        0.0, 'The least change of --keep_best_by that counts as an improvement, for early '
        'stopping and --learning_rate_decay_type=reduce_on_plateau.',
        'evaluation while training', check=AT_LEAST_ZERO)
    plateau_factor: float = option(
        0.1, 'With --learning_rate_decay_type=reduce_on_plateau: the learning rate is '
        'multiplied by this after --plateau_patience evaluations without improvement.',
        'learning rate', check=UNIT_OPEN)
    plateau_patience: int = option(
        2, 'With --learning_rate_decay_type=reduce_on_plateau: evaluations without an '
        'improvement of --keep_best_by before the learning rate is lowered.', 'learning rate',
        check=POSITIVE)

    def check_evaluation_options(self) -> None:
        """Raises ValueError for options that need --eval_every_n_steps without it."""
        if self.eval_every_n_steps is not None:
            return
        if self.early_stopping_patience is not None:
            raise ValueError('--early_stopping_patience=%d needs --eval_every_n_steps: early '
                             'stopping follows the evaluations' % self.early_stopping_patience)
        if self.learning_rate_decay_type == PLATEAU_SCHEDULE:
            raise ValueError('--learning_rate_decay_type=%s needs --eval_every_n_steps: the rate '
                             'is lowered when the evaluations stop improving' % PLATEAU_SCHEDULE)

# --- end of evaluation while training -----------------------------------------------------------


# --- Multi-label training (issue 17) ------------------------------------------------------------

@dataclasses.dataclass(kw_only=True)
class MultiLabelOptions:
    """Sigmoid cross-entropy over multi-hot labels: always on a multi-label dataset."""
    multi_label: bool = option(
        False, 'Train with sigmoid cross-entropy over multi-hot labels (a yes or no per '
        'label) instead of softmax cross-entropy, as a multi-label dataset (digit_tiles, '
        '--labels_csv conversions) always does; on a single-label dataset each class id '
        'becomes a one-hot vector.', 'data')

# --- end of multi-label training ----------------------------------------------------------------


@dataclasses.dataclass(kw_only=True)
class ClusterFlags:
    """Where this process sits in a cluster; the command turns them into `cluster_role`."""
    ps_hosts: str | None = option(None, 'Comma-separated host:port of the parameter servers, '
                                  'e.g. ps0:2222,ps1:2222. With --worker_hosts, --job_name and '
                                  '--task it places this process in a cluster; if both host '
                                  'lists are unset, the TF_CONFIG environment variable is read '
                                  'instead.', 'distribution')
    worker_hosts: str | None = option(None, 'Comma-separated host:port of the workers; task 0 '
                                      'is the chief.', 'distribution')
    job_name: str | None = option(None, "This process's job in the cluster: ps serves "
                                  "variables until stopped, worker trains.", 'distribution',
                                  choices=JOB_NAMES)
    task: int = option(0, 'Task id of this process in its --job_name.', 'distribution',
                       check=AT_LEAST_ZERO)
    worker_replicas: int | None = option(None, 'Number of worker replicas; derived from the '
                                         'cluster, so if given it must match it.',
                                         'distribution', check=POSITIVE)
    num_ps_tasks: int | None = option(None, 'Number of parameter servers; derived from the '
                                      'cluster, so if given it must match it. 0 keeps the '
                                      'variables on the local worker.', 'distribution',
                                      check=AT_LEAST_ZERO)

    def __post_init__(self):
        validate(self)


@dataclasses.dataclass(kw_only=True)
class TrainConfig(DataOptions, ModelOptions, ReaderOptions, PerformanceOptions,
                  OptimizerOptions, LearningRateOptions, FineTuningOptions, DistributionOptions,
                  ImbalanceAugmentationOptions, UpdateRuleOptions,
                  TrainingEvaluationOptions, MultiLabelOptions):
    """Everything one training run needs; the defaults are the original trainer's."""
    train_dir: str = option('/tmp/tfmodel/', 'Where checkpoints and event logs go.',
                            'checkpoints and logs')
    train_image_size: int | None = option(None, "Train image size; the net's default if unset.",
                                          'model', check=POSITIVE)
    max_number_of_steps: int | None = option(None, 'The maximum number of training steps.',
                                             'checkpoints and logs', check=POSITIVE)
    log_every_n_steps: int = option(10, 'How often to log progress, in steps.',
                                    'checkpoints and logs', check=POSITIVE)
    save_summaries_secs: int = option(600, 'How often to write summaries, in seconds.',
                                      'checkpoints and logs', check=POSITIVE)
    save_interval_secs: int = option(600, 'How often to save a checkpoint, in seconds.',
                                     'checkpoints and logs', check=POSITIVE)
    max_to_keep: int = option(5, 'How many of the newest checkpoints to keep, across '
                              'restarts.', 'checkpoints and logs', check=POSITIVE)
    summarize_activations: bool = option(False, 'Add histograms and sparsity of every end '
                                         'point to the summaries.', 'checkpoints and logs')
    seed: int | None = option(None, 'Seed of the graph-level random operations and the '
                              'shuffling; --deterministic needs one.', 'performance')
    deterministic: bool = option(False, 'Train reproducibly with --seed, and resume exactly: '
                                 "TensorFlow's op determinism, the input read and shuffled "
                                 'in a reproducible order, every random draw (augmentation, '
                                 'mixup/CutMix, balanced sampling, dropout) seeded by the '
                                 "example's position or the step, and the input pipeline's "
                                 'state saved with each checkpoint, so a run stopped by '
                                 'SIGTERM, or killed after a save, and resumed ends with the '
                                 'weights of the same run uninterrupted (on CPU).',
                                 'performance')

    def __post_init__(self):
        validate(self)
