"""Datasets by name: one table of the standard datasets, plus any converted folder.

`get_dataset(name, split_name, dataset_dir)` returns a `slim.dataset.Dataset`
as the original TF-Slim did, so code written for it keeps working. What a
dataset looks like comes from one of two places:

* a `dataset_info.json` in `dataset_dir` (written by `download_and_convert_data`),
  which describes the folder whatever name is asked for, so a converted image
  folder trains by name with no code;
* otherwise `DATASETS`, the one table of the standard datasets, with the file
  patterns, split sizes and class counts of the original TF-Slim converters,
  so the records those made read as they are.

A directory that is not whole is refused, with the command that completes
it: a split whose numbered shards (`-of-N`) are not all there, a split that
dataset_info.json lists without files, and a conversion that stopped before
writing dataset_info.json (which this project's converters write last).

The decoder reads the TFRecord keys of the original tools as well as this
project's: JPEG, PNG, GIF, BMP and WebP bytes, and `raw` pixel bytes (MNIST,
CIFAR-10), always giving a 3-channel uint8 image.

A multi-label dataset (`multi_label` in its dataset_info.json or table entry,
e.g. `digit_tiles` or a folder converted with --labels_csv) keeps in each
record `image/class/labels`, the list of the ids of the labels an image
carries (possibly none), besides the single-label keys (`image/class/label`
is the smallest id, -1 for an image without labels). Its Dataset has
`multi_label` True, and its decoder's item 'label' is the multi-hot vector,
float32 [num_classes]; item 'labels_list' is the list of ids, int64 [None].
Every other Dataset has `multi_label` False and an int64 class id as 'label'.
"""

import dataclasses
import os
from collections.abc import Mapping

import tensorflow.compat.v1 as tf

from datasets import dataset_format
from slim_classifier.compat import slim

_DIGIT_NAMES = tuple(str(digit) for digit in range(10))
IMAGENET_CLASSES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      'imagenet_classes.txt')


