"""Multi-label classification metrics, in numpy, exact over a whole split.

A multi-label net scores each label on its own: its probabilities are
sigmoid(logits) [examples, labels], and a label is predicted where its
probability is >= the label's threshold. `multilabel_summary` takes the
multi-hot truth and those probabilities and returns the figures of
metrics.json: per label the 2x2 confusion counts, precision, recall, F1,
support, average precision and the threshold that maximises F1; overall
mAP, micro and macro F1, subset accuracy, Hamming loss, label-ranking
average precision and the binary log loss. The threshold-free figures come
from `curves` and `metrics`, as the single-label ones do; a figure that is
undefined (average precision of a label that no example has) is None with
the reason, never 0 or NaN.

thresholds.json, the per-label thresholds `eval_image_classifier.py
--tune_thresholds` writes into --eval_dir and, when the checkpoint belongs to
a training directory, into the checkpoint's own directory (beside
model.ckpt-N: the run directory, or its best/), where classify_image.py,
predict_image_classifier.py and export_inference_graph.py read them. One
JSON object (`thresholds_record`):

    {"labels": ["0", "1", ...],         names of the net's outputs, in output order
     "thresholds": [0.42, 0.57, ...],   a label is predicted where its probability >= this
     "f1": [0.93, 0.88, ...],           the F1 each threshold reaches on the split
     "split": "validation",             the split they were tuned on
     "checkpoint": "/runs/a/model.ckpt-3000"}   the checkpoint evaluated

A label that no example of the split has keeps the threshold evaluated with
(--threshold), and its F1 is 0 (at any threshold).
"""

import numpy as np

from slim_classifier.evaluation import curves, metrics

NO_POSITIVES = 'no example of the split has the label'
PER_LABEL_ROWS = metrics.PER_CLASS_ROWS  # labels listed by `format_table`


