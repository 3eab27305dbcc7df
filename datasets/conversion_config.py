"""The options of download_and_convert_data.py, each written once (no TensorFlow imported)."""

import dataclasses

from slim_classifier.runtime.options import POSITIVE, Check, option, validate

_PERCENTAGE = Check(lambda v: 0 <= v < 100, 'be in [0, 100)')
_FRACTION = Check(lambda v: 0 <= v <= 1, 'be in [0, 1]')


@dataclasses.dataclass(kw_only=True)
class ConversionOptions:
    dataset_name: str | None = option(None, 'A built-in dataset (cifar10, digit_tiles, '
                                      'digits, flowers, mnist), or the name of the dataset '
                                      'converted from --image_dir.', 'data', required=True)
    dataset_dir: str | None = option(None, 'Where the dataset is written.', 'data',
                                     required=True)
    image_dir: str | None = option(None, 'A folder with one sub-folder of images per class, to '
                                   'convert instead of downloading a built-in dataset.', 'data')
    labels_csv: str | None = option(None, 'A CSV file of `relative/path.jpg,label1;label2;...` '
                                    'rows: the images of --image_dir (paths relative to it) '
                                    'and their labels, possibly none, for a multi-label '
                                    'dataset.', 'data')
    validation_percentage: float = option(10.0, 'Percentage of each class (of each rarest '
                                          'label with --labels_csv) held out for validation '
                                          '(image folders).', 'data',
                                          check=_PERCENTAGE)
    num_shards: int = option(5, 'Shards per split (image folders).', 'output', check=POSITIVE)
    num_workers: int = option(1, 'Processes decoding images.', 'performance', check=POSITIVE)
    max_image_bytes: int = option(64 << 20, 'Image files larger than this many bytes are '
                                  'rejected unread (image folders).', 'data', check=POSITIVE)
    max_rejected_fraction: float = option(0.1, 'Fail, after writing the report, if a larger '
                                          'fraction of the image files cannot be converted.',
                                          'data', check=_FRACTION)

    def __post_init__(self):
        validate(self)


