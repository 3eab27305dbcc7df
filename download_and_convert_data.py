"""Downloads a dataset, or reads a folder of images, and writes TFRecord shards.

Built-in datasets:

    download_and_convert_data --dataset_name=digits --dataset_dir=/tmp/digits
    download_and_convert_data --dataset_name=mnist --dataset_dir=/tmp/mnist
    download_and_convert_data --dataset_name=cifar10 --dataset_dir=/tmp/cifar10
    download_and_convert_data --dataset_name=flowers --dataset_dir=/tmp/flowers

`digits` is embedded (scikit-learn's handwritten digits) and needs no
network. Any folder with one sub-folder of images per class:

    download_and_convert_data --dataset_name=pets --image_dir=/data/pets \\
        --dataset_dir=/tmp/pets --num_workers=8

The dataset directory then holds the shards, labels.txt,
conversion_report.json and, once everything is complete, dataset_info.json.
"""

import sys

from absl import app
from absl import flags

from datasets.convert_cifar10 import convert_cifar10
from datasets.convert_digits import convert_digits
from datasets.convert_flowers import convert_flowers
from datasets.convert_image_folder import DEFAULT_MAX_REJECTED_FRACTION
from datasets.convert_image_folder import DEFAULT_NUM_SHARDS
from datasets.convert_image_folder import DEFAULT_VALIDATION_PERCENTAGE
from datasets.convert_image_folder import TooManyRejectedError, convert_image_folder
from datasets.convert_mnist import convert_mnist
from datasets.download import ArchiveError, DownloadError
from datasets.progress import ProgressFn, ProgressPrinter, ignore_progress
from datasets.tfrecord_writing import ConversionSummary

FLAGS = flags.FLAGS

BUILT_IN_DATASETS = ('cifar10', 'digits', 'flowers', 'mnist')

# Failures a user can cause or fix; anything else is a bug and keeps its traceback.
_USER_ERRORS = (ValueError, OSError, ImportError, DownloadError, ArchiveError)


def convert(dataset_name: str, dataset_dir: str, image_dir: str | None = None, *,
            validation_percentage: float = DEFAULT_VALIDATION_PERCENTAGE,
            num_shards: int = DEFAULT_NUM_SHARDS, num_workers: int = 1,
            max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
            progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Converts a built-in dataset, or the image folder `image_dir`.

    Args:
        dataset_name: a built-in dataset, or the name to give `image_dir`'s.
        dataset_dir: the output directory.
        image_dir: a folder with one sub-folder per class, or None for a
            built-in dataset.
        validation_percentage: see `convert_image_folder` (image folders only).
        num_shards: see `convert_image_folder` (image folders only).
        num_workers: processes decoding images (image folders and flowers).
        max_rejected_fraction: see `convert_image_folder` (image folders and
            flowers).
        progress: told how the work advances.

    Returns:
        What was converted.

    Raises:
        ValueError: for an unknown dataset without `image_dir`, or bad options.
        DownloadError, ArchiveError: when a download or archive is unusable.
        TooManyRejectedError: when too many images were rejected.
    """
    if image_dir is not None:
        return convert_image_folder(
            image_dir, dataset_dir, dataset_name, validation_percentage=validation_percentage,
            num_shards=num_shards, num_workers=num_workers,
            max_rejected_fraction=max_rejected_fraction, progress=progress)
    if dataset_name == 'digits':
        return convert_digits(dataset_dir, progress=progress)
    if dataset_name == 'mnist':
        return convert_mnist(dataset_dir, progress=progress)
    if dataset_name == 'cifar10':
        return convert_cifar10(dataset_dir, progress=progress)
    if dataset_name == 'flowers':
        return convert_flowers(dataset_dir, num_workers=num_workers,
                               max_rejected_fraction=max_rejected_fraction, progress=progress)
    raise ValueError('--dataset_name %r is not built in (%s); convert a folder of images '
                     'with --image_dir' % (dataset_name, ', '.join(BUILT_IN_DATASETS)))


def define_flags() -> None:
    """Defines this command's flags (only when it runs, so importing is free)."""
    flags.DEFINE_string('dataset_name', None,
                        'A built-in dataset (%s), or the name of the dataset converted '
                        'from --image_dir.' % ', '.join(BUILT_IN_DATASETS))
    flags.DEFINE_string('dataset_dir', None, 'Where the dataset is written.')
    flags.DEFINE_string('image_dir', None,
                        'A folder with one sub-folder of images per class, to convert '
                        'instead of downloading a built-in dataset.')
    flags.DEFINE_float('validation_percentage', DEFAULT_VALIDATION_PERCENTAGE,
                       'Percentage of each class held out for validation, in [0, 100) '
                       '(image folders).')
    flags.DEFINE_integer('num_shards', DEFAULT_NUM_SHARDS, 'Shards per split (image folders).')
    flags.DEFINE_integer('num_workers', 1, 'Processes decoding images.')
    flags.DEFINE_float('max_rejected_fraction', DEFAULT_MAX_REJECTED_FRACTION,
                       'Fail, after writing the report, if a larger fraction of the image '
                       'files cannot be converted.')
    flags.mark_flags_as_required(['dataset_name', 'dataset_dir'])


def main(argv: list[str]) -> int:
    """Runs the conversion the flags describe; returns the exit code."""
    if len(argv) > 1:
        raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
    try:
        summary = convert(FLAGS.dataset_name, FLAGS.dataset_dir, FLAGS.image_dir,
                          validation_percentage=FLAGS.validation_percentage,
                          num_shards=FLAGS.num_shards, num_workers=FLAGS.num_workers,
                          max_rejected_fraction=FLAGS.max_rejected_fraction,
                          progress=ProgressPrinter())
    except TooManyRejectedError as error:
        print('\n'.join(error.summary.summary_lines()))
        print('error: %s' % error, file=sys.stderr)
        return 1
    except _USER_ERRORS as error:
        print('error: %s' % error, file=sys.stderr)
        return 1
    print('\n'.join(summary.summary_lines()))
    return 0


def run() -> None:
    """The console command's entry point."""
    define_flags()
    app.run(main)


if __name__ == '__main__':
    run()
