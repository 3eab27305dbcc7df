"""One source per option: a config field carries its default, help, group, choices and check.

The configs of training, evaluation and export are dataclasses whose fields are
made with `option(...)`. The command-line flags are generated from those
fields (`slim_classifier.cli.flags`), the library validates a config from the
same fields (`validate`), and both name the option as a flag in their errors
(`--learning_rate must be > 0 and finite; got inf`). The option groups that
several commands share (data, model, input pipeline, performance) are written
once here and inherited.

This module imports no TensorFlow, so that `--help` and a misspelt flag answer
at once.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

PRECISIONS = ('float32', 'bf16', 'float16')


@dataclasses.dataclass(frozen=True)
class Check:
    """A condition on an option's value and how the error message states it."""
    accepts: Callable[[Any], bool]
    requirement: str  # completes '--name must ...'


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


POSITIVE = Check(lambda v: _finite(v) and v > 0, 'be > 0 and finite')
AT_LEAST_ZERO = Check(lambda v: _finite(v) and v >= 0, 'be >= 0 and finite')
FINITE = Check(_finite, 'be a finite number')
UNIT_OPEN = Check(lambda v: _finite(v) and 0 < v < 1, 'be in (0, 1)')
UNIT_RIGHT_OPEN = Check(lambda v: _finite(v) and 0 <= v < 1, 'be in [0, 1)')


def option(default: Any, help: str, group: str, *, choices: tuple[str, ...] | None = None,
           check: Check | None = None, required: bool = False, flag: bool = True) -> Any:
    """A dataclass field that is also a command-line option.

    Args:
      default: the default value (a list is copied for each instance).
      help: the flag's help text.
      group: the heading under which `--help` lists it ('data', 'model', ...).
      choices: the allowed values of a string option.
      check: a condition on a set value (None passes unless `required`).
      required: a value must be given (the default is None).
      flag: False for a field that a library caller sets but no flag does.
    """
    metadata = {'help': help, 'group': group, 'choices': choices, 'check': check,
                'required': required, 'flag': flag}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def options_of(config_class) -> list[dataclasses.Field]:
    """The fields of `config_class` that are options, in definition order."""
    return [f for f in dataclasses.fields(config_class) if 'group' in f.metadata]


def problem(field: dataclasses.Field, value: Any, required: bool = False) -> str | None:
    """What is wrong with `value` for option `field`, as one line; None if nothing."""
    name = '--' + field.name
    meta = field.metadata
    if value is None or value == []:
        return '%s is required: %s' % (name, meta['help'][0].lower() + meta['help'][1:].rstrip(
            '.')) if required or meta['required'] else None
    if meta['choices'] is not None and value not in meta['choices']:
        return '%s must be one of %s; got %r' % (name, ', '.join(meta['choices']), value)
    if meta['check'] is not None and not meta['check'].accepts(value):
        return '%s must %s; got %r' % (name, meta['check'].requirement, value)
    return None


def validate(config) -> None:
    """Raises ValueError naming the first option of `config` whose value is not allowed.

    A config class may list options it requires although they are optional
    elsewhere in `REQUIRED` (a class attribute).
    """
    required = getattr(type(config), 'REQUIRED', ())
    for field in options_of(type(config)):
        message = problem(field, getattr(config, field.name), field.name in required)
        if message:
            raise ValueError(message)


def as_dict(config) -> dict:
    """The options of `config` as plain JSON values, in definition order."""
    return {f.name: getattr(config, f.name) for f in options_of(type(config))}


@dataclasses.dataclass(kw_only=True)
class DatasetOptions:
    """Which dataset, and how its labels map to the net's outputs (every command)."""
    dataset_name: str = option('imagenet', 'The name of the dataset (built in, or of a '
                               'converted directory); its classes name the outputs.', 'data')
    dataset_dir: str | None = option(None, 'The directory holding the dataset files.', 'data')
    labels_offset: int = option(0, 'Subtracted from every label (output i is dataset label i + '
                                'labels_offset): 1 for 1000-class nets on 1001-class ImageNet '
                                'records (the background class).', 'data', check=AT_LEAST_ZERO)


@dataclasses.dataclass(kw_only=True)
class DataOptions(DatasetOptions):
    """Which data a command reads and how (train, eval)."""
    REQUIRED = ('dataset_dir',)
    dataset_split_name: str = option('train', 'The name of the split to use.', 'data')
    batch_size: int = option(32, 'The number of images in each batch.', 'data', check=POSITIVE)


@dataclasses.dataclass(kw_only=True)
class ModelOptions:
    """Which net, and how its input is prepared (train, eval, export, classify)."""
    model_name: str = option('inception_v3', 'The name of the network to use.', 'model')
    preprocessing_name: str | None = option(None, "The preprocessing to use; by default the "
                                            "net's own.", 'model')
    use_grayscale: bool = option(False, 'Convert images to grayscale before the net.', 'model')
    moving_average_decay: float | None = option(
        None, 'Decay of the moving averages of the weights; unset keeps none.', 'model',
        check=UNIT_OPEN)


@dataclasses.dataclass(kw_only=True)
class ReaderOptions:
    """The input pipeline's parallelism (train, eval)."""
    num_readers: int = option(4, 'Shards read in parallel.', 'input pipeline', check=POSITIVE)
    num_preprocessing_threads: int = option(4, 'Images decoded and preprocessed in parallel.',
                                            'input pipeline', check=POSITIVE)


@dataclasses.dataclass(kw_only=True)
class PerformanceOptions:
    """Compute precision and JIT compilation (train, eval)."""
    precision: str = option(
        'float32', 'Compute precision: bf16 uses bfloat16 math (oneDNN automatic mixed '
        'precision on CPUs); float16 uses half-precision math with dynamic loss scaling on '
        'GPUs (emulated, slowly, without one); variables and checkpoints stay float32.',
        'performance', choices=PRECISIONS)
    xla: bool = option(False, 'Compile the graph with XLA (JIT).', 'performance')
