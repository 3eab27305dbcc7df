"""Published checkpoint archives as a user gets them (`resnet_v1_50_2016_08_28.tar.gz`).

Every command's `--checkpoint_path` accepts such an archive: it is extracted
once, safely (datasets/download.py's checks), into `<archive>.extracted/`
beside it, and the checkpoint inside is used. An archive the zoo table knows
(nets/zoo.py) also gives defaults: its net, preprocessing and image size. Any
checkpoint of a zoo net gives the labels offset between its classes and the
dataset's, read off its logits' shape (1000-class checkpoints on 1001-class
ImageNet records), and, when fine-tuning onto another class count, the head
scopes to leave out. Options given explicitly win.
"""

import logging
import os
import shutil
import uuid

from datasets.download import extract_tar
from nets.zoo import ZOO, ZooEntry

ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar')
EXTRACTED_SUFFIX = '.extracted'

log = logging.getLogger('pretrained')


def is_archive(path: str | None) -> bool:
    return bool(path) and path.endswith(ARCHIVE_SUFFIXES) and os.path.isfile(path)


def known_archive(path: str | None) -> tuple[str, ZooEntry] | None:
    """(net name, zoo entry) of a published archive, by its file name; None otherwise."""
    if not is_archive(path):
        return None
    name = os.path.basename(path)
    for net, entry in ZOO.items():
        if entry.archive == name:
            return net, entry
    return None


def extracted_checkpoint(archive: str) -> str:
    """The checkpoint inside `archive`, extracting it first unless that was done before.

    Raises:
      ArchiveError: for an unreadable or unsafe archive.
      ValueError: if the archive holds no checkpoint.
    """
    target = archive + EXTRACTED_SUFFIX
    if not os.path.isdir(target):
        temporary = '%s.partial-%s' % (target, uuid.uuid4().hex[:8])
        try:
            extract_tar(archive, temporary)
            os.rename(temporary, target)
        except BaseException:
            if os.path.isdir(temporary):
                shutil.rmtree(temporary)
            raise
        log.info('Extracted %s into %s', archive, target)
    return _checkpoint_in(target, archive)


def _checkpoint_in(directory: str, archive: str) -> str:
    """The one checkpoint prefix (TF2 `.index`, or a legacy V1 `.ckpt` file) under `directory`."""
    found = []
    for root, _, files in os.walk(directory):
        for name in sorted(files):
            if name.endswith('.index'):
                found.append(os.path.join(root, name[:-len('.index')]))
            elif name.endswith('.ckpt'):
                found.append(os.path.join(root, name))
    if len(found) != 1:
        raise ValueError('%s holds %s; expected one checkpoint (a .ckpt file or a .index with '
                         'its data)' % (archive, 'no checkpoint' if not found else
                                        '%d checkpoints' % len(found)))
    return found[0]


def dataset_num_classes(dataset_name: str, dataset_dir: str | None) -> int | None:
    """The class count of a dataset, or None when it cannot be told without its directory."""
    from datasets import dataset_factory  # pylint: disable=import-outside-toplevel (TensorFlow)
    if dataset_dir:
        return dataset_factory.get_dataset_spec(dataset_name, dataset_dir).num_classes
    spec = dataset_factory.DATASETS.get(dataset_name)
    return spec.num_classes if spec else None


def checkpoint_num_classes(checkpoint: str, model_name: str) -> int | None:
    """The class count of `model_name`'s logits in a checkpoint, or None if it has none.

    Read off the shape of the biases in the net's head scope (the first of its
    zoo entry's exclude scopes): 1000 or 1001 for an ImageNet checkpoint.
    """
    from slim_classifier.runtime import checkpoints  # pylint: disable=import-outside-toplevel
    entry = ZOO.get(model_name)
    if entry is None or not checkpoint:
        return None
    try:
        prefix = checkpoints.resolve_checkpoint(checkpoint)
    except (checkpoints.CheckpointMismatch, OSError, ValueError):
        return None
    import tensorflow.compat.v1 as tf  # pylint: disable=import-outside-toplevel
    try:
        variables = tf.train.list_variables(prefix)
    except tf.errors.OpError:  # not a checkpoint after all (an export given as one)
        return None
    head = entry.exclude_scopes[0] + '/'
    for name, shape in variables:
        if name.startswith(head) and name.endswith('/biases') and len(shape) == 1:
            return shape[0]
    return None


def archive_defaults(path: str | None, option_names, explicit: set[str],
                     dataset_num_classes: int | None = None) -> dict:
    """The options a known published archive gives, for those not given explicitly.

    Args:
      path: the --checkpoint_path given.
      option_names: the options the command has.
      explicit: the options given on the command line.
      dataset_num_classes: the class count of the dataset in use, if known.

    Returns:
      {option: value}; empty for any other checkpoint.
    """
    known = known_archive(path)
    if known is None:
        return {}
    net, entry = known
    return _chosen(path, _pretrained_values(path, net, entry.num_classes, dataset_num_classes),
                   option_names, explicit)


def checkpoint_defaults(path: str | None, given: dict, explicit: set[str]) -> dict:
    """The options a pretrained checkpoint gives a command, for those not given explicitly.

    A known published archive gives its net's settings (`archive_defaults`).
    For any checkpoint of a zoo net, the labels offset and (for another class
    count) the head scopes to leave out follow from the class count of its
    logits: a 1000-class checkpoint on the 1001-class ImageNet records gets
    offset 1.
    """
    if not path:
        return {}
    known = known_archive(path)
    model_name = known[0] if known else given.get('model_name')
    logits_classes = checkpoint_num_classes(path, model_name)
    if known is None and logits_classes is None:
        return {}
    dataset_classes = dataset_num_classes(given.get('dataset_name'), given.get('dataset_dir'))
    if logits_classes is None:
        logits_classes = known[1].num_classes
    values = _pretrained_values(path, model_name, logits_classes, dataset_classes)
    return _chosen(path, values, given, explicit)


def _pretrained_values(path: str, model_name: str, logits_classes: int,
                       dataset_classes: int | None) -> dict:
    """A known archive's net settings, and the head options that fit its logits to the data."""
    values = {}
    known = known_archive(path)
    if known is not None:
        net, entry = known
        values = {'model_name': net, 'preprocessing_name': entry.preprocessing_name,
                  'train_image_size': entry.image_size, 'eval_image_size': entry.image_size,
                  'image_size': entry.image_size}
    if model_name in ZOO:
        values.update(_head_defaults(ZOO[model_name], logits_classes, dataset_classes))
    return values


def _head_defaults(entry: ZooEntry, logits_classes: int, dataset_classes: int | None) -> dict:
    """The labels offset or exclude scopes that fit `logits_classes` to the dataset's classes."""
    if dataset_classes is None or dataset_classes == logits_classes:
        return {}
    if dataset_classes == logits_classes + 1:
        return {'labels_offset': 1}  # 1000 classes on 1001-class records
    return {'checkpoint_exclude_scopes': list(entry.exclude_scopes)}


def _chosen(path: str, values: dict, option_names, explicit: set[str]) -> dict:
    """Those of `values` the command has and was not given explicitly; logged."""
    chosen = {name: value for name, value in values.items()
              if name in option_names and name not in explicit}
    if chosen:
        log.info('From the pretrained checkpoint %s: %s', os.path.basename(path.rstrip('/')),
                 ', '.join('--%s=%s' % (name, ','.join(value) if isinstance(value, list)
                                        else value) for name, value in chosen.items()))
    return chosen
