"""The rows predict_image_classifier.py writes, and the file that holds them.

Columns of a `.csv` (written by the csv module, numbers as `%.9g`, exact for
float32): `[record,] path, [true_label, true_name,] error`, then `class_1,
name_1, probability_1, ...` or `feature_0 ... feature_<D-1>`. A `.jsonl` has
one JSON object per line with the same keys, `top_k` (a list of {class_id,
name, probability}) or `features` (a list) in place of the numbered columns.

A multi-label net's rows have `[record,] path, [true_labels, true_names,]
error, labels, names`: the true labels of a record and the labels predicted
(at or above their thresholds, likeliest first), as ids and names, each list
joined by ';' in a `.csv`; then every label's probability
(`probability_of_0 ... probability_of_<L-1>`, `probabilities` in a `.jsonl`),
or the numbered `top_k` columns when --top_k is given.

The file is written under a hidden temporary name in the output's directory,
created exclusively, and renamed to the output when every row is written. A
directory at the output's name is never replaced, nor a file that is not an
output of this command (recognised by its header or first row).
"""

import csv
import dataclasses
import json
import os
import tempfile
from typing import TextIO

from slim_classifier.runtime.files import check_replaceable, fsync_directory
from slim_classifier.serving import classifier
from slim_classifier.serving.image_sources import ImageItem

FORMATS = ('.csv', '.jsonl')
# Joins the ids or names of a multi-label row's labels in a .csv cell.
LABEL_SEPARATOR = ';'
_HEADER_STARTS = ('path,error,', 'record,path,true_label,true_name,error,',
                  'record,path,true_labels,true_names,error,')


@dataclasses.dataclass(frozen=True)
class RowLayout:
    """What each row holds.

    Attributes:
      from_records: rows carry the record index and the true label.
      output_type: 'predictions' or 'features'.
      top_k: classes per row (predictions); None for every label's
        probability (a multi-label net).
      output_size: the class count or the feature dimension.
      class_names: names by class id, or None (classes are named by id).
      thresholds: a multi-label net's threshold of each label; None for a
        single-label net.
    """
    from_records: bool
    output_type: str
    top_k: int | None
    output_size: int
    class_names: list[str] | None
    thresholds: list[float] | None = None

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None

    def leading_columns(self) -> list[str]:
        if self.multi_label:
            truth = (['record', 'path', 'true_labels', 'true_names'] if self.from_records
                     else ['path'])
            return truth + ['error', 'labels', 'names']
        if self.from_records:
            return ['record', 'path', 'true_label', 'true_name', 'error']
        return ['path', 'error']

    def output_columns(self) -> list[str]:
        if self.output_type == 'features':
            return ['feature_%d' % index for index in range(self.output_size)]
        if self.top_k is None:
            return ['probability_of_%d' % index for index in range(self.output_size)]
        return ['%s_%d' % (name, rank) for rank in range(1, self.top_k + 1)
                for name in ('class', 'name', 'probability')]

    def true_name(self, label: int) -> str:
        if self.class_names and 0 <= label < len(self.class_names):
            return self.class_names[label]
        return str(label)

    def row(self, item: ImageItem, outcome: classifier.Outcome) -> dict:
        """The row of one image as JSON values: the leading columns, then `top_k`, `features`
        or (multi-label) `probabilities`."""
        row = {'record': item.record, 'path': item.path} if self.from_records else {
            'path': item.path}
        if self.from_records and self.multi_label:
            true_labels = item.labels if item.labels is not None else [item.label]
            row.update(true_labels=true_labels,
                       true_names=[self.true_name(label) for label in true_labels])
        elif self.from_records:
            row.update(true_label=item.label, true_name=self.true_name(item.label))
        row['error'] = outcome.error
        if self.multi_label:
            row.update(labels=None, names=None)
        if outcome.outputs is None:
            return row
        if self.multi_label:
            predicted = classifier.labels_above(outcome.outputs, self.class_names,
                                                self.thresholds)
            row.update(labels=[label.class_id for label in predicted],
                       names=[label.name for label in predicted])
        if self.output_type == 'features':
            row['features'] = outcome.outputs.tolist()
        elif self.top_k is None:
            row['probabilities'] = outcome.outputs.tolist()
        else:
            # Built field by field: dataclasses.asdict deep-copies every value, and took more
            # than half the time of writing a row.
            row['top_k'] = [{'class_id': prediction.class_id, 'name': prediction.name,
                             'probability': prediction.probability}
                            for prediction in classifier.top_k(outcome.outputs,
                                                               self.class_names, self.top_k)]
        return row


