"""The multi-label evaluation figures, against scikit-learn on synthetic predictions."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from slim_classifier.evaluation import multilabel_metrics

NUM_LABELS = 6
TOLERANCE = 1e-9


def _predictions(seed, num_examples=250, num_labels=NUM_LABELS, absent=None, everywhere=None,
                 ties=False):
    """(truth, probabilities): a noisy multi-label scorer; no example has label `absent`,
    every example has label `everywhere`; `ties` cuts the scores to one decimal."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((num_examples, num_labels)) < rng.uniform(0.1, 0.6, num_labels))
    if absent is not None:
        truth[:, absent] = False
    if everywhere is not None:
        truth[:, everywhere] = True
    logits = rng.normal(size=truth.shape) + 2.0 * truth - 1.0
    probabilities = 1.0 / (1.0 + np.exp(-logits))
    if ties:
        probabilities = np.round(probabilities, 1)
    return truth.astype(np.float32), probabilities


CASES = [dict(seed=seed) for seed in range(3)] + [
    dict(seed=5, absent=2), dict(seed=6, ties=True), dict(seed=7, ties=True, absent=0,
                                                           everywhere=3)]


def _names(count):
    return ['label %d' % index for index in range(count)]


def _sklearn_quietly(function, *args, **kwargs):
    # scikit-learn warns where a label has no positives; the figures are what is compared.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return function(*args, **kwargs)


@pytest.mark.parametrize('case', CASES, ids=lambda case: '-'.join(
    '%s%s' % (key, value) for key, value in case.items()))
@pytest.mark.parametrize('threshold', [0.5, 'per label'])
def test_every_figure_matches_scikit_learn(case, threshold):
    truth, probabilities = _predictions(**case)
    if threshold == 'per label':
        threshold = list(np.linspace(0.2, 0.8, NUM_LABELS))
    results = multilabel_metrics.multilabel_summary(truth, probabilities, threshold,
                                                    _names(NUM_LABELS))
    predicted = probabilities >= np.asarray(threshold)
    close = dict(rel=TOLERANCE, abs=TOLERANCE)
    per_label = results['per_label']
    confusion = sk.multilabel_confusion_matrix(truth, predicted)
    assert [[[row['tn'], row['fp']], [row['fn'], row['tp']]] for row in per_label] == (
        confusion.tolist())
    precision, recall, f1, support = _sklearn_quietly(
        sk.precision_recall_fscore_support, truth, predicted, average=None, zero_division=0)
    for name, expected in (('precision', precision), ('recall', recall), ('f1', f1),
                           ('support', support)):
        assert [row[name] for row in per_label] == pytest.approx(expected.tolist(), **close)
    assert results['micro_f1'] == pytest.approx(
        sk.f1_score(truth, predicted, average='micro', zero_division=0), **close)
    assert results['macro_f1'] == pytest.approx(
        sk.f1_score(truth, predicted, average='macro', zero_division=0), **close)
    assert results['subset_accuracy'] == pytest.approx(sk.accuracy_score(truth, predicted),
                                                       **close)
    assert results['hamming_loss'] == pytest.approx(sk.hamming_loss(truth, predicted), **close)
    assert results['label_ranking_average_precision'] == pytest.approx(
        sk.label_ranking_average_precision_score(truth, probabilities), **close)
    assert results['log_loss'] == pytest.approx(
        sk.log_loss(truth.ravel(), probabilities.ravel(), labels=[0, 1]), **close)
    present = truth.any(axis=0)
    for index, row in enumerate(per_label):
        if present[index]:
            assert row['average_precision'] == pytest.approx(
                sk.average_precision_score(truth[:, index], probabilities[:, index]), **close)
            assert row['average_precision_missing'] is None
        else:
            assert row['average_precision'] is None
            assert row['average_precision_missing'] == multilabel_metrics.NO_POSITIVES
    defined = [sk.average_precision_score(truth[:, index], probabilities[:, index])
               for index in np.flatnonzero(present)]
    assert results['map'] == pytest.approx(np.mean(defined), **close)
    assert results['map_labels'] == int(present.sum())


