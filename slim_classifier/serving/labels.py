"""Class names by net output: what labels.txt beside every export holds.

Output i of a net is dataset label i + labels_offset (1 for 1000-class nets
on the 1001-class ImageNet labels, whose label 0 is the background), so the
names are taken from the dataset's labels shifted by the offset.
"""

import os

import tensorflow.compat.v1 as tf

from datasets import dataset_factory, dataset_format
from slim_classifier.runtime.files import write_atomically

LABELS_FILENAME = dataset_format.LABELS_FILENAME


def names_by_output(labels_to_names: dict[int, str] | None, num_classes: int,
                    labels_offset: int = 0) -> list[str]:
    """Names of the net's outputs 0..num_classes-1; a label without a name is its id."""
    names = labels_to_names or {}
    return [names.get(label, str(label))
            for label in range(labels_offset, labels_offset + num_classes)]


def dataset_classes(dataset_name: str, dataset_dir: str | None,
                    labels_offset: int = 0) -> list[str]:
    """Names of the outputs of a net trained on a dataset, without reading its records.

    Args:
      dataset_name: a built-in dataset, or any name when `dataset_dir` holds a
        dataset_info.json.
      dataset_dir: the dataset directory; its labels.txt wins over built-in
        names. Optional for built-in datasets.
      labels_offset: see the module docstring.

    Returns:
      The names by output; their number is the net's class count.

    Raises:
      ValueError: for an unknown dataset, or an offset that leaves no class.
      FileNotFoundError: if `dataset_dir` is given but does not exist.
    """
    if dataset_dir is None:
        if dataset_name not in dataset_factory.DATASETS:
            raise ValueError("unknown dataset '%s' without --dataset_dir; built-in datasets: %s"
                             % (dataset_name, ', '.join(dataset_factory.list_datasets())))
        spec = dataset_factory.DATASETS[dataset_name]
    elif not tf.io.gfile.isdir(dataset_dir):
        raise FileNotFoundError("--dataset_dir '%s' does not exist" % dataset_dir)
    else:
        spec = dataset_factory.get_dataset_spec(dataset_name, dataset_dir)
    num_classes = spec.num_classes - labels_offset
    if num_classes < 1:
        raise ValueError('--labels_offset=%d leaves no class of the %d of dataset %s'
                         % (labels_offset, spec.num_classes, spec.name))
    labels_to_names = dict(enumerate(spec.class_names or ()))
    if dataset_dir and tf.io.gfile.exists(os.path.join(dataset_dir, LABELS_FILENAME)):
        labels_to_names = dataset_factory.read_labels_file(dataset_dir)
    return names_by_output(labels_to_names, num_classes, labels_offset)


def write_labels_file(path: str, names: list[str]) -> None:
    """Writes `<id>:<name>` lines, ids 0..len(names)-1, atomically."""
    write_atomically(path, ''.join('%d:%s\n' % (index, name)
                                   for index, name in enumerate(names)))


def read_labels_file(path: str, labels_offset: int = 0) -> list[str]:
    """Names by output from a labels file of `<id>:<name>` lines.

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: for a malformed line, or an offset that leaves no class.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError("labels file '%s' does not exist" % path)
    directory, filename = os.path.split(path)
    labels_to_names = dataset_factory.read_labels_file(directory, filename)
    num_classes = max(labels_to_names, default=-1) + 1 - labels_offset
    if num_classes < 1:
        raise ValueError('--labels_offset=%d leaves no class of the %d in %s'
                         % (labels_offset, num_classes + labels_offset, path))
    return names_by_output(labels_to_names, num_classes, labels_offset)
