"""The training graph: input batches -> clones of the net -> losses -> one train op.

The clones, their losses, gradients and the train op come from
`deployment.model_deploy`, the library TF-Slim users know; this module adds
what the trainer needs around it (label checks, learning-rate schedule,
gradient clipping, loss scaling, moving averages, sync replicas, summaries).
"""

import contextlib
import dataclasses
import logging

import tensorflow.compat.v1 as tf

from datasets import dataset_factory
from deployment import model_deploy
from nets import nets_factory
from preprocessing.augmentation import Augmentation
from slim_classifier.compat import slim
from slim_classifier.errors import TrainingError
from slim_classifier.runtime import batches, checkpoints, determinism
from slim_classifier.training import optimization, sync_replicas
from slim_classifier.training.config import OPTIMIZERS, PLATEAU_SCHEDULE, TrainConfig

AUX_LOGITS_WEIGHT = 0.4
LABEL_CHECK = batches.LABEL_CHECK

log = logging.getLogger('train')


@dataclasses.dataclass
class Readiness:
    """What a worker checks before training on variables that the chief initialises."""
    ready_op: tf.Tensor  # the names of the variables not initialised yet
    ready_for_local_init_op: tf.Tensor  # the same, for the global variables only


@dataclasses.dataclass
class PlateauRate:
    """The learning rate of reduce_on_plateau: a checkpointed variable the loop lowers."""
    variable: tf.Variable
    new_value: tf.Tensor  # a placeholder, fed to `assign`
    assign: tf.Operation


@dataclasses.dataclass
class TrainingGraph:
    train_op: tf.Tensor
    global_step: tf.Variable
    step_after_train: tf.Tensor  # the global step once train_op has run
    learning_rate: tf.Tensor
    summary_op: tf.Tensor
    init_op: tf.Operation
    local_init_op: tf.Operation
    readiness: Readiness | None  # on a worker other than the chief
    sync: sync_replicas.SyncOps | None
    fine_tune: checkpoints.FineTuneRestore | None
    dataset: slim.dataset.Dataset
    images_per_step: int
    plateau: PlateauRate | None = None  # with --learning_rate_decay_type=reduce_on_plateau


def deployment_config(config: TrainConfig) -> model_deploy.DeploymentConfig:
    role = config.cluster_role
    if role is None:
        return model_deploy.DeploymentConfig(num_clones=config.num_clones,
                                             clone_on_cpu=config.clone_on_cpu)
    return model_deploy.DeploymentConfig(
        num_clones=config.num_clones, clone_on_cpu=config.clone_on_cpu,
        replica_id=role.replica_id, num_replicas=role.num_workers,
        num_ps_tasks=role.num_ps_tasks, worker_job_name=role.job_name, ps_job_name='ps')


