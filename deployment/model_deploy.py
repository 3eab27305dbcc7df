"""Deploys one model as several clones over devices, machines and ps tasks.

A model is built once per clone by a user `model_fn`. Clones share their
variables (the first clone creates them, the others reuse them), so training
on N clones of batch B computes the same update as one clone of batch N*B:

    config = DeploymentConfig(num_clones=2)
    with tf.Graph().as_default():
        model = deploy(config, model_fn, optimizer=tf.train.MomentumOptimizer(0.1, 0.9))
        ...run model.train_op...

The layout follows TF-Slim's model_deploy:

* variables live on the variables device: the local CPU, or the parameter
  server tasks in turn (task 0, 1, ..., k-1, 0, ...) when `num_ps_tasks > 0`;
* clone i runs on `/device:GPU:i`, or on `/device:CPU:0` with `clone_on_cpu`;
  with parameter servers the worker job is prefixed, e.g.
  `/job:worker/device:GPU:0`;
* with more than one clone, clone i builds its ops under the name scope
  `clone_i`, which is how its losses and update ops are told apart;
* each clone's loss is its LOSSES summed and divided by the number of clones;
  the REGULARIZATION_LOSSES are added once, to the first clone; the clones'
  gradients are summed;
* only the first clone's UPDATE_OPS (e.g. batch-norm moving averages) run
  with the train op, so each moving average moves once per step.

The functions communicate with `model_fn` through the graph collections
named in each docstring: `model_fn` adds its losses to LOSSES (as
`tf.losses.*` and `slim.losses.*` do), layers add REGULARIZATION_LOSSES and
UPDATE_OPS, and summaries go to SUMMARIES.
"""

import collections
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow.compat.v1 as tf

from deployment.deployment_config import DeploymentConfig
from slim_classifier.compat import slim

__all__ = [
    'Clone',
    'DeployedModel',
    'DeploymentConfig',
    'create_clones',
    'deploy',
    'make_train_op',
    'merge_summaries',
    'optimize_clones',
    'scalar_summary',
]

Clone = collections.namedtuple('Clone', ['outputs', 'scope', 'device'])
Clone.__doc__ = """One copy of the model.

Fields:
  outputs: whatever `model_fn` returned for this clone.
  scope: the clone's name scope ('clone_0/', ... or '' for a lone clone);
    the clone's ops, losses and update ops have names under it.
  device: the device string the clone's ops were placed on.
"""

DeployedModel = collections.namedtuple(
    'DeployedModel', ['train_op', 'summary_op', 'total_loss', 'clones'])
DeployedModel.__doc__ = """What `deploy` built.

Fields:
  train_op: a tensor that, when run, applies one optimizer step (and the
    first clone's update ops) and yields the total loss; None without an
    optimizer.
  summary_op: the merged summaries (see `deploy`), or None if there are none.
  total_loss: the summed clone losses plus the regularization losses, or
    None if `model_fn` added no loss.
  clones: the list of `Clone`s.
"""

GradsAndVars = list[tuple[Any, tf.Variable]]

