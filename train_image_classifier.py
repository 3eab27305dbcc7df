"""Trains an image classifier: python train_image_classifier.py --dataset_name=... --model_name=...

The flags are the options of `TrainConfig` (slim_classifier/training/config.py)
plus where this process sits in a cluster; `--help` lists them by group.
"""

import os

from slim_classifier.cli import flags, runner
from slim_classifier.runtime import pretrained
from slim_classifier.training.config import ClusterFlags, TrainConfig

SUMMARY = """Trains an image classifier on a converted dataset.

  train_image_classifier.py --dataset_name=digits --dataset_dir=DIR --model_name=lenet \\
      --train_dir=RUN [--max_number_of_steps=N]

RUN then holds the checkpoints, train_config.json (every option of the run, read by
eval, export and classify) and metrics.jsonl (one line per logged step)."""

flags.define_flags(TrainConfig, ClusterFlags)


def cluster_from_flags(values):
    """This process's task in a cluster (from the flags, else TF_CONFIG), or None."""
    from slim_classifier.training import cluster
    cluster_flags = ClusterFlags(**flags.config_values(ClusterFlags, values))
    role = cluster.resolve_role(cluster_flags.ps_hosts, cluster_flags.worker_hosts,
                                cluster_flags.job_name, cluster_flags.task,
                                os.environ.get('TF_CONFIG'))
    if role is None and cluster_flags.task:
        raise ValueError('--task=%d needs a cluster: give --ps_hosts and --worker_hosts, or '
                         'TF_CONFIG' % cluster_flags.task)
    cluster.check_replica_counts(role, num_ps_tasks=cluster_flags.num_ps_tasks,
                                 worker_replicas=cluster_flags.worker_replicas)
    return role


def config_from_flags(values, role=None) -> TrainConfig:
    """The TrainConfig that a parsed flag set describes, with a published archive's defaults."""
    given = flags.config_values(TrainConfig, values)
    given.update(pretrained.checkpoint_defaults(given['checkpoint_path'], given,
                                                flags.explicit_flags(values)))
    return TrainConfig(**given, cluster_role=role)


def main(argv):
    del argv
    from slim_classifier.training import cluster, trainer
    role = cluster_from_flags(flags.FLAGS)
    if role is not None and role.is_ps:
        cluster.serve(role)
        return
    result = trainer.train(config_from_flags(flags.FLAGS, role))
    if result.checkpoint:
        print('Trained to step %d; checkpoints, train_config.json and metrics.jsonl are in %s'
              % (result.global_step, os.path.abspath(os.path.dirname(result.checkpoint))))


def _registered_nets():
    from nets import nets_factory
    return {'model_name': nets_factory.list_networks()}


def run():
    runner.run_command(main, SUMMARY, (TrainConfig, ClusterFlags), choices=_registered_nets)


if __name__ == '__main__':
    run()
