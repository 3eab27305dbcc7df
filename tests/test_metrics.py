"""The evaluation figures of class probabilities, against scikit-learn on synthetic predictions."""

import io

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as sk

from slim_classifier.evaluation import curves, metrics

NUM_CLASSES = 5
TOLERANCE = 1e-9


def _predictions(seed, num_examples=300, num_classes=NUM_CLASSES, absent=None, ties=False):
    """(labels, probabilities): a noisy classifier; `absent` never occurs as a label;
    `ties` cuts the probabilities to one decimal, so many scores are equal."""
    rng = np.random.default_rng(seed)
    classes = [index for index in range(num_classes) if index != absent]
    labels = rng.choice(classes, num_examples)
    logits = rng.normal(size=(num_examples, num_classes))
    logits[np.arange(num_examples), labels] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if ties:
        probabilities = np.floor(probabilities * 10) / 10
        probabilities[:, -1] = np.round(1.0 - probabilities[:, :-1].sum(axis=1), 1)
    return labels, probabilities


def _summary(labels, probabilities, f_beta=1.0, bins=15):
    """(top-1 predictions, `metrics.evaluation_summary`) of the probabilities."""
    predictions = probabilities.argmax(axis=1)
    names = ['class %d' % index for index in range(probabilities.shape[1])]
    return predictions, metrics.evaluation_summary(labels, predictions, probabilities, 0, 3,
                                                   names, f_beta, bins)


CASES = [dict(seed=seed) for seed in range(4)] + [
    dict(seed=7, absent=2), dict(seed=8, ties=True), dict(seed=9, ties=True, absent=0)]


@pytest.mark.parametrize('case', CASES, ids=str)
@pytest.mark.parametrize('f_beta', [1.0, 0.5, 2.0])
def test_counted_figures_match_scikit_learn(case, f_beta):
    labels, probabilities = _predictions(**case)
    predictions, results = _summary(labels, probabilities, f_beta)
    every = list(range(NUM_CLASSES))
    per_class = results['per_class']
    fbeta = sk.fbeta_score(labels, predictions, beta=f_beta, labels=every, average=None,
                           zero_division=0)
    assert [row['f_beta'] for row in per_class] == pytest.approx(fbeta, abs=TOLERANCE)
    assert results['macro_f_beta'] == pytest.approx(sk.fbeta_score(
        labels, predictions, beta=f_beta, labels=every, average='macro', zero_division=0),
        abs=TOLERANCE)
    assert results['weighted_f_beta'] == pytest.approx(sk.fbeta_score(
        labels, predictions, beta=f_beta, labels=every, average='weighted', zero_division=0),
        abs=TOLERANCE)
    assert results['matthews_corrcoef'] == pytest.approx(
        sk.matthews_corrcoef(labels, predictions), abs=TOLERANCE)
    assert results['cohen_kappa'] == pytest.approx(sk.cohen_kappa_score(labels, predictions),
                                                   abs=TOLERANCE)
    # [class, [[tn, fp], [fn, tp]]]
    (tn, fp), (fn, tp) = np.moveaxis(sk.multilabel_confusion_matrix(
        labels, predictions, labels=every), 0, -1)
    expected = {'recall': tp / np.maximum(tp + fn, 1), 'fpr': fp / (fp + tn),
                'tnr': tn / (fp + tn), 'fnr': fn / np.maximum(tp + fn, 1),
                'precision': tp / np.maximum(tp + fp, 1), 'npv': tn / (tn + fn),
                'support': tp + fn}
    for name, values in expected.items():
        assert [row[name] for row in per_class] == pytest.approx(values, abs=TOLERANCE), name


