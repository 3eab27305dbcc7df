"""Converts the images a CSV file lists with their labels: a multi-label dataset.

    labels.csv, beside or anywhere outside the output:
        beach/0001.jpg,sand;sea;sky
        streets/0002.png,car;person
        "odd, name.jpg",person
        misc/0003.jpg,

Each row is `relative/path,label1;label2;...`, read as CSV (quote a path
holding a comma): the path of an image below --image_dir, then its labels
separated by ';', possibly none (the image is then a negative of every
label). Blank lines and lines starting with '#' are ignored. The label ids
follow the sorted label names (labels.txt). Every row is checked before
anything is written; a malformed line, an empty path, a path outside the
image folder, a missing file or a path listed twice is refused with one line
naming the CSV file and the line.

The records are those of `datasets.tfrecord_writing.multi_label_example`.
The validation split is stratified by each image's rarest label (the one
fewest listed images carry; images without labels form a stratum of their
own), which keeps every label that has enough images in both splits; it is
seeded and, as for an image folder, does not depend on the number of
workers. Everything else is as `datasets.convert_image_folder` does it:
each image is decoded and either becomes a record or is rejected with its
reason in the conversion report, shards are written atomically and
deterministically under the directory's lock, dataset_info.json last.
"""

import csv
import dataclasses
import os

from datasets import tfrecord_writing
from datasets.convert_image_folder import (DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_REJECTED_FRACTION,
                                           DEFAULT_NUM_SHARDS, DEFAULT_VALIDATION_PERCENTAGE,
                                           ImageFile, check_options, check_output_outside_input,
                                           display, plan_splits, validation_size,
                                           write_planned_images)
from datasets.progress import ProgressFn, ignore_progress
from datasets.tfrecord_writing import ConversionSummary

_ROW_FORM = '`relative/path,label1;label2;...`'
# The stratum of the images without labels, after every label id.
_UNLABELLED_STRATUM = -1


@dataclasses.dataclass(frozen=True)
class LabelledFile:
    """One row of the CSV: an image and the names of its labels."""
    path: str  # the file, below the image folder
    relative_path: str  # '/'-separated and normalised: the image's key
    label_names: tuple[str, ...]


def read_labels_csv(csv_path: str, image_dir: str) -> list[LabelledFile]:
    """Reads and checks every row of a labels CSV.

    Args:
        csv_path: the CSV file.
        image_dir: the folder the rows' paths are relative to.

    Returns:
        The listed images, in the CSV's order.

    Raises:
        ValueError: naming the file and line, for a malformed line, an empty
            path, a path outside `image_dir`, a file that does not exist or
            a path listed twice; or for a CSV that cannot be read, lists no
            image or names no label.
    """
    if not os.path.isdir(image_dir):
        raise ValueError('--image_dir %r is not a folder' % image_dir)
    try:
        with open(csv_path, encoding='utf-8', newline='') as csv_file:
            rows = _numbered_rows(csv_path, csv_file)
    except FileNotFoundError:
        raise ValueError('--labels_csv %r does not exist' % csv_path) from None
    except IsADirectoryError:
        raise ValueError('--labels_csv %r is a folder, not a CSV file' % csv_path) from None
    except UnicodeDecodeError as error:
        raise ValueError('--labels_csv %s is not UTF-8 text (%s)' % (csv_path, error)) from None
    image_root = os.path.realpath(image_dir)
    listed, first_line = [], {}
    for line, row in rows:
        where = '--labels_csv %s line %d' % (csv_path, line)
        image = _labelled_file(where, row, image_dir, image_root)
        if image.relative_path in first_line:
            raise ValueError('%s: %r is listed again (first on line %d); list each image once, '
                             'with all its labels' % (where, row[0],
                                                      first_line[image.relative_path]))
        first_line[image.relative_path] = line
        listed.append(image)
    if not listed:
        raise ValueError('--labels_csv %s lists no image; expected rows %s'
                         % (csv_path, _ROW_FORM))
    if not any(image.label_names for image in listed):
        raise ValueError('--labels_csv %s gives no image a label; expected rows %s'
                         % (csv_path, _ROW_FORM))
    return listed


def label_images(listed: list[LabelledFile]) -> tuple[list[str], list[ImageFile]]:
    """The label names (sorted: the ids) and the images, each with its ids and stratum.

    An image's stratum (`ImageFile.label`, which `plan_splits` stratifies by)
    is its rarest label: the one fewest listed images carry, the smaller id
    on a tie; images without labels share one stratum.
    """
    class_names = sorted({name for image in listed for name in image.label_names})
    ids = {name: label for label, name in enumerate(class_names)}
    counts = [0] * len(class_names)
    for image in listed:
        for name in image.label_names:
            counts[ids[name]] += 1
    images = []
    for image in sorted(listed, key=lambda image: image.relative_path):
        labels = tuple(sorted(ids[name] for name in image.label_names))
        stratum = min(labels, key=lambda label: (counts[label], label),
                      default=_UNLABELLED_STRATUM)
        images.append(ImageFile(image.path, image.relative_path, stratum, labels))
    return class_names, images