def create_clones(config: DeploymentConfig,
                  model_fn: Callable[..., Any],
                  args: Sequence[Any] | None = None,
                  kwargs: dict[str, Any] | None = None) -> list[Clone]:
    """Builds `model_fn` once per clone, all clones sharing one set of variables.

    Clone i is built under the name scope `config.clone_scope(i)`, on
    `config.clone_device(i)`; variables made with `slim.variable` or
    `slim.model_variable` go to `config.variables_device()`. The first clone
    creates the variables and later clones reuse them, so `model_fn` must
    build the same variables every time. `model_fn` is called with the same
    `args` and `kwargs` each time; give each clone its own data by having
    `model_fn` dequeue its batch (e.g. from a `slim.prefetch_queue`).

    Graph side effects: nothing is read. Whatever `model_fn` adds stays in
    the graph: its losses in LOSSES, regularizers in REGULARIZATION_LOSSES
    (only while the first clone creates the variables), update ops in
    UPDATE_OPS and summaries in SUMMARIES, each under its clone's scope.

    Args:
      config: where to put the clones and the variables.
      model_fn: builds the model and returns its outputs (any value).
      args: positional arguments for `model_fn`.
      kwargs: keyword arguments for `model_fn`.

    Returns:
      One `Clone(outputs, scope, device)` per clone, in order.
    """
    args = args or []
    kwargs = kwargs or {}
    clones = []
    with slim.arg_scope([slim.model_variable, slim.variable],
                        device=config.variables_device()):
        for index in range(config.num_clones):
            with tf.name_scope(config.clone_scope(index)) as scope:
                device = config.clone_device(index)
                with tf.device(device):
                    with tf.variable_scope(tf.get_variable_scope(),
                                           reuse=True if index > 0 else None):
                        outputs = model_fn(*args, **kwargs)
                clones.append(Clone(outputs, scope, device))
    return clones


def _clone_loss(clone: Clone,
                num_clones: int,
                regularization_losses: Sequence[tf.Tensor] | None) -> tf.Tensor | None:
    """Returns one clone's share of the total loss.

    That is the clone's LOSSES summed and divided by `num_clones` (so the
    clones together average their losses), plus `regularization_losses`.
    Call it inside the clone's name scope.

    Graph side effects: reads the LOSSES under `clone.scope`; adds the scalar
    summaries 'clone_loss' and (given regularization losses)
    'regularization_loss', under the clone's name scope, to SUMMARIES.

    Returns:
      The clone's loss, or None if it has neither kind of loss.
    """
    parts = []
    summary_device = _cpu_of(clone.device)
    with tf.device(clone.device):
        data_losses = tf.get_collection(tf.GraphKeys.LOSSES, clone.scope)
        if data_losses:
            data_loss = tf.add_n(data_losses, name='data_loss')
            if num_clones > 1:
                data_loss = tf.math.divide(data_loss, float(num_clones),
                                           name='scaled_data_loss')
            with tf.device(summary_device):
                tf.summary.scalar('clone_loss', data_loss)
            parts.append(data_loss)
        if regularization_losses:
            regularization_loss = tf.add_n(regularization_losses,
                                           name='sum_of_regularization_losses')
            with tf.device(summary_device):
                tf.summary.scalar('regularization_loss', regularization_loss)
            parts.append(regularization_loss)
        if not parts:
            return None
        return tf.add_n(parts, name='sum_loss')


def _losses_per_clone(clones: Sequence[Clone],
                      regularization_losses: Sequence[tf.Tensor]
                      ) -> list[tuple[Clone, tf.Tensor]]:
    """Returns (clone, its loss) for each clone that has a loss.

    The regularization losses go to the first clone only: the clones share
    the variables they regularize, so they are counted once.
    """
    losses = []
    for clone in clones:
        with tf.name_scope(clone.scope):
            loss = _clone_loss(clone, len(clones), regularization_losses)
        if loss is not None:
            losses.append((clone, loss))
        regularization_losses = None
    return losses


def _sum_clones_gradients(clone_grads: Sequence[GradsAndVars]) -> GradsAndVars:
    """Adds up, per variable, the gradients the clones computed.

    Every clone lists the same variables in the same order (they share
    them), so the lists are walked in step. A variable no clone has a
    gradient for is dropped.
    """
    summed = []
    for per_clone in zip(*clone_grads):
        variable = per_clone[0][1]
        grads = [grad for grad, _ in per_clone if grad is not None]
        if not grads:
            continue
        if len(grads) == 1:
            summed.append((grads[0], variable))
        else:
            summed.append((tf.add_n(grads, name=variable.op.name + '/sum_grads'),
                           variable))
    return summed


