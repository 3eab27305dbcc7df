"""The configuration of one evaluation: every option once, with its flag's help and check.

An evaluation reads a checkpoint (`checkpoint_path`) or an export (`model_path`);
an export given with a checkpoint is compared with it. No TensorFlow is
imported here, so that `--help` answers at once.
"""

import dataclasses
from typing import Any

from slim_classifier.runtime.options import (AT_LEAST_ZERO, POSITIVE, Check, DataOptions,
                                             ModelOptions, PerformanceOptions, ReaderOptions,
                                             option, validate)

# The original evaluator's checkpoint_path, evaluated when neither model is named.
DEFAULT_CHECKPOINT_PATH = '/tmp/tfmodel/'
# A probability threshold: NaN and infinities fail the comparisons.
UNIT_INTERVAL = Check(lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, 'be in [0, 1]')


@dataclasses.dataclass(kw_only=True)
class EvalConfig(DataOptions, ModelOptions, ReaderOptions, PerformanceOptions):
    """Everything one evaluation needs; the defaults are the original evaluator's.

    Without `model_path`, `checkpoint_path` (by default the original's
    /tmp/tfmodel/) is evaluated. With it, the export is evaluated, and
    `checkpoint_path`, if set, too, for the comparison of the two.
    """
    checkpoint_path: str | None = option(
        None, 'A checkpoint file, or a directory whose latest checkpoint is evaluated; a '
        'training directory also gives the defaults of the model and data options (from its '
        'train_config.json). With --model_path: the checkpoint the export is compared with '
        '(accuracy drop, predictions changed). Default: %s without --model_path.'
        % DEFAULT_CHECKPOINT_PATH, 'model')
    model_path: str | None = option(
        None, "An export to evaluate instead of a checkpoint: a frozen GraphDef (.pb/.pbtxt), "
        'a SavedModel directory, a .tflite (float or quantized) or an .onnx file; its '
        'metadata gives the defaults of the model options.', 'model')
    eval_dir: str = option('/tmp/tfmodel/', 'Where metrics.json, the confusion matrix and the '
                           'event logs go.', 'output')
    dataset_split_name: str | None = option(
        None, "The split to evaluate; by default 'test' where the dataset has one, else "
        "'validation'.", 'data')
    # The original evaluation script read batches of 100.
    batch_size: int = option(100, 'The number of images in each batch.', 'data',
                             check=POSITIVE)
    max_num_batches: int | None = option(None, 'Evaluate at most this many batches; all of '
                                         'the split if unset.', 'data', check=POSITIVE)
    eval_image_size: int | None = option(None, "Eval image size; the net's default if unset.",
                                         'model', check=POSITIVE)
    eval_interval_secs: float = option(0, 'If set, keep evaluating each new checkpoint in the '
                                       '--checkpoint_path directory, at most once per this '
                                       'many seconds.', 'output', check=AT_LEAST_ZERO)
    timeout: float | None = option(None, 'With --eval_interval_secs: stop after waiting this '
                                   'many seconds for a new checkpoint; wait forever if unset.',
                                   'output', check=POSITIVE)
    top_k: int = option(5, 'recall_at_5 counts an example right when its class is among '
                        'this many highest scores (at most the number of classes).', 'output',
                        check=POSITIVE)
    f_beta: float = option(1.0, 'The beta of the per-class, macro and weighted F-beta scores: '
                           'recall weighs beta times as much as precision.', 'output',
                           check=POSITIVE)
    calibration_bins: int = option(15, 'The number of equal-width top-1 confidence bins of the '
                                   'expected calibration error and the reliability diagram.',
                                   'output', check=POSITIVE)
    num_mistakes_shown: int = option(36, 'The most confident mistakes drawn in '
                                     'mistakes.png; 0 draws none.', 'output',
                                     check=AT_LEAST_ZERO)
    predictions_file: str | None = option(
        None, 'A CSV file to write one row per example to: record index, file name (where the '
        'records keep it), true and predicted label, and the top-k ids and probabilities '
        "(multi-label: the true and the predicted label ids joined by ';', and every label's "
        'probability).', 'output')
    multi_label: bool = option(
        False, 'Evaluate as multi-label: sigmoid probabilities, a label predicted where its '
        'probability is >= --threshold, and the multi-label figures (mAP, micro and macro F1, '
        'subset accuracy, Hamming loss, ...). On by itself for a multi-label dataset or a run '
        'trained with --multi_label; given for a single-label dataset, each example has its one '
        'label.', 'model')
    threshold: float = option(0.5, 'Multi-label: a label is predicted where its probability is '
                              '>= this.', 'output', check=UNIT_INTERVAL)
    tune_thresholds: bool = option(
        False, 'Multi-label: find the threshold of each label that maximises its F1 on the '
        'split, and write them to thresholds.json in --eval_dir and, for a checkpoint of a '
        'training directory, beside the checkpoint, where classify and predict read them.',
        'output')
    master: str = option('', 'The TensorFlow master to evaluate on.', 'performance', flag=False)
    # A tf.ConfigProto; None takes TensorFlow's defaults.
    session_config: Any = None

    def __post_init__(self):
        validate(self)
        if self.model_path is None and self.checkpoint_path is None:
            self.checkpoint_path = DEFAULT_CHECKPOINT_PATH
        if self.model_path is not None and self.eval_interval_secs:
            raise ValueError('--eval_interval_secs watches a checkpoint directory for new '
                             'checkpoints; an export (--model_path=%s) is evaluated once: '
                             'drop one of them' % self.model_path)
