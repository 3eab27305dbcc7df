"""Prints the likeliest classes of images: classify_image.py --model_path=... a.jpg b.png

--model_path is a SavedModel directory, a frozen GraphDef or TFLite file from
export_inference_graph.py, or a checkpoint file or directory. The images get
the preprocessing of --model_name (a SavedModel preprocesses them itself).
Class names come from --labels_file, by default labels.txt beside the model;
a checkpoint needs one, since its lines give the class count.
"""

import logging

import tensorflow.compat.v1 as tf
from absl import flags

from evaluation import classifier, labels
from training import checkpoints, cli
from training import flags as shared_flags

shared_flags.define_classify_flags()
FLAGS = flags.FLAGS
log = logging.getLogger('classify')


def _class_names(values, kind: str) -> list[str] | None:
    """Names by output from the labels file; None if there is none beside an export."""
    path = values.labels_file or classifier.default_labels_file(values.model_path)
    if values.labels_file is None and not tf.io.gfile.exists(path):
        if kind == 'checkpoint':
            raise ValueError('classifying with a checkpoint needs --labels_file (no %s): its '
                             'lines give the class count' % path)
        return None
    return labels.read_labels_file(path, values.labels_offset)


def _format(image_path: str, predictions: list[classifier.Prediction]) -> str:
    lines = [image_path]
    lines.extend('  %.5f  %s (%d)' % (prediction.probability, prediction.name,
                                      prediction.class_id) for prediction in predictions)
    return '\n'.join(lines)


def main(argv):
    image_paths = argv[1:]
    if not FLAGS.model_path:
        raise ValueError('--model_path is required: an export or a checkpoint')
    if not image_paths:
        raise ValueError('no image given: list image files after the flags')
    kind = classifier.model_kind(FLAGS.model_path)
    class_names = _class_names(FLAGS, kind)
    model = classifier.load_model(
        FLAGS.model_path, FLAGS.model_name,
        num_classes=len(class_names) if class_names else None,
        preprocessing_name=FLAGS.preprocessing_name, image_size=FLAGS.image_size,
        use_grayscale=FLAGS.use_grayscale, moving_average_decay=FLAGS.moving_average_decay)
    log.info('Classifying with the %s %s', model.kind, model.path)
    try:
        for image_path in image_paths:
            probabilities = classifier.classify_file(model, image_path)
            print(_format(image_path, classifier.top_k(probabilities, class_names, FLAGS.top_k)),
                  flush=True)
    finally:
        model.close()


def run():
    cli.add_user_error(checkpoints.CheckpointMismatch)
    cli.run_main(main)


if __name__ == '__main__':
    run()