@pytest.mark.parametrize('case', CASES, ids=str)
def test_ranking_figures_match_scikit_learn(case):
    labels, probabilities = _predictions(**case)
    _, results = _summary(labels, probabilities)
    present = [index for index in range(NUM_CLASSES) if (labels == index).any()]
    roc = {index: sk.roc_auc_score(labels == index, probabilities[:, index])
           for index in present}
    ap = {index: sk.average_precision_score(labels == index, probabilities[:, index])
          for index in present}
    for index, row in enumerate(results['per_class']):
        if index in present:
            assert row['roc_auc'] == pytest.approx(roc[index], abs=TOLERANCE)
            assert row['average_precision'] == pytest.approx(ap[index], abs=TOLERANCE)
            assert row['roc_auc_missing'] is row['average_precision_missing'] is None
    assert results['macro_roc_auc'] == pytest.approx(np.mean(list(roc.values())), abs=TOLERANCE)
    assert results['macro_roc_auc_classes'] == len(present)
    assert results['macro_average_precision'] == pytest.approx(np.mean(list(ap.values())),
                                                               abs=TOLERANCE)
    one_hot = labels[:, None] == np.arange(NUM_CLASSES)
    assert results['micro_roc_auc'] == pytest.approx(
        sk.roc_auc_score(one_hot.ravel(), probabilities.ravel()), abs=TOLERANCE)
    if len(present) == NUM_CLASSES:
        assert results['macro_roc_auc'] == pytest.approx(sk.roc_auc_score(
            labels, probabilities, multi_class='ovr', average='macro'), abs=TOLERANCE)
    assert results['log_loss'] == pytest.approx(
        sk.log_loss(labels, probabilities, labels=range(NUM_CLASSES)), abs=TOLERANCE)


def test_roc_and_pr_curves_match_scikit_learn_with_ties():
    labels, probabilities = _predictions(8, ties=True)
    positives = labels == 1
    fpr, tpr = curves.roc_curve(probabilities[:, 1], positives)
    expected_fpr, expected_tpr, _ = sk.roc_curve(positives, probabilities[:, 1],
                                                 drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr, atol=TOLERANCE)
    np.testing.assert_allclose(tpr, expected_tpr, atol=TOLERANCE)
    precision, recall = curves.precision_recall_curve(probabilities[:, 1], positives)
    expected_precision, expected_recall, _ = sk.precision_recall_curve(
        positives, probabilities[:, 1], drop_intermediate=False)
    # scikit-learn lists the thresholds lowest first and ends with (precision 1, recall 0).
    np.testing.assert_allclose(precision, expected_precision[-2::-1], atol=TOLERANCE)
    np.testing.assert_allclose(recall, expected_recall[-2::-1], atol=TOLERANCE)


def test_a_class_without_examples_has_no_roc_auc_and_says_why():
    labels, probabilities = _predictions(7, absent=2)
    _, results = _summary(labels, probabilities)
    absent = results['per_class'][2]
    assert absent['roc_auc'] is None and absent['average_precision'] is None
    assert absent['roc_auc_missing'] == curves.NO_POSITIVES
    assert absent['average_precision_missing'] == curves.NO_POSITIVES
    assert results['macro_roc_auc_classes'] == NUM_CLASSES - 1
    assert 'macro_roc_auc            %.4f  (4 of 5 classes)' % results['macro_roc_auc'] in (
        metrics.format_table(results))


def test_a_split_of_one_class_has_no_roc_auc_for_it_and_no_kappa():
    labels = np.zeros(20, np.int64)
    probabilities = np.tile([0.7, 0.2, 0.1], (20, 1))
    _, results = _summary(labels, probabilities)
    assert results['per_class'][0]['roc_auc_missing'] == curves.NO_NEGATIVES
    assert results['macro_roc_auc'] is None and results['macro_roc_auc_classes'] == 0
    assert results['cohen_kappa'] is None
    assert 'macro_roc_auc            n/a' in metrics.format_table(results)


