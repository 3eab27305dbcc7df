"""Evaluates a trained classifier: eval_image_classifier.py --checkpoint_path=... --model_name=...

Writes <eval_dir>/metrics.json, <eval_dir>/confusion_matrix.png and TensorBoard
summaries, and prints a short table. With --eval_interval_secs it keeps
evaluating each new checkpoint in the --checkpoint_path directory until
--timeout seconds pass without one.
"""

from absl import flags

from datasets import input_pipeline
from evaluation import evaluator, metrics
from training import checkpoints, cli, session_config
from training import flags as shared_flags

shared_flags.define_eval_flags()
FLAGS = flags.FLAGS


def config_from_flags(values) -> evaluator.EvalConfig:
    """The EvalConfig that a parsed flag set describes."""
    if not values.dataset_dir:
        raise ValueError('--dataset_dir is required: the directory holding the dataset')
    return evaluator.EvalConfig(
        checkpoint_path=values.checkpoint_path, eval_dir=values.eval_dir,
        dataset_dir=values.dataset_dir, dataset_name=values.dataset_name,
        dataset_split_name=values.dataset_split_name, model_name=values.model_name,
        preprocessing_name=values.preprocessing_name, labels_offset=values.labels_offset,
        use_grayscale=values.use_grayscale, eval_image_size=values.eval_image_size,
        batch_size=values.batch_size, max_num_batches=values.max_num_batches,
        moving_average_decay=values.moving_average_decay, num_readers=values.num_readers,
        num_preprocessing_threads=values.num_preprocessing_threads,
        eval_interval_secs=values.eval_interval_secs or 0, timeout=values.timeout,
        session_config=session_config.make_session_config(values.precision, values.xla))


def _report(results: dict) -> None:
    print('%s (global step %s) on %s/%s' % (results['checkpoint'], results['global_step'],
                                            results['dataset_name'],
                                            results['dataset_split_name']))
    print(metrics.format_table(results), flush=True)


def main(argv):
    del argv
    config = config_from_flags(FLAGS)
    if FLAGS.eval_interval_secs is None:
        _report(evaluator.evaluate(config))
        return
    evaluated = 0
    for results in evaluator.evaluate_new_checkpoints(config):
        _report(results)
        evaluated += 1
    if not evaluated:
        raise evaluator.EvaluationError('no checkpoint appeared in %s within --timeout=%g '
                                        'seconds' % (config.checkpoint_path, config.timeout))


def run():
    cli.add_user_error(checkpoints.CheckpointMismatch)
    cli.add_user_error(evaluator.EvaluationError)
    cli.add_user_error(input_pipeline.DataError)
    cli.run_main(main)


if __name__ == '__main__':
    run()
