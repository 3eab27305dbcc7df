"""Optimizers and learning-rate schedules as pure functions of explicit values."""

import dataclasses
import math

import tensorflow.compat.v1 as tf

from slim_classifier.training import config
from slim_classifier.training.config import LEARNING_RATE_SCHEDULES, OPTIMIZERS


def _one_of(argument: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError('%s must be one of %s; got %r' % (argument, ', '.join(allowed), value))


_OPTION_DEFAULTS = {f.name: f.default for f in dataclasses.fields(config.OptimizerOptions)
                    if f.name in {n for spec in OPTIMIZERS.values() for n in spec.reads}}


def make_optimizer(name: str, learning_rate, **options: float) -> tf.train.Optimizer:
    """Returns the named tf.compat.v1 optimizer (see `config.OPTIMIZERS`).

    Args:
      name: one of `config.OPTIMIZERS`.
      learning_rate: a float or a scalar tensor.
      **options: optimizer options by their flag names (`adam_beta1=0.8`); those
        not given take the original trainer's defaults, those the optimizer
        does not read are ignored.

    Raises:
      ValueError: for an unknown optimizer name.
      TypeError: for an option that no optimizer has.
    """
    _one_of('--optimizer', name, OPTIMIZERS)
    unknown = sorted(set(options) - set(_OPTION_DEFAULTS))
    if unknown:
        raise TypeError('unknown optimizer options: %s' % ', '.join(unknown))
    values = {**_OPTION_DEFAULTS, **options}
    spec = OPTIMIZERS[name]
    arguments = {argument: values[option] for option, argument in spec.reads.items()}
    if spec.name:
        arguments['name'] = spec.name
    return getattr(tf.train, spec.class_name)(learning_rate, **arguments)


def decay_steps_per(num_samples_per_epoch: int, batch_size: int, num_epochs: float,
                    num_replicas: int = 1) -> int:
    """Steps that `num_epochs` epochs take with `batch_size` examples per step and replica."""
    steps = num_samples_per_epoch * num_epochs / (batch_size * num_replicas)
    return max(1, int(steps))


def make_learning_rate(schedule: str, learning_rate: float, global_step, *,
                       decay_steps: int, decay_factor: float = 0.94,
                       end_learning_rate: float = 0.0001, total_steps: int | None = None,
                       warmup_steps: int = 0) -> tf.Tensor:
    """The learning rate at `global_step` under one of `LEARNING_RATE_SCHEDULES`.

    `exponential` decays by `decay_factor` every `decay_steps` (staircase, as the
    original trainer); `polynomial` goes linearly to `end_learning_rate` over
    `decay_steps`; `cosine` follows half a cosine from `learning_rate` to
    `end_learning_rate` over `total_steps` (or `decay_steps` when there is no
    step limit). With `warmup_steps`, the rate first rises linearly to `learning_rate`.

    Raises:
      ValueError: for an unknown schedule or a non-positive step count.
    """
    _one_of('--learning_rate_decay_type', schedule, LEARNING_RATE_SCHEDULES)
    if decay_steps < 1:
        raise ValueError('decay_steps must be >= 1; got %d' % decay_steps)
    if warmup_steps < 0:
        raise ValueError('warmup_steps must be >= 0; got %d' % warmup_steps)
    step = tf.cast(global_step, tf.float32)
    # The schedule proper starts once warm-up is over.
    after_warmup = tf.maximum(step - warmup_steps, 0.0)
    if schedule == 'fixed':
        rate = tf.constant(learning_rate, tf.float32)
    elif schedule == 'exponential':
        rate = learning_rate * tf.pow(decay_factor, tf.floor(after_warmup / decay_steps))
    elif schedule == 'polynomial':
        fraction = tf.minimum(after_warmup / decay_steps, 1.0)
        rate = (learning_rate - end_learning_rate) * (1.0 - fraction) + end_learning_rate
    else:
        span = max(1, (total_steps or decay_steps) - warmup_steps)
        fraction = tf.minimum(after_warmup / span, 1.0)
        rate = end_learning_rate + 0.5 * (learning_rate - end_learning_rate) * (
            1.0 + tf.cos(math.pi * fraction))
    if warmup_steps:
        # Step s of the warm-up uses (s + 1) / warmup_steps of the rate: never 0, which
        # FTRL divides by.
        rate = tf.where(step < warmup_steps, learning_rate * (step + 1.0) / warmup_steps, rate)
    return tf.identity(rate, name='scheduled_learning_rate')


def with_loss_scaling(optimizer: tf.train.Optimizer) -> tf.train.Optimizer:
    """`optimizer` with dynamic loss scaling, for training with float16 math.

    The loss is multiplied by a scale before the gradients are taken and the
    gradients divided by it after, so that small float16 gradients do not
    underflow to zero. A step whose gradients are not all finite is skipped
    (neither the variables nor the global step move) and the scale halves; it
    doubles after 2000 finite steps in a row.

    The scale's state lives in local variables: it is not checkpointed, so
    checkpoints stay those of float32 training, and a resumed run finds its
    scale again within a few steps.
    """
    graph = tf.get_default_graph()
    existing = {id(variable) for variable in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)}
    scaled = tf.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, 'dynamic')
    global_variables = graph.get_collection_ref(tf.GraphKeys.GLOBAL_VARIABLES)
    for variable in [v for v in global_variables if id(v) not in existing]:
        global_variables.remove(variable)
        graph.add_to_collection(tf.GraphKeys.LOCAL_VARIABLES, variable)
    return scaled


def loss_scale(optimizer: tf.mixed_precision.MixedPrecisionLossScaleOptimizer) -> tf.Tensor:
    """The current loss scale of a `with_loss_scaling` optimizer."""
    return optimizer._loss_scale()  # pylint: disable=protected-access  (no public accessor)
