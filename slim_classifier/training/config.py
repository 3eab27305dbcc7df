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
                                             UNIT_RIGHT_OPEN, DataOptions, ModelOptions,
                                             PerformanceOptions, ReaderOptions, option, validate)

if TYPE_CHECKING:
    from slim_classifier.training.cluster import ClusterRole


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """A tf.compat.v1 optimizer class and the options it reads, as {option: its argument}."""
    class_name: str
    reads: dict[str, str]
    name: str | None = None  # the optimizer's variable-scope name, where the original set one


OPTIMIZERS: dict[str, OptimizerSpec] = {
    'adadelta': OptimizerSpec('AdadeltaOptimizer', {'adadelta_rho': 'rho',
                                                    'opt_epsilon': 'epsilon'}),
    'adagrad': OptimizerSpec('AdagradOptimizer', {
        'adagrad_initial_accumulator_value': 'initial_accumulator_value'}),
    'adam': OptimizerSpec('AdamOptimizer', {'adam_beta1': 'beta1', 'adam_beta2': 'beta2',
                                            'opt_epsilon': 'epsilon'}),
    'ftrl': OptimizerSpec('FtrlOptimizer', {
        'ftrl_learning_rate_power': 'learning_rate_power',
        'ftrl_initial_accumulator_value': 'initial_accumulator_value',
        'ftrl_l1': 'l1_regularization_strength', 'ftrl_l2': 'l2_regularization_strength'}),
    'momentum': OptimizerSpec('MomentumOptimizer', {'momentum': 'momentum'}, name='Momentum'),
    'rmsprop': OptimizerSpec('RMSPropOptimizer', {'rmsprop_decay': 'decay',
                                                  'rmsprop_momentum': 'momentum',
                                                  'opt_epsilon': 'epsilon'}),
    'sgd': OptimizerSpec('GradientDescentOptimizer', {}),
}
LEARNING_RATE_SCHEDULES = ('fixed', 'exponential', 'polynomial', 'cosine')
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
                  OptimizerOptions, LearningRateOptions, FineTuningOptions, DistributionOptions):
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
                              'shuffling.', 'performance')
    deterministic: bool = option(False, 'Read and shuffle the input in a reproducible order.',
                                 'performance')

    def __post_init__(self):
        validate(self)
