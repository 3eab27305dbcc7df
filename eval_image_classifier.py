"""Evaluates a trained classifier: eval_image_classifier.py --checkpoint_path=RUN --eval_dir=E

Writes <eval_dir>/metrics.json, <eval_dir>/confusion_matrix.png and TensorBoard
summaries, and prints a short table. When --checkpoint_path is a training
directory (or a checkpoint in one), the model and data options default to those
of its train_config.json. With --eval_interval_secs it keeps evaluating each new
checkpoint until --timeout seconds pass without one.

With --model_path=EXPORT it evaluates an export instead (a frozen graph,
SavedModel, TFLite or ONNX model), whose metadata gives the model options; with
--checkpoint_path too, it evaluates both and reports how the export differs.

A multi-label dataset (or --multi_label) is evaluated as such: mAP, F1,
subset accuracy and the other multi-label figures at --threshold, and with
--tune_thresholds the per-label thresholds that maximise F1, written to
thresholds.json in EVAL and beside the checkpoint of a training directory.
"""

import dataclasses
import os

from slim_classifier.cli import flags, runner
from slim_classifier.evaluation.config import DEFAULT_CHECKPOINT_PATH, EvalConfig
from slim_classifier.runtime import run_config

SUMMARY = """Evaluates a checkpoint or an export on one exact pass over a dataset split.

  eval_image_classifier.py --checkpoint_path=RUN --eval_dir=EVAL [--dataset_split_name=test]

  eval_image_classifier.py --model_path=EXPORT [--checkpoint_path=RUN] --dataset_dir=DATA
      --eval_dir=EVAL

RUN is a training directory (its train_config.json gives the net and the data) or a
checkpoint; EVAL receives metrics.json, confusion_matrix.png and TensorBoard events.
EXPORT is a frozen graph, SavedModel, .tflite or .onnx file of export_inference_graph.py;
given RUN as well, the accuracy drop and the share of changed predictions are reported.
A multi-label dataset is evaluated as one (mAP, F1, ...); --tune_thresholds writes the
per-label thresholds that maximise F1 to thresholds.json in EVAL and beside the checkpoint."""

flags.define_flags(EvalConfig)


def config_from_flags(values, session_config=None) -> EvalConfig:
    """The EvalConfig that a parsed flag set describes, with the run's defaults."""
    given = flags.config_values(EvalConfig, values)
    explicit = flags.explicit_flags(values)
    if given['model_path'] is not None:
        # The export's metadata describes the net, for the checkpoint it is compared with too.
        from slim_classifier.evaluation import export_evaluation
        described = export_evaluation.export_defaults(given['model_path'], given, explicit)
        given.update(described)
        explicit = explicit | set(described)
    elif given['checkpoint_path'] is None:
        given['checkpoint_path'] = DEFAULT_CHECKPOINT_PATH
    given.update(run_config.checkpoint_defaults(given['checkpoint_path'], given, explicit))
    return EvalConfig(**given, session_config=session_config)


def _report(results: dict, eval_dir: str) -> None:
    from slim_classifier.evaluation import export_evaluation, multilabel_metrics
    if 'model_path' in results:
        quantized = results['quantization'] not in (None, 'none')
        print('%s (%s export%s) on %s/%s' % (
            results['model_path'], results['model_kind'],
            ', %s quantization' % results['quantization'] if quantized else '',
            results['dataset_name'], results['dataset_split_name']))
    else:
        print('%s (global step %s) on %s/%s' % (results['checkpoint'], results['global_step'],
                                                results['dataset_name'],
                                                results['dataset_split_name']))
    if results.get('multi_label'):
        print(multilabel_metrics.format_table(results))
        for path in results.get('thresholds_files', []):
            print('Tuned thresholds: %s' % os.path.abspath(path))
        print('Metrics and the precision-recall curves are in %s' % os.path.abspath(eval_dir),
              flush=True)
        return
    print(export_evaluation.format_table(results))
    if 'comparison' in results:
        print(export_evaluation.comparison_line(results))
    print('Metrics and the confusion matrix are in %s' % os.path.abspath(eval_dir), flush=True)


def main(argv):
    del argv
    from slim_classifier.evaluation import evaluator
    from slim_classifier.runtime import session_config
    values = flags.FLAGS
    config = config_from_flags(values)
    # The session's settings follow the net, which the run's saved config may name.
    config = dataclasses.replace(config, session_config=session_config.make_session_config(
        config.precision, config.xla, model_name=config.model_name))
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