def build_training_graph(config: TrainConfig, is_chief: bool) -> TrainingGraph:
    """Builds the whole training graph in the default graph.

    Raises:
      checkpoints.CheckpointMismatch: a fine-tuning checkpoint that does not fit.
      ValueError: for an unknown dataset, split or net, or a trainable scope
        that holds no variable.
    """
    dataset = dataset_factory.get_dataset(config.dataset_name, config.dataset_split_name,
                                          config.dataset_dir)
    num_classes = dataset.num_classes - config.labels_offset
    deploy_config = deployment_config(config)
    network_fn = nets_factory.get_network_fn(config.model_name, num_classes,
                                             weight_decay=config.weight_decay, is_training=True)
    with tf.device(deploy_config.variables_device()):
        global_step = tf.train.get_or_create_global_step()
    class_weights, balance_counts = _class_balance(config, dataset)
    with tf.device(deploy_config.inputs_device()):
        iterator = tf.data.make_one_shot_iterator(batches.training_batches(
            dataset, config.preprocessing_name or config.model_name,
            config.train_image_size or network_fn.default_image_size, config.batch_size,
            use_grayscale=config.use_grayscale,
            augmentation=Augmentation(**config.augmentation_values()),
            balance_counts=balance_counts, num_readers=config.num_readers,
            num_parallel_calls=config.num_preprocessing_threads,
            # Each worker of a cluster shuffles differently, so they train on other batches.
            seed=None if config.seed is None else config.seed + deploy_config.replica_id,
            deterministic=config.deterministic, labels_offset=config.labels_offset))
        if config.deterministic:
            _save_with_checkpoints(iterator)

    def clone_fn():
        images, labels = iterator.get_next()
        # Soft labels (mixup, CutMix) were checked before mixing; multi-hot ones hold no ids.
        if labels.shape.rank == 1:
            labels = batches.checked_labels(labels, num_classes)
        with _step_draws(config, global_step):
            logits, end_points = network_fn(images)
        _add_losses(logits, end_points, labels, num_classes, config.label_smoothing,
                    class_weights, multi_label=dataset.multi_label or config.multi_label)
        return end_points

    clones = model_deploy.create_clones(deploy_config, clone_fn)
    with tf.device(deploy_config.inputs_device()):
        _add_model_summaries(clones[0].outputs, config.summarize_activations)
    averages = None
    if config.moving_average_decay:
        averages = tf.train.ExponentialMovingAverage(config.moving_average_decay, global_step)
    plateau = None
    with tf.device(deploy_config.optimizer_device()):
        if config.learning_rate_decay_type == PLATEAU_SCHEDULE:
            plateau = _plateau_rate(config.learning_rate)
            learning_rate = _warmed_up(plateau.variable, config, dataset.num_samples,
                                       global_step)
        else:
            learning_rate = _learning_rate(config, dataset.num_samples, global_step)
        optimizer = optimization.make_optimizer(config.optimizer, learning_rate,
                                                **config.optimizer_params())
        if config.precision == 'float16':
            optimizer = optimization.with_loss_scaling(optimizer)
            tf.summary.scalar('loss_scale', optimization.loss_scale(optimizer))
        if config.sync_replicas:
            optimizer = sync_replicas.wrap_optimizer(optimizer, config, averages)
        if config.gradient_accumulation_steps > 1:
            optimizer = _with_gradient_accumulation(optimizer, config)
        tf.summary.scalar('learning_rate', learning_rate)

    total_loss, gradients = model_deploy.optimize_clones(
        clones, optimizer, var_list=_variables_to_train(config.trainable_scopes),
        regularization_losses=_regularization_losses(config))
    # Gradient accumulation clips the mean gradient of its micro-batches instead.
    if config.clip_gradient_norm > 0 and config.gradient_accumulation_steps == 1:
        gradients = _clip_by_global_norm(gradients, config.clip_gradient_norm)
    model_deploy.scalar_summary('total_loss', total_loss, deploy_config.inputs_device())
    with tf.device(deploy_config.inputs_device()):
        for loss in tf.get_collection(tf.GraphKeys.LOSSES, clones[0].scope):
            tf.summary.scalar('losses/%s' % loss.op.name, loss)
    extra_updates = []
    if averages is not None and not config.sync_replicas:
        extra_updates.append(averages.apply(slim.get_model_variables()))
    train_op = model_deploy.make_train_op(deploy_config, clones, optimizer, total_loss,
                                          gradients, global_step, extra_updates)
    with tf.control_dependencies([train_op]):
        step_after_train = global_step.read_value()
    if config.deterministic:
        try:
            determinism.refuse_stateful_draws(tf.get_default_graph(), [train_op])
        except determinism.StatefulDrawError as error:
            raise TrainingError(str(error)) from None
    return TrainingGraph(
        train_op=train_op, global_step=global_step, step_after_train=step_after_train,
        learning_rate=learning_rate, summary_op=model_deploy.merge_summaries(clones),
        init_op=tf.group(tf.global_variables_initializer(), tf.local_variables_initializer()),
        local_init_op=tf.local_variables_initializer(),
        readiness=None if is_chief else _readiness(),
        sync=sync_replicas.sync_ops(optimizer, config) if config.sync_replicas else None,
        fine_tune=_fine_tune(config, is_chief), dataset=dataset,
        images_per_step=config.batch_size * config.num_clones, plateau=plateau)


# --- Exact resume with --deterministic (issue 16) ------------------------------------------------

def _save_with_checkpoints(iterator):
    """Adds the input pipeline's state (its position, shuffle buffer, prefetched batches) to
    what the trainer's Saver writes, so a resume reads on from where the checkpoint was saved.

    The pipeline's random draws are stateless (training/determinism.py, whose
    guard refuses any other random op), so no state of theirs is lost; the
    other stateful ops tf.data cannot save, such as the assertions inside
    conditionals, hold no state that a resume needs.
    """
    tf.add_to_collection(tf.GraphKeys.SAVEABLE_OBJECTS,
                         tf.data.experimental.make_saveable_from_iterator(
                             iterator, external_state_policy='ignore'))