def test_a_perfect_classifier_scores_one_everywhere():
    labels = np.repeat(np.arange(NUM_CLASSES), 4)
    probabilities = np.eye(NUM_CLASSES)[labels]
    _, results = _summary(labels, probabilities)
    assert results['matthews_corrcoef'] == results['cohen_kappa'] == 1.0
    assert results['macro_roc_auc'] == results['micro_roc_auc'] == 1.0
    assert results['macro_average_precision'] == results['macro_f_beta'] == 1.0
    assert results['expected_calibration_error'] == 0.0
    assert results['log_loss'] == pytest.approx(sk.log_loss(labels, probabilities),
                                                abs=TOLERANCE)


def _direct_ece(confidences, correct, bins):
    """The expected calibration error, one bin (lower, upper] at a time."""
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for index, (lower, upper) in enumerate(zip(edges[:-1], edges[1:])):
        inside = (confidences > lower) & (confidences <= upper)
        if index == 0:
            inside |= confidences == 0
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidences[inside].mean())
    return error


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('bins', [1, 10, 15])
def test_expected_calibration_error_matches_a_direct_computation(seed, bins):
    labels, probabilities = _predictions(seed)
    predictions, results = _summary(labels, probabilities, bins=bins)
    confidences = probabilities.max(axis=1)
    correct = predictions == labels
    assert results['expected_calibration_error'] == pytest.approx(
        _direct_ece(confidences, correct, bins), abs=TOLERANCE)
    diagram = results['reliability']
    assert len(diagram) == bins and sum(row['count'] for row in diagram) == len(labels)
    for row in diagram:
        inside = (confidences > row['lower']) & (confidences <= row['upper'])
        assert row['count'] == inside.sum()
        if row['count']:
            assert row['accuracy'] == pytest.approx(correct[inside].mean(), abs=TOLERANCE)
            assert row['confidence'] == pytest.approx(confidences[inside].mean(),
                                                      abs=TOLERANCE)
        else:
            assert row['accuracy'] is None and row['confidence'] is None


def test_confident_mistakes_keeps_only_the_most_confident():
    kept = curves.ConfidentMistakes(3)
    asked = []

    def image_of(index):
        asked.append(index)
        return np.full([4, 4, 3], index, np.uint8)

    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.95, 0.05], [0.7, 0.3]])
    labels = np.array([1, 1, 1, 1, 1])  # 2 is right; the others are mistakes
    kept.offer(probabilities, labels, probabilities.argmax(axis=1), image_of,
               np.arange(10, 15))
    mistakes = kept.most_confident()
    assert [mistake.record for mistake in mistakes] == [13, 10, 14]
    assert [mistake.confidence for mistake in mistakes] == [0.95, 0.9, 0.7]
    assert 2 not in asked


def _size(png):
    image = Image.open(io.BytesIO(png))
    assert image.format == 'PNG'
    return image.size


@pytest.mark.parametrize('num_classes', [4, 30])
def test_pictures_are_pngs_of_the_size_they_say(num_classes):
    labels, probabilities = _predictions(3, num_examples=600, num_classes=num_classes,
                                         absent=1)
    predictions, results = _summary(labels, probabilities)
    names = ['class %d' % index for index in range(num_classes)]
    roc = [row['roc_auc'] for row in results['per_class']]
    ap = [row['average_precision'] for row in results['per_class']]
    assert len(curves.shown_classes(roc)) == (num_classes - 1 if num_classes <= 10 else 6)
    pictures = [curves.draw_roc_curves(labels, probabilities, names, roc),
                curves.draw_precision_recall_curves(labels, probabilities, names, ap),
                curves.draw_reliability_diagram(curves.reliability(
                    probabilities.max(axis=1), predictions == labels, 15))]
    kept = curves.ConfidentMistakes(7)
    kept.offer(probabilities, labels, predictions,
               lambda index: curves.displayable(np.random.default_rng(index).normal(
                   size=(28, 28, 1))))
    pictures.append(curves.draw_mistakes(kept.most_confident(), names))
    for png, size in pictures:
        assert _size(png) == size
        assert 200 <= size[0] <= 1000 and 150 <= size[1] <= 1000
