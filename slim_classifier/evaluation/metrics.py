"""Classification metrics from a confusion matrix, in numpy.

The evaluator accumulates a confusion matrix (rows: true class, columns:
predicted class) and the number of top-k hits over one pass, then calls
`summarize`. Everything per class is derived from the matrix, so the figures
always agree with one another.
"""

import numpy as np


def confusion_counts(labels: np.ndarray, predictions: np.ndarray,
                     num_classes: int) -> np.ndarray:
    """The confusion matrix [num_classes, num_classes] of one batch.

    Args:
      labels: true class ids [batch], in [0, num_classes).
      predictions: predicted class ids [batch], in [0, num_classes).
      num_classes: the number of classes.

    Returns:
      int64 counts: entry [i, j] is the number of examples of class i
      predicted as class j.

    Raises:
      ValueError: if a label or a prediction is outside [0, num_classes).
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    for name, values in (('label', labels), ('prediction', predictions)):
        outside = values[(values < 0) | (values >= num_classes)]
        if outside.size:
            raise ValueError('%s %d is outside [0, %d)' % (name, outside[0], num_classes))
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def ratio(numerators: np.ndarray, denominators: np.ndarray) -> np.ndarray:
    """numerators / denominators, 0 where a denominator is 0 (nothing to be right about).

    Args:
      numerators: counts or figures.
      denominators: counts, broadcastable to `numerators`.

    Returns:
      float64 quotients, shaped like `numerators`.
    """
    numerators = numerators.astype(np.float64)
    return np.divide(numerators, denominators, out=np.zeros_like(numerators),
                     where=denominators > 0)


def check_confusion_matrix(confusion: np.ndarray, class_names: list[str]) -> int:
    """Checks that a confusion matrix is square and that its classes are all named.

    Args:
      confusion: [num_classes, num_classes] counts, rows true, columns predicted.
      class_names: names by class id.

    Returns:
      The number of classes.

    Raises:
      ValueError: if the matrix is not square or the names do not match it.
    """
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError('confusion must be a square matrix; got shape %s'
                         % (confusion.shape,))
    num_classes = confusion.shape[0]
    if len(class_names) != num_classes:
        raise ValueError('class_names must name the %d classes of the matrix; got %d names'
                         % (num_classes, len(class_names)))
    return num_classes


def summarize(confusion: np.ndarray, top_k_hits: int, top_k: int,
              class_names: list[str]) -> dict:
    """Accuracy, top-k recall and per-class figures of a confusion matrix.

    Args:
      confusion: [num_classes, num_classes] counts, rows true, columns predicted.
      top_k_hits: examples whose true class was among the `top_k` highest logits.
      top_k: the k of `top_k_hits`.
      class_names: names by class id.

    Returns:
      A JSON-ready dict: `num_examples`, `accuracy`, `recall_at_5` (the top-k
      recall; `top_k` says which k), `top_k`, `mean_per_class_accuracy` (the
      recall averaged over the classes that have examples), `per_class` (one
      entry per class: id, name, precision, recall, f1, support; a figure
      whose denominator is 0 is 0) and `confusion_matrix` (nested lists).

    Raises:
      ValueError: if the matrix is not square or the names do not match it.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    num_classes = check_confusion_matrix(confusion, class_names)
    correct = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    num_examples = int(support.sum())
    precision = ratio(correct, predicted)
    recall = ratio(correct, support)
    f1 = ratio(2.0 * precision * recall, precision + recall)
    present = support > 0
    return {
        'num_examples': num_examples,
        'accuracy': float(ratio(correct.sum(), np.int64(num_examples))),
        'recall_at_5': float(ratio(np.int64(top_k_hits), np.int64(num_examples))),
        'top_k': top_k,
        'mean_per_class_accuracy': float(recall[present].mean()) if present.any() else 0.0,
        'per_class': [
            {'id': index, 'name': class_names[index], 'precision': float(precision[index]),
             'recall': float(recall[index]), 'f1': float(f1[index]),
             'support': int(support[index])}
            for index in range(num_classes)],
        'confusion_matrix': confusion.tolist(),
    }


PER_CLASS_ROWS = 20  # classes listed by `format_table`; more are left to metrics.json


def format_table(results: dict) -> str:
    """A short text table of `summarize`'s results, for the terminal.

    The per-class rows are listed up to `PER_CLASS_ROWS` classes.
    """
    recall_note = ''
    if results['top_k'] != 5:
        recall_note = '  (top %d: the net has %d classes)' % (results['top_k'],
                                                             len(results['per_class']))
    lines = ['%-24s %d' % ('num_examples', results['num_examples']),
             '%-24s %.4f' % ('accuracy', results['accuracy']),
             '%-24s %.4f%s' % ('recall_at_5', results['recall_at_5'], recall_note),
             '%-24s %.4f' % ('mean_per_class_accuracy', results['mean_per_class_accuracy'])]
    per_class = results['per_class']
    if len(per_class) > PER_CLASS_ROWS:
        lines.append('per-class figures of %d classes: see metrics.json' % len(per_class))
        return '\n'.join(lines)
    width = max(5, *(len(row['name']) for row in per_class))
    lines.append('%*s  precision  recall      f1  support' % (width, 'class'))
    lines.extend('%*s  %9.4f  %6.4f  %6.4f  %7d' % (width, row['name'], row['precision'],
                                                   row['recall'], row['f1'], row['support'])
                 for row in per_class)
    return '\n'.join(lines)
