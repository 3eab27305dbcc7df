"""Optimizers and learning-rate schedules as pure functions of explicit values.

The optimizers are tf.compat.v1's, and those it lacks written here in graph mode
(AdaMax, Nadam, Nadamax, AdamW); `GradientAccumulationOptimizer` applies any of
them to the mean gradient of several micro-batches.
"""

import dataclasses
import math
from collections.abc import Sequence

import tensorflow.compat.v1 as tf

from slim_classifier.training import config
from slim_classifier.training.config import LEARNING_RATE_SCHEDULES, OPTIMIZERS


def _one_of(argument: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError('%s must be one of %s; got %r' % (argument, ', '.join(allowed), value))


_OPTION_DEFAULTS = {f.name: f.default for f in dataclasses.fields(config.TrainConfig)
                    if f.name in {n for spec in OPTIMIZERS.values() for n in spec.reads}}


def make_optimizer(name: str, learning_rate, **options: float) -> tf.train.Optimizer:
    """Returns the named tf.compat.v1 optimizer, or one of this module's (see `config.OPTIMIZERS`).

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
    optimizer_class = _OWN_OPTIMIZERS.get(spec.class_name) or getattr(tf.train, spec.class_name)
    return optimizer_class(learning_rate, **arguments)


def decay_steps_per(num_samples_per_epoch: int, batch_size: int, num_epochs: float,
                    num_replicas: int = 1) -> int:
    """Steps that `num_epochs` epochs take with `batch_size` examples per step and replica."""
    steps = num_samples_per_epoch * num_epochs / (batch_size * num_replicas)
    return max(1, int(steps))


def make_learning_rate(schedule: str, learning_rate: float, global_step, *,
                       decay_steps: int, decay_factor: float = 0.94,
                       end_learning_rate: float = 0.0001, total_steps: int | None = None,
                       warmup_steps: int = 0, boundaries: Sequence[int] = (),
                       values: Sequence[float] = ()) -> tf.Tensor:
    """The learning rate at `global_step` under one of `LEARNING_RATE_SCHEDULES`.

    `exponential` decays by `decay_factor` every `decay_steps` (staircase, as the
    original trainer); `polynomial` goes linearly to `end_learning_rate` over
    `decay_steps`; `cosine` follows half a cosine from `learning_rate` to
    `end_learning_rate` over `total_steps` (or `decay_steps` when there is no
    step limit); `piecewise` is `values[i]` from the step `boundaries[i - 1]` on
    (`values[0]` before the first boundary; `learning_rate` is not read). With
    `warmup_steps`, the rate first rises linearly to `learning_rate` (to `values[0]`
    for `piecewise`).

    Raises:
      ValueError: for an unknown schedule, a non-positive step count, or
        boundaries and values that do not fit together or the schedule.
    """
    _one_of('--learning_rate_decay_type', schedule, LEARNING_RATE_SCHEDULES)
    if decay_steps < 1:
        raise ValueError('decay_steps must be >= 1; got %d' % decay_steps)
    if warmup_steps < 0:
        raise ValueError('warmup_steps must be >= 0; got %d' % warmup_steps)
    _check_piecewise(schedule, boundaries, values)
    step = tf.cast(global_step, tf.float32)
    # The schedule proper starts once warm-up is over.
    after_warmup = tf.maximum(step - warmup_steps, 0.0)
    if schedule == 'fixed':
        rate = tf.constant(learning_rate, tf.float32)
    elif schedule == 'exponential':
        rate = learning_rate * tf.pow(decay_factor, tf.floor(after_warmup / decay_steps))
    elif schedule == 'piecewise':
        # Warm-up aside, the boundaries count from the first step, as the epochs they came from.
        learning_rate = values[0]
        interval = tf.reduce_sum(tf.cast(step >= tf.constant(boundaries, tf.float32), tf.int32))
        rate = tf.gather(tf.constant(values, tf.float32), interval)
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


def _check_piecewise(schedule: str, boundaries: Sequence[int], values: Sequence[float]) -> None:
    if schedule != 'piecewise':
        if boundaries or values:
            raise ValueError('--boundaries_epochs and --values apply only with '
                             '--learning_rate_decay_type=piecewise; got %s'
                             % schedule)
        return
    if not values:
        raise ValueError('--learning_rate_decay_type=piecewise needs --values: the learning '
                         'rate before the first of --boundaries_epochs and after each')
    if len(values) != len(boundaries) + 1:
        raise ValueError('--values must hold one rate more than --boundaries_epochs; got %d '
                         'values for %d boundaries' % (len(values), len(boundaries)))
    if any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
        raise ValueError('--boundaries_epochs must increase, each at least one step after the '
                         'last; they fall on steps %s' % ', '.join(map(str, boundaries)))


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


class _AdamFamilyOptimizer(tf.train.Optimizer):
    """Adam's relatives: AdaMax, Nadam and Nadamax, in graph mode.

    With g the gradient, lr the learning rate and t the update (from 1):

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2           (Nadam)
        u = max(beta2 * u, |g|)                      (AdaMax, Nadamax: the infinity norm)
        direction = m / (1 - beta1^t)                (AdaMax, Kingma & Ba 2015, Algorithm 2)
        direction = (1 - beta1) * g / (1 - beta1^t)  (Nadam, Nadamax: Nesterov momentum,
                    + beta1 * m / (1 - beta1^(t+1))   Dozat 2016, Algorithm 2, constant beta1)
        var -= lr * direction / (sqrt(v / (1 - beta2^t)) + epsilon)   (Nadam)
        var -= lr * direction / (u + epsilon)                         (AdaMax, Nadamax)

    The moments are slots ('m', and 'v' or 'u') and beta1^t (and beta2^t) are
    variables beside them, all checkpointed like Adam's. A sparse gradient
    updates the whole variable, as its dense equivalent would.
    """

    NESTEROV = False
    INFINITY_NORM = False

    def __init__(self, learning_rate, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, use_locking: bool = False, name: str | None = None):
        super().__init__(use_locking, name or type(self).__name__.replace('Optimizer', ''))
        self._hyper = {'learning_rate': learning_rate, 'beta1': beta1, 'beta2': beta2,
                       'epsilon': epsilon}
        self._hyper_t = {}

    def _powers(self) -> tuple[str, ...]:
        return ('beta1_power',) if self.INFINITY_NORM else ('beta1_power', 'beta2_power')

    def _second_moment(self) -> str:
        return 'u' if self.INFINITY_NORM else 'v'

    def _create_slots(self, var_list):
        # One device for the powers on every worker, as Adam's: the first variable's by name.
        first = min(var_list, key=lambda variable: variable.name)
        for power in self._powers():
            self._create_non_slot_variable(self._hyper[power.replace('_power', '')], power,
                                           colocate_with=first)
        for variable in var_list:
            self._zeros_slot(variable, 'm', self._name)
            self._zeros_slot(variable, self._second_moment(), self._name)

    def _power_variables(self) -> dict[str, tf.Variable]:
        with tf.init_scope():
            graph = tf.get_default_graph()
            return {power: self._get_non_slot_variable(power, graph=graph)
                    for power in self._powers()}

    def _prepare(self):
        self._hyper_t = {name: tf.convert_to_tensor(self._call_if_callable(value), name=name)
                         for name, value in self._hyper.items()}

    def _update(self, grad, var):
        dtype = var.dtype.base_dtype
        lr, beta1, beta2, epsilon = (tf.cast(self._hyper_t[name], dtype) for name in
                                     ('learning_rate', 'beta1', 'beta2', 'epsilon'))
        powers = {name: tf.cast(power, dtype) for name, power in self._power_variables().items()}
        m = self.get_slot(var, 'm')
        m_t = m.assign(beta1 * m + (1.0 - beta1) * grad, use_locking=self._use_locking)
        second = self.get_slot(var, self._second_moment())
        if self.INFINITY_NORM:
            second_t = second.assign(tf.maximum(beta2 * second, tf.abs(grad)),
                                     use_locking=self._use_locking)
            denominator = second_t + epsilon
        else:
            second_t = second.assign(beta2 * second + (1.0 - beta2) * tf.square(grad),
                                     use_locking=self._use_locking)
            denominator = tf.sqrt(second_t / (1.0 - powers['beta2_power'])) + epsilon
        beta1_power = powers['beta1_power']
        if self.NESTEROV:
            direction = ((1.0 - beta1) * grad / (1.0 - beta1_power)
                         + beta1 * m_t / (1.0 - beta1_power * beta1))
        else:
            direction = m_t / (1.0 - beta1_power)
        var_update = var.assign_sub(lr * direction / denominator, use_locking=self._use_locking)
        return tf.group(var_update, m_t, second_t)

    def _apply_dense(self, grad, var):
        return self._update(grad, var)

    def _resource_apply_dense(self, grad, handle):
        return self._update(grad, handle)

    def _apply_sparse(self, grad, var):
        return self._update(tf.convert_to_tensor(grad), var)

    def _resource_apply_sparse(self, grad, handle, indices):
        return self._update(tf.math.unsorted_segment_sum(grad, indices, tf.shape(handle)[0]),
                            handle)

    def _finish(self, update_ops, name_scope):
        with tf.control_dependencies(update_ops):
            power_updates = []
            for name, power in self._power_variables().items():
                beta = self._hyper_t[name.replace('_power', '')]
                with tf.colocate_with(power):
                    power_updates.append(power.assign(power * beta,
                                                      use_locking=self._use_locking))
        return tf.group(*update_ops, *power_updates, name=name_scope)


class AdaMaxOptimizer(_AdamFamilyOptimizer):
    """AdaMax (Kingma & Ba 2015): Adam with the infinity norm of the gradients."""
    INFINITY_NORM = True


class NadamOptimizer(_AdamFamilyOptimizer):
    """Nadam (Dozat 2016): Adam with Nesterov momentum."""
    NESTEROV = True


class NadamaxOptimizer(_AdamFamilyOptimizer):
    """Nadamax (Dozat 2016): AdaMax with Nesterov momentum."""
    NESTEROV = True
    INFINITY_NORM = True


class AdamWOptimizer(tf.train.AdamOptimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as PyTorch's AdamW.

    Each update first shrinks the weights, `var -= lr * weight_decay * var`,
    then takes tf.train.AdamOptimizer's step; the decay follows the learning
    rate's schedule and never enters the gradients. Only the variables of rank 2
    and more decay (the kernels of convolutions and fully connected layers,
    which the nets' L2 regularizers cover); biases and batch-norm parameters
    do not.
    """

    def __init__(self, learning_rate, weight_decay: float = 0.01, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8, use_locking: bool = False,
                 name: str = 'AdamW'):
        super().__init__(learning_rate, beta1, beta2, epsilon, use_locking, name)
        self._weight_decay = weight_decay
        self._weight_decay_t = None

    def _prepare(self):
        super()._prepare()
        self._weight_decay_t = tf.convert_to_tensor(
            self._call_if_callable(self._weight_decay), name='weight_decay')

    def _decay(self, var, grad) -> list:
        if var.shape.rank is None or var.shape.rank < 2:
            return []
        dtype = var.dtype.base_dtype
        shrink = tf.cast(self._lr_t, dtype) * tf.cast(self._weight_decay_t, dtype)
        # After the gradient: the forward pass must read the weights before they shrink.
        with tf.control_dependencies([grad]):
            return [var.assign_sub(shrink * var, use_locking=self._use_locking)]

    def _apply_dense(self, grad, var):
        with tf.control_dependencies(self._decay(var, grad)):
            return super()._apply_dense(grad, var)

    def _resource_apply_dense(self, grad, handle):
        with tf.control_dependencies(self._decay(handle, grad)):
            return super()._resource_apply_dense(grad, handle)

    def _apply_sparse(self, grad, var):
        with tf.control_dependencies(self._decay(var, grad.values)):
            return super()._apply_sparse(grad, var)

    def _resource_apply_sparse(self, grad, handle, indices):
        with tf.control_dependencies(self._decay(handle, grad)):
            return super()._resource_apply_sparse(grad, handle, indices)


_OWN_OPTIMIZERS = {optimizer.__name__: optimizer for optimizer in (
    AdaMaxOptimizer, NadamOptimizer, NadamaxOptimizer, AdamWOptimizer)}


class GradientAccumulationOptimizer(tf.train.Optimizer):
    """Applies `optimizer` to the mean gradient of every `steps` micro-batches.

    Each `apply_gradients` adds the gradients to accumulator slots
    ('accumulated_gradient', checkpointed, so a run resumed between updates
    goes on exactly) and increments the global step: the global step counts
    micro-batches. Every `steps`-th micro-batch (global step + 1 a multiple of
    `steps`), the accumulated sum divided by `steps`, clipped to the global norm
    `clip_norm` if that is > 0, goes to `optimizer`, and the accumulators are
    zeroed. With losses averaged over each batch, an update equals one step of
    `optimizer` on the `steps` micro-batches as one batch.
    """

    def __init__(self, optimizer: tf.train.Optimizer, steps: int, clip_norm: float = 0.0,
                 name: str = 'GradientAccumulation'):
        if steps < 1:
            raise ValueError('--gradient_accumulation_steps must be >= 1; got %d' % steps)
        super().__init__(use_locking=False, name=name)
        self._optimizer = optimizer
        self._steps = steps
        self._clip_norm = clip_norm

    def compute_gradients(self, *args, **kwargs):
        return self._optimizer.compute_gradients(*args, **kwargs)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        if global_step is None:
            raise ValueError('gradient accumulation counts its micro-batches with the global '
                             'step: give apply_gradients a global_step')
        pairs = [(grad, var) for grad, var in grads_and_vars if grad is not None]
        with tf.init_scope():
            sums = [self._zeros_slot(var, 'accumulated_gradient', self._name) for _, var in pairs]
        with tf.name_scope(name, self._name):
            added = [total.assign_add(tf.convert_to_tensor(grad))
                     for total, (grad, _) in zip(sums, pairs)]
            with tf.control_dependencies(added):
                update_now = tf.equal((global_step + 1) % self._steps, 0)
            applied = tf.cond(update_now, lambda: self._apply_mean(sums, pairs), tf.no_op)
            with tf.control_dependencies([applied]):
                return global_step.assign_add(1).op

    def _apply_mean(self, sums, pairs):
        means = [total / float(self._steps) for total in sums]
        if self._clip_norm > 0:
            means, _ = tf.clip_by_global_norm(means, self._clip_norm)
        update = self._optimizer.apply_gradients(
            [(mean, var) for mean, (_, var) in zip(means, pairs)])
        with tf.control_dependencies([update]):
            return tf.group(*[total.assign(tf.zeros_like(total)) for total in sums])

    def get_slot(self, var, name):
        if name == 'accumulated_gradient':
            return super().get_slot(var, name)
        return self._optimizer.get_slot(var, name)

    def get_slot_names(self):
        return ['accumulated_gradient', *self._optimizer.get_slot_names()]

    def variables(self):
        return super().variables() + self._optimizer.variables()