def _brute_force_best(positives, scores):
    """(best F1, every threshold reaching it): predict >= each distinct score, and count."""
    candidates = np.unique(scores)
    predicted = scores[:, np.newaxis] >= candidates  # [examples, candidates]
    true_positives = (predicted & positives[:, np.newaxis]).sum(axis=0)
    f1 = 2.0 * true_positives / (predicted.sum(axis=0) + positives.sum())
    return f1.max(), candidates[np.isclose(f1, f1.max(), rtol=0, atol=TOLERANCE)]


@pytest.mark.parametrize('case', [dict(seed=11), dict(seed=12, ties=True, absent=1),
                                  dict(seed=13, num_examples=40, everywhere=0)])
def test_tuned_thresholds_are_the_best_of_a_brute_force_search(case):
    truth, probabilities = _predictions(**case)
    results = multilabel_metrics.multilabel_summary(truth, probabilities, 0.5,
                                                    _names(NUM_LABELS))
    for index, row in enumerate(results['per_label']):
        positives = truth[:, index] != 0
        if not positives.any():
            # Nothing to find: the threshold evaluated with stays, with its F1 of 0.
            assert (row['best_threshold'], row['best_f1']) == (0.5, 0.0)
            continue
        best_f1, best = _brute_force_best(positives, probabilities[:, index])
        assert row['best_f1'] == pytest.approx(best_f1, abs=TOLERANCE)
        # Of equal F1s, the highest threshold: the fewest labels predicted.
        assert row['best_threshold'] == best.max()
        assert sk.f1_score(positives, probabilities[:, index] >= row['best_threshold']) == (
            pytest.approx(best_f1, abs=TOLERANCE))


def test_thresholds_record_has_the_agreed_format():
    truth, probabilities = _predictions(3, absent=4)
    results = multilabel_metrics.multilabel_summary(truth, probabilities, 0.3,
                                                    _names(NUM_LABELS))
    record = multilabel_metrics.thresholds_record(results, 'validation', '/run/model.ckpt-9')
    assert list(record) == ['labels', 'thresholds', 'f1', 'split', 'checkpoint']
    assert record['labels'] == _names(NUM_LABELS)
    assert record['thresholds'][4] == 0.3 and record['f1'][4] == 0.0
    assert record['thresholds'] == [row['best_threshold'] for row in results['per_label']]
    assert (record['split'], record['checkpoint']) == ('validation', '/run/model.ckpt-9')


def test_table_shows_the_figures_and_the_missing_average_precision():
    truth, probabilities = _predictions(4, absent=1)
    results = multilabel_metrics.multilabel_summary(truth, probabilities, 0.5,
                                                    _names(NUM_LABELS))
    table = multilabel_metrics.format_table(results)
    assert 'map                              %.4f  (5 of 6 labels)' % results['map'] in table
    label_1 = next(line for line in table.splitlines() if line.startswith('label 1 '))
    assert ' n/a ' in label_1


def test_without_examples_the_figures_are_missing():
    results = multilabel_metrics.multilabel_summary(np.zeros([0, 3]), np.zeros([0, 3]), 0.5,
                                                    _names(3))
    assert results['num_examples'] == 0
    for key in ('map', 'subset_accuracy', 'hamming_loss', 'label_ranking_average_precision',
                'log_loss'):
        assert results[key] is None, key


@pytest.mark.parametrize('arguments, message', [
    ((np.zeros([4, 3]), np.zeros([4, 2]), 0.5, _names(3)),
     r'truth and probabilities must both be \[examples, labels\]; got shapes \(4, 3\) and '
     r'\(4, 2\)'),
    ((np.zeros([4, 3]), np.full([4, 3], 1.5), 0.5, _names(3)),
     r'probabilities must be in \[0, 1\] \(sigmoid outputs\); got values in \[1.5, 1.5\]'),
    ((np.zeros([4, 3]), np.zeros([4, 3]), 1.2, _names(3)),
     r'thresholds must be in \[0, 1\]; got \[1.2, 1.2, 1.2\]'),
    ((np.zeros([4, 3]), np.zeros([4, 3]), [0.5, 0.5], _names(3)),
     r'threshold must be one number or one per label \(3\); got 2'),
    ((np.zeros([4, 3]), np.zeros([4, 3]), 0.5, _names(2)),
     r'label_names must name the 3 labels; got 2 names'),
])
def test_bad_inputs_are_one_line_errors(arguments, message):
    with pytest.raises(ValueError, match='^%s$' % message):
        multilabel_metrics.multilabel_summary(*arguments)
