"""The contract of a converted dataset directory: file names, format version, reading and writing.

The converters write a directory through `write_labels` and `write_info`
(datasets/tfrecord_writing.py); the dataset factory reads it through
`read_info` and `read_labels` (datasets/dataset_factory.py). `dataset_info.json`
is written last, so its presence says the conversion completed; the shards
of each split are named `...<index>-of-<count>...`, so a missing one shows.
"""

import json
import os
import re
import shlex

import tensorflow.compat.v1 as tf

from slim_classifier.errors import UserError
from slim_classifier.runtime.files import write_atomically

INFO_FILENAME = 'dataset_info.json'
LABELS_FILENAME = 'labels.txt'
REPORT_FILENAME = 'conversion_report.json'
FORMAT_VERSION = 1  # of dataset_info.json
# The required keys of dataset_info.json and their JSON types.
_INFO_KEY_TYPES = {'name': (str, 'string'), 'num_classes': (int, 'integer'),
                   'splits': (dict, 'object'), 'file_pattern': (str, 'string')}
# `<index>-of-<count>` in a shard's file name.
_SHARD_NUMBER = re.compile(r'(\d+)-of-(\d+)')


class IncompleteDatasetError(UserError, FileNotFoundError):
    """A dataset directory lacks files its conversion writes; the message says how to finish it."""


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
      ValueError: if the file is not JSON, has another format version, lacks
        a required key or holds one of another type, has a split size that is
        not a count, or a file_pattern that could match files outside its
        directory.
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
    missing = [key for key in _INFO_KEY_TYPES if key not in info]
    if missing:
        raise ValueError('%s lacks %s' % (path, ', '.join(missing)))
    for key, (expected_type, json_type) in _INFO_KEY_TYPES.items():
        # JSON's true and false are Python ints too.
        if not isinstance(info[key], expected_type) or isinstance(info[key], bool):
            raise ValueError('%s field %s must be a JSON %s; got %r'
                             % (path, key, json_type, info[key]))
    if not all(_is_count(size) for size in info['splits'].values()):
        raise ValueError('%s field splits must map split names to example counts; got %r'
                         % (path, info['splits']))
    _check_file_pattern(path, info['file_pattern'])
    _check_label_statistics(path, info)
    return info


def _check_label_statistics(path: str, info: dict) -> None:
    """Refuses a multi_label that is not a boolean, or label_counts that are not counts."""
    if not isinstance(info.get('multi_label', False), bool):
        raise ValueError('%s field multi_label must be true or false; got %r'
                         % (path, info['multi_label']))
    label_counts = info.get('label_counts', {})
    if not (isinstance(label_counts, dict) and all(
            isinstance(counts, dict) and all(_is_count(count) for count in counts.values())
            for counts in label_counts.values())):
        raise ValueError('%s field label_counts must map split names to {label name: count}; '
                         'got %r' % (path, label_counts))


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_file_pattern(path: str, pattern: str) -> None:
    """Refuses a file_pattern that could match files outside the dataset directory."""
    parts = re.split(r'[\\/]', pattern)
    if not pattern or os.path.isabs(pattern) or not parts[0] or '..' in parts:
        raise ValueError("%s field file_pattern must be a relative path inside the dataset "
                         "directory, without '..'; got %r" % (path, pattern))
    if '%' in pattern.replace('%s', ''):
        raise ValueError("%s field file_pattern may hold '%%s' (the split name) and no other "
                         "'%%'; got %r" % (path, pattern))


def shard_set_problem(files: list[str]) -> str | None:
    """What is wrong with the files of one split as a set of shards, or None.

    Files named `...<index>-of-<count>...` must be shards 0 to count - 1 of
    one count, and the only files; a split of unnumbered files (the original
    `mnist_train.tfrecord`) is taken as it is.

    Args:
      files: the files a split's file pattern matches.

    Returns:
      e.g. '4 of its 5 shards are missing (flowers_train_00001-of-00005.tfrecord
      and 3 more)', or None if the shards are complete.
    """
    numbers = {}
    for name in map(os.path.basename, files):
        matches = list(_SHARD_NUMBER.finditer(name))
        if matches:
            # The last: a dataset's name may hold '-of-' too.
            numbers[name] = matches[-1]
    if not numbers:
        return None
    counts = sorted({match[2] for match in numbers.values()})
    if len(counts) > 1:
        return 'its files belong to %d sets of shards (-of-%s)' % (len(counts),
                                                                   ', -of-'.join(counts))
    count = int(counts[0])
    missing = sorted(set(range(count)) - {int(match[1]) for match in numbers.values()})
    if missing:
        name, match = next(iter(numbers.items()))
        first = '%s%0*d-of-%s%s' % (name[:match.start()], len(match[1]), missing[0], match[2],
                                    name[match.end():])
        more = ' and %d more' % (len(missing) - 1) if len(missing) > 1 else ''
        return '%d of its %d shards are missing (%s%s)' % (len(missing), count, first, more)
    if len(files) != count:
        return '%d files match, but the shard names say %d' % (len(files), count)
    return None


def conversion_command(name: str, dataset_dir: str, image_dir: str | None = None,
                       labels_csv: str | None = None) -> str:
    """The download_and_convert_data.py command line that (re)makes a dataset directory."""
    image_flag = ' --image_dir=%s' % shlex.quote(image_dir) if image_dir else ''
    if labels_csv:
        image_flag += ' --labels_csv=%s' % shlex.quote(labels_csv)
    return 'python download_and_convert_data.py --dataset_name=%s%s --dataset_dir=%s' % (
        shlex.quote(name), image_flag, shlex.quote(dataset_dir))


def read_report(dataset_dir: str) -> dict | None:
    """The conversion_report.json of `dataset_dir`: None if there is none, {} if it is unreadable.

    Written at the end of every conversion, failed ones too, just before
    dataset_info.json: without dataset_info.json it marks a failed conversion.
    """
    path = os.path.join(dataset_dir, REPORT_FILENAME)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path, 'r') as report_file:
            report = json.load(report_file)
    except (OSError, ValueError, tf.errors.OpError):
        return {}
    return report if isinstance(report, dict) else {}


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
