"""Prints the likeliest classes of images: classify_image.py --model_path=M a.jpg b.png

--model_path is a SavedModel directory, a frozen GraphDef or TFLite file from
export_inference_graph.py, a checkpoint file, or a training directory (whose
train_config.json gives the net, its preprocessing and its classes). Every
image that can be read is classified; those that cannot are listed at the end,
and the exit code is 1 if there were any. A directory stands for the files in
it and below it.
"""

import logging
import os
import sys

from slim_classifier.cli import flags, runner
from slim_classifier.serving.config import ClassifyOptions

SUMMARY = """Prints the likeliest classes of image files.

  classify_image.py --model_path=MODEL photo.jpg [more.png ... | a_directory ...]

MODEL is an export (SavedModel, frozen GraphDef, TFLite) or a checkpoint / training
directory; class names come from labels.txt beside it or from the training run."""

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


def _format(image_path: str, predictions) -> str:
    lines = [image_path]
    lines.extend('  %.5f  %s (%d)' % (prediction.probability, prediction.name,
                                      prediction.class_id) for prediction in predictions)
    return '\n'.join(lines)


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
    failed = []
    try:
        for image_path in image_paths:
            try:
                probabilities = classifier.classify_file(model, image_path)
            except (ValueError, OSError) as error:
                failed.append('%s: %s' % (image_path, error))
                continue
            print(_format(image_path, classifier.top_k(probabilities, class_names, options.top_k)),
                  flush=True)
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
