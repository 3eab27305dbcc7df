"""Downloads the flower photos and converts them into the `flowers` dataset.

flower_photos.tgz holds `flower_photos/` with one folder per class (daisy,
dandelion, roses, sunflowers, tulips) and a LICENSE.txt. It is extracted
safely and converted as an image folder, with the split the original slim
dataset used: 350 images held out for validation, 5 shards per split.
"""

import os

from datasets.convert_image_folder import (DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_REJECTED_FRACTION,
                                           convert_image_folder)
from datasets.download import ArchiveError
from datasets.downloaded_archive import downloaded_archive
from datasets.progress import ProgressFn, ignore_progress
from datasets.tfrecord_writing import ConversionSummary

NAME = 'flowers'
DEFAULT_URL = 'https://download.tensorflow.org/example_images/flower_photos.tgz'
# No checksum is published for flower_photos.tgz, and none is made up here:
# the download is checked against its announced length and the archive for
# integrity (every member is read while it is extracted) instead.
PUBLISHED_MD5 = None
PHOTO_FOLDER = 'flower_photos'
VALIDATION_COUNT = 350
NUM_SHARDS = 5
SEED = 0


def convert_flowers(dataset_dir: str, url: str = DEFAULT_URL, md5: str | None = PUBLISHED_MD5,
                    validation_count: int = VALIDATION_COUNT, num_workers: int = 1,
                    max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
                    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                    progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Downloads the flower photos and writes the `flowers` dataset into `dataset_dir`.

    Args:
        dataset_dir: the output directory; the download and its extraction
            are kept in its 'downloads' folder until the conversion is complete.
        url: where flower_photos.tgz is fetched from.
        md5: its expected MD5, or None to check only length and integrity.
        validation_count: images held out for validation.
        num_workers: processes decoding images.
        max_rejected_fraction: see `convert_image_folder`.
        max_image_bytes: see `convert_image_folder`.
        progress: told how the download and the conversion advance.

    Returns:
        What was converted, rejected and skipped.

    Raises:
        DownloadError: if the download fails or does not match `md5`.
        ArchiveError: if the archive is unsafe, corrupt or lacks flower_photos/.
        TooManyRejectedError: if too many photos cannot be decoded.
    """
    with downloaded_archive(dataset_dir, url, os.path.basename(DEFAULT_URL), md5,
                            progress) as (archive, extracted):
        image_dir = os.path.join(extracted, PHOTO_FOLDER)
        if not os.path.isdir(image_dir):
            raise ArchiveError('%s lacks the folder %s/' % (archive, PHOTO_FOLDER))
        return convert_image_folder(
            image_dir, dataset_dir, NAME, validation_count=validation_count,
            num_shards=NUM_SHARDS, num_workers=num_workers,
            max_rejected_fraction=max_rejected_fraction, max_image_bytes=max_image_bytes,
            seed=SEED, progress=progress)
