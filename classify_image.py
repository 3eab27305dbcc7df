"""Prints the likeliest classes of images: classify_image.py --model_path=M a.jpg b.png

--model_path is a SavedModel directory, a frozen GraphDef or TFLite file from
export_inference_graph.py, a checkpoint file, or a training directory (whose
train_config.json gives the net, its preprocessing and its classes). Every
image that can be read is classified; those that cannot are listed at the end,
and the exit code is 1 if there were any. A directory stands for the files in
it and below it.

A multi-label net prints, for each image, every label whose probability is at
or above its threshold (--threshold, else the export's metadata or the run's
thresholds.json, else 0.5), or "no label above threshold" and the likeliest.
"""

import logging
import os
import sys

from slim_classifier.cli import flags, runner
from slim_classifier.serving.config import ClassifyOptions

SUMMARY = """Prints the likeliest classes of image files.

  classify_image.py --model_path=MODEL photo.jpg [more.png ... | a_directory ...]

MODEL is an export (SavedModel, frozen GraphDef, TFLite) or a checkpoint / training
directory; class names come from labels.txt beside it or from the training run. A
multi-label net prints every label at or above its threshold (--threshold, else the
export's or the run's tuned thresholds, else 0.5)."""

flags.define_flags(ClassifyOptions)
log = logging.getLogger('classify')


def _expand_directories(paths: list[str]) -> list[str]:
    """The paths, each directory replaced by the files in it (and below it), in sorted order.

    Hidden files are left out; a file that is not an image is listed among those
    that could not be classified, with the reason.
    """
    expanded = []
    for path in paths:
        if not os.path.isdir(path):
            expanded.append(path)
            continue
        found = []
        for root, directories, files in os.walk(path):
            directories[:] = [name for name in directories if not name.startswith('.')]
            found.extend(os.path.join(root, name) for name in files if not name.startswith('.'))
        if not found:
            raise ValueError('directory %s holds no file to classify' % path)
        expanded.extend(sorted(found))
    return expanded


NO_LABEL_LINE = '  no label above threshold; the likeliest:'


def _line(prediction) -> str:
    return '  %.5f  %s (%d)' % (prediction.probability, prediction.name, prediction.class_id)


def _format(image_path: str, predictions) -> str:
    return '\n'.join([image_path] + [_line(prediction) for prediction in predictions])


def _format_labels(image_path: str, probabilities, class_names, thresholds) -> str:
    """A multi-label image: its labels at or above threshold, else a note and the likeliest."""
    from slim_classifier.serving import classifier
    labels = classifier.labels_above(probabilities, class_names, thresholds)
    if labels:
        return _format(image_path, labels)
    best, = classifier.top_k(probabilities, class_names, 1)
    return '\n'.join([image_path, NO_LABEL_LINE, _line(best)])


def main(argv):
    from slim_classifier.serving import classifier, prediction
    image_paths = _expand_directories(argv[1:])
    if not image_paths:
        raise ValueError('no image given: list image files after the flags')
    explicit = flags.explicit_flags(flags.FLAGS)
    options, names_dataset = prediction.model_options(
        ClassifyOptions, flags.config_values(ClassifyOptions, flags.FLAGS), explicit)
    model, class_names = prediction.open_model(options, names_dataset, explicit)
    log.info('Classifying with the %s %s', model.kind, model.path)
    if model.thresholds is not None:
        log.info('Multi-label: printing the labels at or above their thresholds %s',
                 ' '.join('%g' % value for value in model.thresholds))
    failed = []
    try:
        for image_path in image_paths:
            try:
                probabilities = classifier.classify_file(model, image_path)
            except (ValueError, OSError) as error:
                failed.append('%s: %s' % (image_path, error))
                continue
            if model.thresholds is not None:
                print(_format_labels(image_path, probabilities, class_names, model.thresholds),
                      flush=True)
            else:
                print(_format(image_path, classifier.top_k(probabilities, class_names,
                                                           options.top_k)), flush=True)
    finally:
        model.close()
    if failed:
        print('could not classify %d of %d images:\n  %s'
              % (len(failed), len(image_paths), '\n  '.join(failed)), file=sys.stderr)
        return 1
    return 0


def _registered_nets():
    from nets import nets_factory
    return {'model_name': nets_factory.list_networks()}


def run():
    runner.run_command(main, SUMMARY, (ClassifyOptions,), choices=_registered_nets)


if __name__ == '__main__':
    run()
