"""Command-line flags generated from the config dataclasses, and the grouped `--help`.

A command calls `define_flags(TrainConfig, ...)` at import: every option
field (see `slim_classifier.runtime.options`) becomes an absl flag with the
field's name, default and help. After parsing, `config_values` reads them back
by field, and the config's own validation names any bad value as a flag.
Nothing here imports TensorFlow.
"""

import dataclasses
import textwrap
import types
from typing import Any

from absl import flags

from slim_classifier.runtime.options import options_of

FLAGS = flags.FLAGS
GROUP_ORDER = ('data', 'model', 'input pipeline', 'augmentation and class balance', 'optimizer',
               'learning rate', 'fine-tuning', 'checkpoints and logs', 'evaluation while training',
               'output', 'distribution', 'performance')


def _flag_type(field: dataclasses.Field):
    kind = field.type
    if isinstance(kind, types.UnionType):
        kind = next(arg for arg in kind.__args__ if arg is not type(None))
    return getattr(kind, '__origin__', kind)


def _define(field: dataclasses.Field, default: Any) -> None:
    meta = field.metadata
    kind = _flag_type(field)
    if meta['choices'] is not None:
        flags.DEFINE_enum(field.name, default, meta['choices'], meta['help'])
    elif kind is bool:
        flags.DEFINE_bool(field.name, default, meta['help'])
    elif kind is int:
        flags.DEFINE_integer(field.name, default, meta['help'])
    elif kind is float:
        flags.DEFINE_float(field.name, default, meta['help'])
    elif kind is list:
        flags.DEFINE_list(field.name, default, meta['help'])
    else:
        flags.DEFINE_string(field.name, default, meta['help'])


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def flag_fields(*config_classes) -> list[dataclasses.Field]:
    """The option fields of the classes that are flags, first definition of a name winning."""
    seen, fields = set(), []
    for config_class in config_classes:
        for field in options_of(config_class):
            if field.metadata['flag'] and field.name not in seen:
                seen.add(field.name)
                fields.append(field)
    return fields


def define_flags(*config_classes) -> None:
    """Defines one absl flag per option field of `config_classes` (once per name)."""
    for field in flag_fields(*config_classes):
        if field.name not in FLAGS:
            _define(field, _default(field))


def config_values(config_class, flag_values=FLAGS) -> dict[str, Any]:
    """{field: value} of the option fields of `config_class` that are flags."""
    return {f.name: flag_values[f.name].value for f in options_of(config_class)
            if f.metadata['flag'] and f.name in flag_values}


def explicit_flags(flag_values=FLAGS) -> set[str]:
    """The names of the flags given on the command line."""
    return {name for name in flag_values if flag_values[name].present}


def _describe(field: dataclasses.Field) -> str:
    meta = field.metadata
    default = _default(field)
    text = meta['help']
    if meta['choices'] is not None:
        text += ' One of: %s.' % ', '.join(meta['choices'])
    if default not in (None, '', []):
        text += ' Default: %s.' % (','.join(default) if isinstance(default, list) else default)
    return text


def format_help(summary: str, *config_classes, extra_choices: dict[str, list[str]] | None = None
                ) -> str:
    """The command's own flags, grouped by option group, with defaults and allowed values.

    Args:
      summary: what the command does and how it is called, printed first.
      *config_classes: the configs whose option fields are the command's flags.
      extra_choices: allowed values known only at run time (e.g. registered
        net names), by flag name.
    """
    groups: dict[str, list[str]] = {}
    for field in flag_fields(*config_classes):
        text = _describe(field)
        if extra_choices and field.name in extra_choices:
            text += ' Registered: %s.' % ', '.join(extra_choices[field.name])
        lines = textwrap.wrap(text, 72, initial_indent='      ', subsequent_indent='      ')
        groups.setdefault(field.metadata['group'], []).append(
            '  --%s\n%s' % (field.name, '\n'.join(lines)))
    parts = [summary.strip(), '']
    order = {group: index for index, group in enumerate(GROUP_ORDER)}
    for group, entries in sorted(groups.items(), key=lambda item: order.get(item[0], 99)):
        parts.append('%s:' % (group[0].upper() + group[1:]))
        parts.extend(entries)
        parts.append('')
    parts.append('Logging: -v / --verbosity=1 shows TensorFlow\'s own messages. '
                 '--helpfull lists every flag, absl\'s included.')
    return '\n'.join(parts)