def imagenet_class_names() -> tuple[str, ...]:
    """The names of the 1001 ImageNet labels: 'background', then the 1000 ILSVRC-2012 classes.

    In the standard order (sorted WordNet ids), each name the synset's WordNet
    lemmas as the original tools printed them ('tench, Tinca tinca'). From
    datasets/imagenet_classes.txt (made by tools/make_imagenet_classes.py).
    """
    with open(IMAGENET_CLASSES_FILE, encoding='utf-8') as classes:
        return ('background', *(line.rstrip('\n').split('\t', 1)[1] for line in classes))


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The facts needed to read one dataset.

    Attributes:
      name: the dataset name.
      file_pattern: glob of a split's files relative to the dataset
        directory; `%s` stands for the split name.
      splits: split name -> number of examples, in the order users know them.
      num_classes: number of label values, background class included.
      class_names: names by label id, used when there is no labels.txt.
      raw_image_shape: [height, width, channels] of records whose
        `image/format` is `raw` and that carry no `image/height`/`image/width`.
      info_required: only this project's converter makes the dataset, so a
        folder without its dataset_info.json (written last) is unfinished.
      completion_hint: how to make files the directory lacks, where
        download_and_convert_data.py cannot.
      recorded: read from the dataset_info.json of a completed conversion.
      image_dir: the folder of images it was converted from, if recorded.
      labels_csv: the CSV of images and labels it was converted from, if
        recorded (multi-label image folders).
      multi_label: each image carries a list of labels, possibly empty.
      label_counts: split -> the images carrying each label id, where
        recorded (multi-label datasets).
    """
    name: str
    file_pattern: str
    splits: Mapping[str, int]
    num_classes: int
    class_names: tuple[str, ...] | None = None
    raw_image_shape: tuple[int, int, int] | None = None
    info_required: bool = False
    completion_hint: str | None = None
    recorded: bool = False
    image_dir: str | None = None
    labels_csv: str | None = None
    multi_label: bool = False
    label_counts: Mapping[str, tuple[int, ...]] | None = None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (
        DatasetSpec('mnist', 'mnist_%s.tfrecord', {'train': 60000, 'test': 10000}, 10,
                    class_names=_DIGIT_NAMES, raw_image_shape=(28, 28, 1)),
        DatasetSpec('cifar10', 'cifar10_%s.tfrecord', {'train': 50000, 'test': 10000}, 10,
                    class_names=('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                                 'frog', 'horse', 'ship', 'truck'),
                    raw_image_shape=(32, 32, 3)),
        DatasetSpec('flowers', 'flowers_%s_*.tfrecord', {'train': 3320, 'validation': 350}, 5,
                    class_names=('daisy', 'dandelion', 'roses', 'sunflowers', 'tulips')),
        # 1001 classes: id 0 is the background class of the original records.
        DatasetSpec('imagenet', '%s-*', {'train': 1281167, 'validation': 50000}, 1001,
                    class_names=imagenet_class_names(),
                    completion_hint='use the original build_imagenet_data.py'),
        # Its split sizes come from the dataset_info.json of the conversion.
        DatasetSpec('digits', 'digits_%s_*.tfrecord', {}, 10, class_names=_DIGIT_NAMES,
                    info_required=True),
        # Multi-label: the digits present in tiles of 2x2 digit cells.
        DatasetSpec('digit_tiles', 'digit_tiles_%s_*.tfrecord', {}, 10,
                    class_names=_DIGIT_NAMES, info_required=True, multi_label=True),
    )
}

_ITEMS_TO_DESCRIPTIONS = {
    'image': 'A color image of varying size (uint8, 3 channels).',
    'label': 'A single integer class id.',
}
_MULTI_LABEL_ITEMS_TO_DESCRIPTIONS = {
    'image': _ITEMS_TO_DESCRIPTIONS['image'],
    'label': 'The labels of the image as a multi-hot vector (float32, num_classes).',
    'labels_list': 'The ids of the labels of the image (int64, possibly none).',
}


def list_datasets() -> list[str]:
    """The names of the built-in datasets, sorted."""
    return sorted(DATASETS)


def get_dataset(name: str, split_name: str, dataset_dir: str, file_pattern: str | None = None,
                reader: type | None = None) -> slim.dataset.Dataset:
    """Returns one split of a dataset as a `slim.dataset.Dataset`.

    Args:
      name: a built-in dataset name (see `list_datasets()`), or any name when
        `dataset_dir` holds a dataset_info.json.
      split_name: a split of that dataset, e.g. 'train'.
      dataset_dir: the directory holding the TFRecord files.
      file_pattern: overrides the dataset's file glob (relative to
        `dataset_dir`; `%s` is replaced by the split name).
      reader: the record reader class for queue-based readers; defaults to
        `tf.TFRecordReader`.

    Returns:
      A Dataset with `data_sources` (the sorted matching files), `reader`,
      `decoder` (items 'image' and 'label', and 'labels_list' when
      multi-label), `num_samples`, `items_to_descriptions`, `num_classes`,
      `labels_to_names` (None when unknown), `multi_label`, `label_counts`
      (the split's images carrying each label id, None where not recorded
      or single-label) and, for error messages, `name`, `split_name`,
      `dataset_dir` and `file_pattern`.

    Raises:
      FileNotFoundError: if `dataset_dir` does not exist.
      dataset_format.IncompleteDatasetError: (a FileNotFoundError) if no file
        matches, a dataset that needs its dataset_info.json lacks it, a
        conversion stopped, or shards are missing: those of any split
        unless `file_pattern` names the files to read.
      ValueError: for an unknown dataset or split, or a malformed
        dataset_info.json or labels.txt.
    """
    if not tf.io.gfile.isdir(dataset_dir):
        raise FileNotFoundError("--dataset_dir '%s' does not exist" % dataset_dir)
    spec = get_dataset_spec(name, dataset_dir)
    if split_name not in spec.splits:
        raise ValueError("unknown split '%s' for dataset '%s'; valid splits: %s"
                         % (split_name, spec.name, ', '.join(spec.splits)))
    if file_pattern is None:
        # A dataset with a broken split is refused whichever split is read.
        for split in spec.splits:
            if split != split_name:
                _complete_split_files(spec, dataset_dir, spec.file_pattern, split,
                                      required=spec.recorded)
    pattern = file_pattern or spec.file_pattern
    files = _complete_split_files(spec, dataset_dir, pattern, split_name, required=True)
    label_counts = (spec.label_counts or {}).get(split_name)
    return slim.dataset.Dataset(
        data_sources=files,
        reader=reader or tf.TFRecordReader,
        decoder=make_decoder(spec.raw_image_shape,
                             spec.num_classes if spec.multi_label else None),
        num_samples=spec.splits[split_name],
        items_to_descriptions=(_MULTI_LABEL_ITEMS_TO_DESCRIPTIONS if spec.multi_label
                               else _ITEMS_TO_DESCRIPTIONS),
        num_classes=spec.num_classes,
        labels_to_names=_labels_to_names(spec, dataset_dir),
        multi_label=spec.multi_label,
        label_counts=None if label_counts is None else list(label_counts),
        name=spec.name,
        split_name=split_name,
        dataset_dir=dataset_dir,
        file_pattern=_split_pattern(pattern, split_name))


def _split_pattern(pattern: str, split_name: str) -> str:
    return pattern % split_name if '%s' in pattern else pattern


def _complete_split_files(spec: DatasetSpec, dataset_dir: str, pattern: str, split_name: str,
                          required: bool) -> list[str]:
    """The sorted files of a split, checked to be a whole set of shards.

    Raises:
      dataset_format.IncompleteDatasetError: if shards are missing, or no
        file matches a `required` split.
    """
    pattern = _split_pattern(pattern, split_name)
    files = sorted(tf.io.gfile.glob(os.path.join(dataset_dir, pattern)))
    if not files and required:
        raise dataset_format.IncompleteDatasetError(
            "no files match '%s' in '%s'; to make them, %s"
            % (pattern, dataset_dir, _how_to_complete(spec, dataset_dir)))
    problem = dataset_format.shard_set_problem(files)
    if problem:
        raise dataset_format.IncompleteDatasetError(
            "split '%s' in '%s' is incomplete: %s; to complete it, %s"
            % (split_name, dataset_dir, problem, _how_to_complete(spec, dataset_dir)))
    return files


def _how_to_complete(spec: DatasetSpec, dataset_dir: str) -> str:
    """'run <the command that makes the dataset>', or the spec's hint where there is none."""
    return spec.completion_hint or _conversion_advice(spec.name, dataset_dir, spec.image_dir,
                                                      spec.labels_csv)