def optimize_clones(clones: Sequence[Clone],
                    optimizer: tf.train.Optimizer,
                    regularization_losses: Sequence[tf.Tensor] | None = None,
                    **kwargs: Any) -> tuple[tf.Tensor, GradsAndVars]:
    """Computes the total loss of the clones and its gradients.

    Each clone's loss is its LOSSES summed and divided by the number of
    clones; the regularization losses are added to the first clone only.
    Each clone's gradients are computed on its own device, then summed over
    the clones, which makes them the gradients of the total loss.

    Graph side effects: reads LOSSES under each clone's scope and, when
    `regularization_losses` is None, all of REGULARIZATION_LOSSES; adds the
    scalar summaries 'clone_loss' (per clone, under its scope) and
    'regularization_loss' (under the first clone's scope) to SUMMARIES.

    Args:
      clones: the clones from `create_clones`.
      optimizer: computes the gradients; nothing is applied here.
      regularization_losses: losses to add once; None takes the graph's
        REGULARIZATION_LOSSES, [] adds none.
      **kwargs: passed on to `optimizer.compute_gradients` (e.g. `var_list`).

    Returns:
      (total_loss, grads_and_vars): the loss every clone contributed to, and
      one (summed gradient, variable) pair per variable with a gradient.

    Raises:
      ValueError: if no clone has a loss to optimize.
    """
    if regularization_losses is None:
        regularization_losses = tf.get_collection(
            tf.GraphKeys.REGULARIZATION_LOSSES)
    losses = _losses_per_clone(clones, regularization_losses)
    if not losses:
        raise ValueError('optimize_clones needs a loss: model_fn added none to '
                         'LOSSES and there are no regularization losses')
    clone_grads = []
    for clone, loss in losses:
        with tf.name_scope(clone.scope), tf.device(clone.device):
            clone_grads.append(optimizer.compute_gradients(loss, **kwargs))
    total_loss = tf.add_n([loss for _, loss in losses], name='total_loss')
    return total_loss, _sum_clones_gradients(clone_grads)


def _gradient_summaries(grads_and_vars: GradsAndVars) -> list[tf.Tensor]:
    """Adds histograms of each gradient and of its norm to SUMMARIES."""
    summaries = []
    for grad, variable in grads_and_vars:
        # A sparse gradient is summarised by the rows it touches.
        values = grad.values if isinstance(grad, tf.IndexedSlices) else grad
        name = variable.op.name
        summaries.append(tf.summary.histogram(name + '/gradient', values))
        summaries.append(tf.summary.histogram(name + '/gradient_norm',
                                              tf.global_norm([values])))
    return summaries


