"""The one input recipe: training and evaluation batches of a dataset for a net.

The trainer, the evaluator and the benchmarks all read their batches through
these two functions, so a change to how images reach a net is made once.
Training batches can also be augmented (`preprocessing.augmentation`) and
drawn evenly over the classes; the class counts behind that, and behind
class-weighted losses, come from here too (`class_counts`, `class_weights`).
"""

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np
import tensorflow.compat.v1 as tf

from datasets import dataset_format, input_pipeline
from preprocessing import preprocessing_factory
from preprocessing.augmentation import Augmentation, augmented_preprocessing, mix_batch
from slim_classifier.compat import slim
from slim_classifier.runtime import determinism

log = logging.getLogger('batches')

# The message of the assertion that stops training on a label outside the classes.
LABEL_CHECK = 'label outside [0, num_classes)'
# The value of --class_weights that derives the weights from the class counts.
AUTO_CLASS_WEIGHTS = 'auto'
# Records whose labels are read per step when counting the classes of a split.
_COUNT_BATCH_SIZE = 1024


def training_batches(dataset: slim.dataset.Dataset, preprocessing_name: str, image_size: int,
                     batch_size: int, use_grayscale: bool = False,
                     augmentation: Augmentation = Augmentation(),
                     balance_counts: Sequence[int] | None = None,
                     **pipeline_args) -> tf.data.Dataset:
    """Shuffled, preprocessed training batches, repeated without end.

    Where the preprocessing's random crop can be drawn before decoding
    (`preprocessing_factory.get_training_crop_window`), a JPEG is decoded
    only inside it and the preprocessing crops no further.

    Args:
      dataset: a Dataset from `dataset_factory.get_dataset`.
      preprocessing_name: a preprocessing or network name.
      image_size: height and width of the images.
      batch_size: examples per batch.
      use_grayscale: 1-channel images whatever the network.
      augmentation: RandAugment and random erasing around the preprocessing,
        mixup or CutMix of each batch; the default adds nothing.
      balance_counts: the examples of each class (`class_counts`): given,
        the examples are resampled (rejection resampling) so that each
        class with examples is drawn equally often.
      **pipeline_args: further arguments of `input_pipeline.build_dataset`
        (num_readers, num_parallel_calls, seed, deterministic, labels_offset).

    Returns:
      Batches of (images, labels): labels int64 [batch], or, when the
      augmentation mixes batches, soft labels float32 [batch, num_classes].
    """
    preprocess_fn = preprocessing_factory.get_preprocessing(
        preprocessing_name, is_training=True, use_grayscale=use_grayscale)
    crop_window_fn = preprocessing_factory.get_training_crop_window(preprocessing_name)
    if crop_window_fn is not None:
        preprocess_fn = functools.partial(preprocess_fn, crop_image=False)
    preprocess_fn = augmented_preprocessing(preprocess_fn, augmentation)
    batches = input_pipeline.build_dataset(dataset, preprocess_fn, image_size, batch_size,
                                           is_training=True, crop_window_fn=crop_window_fn,
                                           **pipeline_args)
    if balance_counts is None and not augmentation.mixes_batches:
        return batches
    num_classes = dataset.num_classes - pipeline_args.get('labels_offset', 0)
    seed = pipeline_args.get('seed')
    # Deterministic training seeds each draw by the position of its example or
    # batch (slim_classifier.runtime.determinism), so that a resume repeats it.
    stateless = pipeline_args.get('deterministic', False)
    if balance_counts is not None:
        batches = _balanced(batches, balance_counts, num_classes, batch_size, seed, stateless)
    if augmentation.mixes_batches:
        if stateless:
            batches = batches.enumerate().map(_positioned_mixing_fn(augmentation, num_classes,
                                                                    seed))
        else:
            batches = batches.map(_mixing_fn(augmentation, num_classes, seed))
    return batches.prefetch(input_pipeline.AUTOTUNE)


def evaluation_batches(dataset: slim.dataset.Dataset, preprocessing_name: str, image_size: int,
                       batch_size: int, use_grayscale: bool = False,
                       **pipeline_args) -> tf.data.Dataset:
    """One pass over the dataset in record order, preprocessed for evaluation.

    The last batch keeps the examples left over, so every example is read once.

    Args: as `training_batches`; `pipeline_args` are num_readers,
      num_parallel_calls and labels_offset.
    """
    preprocess_fn = preprocessing_factory.get_preprocessing(
        preprocessing_name, is_training=False, use_grayscale=use_grayscale)
    return input_pipeline.build_dataset(dataset, preprocess_fn, image_size, batch_size,
                                        is_training=False, **pipeline_args)


