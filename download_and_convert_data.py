"""Downloads a dataset, or reads a folder of images, and writes TFRecord shards.

    download_and_convert_data.py --dataset_name=digits --dataset_dir=/tmp/digits
    download_and_convert_data.py --dataset_name=pets --image_dir=/data/pets --dataset_dir=/tmp/pets
    download_and_convert_data.py --dataset_name=scenes --image_dir=/data/photos \
        --labels_csv=/data/labels.csv --dataset_dir=/tmp/scenes

The dataset directory then holds the shards, labels.txt,
conversion_report.json and, once everything is complete, dataset_info.json.
The converters are in datasets/converters.py.
"""

import os

from datasets.conversion_config import ConversionOptions
from slim_classifier.cli import flags, runner

SUMMARY = """Converts a built-in dataset or a folder of images to TFRecord shards.

  download_and_convert_data.py --dataset_name=digits --dataset_dir=DIR
  download_and_convert_data.py --dataset_name=pets --image_dir=PHOTOS --dataset_dir=DIR
  download_and_convert_data.py --dataset_name=scenes --image_dir=PHOTOS --labels_csv=CSV \
      --dataset_dir=DIR

digits and digit_tiles (multi-label) are embedded (no network); mnist, cifar10 and flowers
are downloaded. PHOTOS holds one sub-folder of images per class, or, with --labels_csv, the
images that CSV lists with their labels (rows `relative/path.jpg,label1;label2;...`)."""

flags.define_flags(ConversionOptions)


def main(argv: list[str]) -> int:
    """Runs the conversion the flags describe; returns the exit code."""
    from datasets import converters
    from datasets.convert_image_folder import TooManyRejectedError
    from datasets.progress import ProgressPrinter
    if len(argv) > 1:
        raise ValueError('unexpected arguments: %s' % ' '.join(argv[1:]))
    options = ConversionOptions(**flags.config_values(ConversionOptions, flags.FLAGS))
    try:
        summary = converters.convert(
            options.dataset_name, options.dataset_dir, options.image_dir,
            labels_csv=options.labels_csv, validation_percentage=options.validation_percentage,
            num_shards=options.num_shards, num_workers=options.num_workers,
            max_rejected_fraction=options.max_rejected_fraction,
            max_image_bytes=options.max_image_bytes, progress=ProgressPrinter())
    except TooManyRejectedError as error:
        print('\n'.join(error.summary.summary_lines()))
        raise
    print('\n'.join(summary.summary_lines()))
    print('The dataset and its conversion report are in %s' % os.path.abspath(options.dataset_dir))
    return 0


def run() -> None:
    """The console command's entry point."""
    runner.run_command(main, SUMMARY, (ConversionOptions,))


if __name__ == '__main__':
    run()