def _total_loss_without_gradients(clones: Sequence[Clone]) -> tf.Tensor | None:
    """Returns the clones' total loss as `optimize_clones` counts it, or None."""
    losses = _losses_per_clone(
        clones, tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
    if not losses:
        return None
    return tf.add_n([loss for _, loss in losses], name='total_loss')


def deploy(config: DeploymentConfig,
           model_fn: Callable[..., Any],
           args: Sequence[Any] | None = None,
           kwargs: dict[str, Any] | None = None,
           optimizer: tf.train.Optimizer | None = None,
           summarize_gradients: bool = False) -> DeployedModel:
    """Builds the clones, their total loss and (with an optimizer) a train op.

    The train op applies the summed gradients of the total loss, increments
    the global step and runs the first clone's UPDATE_OPS; the other clones'
    update ops are left out so batch-norm moving averages move once per
    step. Gradients are computed and applied on `config.optimizer_device()`.

    Graph side effects: creates the global step (on the variables device) if
    the graph has none; everything `create_clones` and `optimize_clones`
    add; reads UPDATE_OPS under the first clone's scope, and SUMMARIES (all
    but the copies made by clones other than the first); adds the
    scalar summary 'total_loss' and, with `summarize_gradients`, histograms
    '<variable>/gradient' and '<variable>/gradient_norm' to SUMMARIES.

    Args:
      config: where to put the clones and the variables.
      model_fn: builds the model and adds its losses to LOSSES; called once
        per clone with `args` and `kwargs`.
      args: positional arguments for `model_fn`.
      kwargs: keyword arguments for `model_fn`.
      optimizer: a `tf.train.Optimizer`; None builds the clones and the
        total loss only, with no train op.
      summarize_gradients: add histogram summaries of the gradients.

    Returns:
      A `DeployedModel(train_op, summary_op, total_loss, clones)`; its
      summary_op merges every summary of the graph except the copies made
      by the clones other than the first ('total_loss' and any gradient
      histograms included).

    Raises:
      ValueError: with an optimizer, if model_fn adds no loss to optimize.
    """
    with tf.device(config.variables_device()):
        global_step = tf.train.get_or_create_global_step()
    clones = create_clones(config, model_fn, args, kwargs)

    train_op = None
    with tf.device(config.optimizer_device()):
        if optimizer is None:
            total_loss = _total_loss_without_gradients(clones)
        else:
            total_loss, grads_and_vars = optimize_clones(clones, optimizer)
            if summarize_gradients:
                with tf.device(config.inputs_device()):
                    _gradient_summaries(grads_and_vars)
    if optimizer is not None:
        train_op = make_train_op(config, clones, optimizer, total_loss, grads_and_vars,
                                 global_step)
    if total_loss is not None:
        scalar_summary('total_loss', total_loss, config.inputs_device())
    return DeployedModel(train_op, merge_summaries(clones), total_loss, clones)


def make_train_op(config: DeploymentConfig,
                  clones: Sequence[Clone],
                  optimizer: tf.train.Optimizer,
                  total_loss: tf.Tensor,
                  grads_and_vars: GradsAndVars,
                  global_step: tf.Variable,
                  extra_update_ops: Sequence[tf.Operation] = ()) -> tf.Tensor:
    """The op that applies the gradients and runs the first clone's updates.

    It increments the global step and runs the first clone's UPDATE_OPS (the
    other clones' are left out, so batch-norm moving averages move once per
    step) and `extra_update_ops`; its value is the total loss.

    Graph side effects: reads UPDATE_OPS under the first clone's scope.
    """
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS, clones[0].scope)
    with tf.device(config.optimizer_device()):
        apply_op = optimizer.apply_gradients(grads_and_vars, global_step=global_step)
        with tf.control_dependencies([tf.group(apply_op, *update_ops, *extra_update_ops)]):
            return tf.identity(total_loss, name='train_op')


def merge_summaries(clones: Sequence[Clone]) -> tf.Tensor | None:
    """Merges SUMMARIES, leaving out the copies made by every clone but the first.

    Returns None when there is no summary.
    """
    other_clones = tuple(clone.scope for clone in clones[1:])
    kept = [summary for summary in tf.get_collection(tf.GraphKeys.SUMMARIES)
            if not (other_clones and summary.op.name.startswith(other_clones))]
    if not kept:
        return None
    return tf.summary.merge(sorted(kept, key=lambda s: s.name), name='summary_op')


def scalar_summary(tag: str, value: tf.Tensor, device: str) -> tf.Tensor:
    """Adds a scalar summary with exactly `tag`, created on `device`, to SUMMARIES.

    `tf.summary.scalar` takes its tag from a name scope, so a summary of the
    op named 'total_loss' would be tagged 'total_loss_1'; this keeps the tag.
    """
    with tf.device(device):
        summary = tf.raw_ops.ScalarSummary(tags=tag, values=value, name=tag + '_summary')
    tf.add_to_collection(tf.GraphKeys.SUMMARIES, summary)
    return summary


def _cpu_of(device: str) -> str:
    """Returns the CPU of the machine that `device` names (summaries have no GPU kernel)."""
    spec = tf.DeviceSpec.from_string(device)
    return spec.replace(device_type='CPU', device_index=0).to_string()