def _step_draws(config, global_step):
    """With --deterministic, the net's dropout draws from seeds of (seed, global step)."""
    if not config.deterministic:
        return contextlib.nullcontext()
    return determinism.stateless_draws(config.seed, determinism.STREAM_STEPS, global_step)


def _fine_tune(config, is_chief):
    if not (is_chief and config.checkpoint_path
            and not checkpoints.latest_intact(config.train_dir)):
        return None
    try:
        return checkpoints.FineTuneRestore(config.checkpoint_path,
                                           config.checkpoint_exclude_scopes,
                                           config.ignore_missing_vars)
    except checkpoints.CheckpointMismatch as error:
        raise TrainingError(str(error)) from None


def _readiness():
    readiness = Readiness(
        ready_op=tf.report_uninitialized_variables(),
        ready_for_local_init_op=tf.report_uninitialized_variables(tf.global_variables()))
    # A worker that gives up before the chief is ready never runs ready_op; TensorFlow
    # would then warn about it at exit, after the worker's error message.
    readiness.ready_op.mark_used()
    readiness.ready_for_local_init_op.mark_used()
    return readiness


def _add_losses(logits, end_points, labels, num_classes, label_smoothing, class_weights=None,
                multi_label=False):
    """Cross-entropy on the logits, and on the auxiliary head weighted 0.4.

    `labels` are class ids [batch] or soft labels [batch, num_classes].
    Softmax cross-entropy, where `class_weights`, one per class, weigh each
    example by its (mixed) class; or with `multi_label`, sigmoid
    cross-entropy of each label, averaged over the labels and the batch, of
    multi-hot (or mixed) labels, where class ids become one-hot and
    `class_weights`, one per label, weigh the positive term of each label.
    `label_smoothing` moves the targets towards 1/num_classes (softmax) or
    1/2 (sigmoid).
    """
    one_hot = labels if labels.shape.rank == 2 else tf.one_hot(labels, num_classes)
    if multi_label:
        positive_weights = class_weights or [1.0] * num_classes
        targets = one_hot * (1.0 - label_smoothing) + 0.5 * label_smoothing

        def add_sigmoid_loss(head_logits, weight, scope):
            per_label = tf.nn.weighted_cross_entropy_with_logits(
                labels=tf.cast(targets, head_logits.dtype), logits=head_logits,
                pos_weight=tf.constant(positive_weights, head_logits.dtype))
            tf.losses.compute_weighted_loss(per_label, weight, scope=scope)

        if 'AuxLogits' in end_points:
            add_sigmoid_loss(end_points['AuxLogits'], AUX_LOGITS_WEIGHT, 'aux_loss')
        add_sigmoid_loss(logits, 1.0, 'sigmoid_loss')
        return
    weights = 1.0
    if class_weights is not None:
        weights = tf.linalg.matvec(one_hot, tf.constant(class_weights, tf.float32))
    if 'AuxLogits' in end_points:
        tf.losses.softmax_cross_entropy(one_hot, end_points['AuxLogits'],
                                        label_smoothing=label_smoothing,
                                        weights=AUX_LOGITS_WEIGHT * weights, scope='aux_loss')
    tf.losses.softmax_cross_entropy(one_hot, logits, weights=weights,
                                    label_smoothing=label_smoothing)


def _class_balance(config, dataset):
    """(class weights of the loss or None, class counts to balance the batches or None).

    In multi-label training the weights are those of each label's positives
    (see `batches.class_weights`). Balanced sampling is refused on a
    multi-label dataset.
    """
    if config.balanced_sampling and dataset.multi_label:
        raise ValueError("--balanced_sampling cannot balance dataset '%s': it is multi-label, "
                         'its images carry several labels or none, so no draw gives each label '
                         'an equal share; use --class_weights=auto to weigh rare labels up'
                         % dataset.name)
    counts = None
    if config.balanced_sampling or config.class_weights == batches.AUTO_CLASS_WEIGHTS:
        counts = batches.class_counts(dataset, config.labels_offset)
    weights = None
    if config.class_weights:
        weights = batches.class_weights(config.class_weights, dataset, config.labels_offset,
                                        counts, multi_label=dataset.multi_label or
                                        config.multi_label)
    return weights, counts if config.balanced_sampling else None


def _add_model_summaries(end_points, summarize_activations):
    """Adds the regularization loss and, if asked, activation summaries to SUMMARIES."""
    tf.summary.scalar('losses/regularization',
                      tf.add_n(tf.losses.get_regularization_losses() or [tf.constant(0.0)]))
    if summarize_activations:
        for name, tensor in end_points.items():
            tf.summary.histogram('activations/' + name, tensor)
            tf.summary.scalar('sparsity/' + name, tf.nn.zero_fraction(tensor))