def checked_labels(labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Labels, with an assertion (LABEL_CHECK) that stops training on one outside the classes."""
    check = tf.debugging.Assert(
        tf.reduce_all((labels >= 0) & (labels < num_classes)),
        [LABEL_CHECK, labels], summarize=8, name='label_check')
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def _balanced(batches: tf.data.Dataset, counts: Sequence[int], num_classes: int,
              batch_size: int, seed: int | None, stateless: bool = False) -> tf.data.Dataset:
    """The examples of `batches` resampled evenly over the classes that have any, rebatched.

    Rejection resampling mixed with the stream as it comes, as tf.data's
    `rejection_resample` does (without its printed warnings): a share
    `direct` of the examples is taken as they come, the others are kept at
    their class's acceptance rate; together they draw each class with
    examples equally often, while as few examples as possible are
    preprocessed only to be dropped. `stateless`: each acceptance is drawn
    from a seed of (seed, the example's position), see `training_batches`.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) != num_classes or not counts.sum():
        raise ValueError('balanced sampling needs an example count for each of the %d classes, '
                         'not all 0; got %s' % (num_classes, counts.astype(int).tolist()))
    present = counts > 0
    ratios = np.where(present, (present / present.sum()) / np.maximum(counts / counts.sum(),
                                                                       1e-30), 0.0)
    direct = ratios[present].min()
    if ratios.max() - direct < 1e-9:
        return batches  # already balanced
    acceptance = tf.constant((ratios - direct) / (ratios.max() - direct), tf.float32)

    def accepted(image, label):
        del image
        if seed is not None:
            tf.set_random_seed(seed)  # as in input_pipeline: this traced function's seed
        label = checked_labels(label, num_classes)
        return determinism.uniform([]) < tf.gather(acceptance, label)

    examples = batches.unbatch()
    if stateless:
        def accepted_at(position, example):
            with determinism.stateless_draws(seed, determinism.STREAM_BALANCE, position):
                return accepted(*example)
        candidates = examples.enumerate().filter(accepted_at).map(lambda _, example: example)
    else:
        candidates = examples.filter(accepted)
    resampled = tf.data.Dataset.sample_from_datasets(
        [examples, candidates], weights=[direct, 1.0 - direct], seed=seed)
    return resampled.batch(batch_size, drop_remainder=True)


def _mixing_fn(augmentation: Augmentation, num_classes: int, seed: int | None):
    def mix(images, labels):
        if seed is not None:
            # As in input_pipeline: seeds this traced function's random ops alone.
            tf.set_random_seed(seed)
        if labels.shape.rank == 1:  # class ids; multi-hot labels were decoded checked
            labels = checked_labels(labels, num_classes)
        return mix_batch(images, labels, num_classes, augmentation.mixup_alpha,
                         augmentation.cutmix_alpha)
    return mix


def _positioned_mixing_fn(augmentation: Augmentation, num_classes: int, seed: int):
    """`_mixing_fn` of an enumerated batch, whose draws are seeded by its position."""
    mix = _mixing_fn(augmentation, num_classes, seed)

    def mix_at(position, batch):
        with determinism.stateless_draws(seed, determinism.STREAM_BATCHES, position):
            return mix(*batch)
    return mix_at


# Class balance ---------------------------------------------------------------------------------

def class_counts(dataset: slim.dataset.Dataset, labels_offset: int = 0) -> list[int]:
    """The examples of each of the net's classes (dataset label - labels_offset).

    A converted dataset's conversion_report.json counts the examples of each
    class over all splits; as every converter holds out a stratified share,
    these are in the proportions of each split. Without a complete report
    (the original TF-Slim records), the labels of the split's records are
    read once (their images are not decoded).

    For a multi-label dataset: the examples of the split carrying each label,
    from its dataset_info.json (`dataset.label_counts`) where recorded, else
    read from the records.
    """
    if getattr(dataset, 'multi_label', False):
        counts = getattr(dataset, 'label_counts', None) or _counted_labels(dataset)
    else:
        counts = _reported_counts(dataset) or _counted_labels(dataset)
    return list(counts[labels_offset:])


def class_weights(value: str, dataset: slim.dataset.Dataset, labels_offset: int = 0,
                  counts: Sequence[int] | None = None, multi_label: bool = False) -> list[float]:
    """The loss weight of each of the net's classes, for --class_weights.

    Args:
      value: 'auto' for inverse class frequency, scaled so that the weights
        average 1 over the examples (a class without examples weighs 1); or
        a file of either one weight per line, for every class in order, or
        `name: weight` lines, for some classes by the dataset's class names
        (the others weigh 1). Blank lines and lines starting with # are
        ignored.
      dataset: the training split.
      labels_offset: as TrainConfig's.
      counts: the `class_counts` of the dataset, if already known.
      multi_label: the loss is a sigmoid cross-entropy per label, whose
        weights weigh the positive term of each label ('pos_weight'); 'auto'
        then gives each label its negatives / positives
        (`positive_label_weights`), so that its positive and negative
        examples weigh the same in all.

    Raises:
      ValueError: naming --class_weights, for a file that cannot be read or
        does not fit the dataset's classes, or a negative or infinite weight.
    """
    num_classes = dataset.num_classes - labels_offset
    if value == AUTO_CLASS_WEIGHTS:
        if counts is None:
            counts = class_counts(dataset, labels_offset)
        if not multi_label:
            weights = inverse_frequency_weights(counts)
        elif getattr(dataset, 'multi_label', False):
            weights = positive_label_weights(counts, dataset.num_samples)
        else:
            # A single-label dataset's examples carry one label each.
            weights = positive_label_weights(counts, sum(counts))
    else:
        names = {label - labels_offset: name
                 for label, name in (dataset.labels_to_names or {}).items()}
        weights = read_class_weights(value, num_classes, names)
    log.info('%s weights (--class_weights=%s): %s',
             'Positive label' if multi_label else 'Class', value,
             ', '.join('%.4g' % weight for weight in weights))
    return weights


def positive_label_weights(counts: Sequence[int], num_examples: int) -> list[float]:
    """negatives / positives per label, for --class_weights=auto in multi-label training.

    Args:
      counts: the examples carrying each label.
      num_examples: the examples counted.

    Returns:
      (num_examples - count) / count per label; 1 for a label that no
      example, or every example, carries.
    """
    if num_examples <= 0:
        raise ValueError('--class_weights=auto needs examples; the split has none')
    return [(num_examples - count) / count if 0 < count < num_examples else 1.0
            for count in counts]


def inverse_frequency_weights(counts: Sequence[int]) -> list[float]:
    """count_total / (classes with examples * count) per class; 1 for a class without examples."""
    present = [count for count in counts if count > 0]
    if not present:
        raise ValueError('--class_weights=auto needs examples; every class count is 0')
    scale = sum(present) / len(present)
    return [scale / count if count > 0 else 1.0 for count in counts]


def read_class_weights(path: str, num_classes: int, class_names: dict[int, str]) -> list[float]:
    """Reads a --class_weights file (see `class_weights`).

    Raises:
      ValueError: naming --class_weights, the file and the line at fault.
    """
    try:
        with tf.io.gfile.GFile(path, 'r') as weights_file:
            lines = weights_file.read().splitlines()
    except (OSError, tf.errors.OpError, UnicodeDecodeError) as error:
        raise ValueError('--class_weights cannot read %s: %s' % (path, error)) from None
    entries = [(number, line.strip()) for number, line in enumerate(lines, 1)
               if line.strip() and not line.strip().startswith('#')]
    named = [':' in line for _, line in entries]
    if any(named) and not all(named):
        raise ValueError('--class_weights file %s mixes `name: weight` lines and bare weights; '
                         'use one form' % path)
    if all(named) and entries:
        return _named_weights(path, entries, num_classes, class_names)
    if len(entries) != num_classes:
        raise ValueError('--class_weights file %s has %d weights; the net has %d classes'
                         % (path, len(entries), num_classes))
    return [_weight(path, number, text) for number, text in entries]


def _named_weights(path, entries, num_classes, class_names):
    ids = {name: label for label, name in class_names.items() if 0 <= label < num_classes}
    weights = [1.0] * num_classes
    for number, line in entries:
        name, text = (part.strip() for part in line.rsplit(':', 1))
        if name not in ids:
            raise ValueError('--class_weights file %s line %d: unknown class %r; the classes are '
                             '%s' % (path, number, name, ', '.join(sorted(ids, key=ids.get))))
        weights[ids[name]] = _weight(path, number, text)
    return weights


def _weight(path: str, number: int, text: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError('--class_weights file %s line %d: a weight must be a number >= 0; '
                         'got %r' % (path, number, text))
    return weight


def _reported_counts(dataset: slim.dataset.Dataset) -> list[int] | None:
    """The per-class counts of a complete conversion report of this dataset, or None."""
    dataset_dir = getattr(dataset, 'dataset_dir', None)
    report = dataset_format.read_report(dataset_dir) if dataset_dir else None
    if not report or report.get('status') != 'complete' or report.get('name') != getattr(
            dataset, 'name', None):
        return None
    per_class = report.get('per_class')
    if not isinstance(per_class, dict) or len(per_class) != dataset.num_classes:
        return None
    try:
        return [int(entry['converted']) for entry in per_class.values()]
    except (KeyError, TypeError, ValueError):
        return None


def _counted_labels(dataset: slim.dataset.Dataset) -> list[int]:
    """The examples of each dataset label (carrying it, if multi-hot), read from the records."""
    log.info('Counting the examples of each class in %s',
             getattr(dataset, 'file_pattern', 'the dataset'))
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    with tf.Graph().as_default():
        labels = tf.data.TFRecordDataset(input_pipeline.data_files(dataset.data_sources)).map(
            lambda record: dataset.decoder.decode(record, ['label'])[0],
            num_parallel_calls=input_pipeline.AUTOTUNE).batch(_COUNT_BATCH_SIZE)
        next_labels = tf.data.make_one_shot_iterator(labels).get_next()
        with tf.Session() as session, input_pipeline.data_errors_explained(dataset):
            while True:
                try:
                    values = session.run(next_labels)
                except tf.errors.OutOfRangeError:
                    break
                if values.ndim == 2:  # multi-hot labels
                    counts += values.sum(axis=0).astype(np.int64)
                    continue
                # Labels outside the classes are left to the training's own check.
                values = values[(values >= 0) & (values < dataset.num_classes)]
                counts += np.bincount(values, minlength=dataset.num_classes)
    return counts.tolist()
