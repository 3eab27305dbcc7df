"""Classification metrics, in numpy, exact over a whole split.

The evaluator collects each example's true class, top-1 class and probability
vector ([examples, classes] float32: the splits evaluated fit in memory) and
the number of top-k hits over one pass, then calls `evaluation_summary`. The
figures that depend on the top-1 class only are derived from the confusion
matrix (`summarize`), so they always agree with one another; the ranking and
calibration figures from the probabilities (`summarize_scores`, with
`curves`). A figure that is undefined for a split is None in the results
(null in metrics.json), with the reason where one class is concerned.
"""

import numpy as np

from slim_classifier.evaluation import curves


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


def f_beta_scores(true_positives: np.ndarray, false_positives: np.ndarray,
                  false_negatives: np.ndarray, beta: float) -> np.ndarray:
    """(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp) per class, 0 where nothing counts."""
    weight = 1.0 + beta * beta
    return ratio(weight * true_positives,
                 weight * true_positives + beta * beta * false_negatives + false_positives)


def matthews_corrcoef(confusion: np.ndarray) -> float:
    """The multi-class Matthews correlation (Gorodkin's R_K); 0 where a marginal is constant."""
    confusion = confusion.astype(np.float64)
    total = confusion.sum()
    true_counts, predicted_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    covariance = np.trace(confusion) * total - true_counts @ predicted_counts
    spread = (total ** 2 - predicted_counts @ predicted_counts) * (
        total ** 2 - true_counts @ true_counts)
    return float(covariance / np.sqrt(spread)) if spread > 0 else 0.0


def cohen_kappa(confusion: np.ndarray) -> float | None:
    """Cohen's kappa of labels and predictions; None where chance agreement is certain
    (one class only, or no examples)."""
    confusion = confusion.astype(np.float64)
    total = confusion.sum()
    if total == 0:
        return None
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / total
    expected_disagreement = total - np.trace(expected)
    if expected_disagreement <= 0:
        return None
    return float(1.0 - (total - np.trace(confusion)) / expected_disagreement)