def _learning_rate(config, num_samples, global_step):
    # A synchronous step applies the batches of replicas_to_aggregate workers.
    images_per_step = (config.batch_size * config.num_clones
                       * sync_replicas.replicas_to_aggregate(config))
    decay_steps = optimization.decay_steps_per(num_samples, images_per_step,
                                               config.num_epochs_per_decay)
    warmup_steps = (optimization.decay_steps_per(num_samples, images_per_step,
                                                 config.warmup_epochs)
                    if config.warmup_epochs else 0)
    return optimization.make_learning_rate(
        config.learning_rate_decay_type, config.learning_rate, global_step,
        decay_steps=decay_steps, decay_factor=config.learning_rate_decay_factor,
        end_learning_rate=config.end_learning_rate, total_steps=config.max_number_of_steps,
        warmup_steps=warmup_steps,
        boundaries=[optimization.decay_steps_per(num_samples, images_per_step, float(epochs))
                    for epochs in config.boundaries_epochs],
        values=[float(value) for value in config.values])


def _variables_to_train(trainable_scopes):
    if not trainable_scopes:
        return tf.trainable_variables()
    variables = []
    for scope in trainable_scopes:
        found = tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope)
        if not found:
            raise TrainingError('--trainable_scopes names %r, which holds no trainable variable'
                             % scope)
        variables.extend(found)
    return variables


def _clip_by_global_norm(gradients, clip_norm):
    grads, variables = zip(*gradients)
    clipped, _ = tf.clip_by_global_norm(grads, clip_norm)
    return list(zip(clipped, variables))


# --- Update rules: decoupled weight decay, gradient accumulation (issue 16) ---------------------

def _regularization_losses(config):
    """The losses optimize_clones adds once: None (the graph's) unless the optimizer decays."""
    if not OPTIMIZERS[config.optimizer].decoupled_weight_decay:
        return None
    log.info("--optimizer=%s decays the weights itself (--adamw_weight_decay=%g): the nets' L2 "
             'regularization losses (--weight_decay) are left out of the total loss',
             config.optimizer, config.adamw_weight_decay)
    return []


def _with_gradient_accumulation(optimizer, config):
    """`optimizer` applied to the mean gradient of every gradient_accumulation_steps steps."""
    steps = config.gradient_accumulation_steps
    if config.sync_replicas:
        raise ValueError('--gradient_accumulation_steps=%d does not combine with '
                         '--sync_replicas; aggregate more replicas instead' % steps)
    if config.precision == 'float16':
        raise ValueError('--gradient_accumulation_steps=%d does not combine with '
                         '--precision=float16: an accumulated update cannot skip the micro-batch '
                         'whose gradients overflow; use float32 or bf16' % steps)
    log.info('Gradient accumulation: each update averages %d micro-batches of %d images x %d '
             'clone(s): an effective batch of %d images; the global step counts micro-batches',
             steps, config.batch_size, config.num_clones,
             config.batch_size * config.num_clones * steps)
    return optimization.GradientAccumulationOptimizer(optimizer, steps, config.clip_gradient_norm)


# --- Evaluation while training: the learning rate of reduce_on_plateau (issue 16) ---------------

def _plateau_rate(learning_rate):
    """A non-trainable learning-rate variable, saved with the checkpoints so a resume keeps it."""
    variable = tf.get_variable('plateau_learning_rate', initializer=float(learning_rate),
                               dtype=tf.float32, trainable=False)
    new_value = tf.placeholder(tf.float32, [], name='new_plateau_learning_rate')
    return PlateauRate(variable=variable, new_value=new_value,
                       assign=variable.assign(new_value).op)


def _warmed_up(rate, config, num_samples, global_step):
    """`rate`, reached linearly over the first --warmup_epochs as the other schedules do."""
    images_per_step = (config.batch_size * config.num_clones
                       * sync_replicas.replicas_to_aggregate(config))
    warmup_steps = (optimization.decay_steps_per(num_samples, images_per_step,
                                                 config.warmup_epochs)
                    if config.warmup_epochs else 0)
    if warmup_steps:
        step = tf.cast(global_step, tf.float32)
        rate = tf.where(step < warmup_steps, rate * (step + 1.0) / warmup_steps, rate)
    return tf.identity(rate, name='scheduled_learning_rate')
