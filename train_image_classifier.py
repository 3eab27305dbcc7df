"""Trains an image classifier: python train_image_classifier.py --dataset_name=... --model_name=..."""

import os

from absl import flags

from datasets import input_pipeline
from training import cli, cluster, trainer
from training import flags as shared_flags

shared_flags.define_train_flags()
FLAGS = flags.FLAGS

OPTIMIZER_PARAMS = ('opt_epsilon', 'adadelta_rho', 'adagrad_initial_accumulator_value',
                    'adam_beta1', 'adam_beta2', 'ftrl_learning_rate_power',
                    'ftrl_initial_accumulator_value', 'ftrl_l1', 'ftrl_l2', 'momentum',
                    'rmsprop_momentum', 'rmsprop_decay')


def cluster_from_flags(values) -> cluster.ClusterRole | None:
    """This process's task in a cluster (from the flags, else TF_CONFIG), or None."""
    role = cluster.resolve_role(values.ps_hosts, values.worker_hosts, values.job_name,
                                values.task, os.environ.get('TF_CONFIG'))
    if role is None and values.task:
        raise ValueError('--task=%d needs a cluster: give --ps_hosts and --worker_hosts, or '
                         'TF_CONFIG' % values.task)
    cluster.check_replica_counts(
        role,
        num_ps_tasks=values.num_ps_tasks if values['num_ps_tasks'].present else None,
        worker_replicas=values.worker_replicas if values['worker_replicas'].present else None)
    return role


def config_from_flags(values) -> trainer.TrainConfig:
    """The TrainConfig that a parsed flag set describes."""
    if not values.dataset_dir:
        raise ValueError('--dataset_dir is required: the directory holding the dataset')
    return trainer.TrainConfig(
        train_dir=values.train_dir, dataset_dir=values.dataset_dir,
        dataset_name=values.dataset_name, dataset_split_name=values.dataset_split_name,
        model_name=values.model_name, preprocessing_name=values.preprocessing_name,
        labels_offset=values.labels_offset, use_grayscale=values.use_grayscale,
        train_image_size=values.train_image_size, batch_size=values.batch_size,
        num_readers=values.num_readers, num_preprocessing_threads=values.num_preprocessing_threads,
        weight_decay=values.weight_decay, label_smoothing=values.label_smoothing,
        optimizer=values.optimizer,
        optimizer_params={name: values[name].value for name in OPTIMIZER_PARAMS},
        learning_rate=values.learning_rate,
        learning_rate_decay_type=values.learning_rate_decay_type,
        learning_rate_decay_factor=values.learning_rate_decay_factor,
        num_epochs_per_decay=values.num_epochs_per_decay,
        end_learning_rate=values.end_learning_rate, warmup_epochs=values.warmup_epochs,
        clip_gradient_norm=values.clip_gradient_norm,
        moving_average_decay=values.moving_average_decay,
        max_number_of_steps=values.max_number_of_steps,
        log_every_n_steps=values.log_every_n_steps,
        save_interval_secs=values.save_interval_secs,
        save_summaries_secs=values.save_summaries_secs,
        summarize_activations=values.summarize_activations,
        checkpoint_path=values.checkpoint_path,
        checkpoint_exclude_scopes=shared_flags.split_scopes(values.checkpoint_exclude_scopes),
        trainable_scopes=shared_flags.split_scopes(values.trainable_scopes),
        ignore_missing_vars=values.ignore_missing_vars,
        num_clones=values.num_clones, clone_on_cpu=values.clone_on_cpu, master=values.master,
        precision=values.precision, xla=values.xla, cluster_role=cluster_from_flags(values),
        sync_replicas=values.sync_replicas, replicas_to_aggregate=values.replicas_to_aggregate,
        cluster_timeout_secs=values.cluster_timeout_secs, virtual_gpus=values.virtual_gpus,
        virtual_gpu_memory_mb=values.virtual_gpu_memory_mb)


def main(argv):
    del argv
    role = cluster_from_flags(FLAGS)
    if role is not None and role.is_ps:
        cluster.serve(role)
        return
    trainer.train(config_from_flags(FLAGS))


def run():
    cli.add_user_error(trainer.TrainingError)
    cli.add_user_error(cluster.ClusterError)
    cli.add_user_error(input_pipeline.DataError)
    cli.run_main(main)


if __name__ == '__main__':
    run()
