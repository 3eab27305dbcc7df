"""The one input recipe: training and evaluation batches of a dataset for a net.

The trainer, the evaluator and the benchmarks all read their batches through
these two functions, so a change to how images reach a net is made once.
"""

import functools

import tensorflow.compat.v1 as tf

from datasets import input_pipeline
from preprocessing import preprocessing_factory
from slim_classifier.compat import slim


def training_batches(dataset: slim.dataset.Dataset, preprocessing_name: str, image_size: int,
                     batch_size: int, use_grayscale: bool = False,
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
      **pipeline_args: further arguments of `input_pipeline.build_dataset`
        (num_readers, num_parallel_calls, seed, deterministic, labels_offset).
    """
    preprocess_fn = preprocessing_factory.get_preprocessing(
        preprocessing_name, is_training=True, use_grayscale=use_grayscale)
    crop_window_fn = preprocessing_factory.get_training_crop_window(preprocessing_name)
    if crop_window_fn is not None:
        preprocess_fn = functools.partial(preprocess_fn, crop_image=False)
    return input_pipeline.build_dataset(dataset, preprocess_fn, image_size, batch_size,
                                        is_training=True, crop_window_fn=crop_window_fn,
                                        **pipeline_args)


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