def _conversion_advice(name: str, dataset_dir: str, image_dir: str | None = None,
                       labels_csv: str | None = None) -> str:
    if image_dir is None and name not in DATASETS:
        image_dir = 'IMAGE_DIR'
    return 'run ' + dataset_format.conversion_command(name, dataset_dir, image_dir, labels_csv)


def default_eval_split(name: str, dataset_dir: str) -> str:
    """The split to evaluate when none is named: 'test' where there is one, else 'validation'.

    Converted image folders have train and validation splits only; the
    built-in digits, MNIST and CIFAR-10 have a test split.
    """
    splits = get_dataset_spec(name, dataset_dir).splits
    for split in ('test', 'validation'):
        if split in splits:
            return split
    return next(iter(splits))


def get_dataset_spec(name: str, dataset_dir: str) -> DatasetSpec:
    """Returns what describes `dataset_dir`: its dataset_info.json, else the table.

    Raises:
      ValueError: if there is no dataset_info.json and `name` is not built in,
        or the dataset_info.json is malformed.
      dataset_format.IncompleteDatasetError: if there is no dataset_info.json
        and a conversion stopped (its report is there) or `name` is a
        dataset that needs one.
    """
    info_path = os.path.join(dataset_dir, dataset_format.INFO_FILENAME)
    if tf.io.gfile.exists(info_path):
        return read_dataset_info(info_path)
    report = dataset_format.read_report(dataset_dir)
    if report is not None:
        raise dataset_format.IncompleteDatasetError(
            "no %s in '%s': its conversion did not complete (%s status: %s); to complete it, %s"
            % (dataset_format.INFO_FILENAME, dataset_dir, dataset_format.REPORT_FILENAME,
               report.get('status', 'unknown'),
               _conversion_advice(name, dataset_dir, _recorded_image_dir(report),
                                  _recorded_option(report, 'labels_csv'))))
    if name not in DATASETS:
        raise ValueError("unknown dataset '%s': no %s in '%s' and not one of %s; to convert a "
                         "folder of images, %s"
                         % (name, dataset_format.INFO_FILENAME, dataset_dir,
                            ', '.join(list_datasets()), _conversion_advice(name, dataset_dir)))
    if DATASETS[name].info_required:
        raise dataset_format.IncompleteDatasetError(
            "no %s in '%s': dataset '%s' is complete once its conversion writes that file; "
            "%s" % (dataset_format.INFO_FILENAME, dataset_dir, name,
                    _conversion_advice(name, dataset_dir)))
    return DATASETS[name]


def _recorded_image_dir(record: dict) -> str | None:
    """The image folder a dataset_info.json or conversion report names in its options."""
    return _recorded_option(record, 'image_dir')


def _recorded_option(record: dict, name: str) -> str | None:
    """A text option that a dataset_info.json or conversion report records, or None."""
    options = record.get('options')
    value = options.get(name) if isinstance(options, dict) else None
    return value if isinstance(value, str) else None


def read_dataset_info(path: str) -> DatasetSpec:
    """Reads a dataset_info.json (see `dataset_format.read_info`) into a DatasetSpec.

    Raises:
      ValueError: if the file is malformed (see `dataset_format.read_info`).
    """
    info = dataset_format.read_info(path)
    classes = info.get('classes')
    return DatasetSpec(name=info['name'], file_pattern=info['file_pattern'],
                       splits=info['splits'], num_classes=info['num_classes'],
                       class_names=tuple(classes) if classes else None, recorded=True,
                       image_dir=_recorded_image_dir(info),
                       labels_csv=_recorded_option(info, 'labels_csv'),
                       multi_label=info.get('multi_label', False),
                       label_counts=_label_counts(info, classes))


