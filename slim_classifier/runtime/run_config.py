"""The saved configuration of a training run (`train_config.json` in its train_dir).

The trainer writes it when a run starts and keeps it when the run resumes.
Evaluation, export and classification read it when they are pointed at a
training directory, or at a checkpoint inside one, and take from it the options
that describe the trained net (`INHERITED`), so a user does not repeat them.
Options given explicitly win; one that contradicts the run (another net) is an
error, and so is, later, a checkpoint that does not fit.
"""

import json
import os
from importlib import metadata

from slim_classifier.runtime import pretrained
from slim_classifier.runtime.files import write_atomically
from slim_classifier.runtime.options import as_dict

RUN_CONFIG_FILENAME = 'train_config.json'
FORMAT_VERSION = 1

# Options of the run that evaluation, export and classification take as defaults,
# as {their option name: the training option it comes from}.
INHERITED = {
    'model_name': 'model_name',
    'preprocessing_name': 'preprocessing_name',
    'labels_offset': 'labels_offset',
    'use_grayscale': 'use_grayscale',
    'moving_average_decay': 'moving_average_decay',
    'dataset_name': 'dataset_name',
    'dataset_dir': 'dataset_dir',
    'eval_image_size': 'train_image_size',
    'image_size': 'train_image_size',
}
# Options whose explicit value must equal the run's: another one cannot use its weights.
MUST_AGREE = ('model_name',)


def versions() -> dict[str, str]:
    """The versions of this project and of the libraries a run depends on."""
    found = {}
    for distribution in ('slim-image-classifier', 'tensorflow', 'tf-slim', 'numpy'):
        try:
            found[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[distribution] = 'not installed'
    return found


def write_run_config(train_dir: str, config, num_classes: int) -> str | None:
    """Writes `train_dir/train_config.json` unless it exists (a resumed run keeps its own).

    Returns:
      The path written, or None when an earlier one was kept.
    """
    path = os.path.join(train_dir, RUN_CONFIG_FILENAME)
    if os.path.exists(path):
        return None
    options = {name: value for name, value in as_dict(config).items()
               if value is None or isinstance(value, (str, int, float, bool, list))}
    record = {'format_version': FORMAT_VERSION, 'options': options,
              'num_classes': num_classes, 'versions': versions()}
    write_atomically(path, json.dumps(record, indent=2, sort_keys=True) + '\n')
    return path


def find_run_dir(path: str | None) -> str | None:
    """The training directory that `path` is, or holds a checkpoint of; None if neither.

    `path` may be the train_dir, a checkpoint prefix inside it, or a directory
    below it that holds checkpoints (such as `best/`).
    """
    if not path:
        return None
    candidate = path if os.path.isdir(path) else os.path.dirname(path) or '.'
    for directory in (candidate, os.path.dirname(os.path.abspath(candidate))):
        if os.path.isfile(os.path.join(directory, RUN_CONFIG_FILENAME)):
            return directory
    return None


def read_run_config(run_dir: str) -> dict:
    """The saved record of the run in `run_dir` ({'options': ..., 'num_classes': ...}).

    Raises:
      ValueError: if the file is not a run configuration this version reads.
    """
    path = os.path.join(run_dir, RUN_CONFIG_FILENAME)
    try:
        with open(path) as f:
            record = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError('%s is not valid JSON (%s); it should hold the options of the run '
                         'that wrote it' % (path, error)) from None
    if not isinstance(record, dict) or not isinstance(record.get('options'), dict):
        raise ValueError('%s holds no "options" object; is it a run configuration?' % path)
    return record


def inherited_values(path: str | None, option_names, explicit: set[str]) -> dict:
    """The option values a command takes from the run that `path` belongs to.

    Args:
      path: the --checkpoint_path (or --model_path) given.
      option_names: the options the command has.
      explicit: the options given on the command line; they win.

    Returns:
      {option: value} for the inherited options that were not given; empty
      when `path` is not in a training directory.

    Raises:
      ValueError: if an explicit option must agree with the run and does not.
    """
    run_dir = find_run_dir(path)
    if run_dir is None:
        return {}
    saved = read_run_config(run_dir)['options']
    values = {}
    for name in option_names:
        source = INHERITED.get(name)
        if source is None or source not in saved:
            continue
        if name not in explicit:
            values[name] = saved[source]
    return values


def check_agreement(path: str | None, given: dict) -> None:
    """Raises ValueError if an option in `given` contradicts the run `path` belongs to."""
    run_dir = find_run_dir(path)
    if run_dir is None:
        return
    saved = read_run_config(run_dir)['options']
    for name in MUST_AGREE:
        if name in given and name in saved and given[name] != saved[name]:
            raise ValueError('--%s=%s cannot use %s: it was trained as --%s=%s (%s)'
                             % (name, given[name], path, name, saved[name],
                                os.path.join(run_dir, RUN_CONFIG_FILENAME)))


def changed_options(train_dir: str, config) -> list[str]:
    """'--name=new (was old)' for each option of `config` that differs from the saved run."""
    if not os.path.isfile(os.path.join(train_dir, RUN_CONFIG_FILENAME)):
        return []
    saved = read_run_config(train_dir)['options']
    current = as_dict(config)
    return ['--%s=%s (was %s)' % (name, current[name], saved[name])
            for name in saved if name in current and current[name] != saved[name]
            and name not in ('max_number_of_steps', 'train_dir')]


def checkpoint_defaults(path: str | None, given: dict, explicit: set[str]) -> dict:
    """The option values that --checkpoint_path (or --model_path) brings with it.

    A training directory (or a checkpoint in one) gives the options of its
    train_config.json; a published archive gives its net's (see `pretrained`).
    Explicit options win.

    Args:
      path: the checkpoint path given.
      given: the command's option values so far.
      explicit: the options given on the command line.

    Raises:
      ValueError: if an explicit option contradicts the training run.
    """
    check_agreement(path, {name: given[name] for name in explicit if name in given})
    values = inherited_values(path, given, explicit)
    # What the training run recorded wins over what the checkpoint suggests.
    values.update(pretrained.checkpoint_defaults(path, {**given, **values}, explicit | set(values)))
    return values