def checked_inputs(truth: np.ndarray, probabilities: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(truth as bools, probabilities as float64), both [examples, labels].

    Raises:
      ValueError: for arrays of other shapes, or probabilities outside [0, 1].
    """
    truth = np.asarray(truth)
    probabilities = np.asarray(probabilities, np.float64)
    if truth.ndim != 2 or probabilities.shape != truth.shape:
        raise ValueError('truth and probabilities must both be [examples, labels]; got shapes '
                         '%s and %s' % (truth.shape, probabilities.shape))
    if probabilities.size and not (probabilities.min() >= 0 and probabilities.max() <= 1):
        raise ValueError('probabilities must be in [0, 1] (sigmoid outputs); got values in '
                         '[%g, %g]' % (probabilities.min(), probabilities.max()))
    return truth != 0, probabilities


def label_thresholds(threshold: float | list[float] | np.ndarray, num_labels: int
                     ) -> np.ndarray:
    """The threshold of each label [num_labels]: `threshold` is one for all, or one per label.

    Raises:
      ValueError: for a count that is not the labels', or a threshold outside [0, 1].
    """
    thresholds = np.asarray(threshold, np.float64)
    if thresholds.ndim == 0:
        thresholds = np.full(num_labels, float(thresholds))
    if thresholds.shape != (num_labels,):
        raise ValueError('threshold must be one number or one per label (%d); got %d'
                         % (num_labels, thresholds.size))
    if not np.all((thresholds >= 0) & (thresholds <= 1)):
        raise ValueError('thresholds must be in [0, 1]; got %s' % thresholds.tolist())
    return thresholds


def label_confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The 2x2 confusion counts of each label, [labels, 2, 2] int64: [[tn, fp], [fn, tp]]
    (scikit-learn's multilabel_confusion_matrix), of bools [examples, labels]."""
    true_positives = np.sum(truth & predicted, axis=0)
    false_positives = np.sum(~truth & predicted, axis=0)
    false_negatives = np.sum(truth & ~predicted, axis=0)
    true_negatives = len(truth) - true_positives - false_positives - false_negatives
    return np.stack([np.stack([true_negatives, false_positives], axis=-1),
                     np.stack([false_negatives, true_positives], axis=-1)],
                    axis=1).astype(np.int64)


def label_ranking_average_precision(truth: np.ndarray, probabilities: np.ndarray
                                    ) -> float | None:
    """For each example, the mean over its labels j of (its labels scored >= j) / (all labels
    scored >= j), averaged over the examples; an example with no label or every label counts
    1 (as scikit-learn). None without examples. Takes [examples, labels^2] steps."""
    if not len(truth):
        return None
    num_labels = truth.shape[1]
    precision_sum = np.zeros(len(truth))
    for label in range(num_labels):
        at_least = probabilities >= probabilities[:, label:label + 1]
        precision_sum += np.where(truth[:, label],
                                  (at_least & truth).sum(axis=1) / at_least.sum(axis=1), 0.0)
    relevant = truth.sum(axis=1)
    trivial = (relevant == 0) | (relevant == num_labels)
    return float(np.where(trivial, 1.0, metrics.ratio(precision_sum, relevant)).mean())


def binary_log_loss(truth: np.ndarray, probabilities: np.ndarray) -> float | None:
    """-mean(y log p + (1 - y) log(1 - p)) over every (example, label), p clipped to
    [eps, 1 - eps] as scikit-learn: the mean over the labels of their binary log losses.
    None without examples."""
    if not truth.size:
        return None
    eps = np.finfo(np.float64).eps
    own = np.clip(np.where(truth, probabilities, 1.0 - probabilities), eps, 1.0 - eps)
    return float(-np.log(own).mean())


def best_thresholds(truth: np.ndarray, probabilities: np.ndarray, fallback: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The threshold of each label that maximises its F1 on these examples, and that F1.

    A threshold is one of the label's scores (the lowest predicted positive);
    of equal F1s the highest threshold wins. A label no example has keeps its
    `fallback` threshold, with F1 0.

    Returns:
      (thresholds [labels], f1 [labels]), float64.
    """
    thresholds = np.array(fallback, np.float64)
    best_f1 = np.zeros(truth.shape[1])
    for label in range(truth.shape[1]):
        positives = truth[:, label]
        if not positives.any():
            continue
        tps, fps, scores = curves.binary_counts(probabilities[:, label], positives)
        f1 = metrics.f_beta_scores(tps, fps, positives.sum() - tps, 1.0)
        best = int(np.argmax(f1))  # the first maximum: scores run from the highest
        thresholds[label], best_f1[label] = scores[best], f1[best]
    return thresholds, best_f1


def multilabel_summary(truth: np.ndarray, probabilities: np.ndarray,
                       threshold: float | list[float] | np.ndarray,
                       label_names: list[str]) -> dict:
    """Every multi-label figure of one split.

    Args:
      truth: [examples, labels] multi-hot truth (non-zero: the example has the label).
      probabilities: [examples, labels] sigmoid probabilities.
      threshold: a label is predicted where its probability is >= this; one
        number, or one per label.
      label_names: names by output.

    Returns:
      A JSON-ready dict: `multi_label` (True), `num_examples`, `num_labels`,
      `threshold` (as given: a number or a list), `map` (average precision
      averaged over the labels some example has; `map_labels` says how
      many), `micro_f1`, `macro_f1` (over every label, 0 for a label
      neither present nor predicted, as scikit-learn), `subset_accuracy`
      (every label right), `hamming_loss`, `label_ranking_average_precision`,
      `log_loss` (binary, mean over labels) and `per_label`: id, name,
      threshold, precision, recall, f1, support, tn, fp, fn, tp,
      average_precision and average_precision_missing (None, or why it is
      None), best_threshold and best_f1 (see `best_thresholds`). Figures
      without examples are None.

    Raises:
      ValueError: for inputs of the wrong shapes, names that are not one per
        label, or thresholds outside [0, 1].
    """
    truth, probabilities = checked_inputs(truth, probabilities)
    num_examples, num_labels = truth.shape
    if len(label_names) != num_labels:
        raise ValueError('label_names must name the %d labels; got %d names'
                         % (num_labels, len(label_names)))
    thresholds = label_thresholds(threshold, num_labels)
    predicted = probabilities >= thresholds
    confusion = label_confusion(truth, predicted)
    (true_negatives, false_positives), (false_negatives, true_positives) = (
        confusion.transpose(1, 2, 0))
    support = true_positives + false_negatives
    f1 = metrics.f_beta_scores(true_positives, false_positives, false_negatives, 1.0)
    precision = metrics.ratio(true_positives, true_positives + false_positives)
    recall = metrics.ratio(true_positives, support)
    average_precision, missing = metrics.class_areas(
        curves.average_precision, _missing_average_precision, truth, probabilities)
    tuned, tuned_f1 = best_thresholds(truth, probabilities, thresholds)
    exact = np.all(truth == predicted, axis=1)
    return {
        'multi_label': True,
        'num_examples': int(num_examples),
        'num_labels': int(num_labels),
        'threshold': float(threshold) if np.ndim(threshold) == 0 else thresholds.tolist(),
        'map': metrics.mean_defined(average_precision),
        'map_labels': sum(area is not None for area in average_precision),
        'micro_f1': float(metrics.f_beta_scores(true_positives.sum(), false_positives.sum(),
                                                false_negatives.sum(), 1.0)),
        'macro_f1': float(f1.mean()) if num_labels else None,
        'subset_accuracy': float(exact.mean()) if num_examples else None,
        'hamming_loss': float((truth != predicted).mean()) if truth.size else None,
        'label_ranking_average_precision': label_ranking_average_precision(truth,
                                                                           probabilities),
        'log_loss': binary_log_loss(truth, probabilities),
        'per_label': [
            {'id': index, 'name': label_names[index], 'threshold': float(thresholds[index]),
             'precision': float(precision[index]), 'recall': float(recall[index]),
             'f1': float(f1[index]), 'support': int(support[index]),
             'tn': int(true_negatives[index]), 'fp': int(false_positives[index]),
             'fn': int(false_negatives[index]), 'tp': int(true_positives[index]),
             'average_precision': average_precision[index],
             'average_precision_missing': missing[index],
             'best_threshold': float(tuned[index]), 'best_f1': float(tuned_f1[index])}
            for index in range(num_labels)],
    }


def _missing_average_precision(positives: np.ndarray) -> str | None:
    return None if positives.any() else NO_POSITIVES


def thresholds_record(results: dict, split: str, checkpoint: str) -> dict:
    """The content of thresholds.json (see the module docstring) of `multilabel_summary`'s
    results."""
    per_label = results['per_label']
    return {'labels': [row['name'] for row in per_label],
            'thresholds': [row['best_threshold'] for row in per_label],
            'f1': [row['best_f1'] for row in per_label],
            'split': split, 'checkpoint': checkpoint}


# The overall figures of `format_table`, in order.
_OVERALL_FIGURES = ('map', 'micro_f1', 'macro_f1', 'subset_accuracy', 'hamming_loss',
                    'label_ranking_average_precision', 'log_loss')


def _figure(value: float | None) -> str:
    return 'n/a' if value is None else '%.4f' % value


def format_table(results: dict) -> str:
    """A short text table of `multilabel_summary`'s results, for the terminal: the overall
    figures, then the per-label rows up to `PER_LABEL_ROWS` labels."""
    threshold = results['threshold']
    lines = ['%-32s %d' % ('num_examples', results['num_examples']),
             '%-32s %s' % ('threshold', '%g' % threshold if not isinstance(threshold, list)
                           else 'one per label')]
    for key in _OVERALL_FIGURES:
        note = ('  (%d of %d labels)' % (results['map_labels'], results['num_labels'])
                if key == 'map' else '')
        lines.append('%-32s %s%s' % (key, _figure(results[key]), note))
    per_label = results['per_label']
    if len(per_label) > PER_LABEL_ROWS:
        lines.append('per-label figures of %d labels: see metrics.json' % len(per_label))
        return '\n'.join(lines)
    width = max([5] + [len(row['name']) for row in per_label])
    lines.append('%*s  precision  recall      f1  support      AP  best threshold (f1)'
                 % (width, 'label'))
    lines.extend('%*s  %9.4f  %6.4f  %6.4f  %7d  %6s  %.4f (%.4f)' % (
        width, row['name'], row['precision'], row['recall'], row['f1'], row['support'],
        _figure(row['average_precision']), row['best_threshold'], row['best_f1'])
        for row in per_label)
    return '\n'.join(lines)