def _label_counts(info: dict, classes: list[str] | None
                  ) -> dict[str, tuple[int, ...]] | None:
    """split -> images carrying each label id, from label_counts keyed by label name."""
    if 'label_counts' not in info or not classes:
        return None
    return {split: tuple(counts.get(name, 0) for name in classes)
            for split, counts in info['label_counts'].items()}


read_labels_file = dataset_format.read_labels


def _labels_to_names(spec: DatasetSpec, dataset_dir: str) -> dict[int, str] | None:
    if tf.io.gfile.exists(os.path.join(dataset_dir, dataset_format.LABELS_FILENAME)):
        return read_labels_file(dataset_dir)
    if spec.class_names:
        return dict(enumerate(spec.class_names))
    return None


def make_decoder(raw_image_shape: tuple[int, int, int] | None = None,
                 num_labels: int | None = None) -> slim.tfexample_decoder.TFExampleDecoder:
    """Returns a TFExample decoder with items 'image' (uint8, 3 channels) and 'label'.

    Args:
      raw_image_shape: [height, width, channels] of `raw` records lacking
        `image/height` and `image/width`; None if every raw record has them.
      num_labels: given, the records are multi-label: 'label' is the
        multi-hot vector of `image/class/labels`, float32 [num_labels], and
        'labels_list' those ids, int64 [None]; decoding fails on an id
        outside [0, num_labels).

    Returns:
      The decoder. Encoded images are decoded by their header (JPEG, PNG, GIF,
      BMP, WebP; the first frame of an animation); `raw` images are reshaped.
      One-channel images are repeated to 3 channels.
    """
    height, width, _ = raw_image_shape or (0, 0, 0)
    keys_to_features = {
        'image/encoded': tf.io.FixedLenFeature((), tf.string),
        'image/format': tf.io.FixedLenFeature((), tf.string, default_value=''),
        'image/height': tf.io.FixedLenFeature((), tf.int64, default_value=height),
        'image/width': tf.io.FixedLenFeature((), tf.int64, default_value=width),
        'image/class/label': tf.io.FixedLenFeature((), tf.int64),
    }
    items_to_handlers = {
        'image': slim.tfexample_decoder.ItemHandlerCallback(
            ['image/encoded', 'image/format', 'image/height', 'image/width'], _decode_image),
        'label': slim.tfexample_decoder.Tensor('image/class/label'),
    }
    if num_labels is not None:
        keys_to_features['image/class/labels'] = tf.io.VarLenFeature(tf.int64)
        items_to_handlers['labels_list'] = slim.tfexample_decoder.Tensor('image/class/labels')
        items_to_handlers['label'] = slim.tfexample_decoder.ItemHandlerCallback(
            ['image/class/labels'],
            lambda keys_to_tensors: _multi_hot(keys_to_tensors['image/class/labels'],
                                               num_labels))
    return slim.tfexample_decoder.TFExampleDecoder(keys_to_features, items_to_handlers)


def _multi_hot(labels: tf.SparseTensor, num_labels: int) -> tf.Tensor:
    """float32 [num_labels]: 1 at each id in `labels`; an id out of range fails the decode."""
    ids = labels.values
    check = tf.debugging.Assert(
        tf.reduce_all((ids >= 0) & (ids < num_labels)),
        ['image/class/labels holds a label id outside [0, %d):' % num_labels, ids],
        summarize=8)
    with tf.control_dependencies([check]):
        counts = tf.reduce_sum(tf.one_hot(ids, num_labels, dtype=tf.float32), axis=0)
    return tf.minimum(counts, 1.0)


def _decode_image(keys_to_tensors: dict[str, tf.Tensor]) -> tf.Tensor:
    encoded = keys_to_tensors['image/encoded']
    is_raw = tf.equal(tf.strings.lower(keys_to_tensors['image/format']), 'raw')
    image = tf.cond(
        is_raw,
        lambda: _decode_raw(encoded, keys_to_tensors['image/height'],
                            keys_to_tensors['image/width']),
        lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def _decode_raw(encoded: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    pixels = tf.io.decode_raw(encoded, tf.uint8)
    image = tf.reshape(pixels, tf.stack([height, width, -1]))
    # Broadcasting repeats one channel to three and rejects other counts.
    return tf.broadcast_to(image, tf.stack([height, width, 3]))