def summarize(confusion: np.ndarray, top_k_hits: int, top_k: int,
              class_names: list[str], f_beta: float = 1.0) -> dict:
    """Accuracy, top-k recall and the per-class and overall figures of a confusion matrix.

    Args:
      confusion: [num_classes, num_classes] counts, rows true, columns predicted.
      top_k_hits: examples whose true class was among the `top_k` highest logits.
      top_k: the k of `top_k_hits`.
      class_names: names by class id.
      f_beta: the beta of the F-beta scores (1 weighs precision and recall alike).

    Returns:
      A JSON-ready dict: `num_examples`, `accuracy`, `recall_at_5` (the top-k
      recall; `top_k` says which k), `top_k`, `mean_per_class_accuracy` (the
      recall averaged over the classes that have examples), `f_beta`,
      `macro_f_beta` (over all classes, as scikit-learn), `weighted_f_beta`
      (by support), `matthews_corrcoef`, `cohen_kappa` (see `cohen_kappa`),
      `per_class` (one entry per class: id, name, precision (the PPV),
      recall (the TPR), f1, support, fpr, tnr, fnr, npv, f_beta; a figure
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
    false_positives = predicted - correct
    false_negatives = support - correct
    true_negatives = num_examples - support - false_positives
    precision = ratio(correct, predicted)
    recall = ratio(correct, support)
    f1 = ratio(2.0 * precision * recall, precision + recall)
    rates = {'fpr': ratio(false_positives, false_positives + true_negatives),
             'tnr': ratio(true_negatives, false_positives + true_negatives),
             'fnr': ratio(false_negatives, support),
             'npv': ratio(true_negatives, true_negatives + false_negatives),
             'f_beta': f_beta_scores(correct, false_positives, false_negatives, f_beta)}
    present = support > 0
    return {
        'num_examples': num_examples,
        'accuracy': float(ratio(correct.sum(), np.int64(num_examples))),
        'recall_at_5': float(ratio(np.int64(top_k_hits), np.int64(num_examples))),
        'top_k': top_k,
        'mean_per_class_accuracy': float(recall[present].mean()) if present.any() else 0.0,
        'f_beta': f_beta,
        'macro_f_beta': float(rates['f_beta'].mean()),
        'weighted_f_beta': float(ratio((rates['f_beta'] * support).sum(),
                                       np.int64(num_examples))),
        'matthews_corrcoef': matthews_corrcoef(confusion),
        'cohen_kappa': cohen_kappa(confusion),
        'per_class': [
            dict({'id': index, 'name': class_names[index], 'precision': float(precision[index]),
                  'recall': float(recall[index]), 'f1': float(f1[index]),
                  'support': int(support[index])},
                 **{name: float(values[index]) for name, values in rates.items()})
            for index in range(num_classes)],
        'confusion_matrix': confusion.tolist(),
    }


def class_areas(area, missing_reason, positives: np.ndarray, probabilities: np.ndarray
                ) -> tuple[list[float | None], list[str | None]]:
    """`area(scores, positives)` of each class (column of the [n, classes] bools
    `positives`) against the rest, None with the reason `missing_reason(positives)`
    gives where it is undefined."""
    areas, reasons = [], []
    for index in range(probabilities.shape[1]):
        reason = missing_reason(positives[:, index])
        areas.append(None if reason else area(probabilities[:, index], positives[:, index]))
        reasons.append(reason)
    return areas, reasons


def missing_ap_reason(positives: np.ndarray) -> str | None:
    """Why average precision is undefined for these labels (no positives); None where it is."""
    return None if positives.any() else curves.NO_POSITIVES


def mean_defined(values: list[float | None]) -> float | None:
    """The mean of the values that are not None; None if none is."""
    defined = [value for value in values if value is not None]
    return float(np.mean(defined)) if defined else None


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Mean -log p(true class), probabilities clipped to [eps, 1 - eps] as scikit-learn;
    None without examples."""
    if not len(labels):
        return None
    eps = np.finfo(np.float64).eps
    own = np.clip(probabilities[np.arange(len(labels)), labels].astype(np.float64),
                  eps, 1.0 - eps)
    return float(-np.log(own).mean())


def summarize_scores(labels: np.ndarray, predictions: np.ndarray,
                     probabilities: np.ndarray, calibration_bins: int) -> dict:
    """The ranking and calibration figures of the class probabilities.

    Args:
      labels: [n] true class ids.
      predictions: [n] top-1 class ids.
      probabilities: [n, classes] probabilities (rows summing to 1).
      calibration_bins: the number of equal-width confidence bins.

    Returns:
      A JSON-ready dict: `macro_roc_auc` (over the classes where ROC AUC is
      defined; `macro_roc_auc_classes` says how many), `micro_roc_auc` (of
      every (example, class) pair), `macro_average_precision` and
      `macro_average_precision_classes`, `log_loss`, `calibration_bins`,
      `expected_calibration_error`, `reliability` (the diagram's bins, see
      `curves.Reliability.bins`) and `per_class`: roc_auc, roc_auc_missing,
      average_precision, average_precision_missing of each class (a figure
      is None where undefined, its `_missing` the reason; else the reason is
      None).
    """
    labels = np.asarray(labels, np.int64)
    probabilities = np.asarray(probabilities, np.float64)
    num_classes = probabilities.shape[1]
    one_hot = curves.class_positives(labels, num_classes)
    roc, roc_missing = class_areas(curves.roc_auc, curves.missing_roc_reason, one_hot,
                                   probabilities)
    ap, ap_missing = class_areas(curves.average_precision, missing_ap_reason, one_hot,
                                 probabilities)
    micro_defined = curves.missing_roc_reason(one_hot.ravel()) is None
    calibration = curves.reliability(probabilities[np.arange(len(labels)), predictions],
                                     labels == predictions, calibration_bins)
    return {
        'macro_roc_auc': mean_defined(roc),
        'macro_roc_auc_classes': sum(area is not None for area in roc),
        'micro_roc_auc': (curves.roc_auc(probabilities.ravel(), one_hot.ravel())
                          if micro_defined else None),
        'macro_average_precision': mean_defined(ap),
        'macro_average_precision_classes': sum(area is not None for area in ap),
        'log_loss': log_loss(labels, probabilities),
        'calibration_bins': calibration_bins,
        'expected_calibration_error': (calibration.expected_calibration_error
                                       if len(labels) else None),
        'reliability': calibration.bins(),
        'per_class': [{'roc_auc': roc[index], 'roc_auc_missing': roc_missing[index],
                       'average_precision': ap[index],
                       'average_precision_missing': ap_missing[index]}
                      for index in range(num_classes)],
    }


