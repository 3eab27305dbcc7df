"""The contract of a converted dataset directory: file names, format version, reading and writing.

The converters write a directory through `write_labels` and `write_info`
(datasets/tfrecord_writing.py); the dataset factory reads it through
`read_info` and `read_labels` (datasets/dataset_factory.py). `dataset_info.json`
is written last, so its presence says the conversion completed.
"""

import json
import os

import tensorflow.compat.v1 as tf

from slim_classifier.runtime.files import write_atomically

INFO_FILENAME = 'dataset_info.json'
LABELS_FILENAME = 'labels.txt'
REPORT_FILENAME = 'conversion_report.json'
FORMAT_VERSION = 1  # of dataset_info.json
_REQUIRED_INFO_KEYS = ('name', 'num_classes', 'splits', 'file_pattern')


def write_json(path: str, value: dict) -> None:
    """Writes `value` as indented JSON, atomically."""
    write_atomically(path, json.dumps(value, indent=2, ensure_ascii=False) + '\n')


def write_labels(dataset_dir: str, class_names: list[str]) -> None:
    """Writes labels.txt: one `<id>:<name>` line per class."""
    write_atomically(os.path.join(dataset_dir, LABELS_FILENAME),
                     ''.join('%d:%s\n' % item for item in enumerate(class_names)))


def write_info(dataset_dir: str, info: dict) -> None:
    """Writes dataset_info.json (the format version is added): the conversion is complete."""
    write_json(os.path.join(dataset_dir, INFO_FILENAME), {'format_version': FORMAT_VERSION,
                                                          **info})


def read_info(path: str) -> dict:
    """Reads and checks a dataset_info.json.

    Raises:
      ValueError: if the file is not JSON, has another format version, or
        lacks a required key.
    """
    with tf.io.gfile.GFile(path, 'r') as info_file:
        try:
            info = json.load(info_file)
        except json.JSONDecodeError as error:
            raise ValueError('%s is not valid JSON: %s' % (path, error)) from None
    if not isinstance(info, dict):
        raise ValueError('%s must hold a JSON object; got %s' % (path, type(info).__name__))
    version = info.get('format_version')
    if version != FORMAT_VERSION:
        raise ValueError('%s has format_version %r; expected %d' % (path, version, FORMAT_VERSION))
    missing = [key for key in _REQUIRED_INFO_KEYS if key not in info]
    if missing:
        raise ValueError('%s lacks %s' % (path, ', '.join(missing)))
    return info


def read_labels(dataset_dir: str, filename: str = LABELS_FILENAME) -> dict[int, str]:
    """Reads `<id>:<name>` lines (split at the first ':') into {id: name}.

    Raises:
      ValueError: for a line that is not `<id>:<name>` with an integer id.
    """
    path = os.path.join(dataset_dir, filename)
    labels_to_names = {}
    with tf.io.gfile.GFile(path, 'r') as labels_file:
        for line_number, line in enumerate(labels_file, start=1):
            line = line.rstrip('\r\n')
            if not line:
                continue
            label, separator, class_name = line.partition(':')
            if not separator or not label.strip().isdigit():
                raise ValueError("%s line %d must be '<id>:<name>'; got %r"
                                 % (path, line_number, line))
            labels_to_names[int(label)] = class_name
    return labels_to_names