class CsvRows:
    """Rows as CSV: the leading columns, then the numbered outputs."""

    def __init__(self, stream: TextIO, layout: RowLayout):
        self._writer = csv.writer(stream, lineterminator='\n')
        self._layout = layout
        self._writer.writerow(layout.leading_columns() + layout.output_columns())

    def write(self, item: ImageItem, outcome: classifier.Outcome) -> None:
        row = self._layout.row(item, outcome)
        values = [_cell(row[column]) for column in self._layout.leading_columns()]
        for numbers in ('features', 'probabilities'):
            values.extend('%.9g' % value for value in row.get(numbers, ()))
        for prediction in row.get('top_k', ()):
            values.extend([prediction['class_id'], prediction['name'],
                           '%.9g' % prediction['probability']])
        self._writer.writerow(values)


def _cell(value) -> str | int:
    """A leading column's CSV cell: empty for None, a list's items joined by ';'."""
    if value is None:
        return ''
    if isinstance(value, list):
        return LABEL_SEPARATOR.join(str(item) for item in value)
    return value


class JsonlRows:
    """Rows as JSON lines, one object per image."""

    def __init__(self, stream: TextIO, layout: RowLayout):
        self._stream = stream
        self._layout = layout

    def write(self, item: ImageItem, outcome: classifier.Outcome) -> None:
        self._stream.write(json.dumps(self._layout.row(item, outcome), ensure_ascii=False))
        self._stream.write('\n')


def output_format(path: str) -> str:
    """'.csv' or '.jsonl', by the output's extension.

    Raises:
      ValueError: for another extension.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ValueError("--output must end in %s; got '%s'" % (' or '.join(FORMATS), path))
    return extension


def is_prediction_file(path: str) -> bool:
    """Whether `path` is a file this module wrote: by its CSV header or first JSON row."""
    if not os.path.isfile(path):
        return False
    with open(path, encoding='utf-8', errors='replace') as existing:
        first_line = existing.readline(1 << 16).rstrip('\n')
    if first_line.startswith(_HEADER_STARTS):
        return True
    try:
        row = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(row, dict) and {'path', 'error'} <= set(row)


class AtomicOutput:
    """A text file written under a hidden temporary name and renamed into place on success.

    `with AtomicOutput(path) as stream:` writes into a temporary file beside
    `path`, created exclusively; leaving the block normally flushes, syncs and
    renames it to `path`, leaving it by an exception removes it. A process
    killed in the block leaves the temporary, never a file at `path`.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._temporary: str | None = None
        self._stream: TextIO | None = None

    def __enter__(self) -> TextIO:
        directory, name = os.path.split(self.path)
        os.makedirs(directory, exist_ok=True)
        descriptor, self._temporary = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp',
                                                       dir=directory)
        os.fchmod(descriptor, 0o644)
        self._stream = os.fdopen(descriptor, 'w', encoding='utf-8', newline='')
        return self._stream

    def __exit__(self, error_type, error, traceback) -> None:
        try:
            if error_type is None:
                self._stream.flush()
                os.fsync(self._stream.fileno())
            self._stream.close()
            if error_type is None:
                os.replace(self._temporary, self.path)
                fsync_directory(os.path.dirname(self.path))
        finally:
            if os.path.lexists(self._temporary):
                os.remove(self._temporary)


def check_output(path: str) -> str:
    """The output's format, once it is known that writing `path` replaces nothing of the user's.

    Raises:
      ValueError: for an extension other than .csv and .jsonl.
      IsADirectoryError: if `path` is a directory.
      FileExistsError: if `path` is a file this command did not write.
    """
    extension = output_format(path)
    if os.path.isdir(path):
        raise IsADirectoryError('--output %s is a directory; give a file path ending in %s'
                                % (path, ' or '.join(FORMATS)))
    check_replaceable(path, is_prediction_file, 'a file of predict_image_classifier.py')
    return extension
