"""Predicts many images into one file: predict_image_classifier.py --model_path=M --input=X
--output=predictions.csv.

--model_path is anything classify_image.py reads (a SavedModel directory, a
frozen GraphDef, a TFLite file, a checkpoint file or training directory) or an
ONNX model (.onnx, with the optional `onnx` extra). --input is a directory
(read recursively), a glob or @FILE (one path per line); or give
--dataset_split_name with --dataset_dir to predict the records of a converted
dataset, whose rows then carry the true labels. The output (.csv or .jsonl)
has a row per image, in the order read: the --top_k likeliest classes, or with
--output_type=features the net's pre-logits feature vector; for a multi-label
net, the labels at or above their thresholds (--threshold, else the export's
or the run's tuned thresholds.json, else 0.5), the true labels of a record,
and every label's probability (the --top_k likeliest when --top_k is given).
An image that cannot be read is a row with the reason in its `error` column;
the exit code is 0 once the file is written, whatever the rejected rows. The
file appears complete or not at all (see slim_classifier/serving/prediction.py).
"""

import logging

from slim_classifier.cli import flags, runner
from slim_classifier.serving.config import PredictOptions

SUMMARY = """Predicts many images into one .csv or .jsonl file, a row per image.

  predict_image_classifier.py --model_path=MODEL --input=DIR|GLOB|@LIST --output=FILE.csv
  predict_image_classifier.py --model_path=MODEL --dataset_dir=DIR --dataset_split_name=test \\
      --output=FILE.jsonl

MODEL is an export (SavedModel, frozen GraphDef, TFLite, ONNX) or a checkpoint / training
directory; class names come from labels.txt beside it or from the training run. Rows hold
the top-k classes (or, with --output_type=features, the pre-logits features); unreadable
images are rows with the reason in `error`. A multi-label net's rows hold the labels at or
above their thresholds and every label's probability (the top-k with --top_k)."""

flags.define_flags(PredictOptions)
log = logging.getLogger('predict')


def main(argv):
    from slim_classifier.serving import prediction
    if argv[1:]:
        raise ValueError('unexpected arguments %s: give the images as --input=DIR, a glob or '
                         '@FILE' % ' '.join(argv[1:]))
    explicit = flags.explicit_flags(flags.FLAGS)
    options, names_dataset = prediction.model_options(
        PredictOptions, flags.config_values(PredictOptions, flags.FLAGS), explicit)
    summary = prediction.predict(options, names_dataset, explicit)
    log.info('Wrote %d rows (%d rejected) with the %s %s to %s in %.1f s, %.1f images/s',
             summary.rows, summary.rejected, summary.model_kind, options.model_path,
             summary.output, summary.seconds, summary.rows / max(summary.seconds, 1e-9))
    return 0


def _registered_nets():
    from nets import nets_factory
    return {'model_name': nets_factory.list_networks()}


def run():
    runner.run_command(main, SUMMARY, (PredictOptions,), choices=_registered_nets)


if __name__ == '__main__':
    run()
