"""Evaluates a trained classifier: eval_image_classifier.py --checkpoint_path=RUN --eval_dir=E

Writes <eval_dir>/metrics.json, <eval_dir>/confusion_matrix.png and TensorBoard
summaries, and prints a short table. When --checkpoint_path is a training
directory (or a checkpoint in one), the model and data options default to those
of its train_config.json. With --eval_interval_secs it keeps evaluating each new
checkpoint until --timeout seconds pass without one.
"""

import os

from slim_classifier.cli import flags, runner
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.runtime import run_config

SUMMARY = """Evaluates a checkpoint on one exact pass over a dataset split.

  eval_image_classifier.py --checkpoint_path=RUN --eval_dir=EVAL [--dataset_split_name=test]

RUN is a training directory (its train_config.json gives the net and the data) or a
checkpoint; EVAL receives metrics.json, confusion_matrix.png and TensorBoard events."""

flags.define_flags(EvalConfig)


def config_from_flags(values, session_config=None) -> EvalConfig:
    """The EvalConfig that a parsed flag set describes, with the run's defaults."""
    given = flags.config_values(EvalConfig, values)
    explicit = flags.explicit_flags(values)
    given.update(run_config.checkpoint_defaults(given['checkpoint_path'], given, explicit))
    return EvalConfig(**given, session_config=session_config)


def _report(results: dict, eval_dir: str) -> None:
    from slim_classifier.evaluation import metrics
    print('%s (global step %s) on %s/%s' % (results['checkpoint'], results['global_step'],
                                            results['dataset_name'],
                                            results['dataset_split_name']))
    print(metrics.format_table(results), flush=True)
    print('Metrics and the confusion matrix are in %s' % os.path.abspath(eval_dir))


def main(argv):
    del argv
    from slim_classifier.evaluation import evaluator
    from slim_classifier.runtime import session_config
    values = flags.FLAGS
    config = config_from_flags(
        values, session_config.make_session_config(values.precision, values.xla))
    if not config.eval_interval_secs:
        _report(evaluator.evaluate(config), config.eval_dir)
        return
    evaluated = 0
    for results in evaluator.evaluate_new_checkpoints(config):
        _report(results, config.eval_dir)
        evaluated += 1
    if not evaluated:
        raise evaluator.EvaluationError('no checkpoint appeared in %s within --timeout=%g '
                                        'seconds' % (config.checkpoint_path, config.timeout))


def _registered_nets():
    from nets import nets_factory
    return {'model_name': nets_factory.list_networks()}


def run():
    runner.run_command(main, SUMMARY, (EvalConfig,), choices=_registered_nets)


if __name__ == '__main__':
    run()