def convert_labels_csv(
        image_dir: str, labels_csv: str, dataset_dir: str, name: str, *,
        validation_percentage: float = DEFAULT_VALIDATION_PERCENTAGE,
        num_shards: int = DEFAULT_NUM_SHARDS,
        num_workers: int = 1,
        max_rejected_fraction: float = DEFAULT_MAX_REJECTED_FRACTION,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        seed: int = 0,
        progress: ProgressFn = ignore_progress) -> ConversionSummary:
    """Converts the images `labels_csv` lists into a multi-label dataset directory.

    Args:
        image_dir: the folder the CSV's paths are relative to.
        labels_csv: the CSV of `relative/path,label1;label2;...` rows.
        dataset_dir: where shards, labels.txt, conversion_report.json and
            dataset_info.json are written; must not be inside `image_dir`.
        name: the dataset name, the prefix of the shard files.
        validation_percentage: share of the images held out for validation,
            stratified by rarest label, in [0, 100); 0 gives no validation
            split.
        num_shards, num_workers, max_rejected_fraction, max_image_bytes, seed,
            progress: as `convert_image_folder`'s.

    Returns:
        What was converted and rejected.

    Raises:
        ValueError: for a bad argument or CSV row (see `read_labels_csv`), or
            a validation share that would leave a split empty; nothing has
            been written then.
        DatasetLockedError: if another conversion is writing `dataset_dir`.
        DiskFullError: if the disk filled up; the shards are removed.
        TooManyRejectedError: if too many files were rejected; the report is
            written, dataset_info.json is not.
    """
    tfrecord_writing.check_dataset_name(name)
    check_options(validation_percentage, None, num_shards, num_workers, max_rejected_fraction,
                  max_image_bytes)
    check_output_outside_input(image_dir, dataset_dir)
    class_names, images = label_images(read_labels_csv(labels_csv, image_dir))
    holdout = validation_size(len(images), validation_percentage, None)
    plan = plan_splits(images, holdout, seed)
    summary = ConversionSummary(
        name=name, dataset_dir=dataset_dir, class_names=class_names, split_sizes={},
        converted_per_class=[0] * len(class_names), image_formats=set(),
        options={'image_dir': os.path.abspath(image_dir),
                 'labels_csv': os.path.abspath(labels_csv),
                 'validation_percentage': validation_percentage, 'num_shards': num_shards,
                 'max_rejected_fraction': max_rejected_fraction,
                 'max_image_bytes': max_image_bytes, 'seed': seed},
        multi_label=True)
    write_planned_images(plan, summary, num_shards, num_workers, max_rejected_fraction,
                         max_image_bytes, progress)
    return summary


def _numbered_rows(csv_path, csv_file):
    """(line number, fields) of each row that is neither blank nor a comment."""
    # strict: a quote left open is an error, not a field running to the end of the file.
    reader = csv.reader(csv_file, strict=True)
    rows = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as error:
            raise ValueError('--labels_csv %s line %d: expected %s; %s'
                             % (csv_path, reader.line_num, _ROW_FORM, error)) from None
        if row and not (len(row) == 1 and not row[0].strip()) and not row[0].startswith('#'):
            rows.append((reader.line_num, row))


def _labelled_file(where: str, row: list[str], image_dir: str, image_root: str) -> LabelledFile:
    """The image and labels of one row; `where` names the file and line in errors."""
    if len(row) != 2:
        raise ValueError('%s: expected %s (2 fields); got %d field%s: %r'
                         % (where, _ROW_FORM, len(row), '' if len(row) == 1 else 's',
                            ','.join(row)))
    path, labels = row[0].strip(), row[1].strip()
    if not path:
        raise ValueError('%s: the image path is empty; expected %s' % (where, _ROW_FORM))
    names = tuple(sorted({name.strip() for name in labels.split(';')})) if labels else ()
    if '' in names or any('\n' in name or '\r' in name for name in names):
        raise ValueError('%s: expected label names separated by single \';\'; got %r'
                         % (where, row[1]))
    relative = os.path.normpath(path)
    full_path = os.path.join(image_dir, relative)
    inside = os.path.commonpath([image_root, os.path.realpath(full_path)]) == image_root
    if os.path.isabs(path) or relative.split(os.sep)[0] == '..' or not inside:
        raise ValueError('%s: %r is outside --image_dir %r; expected a path relative to it'
                         % (where, display(path), image_dir))
    if not os.path.lexists(full_path):
        raise ValueError('%s: %r does not exist in --image_dir %r' % (where, display(path),
                                                                     image_dir))
    if os.path.isdir(full_path):
        raise ValueError('%s: %r is a folder; expected an image file' % (where, display(path)))
    return LabelledFile(full_path, relative.replace(os.sep, '/'), names)