def evaluation_summary(labels: np.ndarray, predictions: np.ndarray,
                       probabilities: np.ndarray, top_k_hits: int, top_k: int,
                       class_names: list[str], f_beta: float = 1.0,
                       calibration_bins: int = 15) -> dict:
    """`summarize` of the confusion matrix of `labels` and `predictions`, merged with
    `summarize_scores`: the overall figures first, then per_class, reliability and
    confusion_matrix.

    Raises:
      ValueError: a label or prediction outside the classes, or probabilities
        of another number of classes.
    """
    num_classes = len(class_names)
    probabilities = np.asarray(probabilities)
    if probabilities.shape != (len(labels), num_classes):
        raise ValueError('probabilities must be [%d examples, %d classes]; got shape %s'
                         % (len(labels), num_classes, probabilities.shape))
    confusion = confusion_counts(labels, predictions, num_classes)
    counted = summarize(confusion, top_k_hits, top_k, class_names, f_beta)
    scored = summarize_scores(labels, predictions, probabilities, calibration_bins)
    last = ('per_class', 'reliability', 'confusion_matrix')
    results = {key: value for key, value in counted.items() if key not in last}
    results.update((key, value) for key, value in scored.items() if key not in last)
    results['per_class'] = [dict(row, **scores) for row, scores in zip(counted['per_class'],
                                                                     scored['per_class'])]
    results['reliability'] = scored['reliability']
    results['confusion_matrix'] = counted['confusion_matrix']
    return results


PER_CLASS_ROWS = 20  # classes listed by `format_table`; more are left to metrics.json


# The overall figures `format_table` adds where the results have them.
_OVERALL_FIGURES = ('macro_f_beta', 'weighted_f_beta', 'matthews_corrcoef', 'cohen_kappa',
                    'macro_roc_auc', 'micro_roc_auc', 'macro_average_precision', 'log_loss',
                    'expected_calibration_error')


def _figure(value: float | None) -> str:
    return 'n/a' if value is None else '%.4f' % value


def _overall_line(results: dict, key: str) -> str:
    note = ''
    if key in ('macro_f_beta', 'weighted_f_beta'):
        note = '  (beta %g)' % results['f_beta']
    elif key in ('macro_roc_auc', 'macro_average_precision'):
        note = '  (%d of %d classes)' % (results[key + '_classes'], len(results['per_class']))
    elif key == 'expected_calibration_error':
        note = '  (expected, %d bins)' % results['calibration_bins']
        return '%-24s %s%s' % ('calibration_error', _figure(results[key]), note)
    return '%-24s %s%s' % (key, _figure(results[key]), note)


def format_table(results: dict) -> str:
    """A short text table of `summarize`'s (or `evaluation_summary`'s) results, for the terminal.

    The overall figures come first; the per-class rows are listed up to
    `PER_CLASS_ROWS` classes.
    """
    recall_note = ''
    if results['top_k'] != 5:
        recall_note = '  (top %d%s)' % (results['top_k'], (
            ': the net has %d classes' % results['top_k']
            if results['top_k'] == len(results['per_class']) else ''))
    lines = ['%-24s %d' % ('num_examples', results['num_examples']),
             '%-24s %.4f' % ('accuracy', results['accuracy']),
             '%-24s %.4f%s' % ('recall_at_5', results['recall_at_5'], recall_note),
             '%-24s %.4f' % ('mean_per_class_accuracy', results['mean_per_class_accuracy'])]
    lines.extend(_overall_line(results, key) for key in _OVERALL_FIGURES if key in results)
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
