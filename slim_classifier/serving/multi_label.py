"""Whether a net is multi-label, and the per-label thresholds that turn its outputs into labels.

A multi-label net gives one sigmoid probability per label (its outputs do not
sum to 1); an image has every label whose probability is at or above that
label's threshold. A net is multi-label when its training run recorded
`multi_label`, or its dataset's dataset_info.json says `"multi_label": true`.

The thresholds are, in order of precedence: an explicit `--threshold` (the
same for every label); those of an export's metadata; the `thresholds.json`
that `eval_image_classifier.py --tune_thresholds` writes beside the checkpoint
(`{"labels": [names], "thresholds": [floats], ...}`); else 0.5 for every
label.
"""

import json
import logging
import math
import os

from datasets import dataset_factory, dataset_format
from slim_classifier.runtime import run_config

THRESHOLDS_FILENAME = 'thresholds.json'
DEFAULT_THRESHOLD = 0.5
log = logging.getLogger('multi_label')


def is_multi_label(checkpoint_path: str | None, dataset_name: str | None,
                   dataset_dir: str | None) -> bool:
    """Whether the run that `checkpoint_path` belongs to is multi-label (it says so, or its
    dataset is), or the dataset `dataset_name` in `dataset_dir` is.

    Raises:
      ValueError: for a run configuration or dataset_info.json that cannot be read.
    """
    datasets = [(dataset_name, dataset_dir)]
    options = _run_options(checkpoint_path)
    if options is not None:
        if options.get('multi_label'):
            return True
        datasets.append((options.get('dataset_name'), options.get('dataset_dir')))
    return any(_is_multi_label_dataset(*dataset) for dataset in datasets)


def trained_multi_label(checkpoint_path: str | None) -> bool:
    """Whether the training run that `checkpoint_path` belongs to (if any) had --multi_label.

    Raises:
      ValueError: for a train_config.json that cannot be read.
    """
    options = _run_options(checkpoint_path)
    return bool(options and options.get('multi_label'))


def _run_options(checkpoint_path: str | None) -> dict | None:
    """The recorded options of the run `checkpoint_path` belongs to, or None outside a run."""
    run_dir = run_config.find_run_dir(checkpoint_path)
    return None if run_dir is None else run_config.read_run_config(run_dir)['options']


def _is_multi_label_dataset(name: str | None, directory: str | None) -> bool:
    """What the dataset_info.json in `directory` says, else the built-in dataset `name`."""
    info_path = os.path.join(directory, dataset_format.INFO_FILENAME) if directory else None
    if info_path and os.path.isfile(info_path):
        return dataset_format.read_info(info_path).get('multi_label') is True
    built_in = dataset_factory.DATASETS.get(name)
    return bool(built_in and built_in.multi_label)


def thresholds_file(checkpoint_path: str | None) -> str | None:
    """The thresholds.json beside the checkpoint (or in its training directory), or None."""
    if not checkpoint_path:
        return None
    directory = checkpoint_path if os.path.isdir(checkpoint_path) else (
        os.path.dirname(checkpoint_path) or '.')
    for candidate in (directory, run_config.find_run_dir(checkpoint_path)):
        if candidate and os.path.isfile(os.path.join(candidate, THRESHOLDS_FILENAME)):
            return os.path.join(candidate, THRESHOLDS_FILENAME)
    return None


def _read_record(path: str) -> dict:
    try:
        with open(path, encoding='utf-8') as thresholds:
            record = json.load(thresholds)
    except json.JSONDecodeError as error:
        raise ValueError('%s is not valid JSON (%s); it should hold the thresholds of '
                         'eval_image_classifier.py --tune_thresholds' % (path, error)) from None
    return record if isinstance(record, dict) else {}


def read_thresholds(path: str, class_names: list[str]) -> list[float]:
    """The per-label thresholds of a thresholds.json, checked against the net's labels.

    Raises:
      ValueError: for a file that is no thresholds.json, or one made for other labels.
    """
    record = _read_record(path)
    values = record.get('thresholds')
    if not isinstance(values, list) or not all(_is_probability(value) for value in values):
        raise ValueError('%s holds no "thresholds" list of numbers in [0, 1]; is it the output '
                         'of --tune_thresholds?' % path)
    if len(values) != len(class_names) or record.get('labels', class_names) != class_names:
        raise ValueError('%s has thresholds for the labels %s but the net has the labels %s; '
                         'tune them again for this net' % (path, record.get('labels'),
                                                           class_names))
    return [float(value) for value in values]


def _is_probability(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value <= 1)


def label_thresholds(threshold: float | None, class_names: list[str],
                     checkpoint_path: str | None = None) -> tuple[list[float], str | None]:
    """The threshold of each label, and the thresholds.json they come from (None if none).

    Args:
      threshold: an explicit threshold for every label, or None.
      class_names: the net's labels, by output.
      checkpoint_path: the checkpoint whose thresholds.json is read when
        `threshold` is None.

    Raises:
      ValueError: for a thresholds.json that does not fit (see `read_thresholds`).
    """
    if threshold is not None:
        return [float(threshold)] * len(class_names), None
    path = thresholds_file(checkpoint_path)
    if path is None:
        return [DEFAULT_THRESHOLD] * len(class_names), None
    thresholds = read_thresholds(path, class_names)
    tuned_on = _read_record(path).get('checkpoint')
    if (isinstance(tuned_on, str) and not os.path.isdir(checkpoint_path)
            and os.path.basename(tuned_on) != os.path.basename(checkpoint_path)):
        log.warning('%s was tuned on %s, not on %s', path, tuned_on, checkpoint_path)
    return thresholds, path
