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
from slim_classifier.runtime import pretrained, run_config
from slim_classifier.serving import metadata
from slim_classifier.serving.config import ClassifyOptions
from slim_classifier.serving.metadata import ExportMetadata

SUMMARY = """Prints the likeliest classes of image files.

  classify_image.py --model_path=MODEL photo.jpg [more.png ... | a_directory ...]

MODEL is an export (SavedModel, frozen GraphDef, TFLite) or a checkpoint / training
directory; class names come from labels.txt beside it or from the training run."""

flags.define_flags(ClassifyOptions)
log = logging.getLogger('classify')


def options_from_flags(values) -> tuple[ClassifyOptions, bool]:
    """The options, with the defaults --model_path brings, and whether they name the dataset.

    A training directory (its train_config.json) or a published archive (its
    net's classes) names the dataset whose classes the outputs are.
    """
    given = flags.config_values(ClassifyOptions, values)
    explicit = flags.explicit_flags(values)
    given.update(run_config.checkpoint_defaults(given['model_path'], given, explicit))
    names_dataset = bool(run_config.find_run_dir(given['model_path'])
                         or pretrained.known_archive(given['model_path'])
                         or {'dataset_name', 'dataset_dir'} & explicit)
    return ClassifyOptions(**given), names_dataset


def _class_names(options: ClassifyOptions, kind: str, names_dataset: bool,
                 described: ExportMetadata | None) -> list[str] | None:
    """Names by output: --labels_file, the export's metadata, labels.txt, else the dataset's."""
    import tensorflow.compat.v1 as tf

    from slim_classifier.serving import classifier, labels
    if options.labels_file:
        return labels.read_labels_file(options.labels_file, options.labels_offset)
    if described is not None:
        return described.class_names
    path = classifier.default_labels_file(options.model_path)
    if tf.io.gfile.exists(path):
        return labels.read_labels_file(path, options.labels_offset)
    if names_dataset:
        return labels.dataset_classes(options.dataset_name, options.dataset_dir,
                                      options.labels_offset)
    if kind == 'checkpoint':
        raise ValueError('classifying with a checkpoint needs --labels_file (no %s), or '
                         '--dataset_name and --dataset_dir: they give the class count' % path)
    return None


def _export_metadata(options: ClassifyOptions, kind: str) -> ExportMetadata | None:
    """The export's metadata, checked against the flags given; None for a checkpoint.

    Raises:
      ValueError: for a flag that contradicts the metadata, or a frozen graph or
        TFLite file without metadata whose net nobody named.
    """
    if kind == 'checkpoint':
        return None
    described = metadata.read(options.model_path)
    explicit = flags.explicit_flags(flags.FLAGS)
    if described is not None:
        metadata.check_agreement(described, options.model_path,
                                 {name: getattr(options, name) for name in explicit
                                  if hasattr(options, name)})
    elif kind != 'saved_model' and not {'model_name', 'preprocessing_name'} & explicit:
        raise ValueError('%s has no metadata (%s): give the --model_name (or '
                         '--preprocessing_name) it was exported from, or export it again'
                         % (options.model_path, metadata.metadata_path(options.model_path)))
    return described


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
    from slim_classifier.serving import classifier
    image_paths = _expand_directories(argv[1:])
    if not image_paths:
        raise ValueError('no image given: list image files after the flags')
    options, names_dataset = options_from_flags(flags.FLAGS)
    kind = classifier.model_kind(options.model_path)
    described = _export_metadata(options, kind)
    class_names = _class_names(options, kind, names_dataset, described)
    model = classifier.load_model(
        options.model_path, options.model_name,
        num_classes=len(class_names) if class_names else None,
        preprocessing_name=(described.preprocessing_name if described
                            else options.preprocessing_name), image_size=options.image_size,
        use_grayscale=options.use_grayscale, moving_average_decay=options.moving_average_decay)
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
