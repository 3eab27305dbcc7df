"""Threshold-free figures of class probabilities, and the pictures that show them, with Pillow.

Computations (numpy, exact over the given examples):
* `binary_counts`: true and false positives at each distinct score, the
  ground of the ROC and precision-recall curves (ties form one point);
* `roc_curve`, `roc_auc`: one-vs-rest ROC and its area (trapezoids), defined
  only where there are both positives and negatives;
* `precision_recall_curve`, `average_precision`: the precision-recall curve
  and its step-wise area, sum over thresholds of (R_n - R_n-1) P_n, as
  scikit-learn defines it; defined only where there are positives;
* `reliability`: top-1 confidence against accuracy in equal-width bins
  (lower, upper], and the expected calibration error they give.

The truth of a class is given as class ids [n] (single-label) or as the
multi-hot rows [n, classes] of multi-label data (`class_positives`).

Pictures (PNG bytes and their size): `draw_roc_curves`,
`draw_precision_recall_curves`, `draw_reliability_diagram`, and
`draw_mistakes`, the contact sheet of the most confident mistakes that
`ConfidentMistakes` keeps while a pass streams.
"""

import dataclasses
import heapq
import io
import itertools
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Curves drawn one per class up to this many classes; above, the worst and best few.
CURVES_PER_CLASS = 10
EXTREME_CURVES = 3
_PLOT = 320  # side of the square plot area, in pixels
_MARGIN = 40
_LEGEND_WIDTH = 190
_TILE = 96
_TILE_CAPTION = 24
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GREY = (160, 160, 160)
_BLUE = (8, 48, 107)
_RED = (200, 30, 30)
# Tableau 10: distinguishable line colours.
_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]

NO_POSITIVES = 'no example of the class in the split'
NO_NEGATIVES = 'every example of the split is of the class'


def binary_counts(scores: np.ndarray, positives: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (true positives, false positives) at each distinct score, highest first.

    Args:
      scores: [n] scores of the positive class.
      positives: [n] bools, True for a positive example.

    Returns:
      (tps, fps, thresholds): counts of the examples scored >= each threshold.
    """
    order = np.argsort(-np.asarray(scores, np.float64), kind='stable')
    scores = np.asarray(scores, np.float64)[order]
    positives = np.asarray(positives, bool)[order]
    # The last example of each run of equal scores closes a threshold.
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), positives.size - 1]
    tps = np.cumsum(positives)[last_of_run]
    fps = (last_of_run + 1) - tps
    return tps, fps, scores[last_of_run]


def class_positives(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """[n, num_classes] bools, True where an example is of the class.

    Args:
      labels: class ids [n], or the multi-hot truth [n, num_classes] of
        multi-label data (non-zero where the example has the label).
      num_classes: the number of classes.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels != 0
    return labels[:, np.newaxis] == np.arange(num_classes)


def missing_roc_reason(positives: np.ndarray) -> str | None:
    """Why one-vs-rest ROC AUC is undefined for these labels; None where it is defined."""
    if not positives.any():
        return NO_POSITIVES
    if positives.all():
        return NO_NEGATIVES
    return None


def roc_curve(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates), from (0, 0) to (1, 1).

    Raises:
      ValueError: where the labels have no positives or no negatives.
    """
    positives = np.asarray(positives, bool)
    reason = missing_roc_reason(positives)
    if reason is not None:
        raise ValueError('ROC is undefined: %s' % reason)
    tps, fps, _ = binary_counts(scores, positives)
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """The area under `roc_curve`, by trapezoids (ties count one half)."""
    fpr, tpr = roc_curve(scores, positives)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def precision_recall_curve(scores: np.ndarray, positives: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) at each distinct score, highest score first.

    Raises:
      ValueError: where the labels have no positives.
    """
    positives = np.asarray(positives, bool)
    if not positives.any():
        raise ValueError('precision-recall is undefined: %s' % NO_POSITIVES)
    tps, fps, _ = binary_counts(scores, positives)
    return tps / (tps + fps), tps / tps[-1]


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """sum_n (R_n - R_n-1) P_n over the thresholds: the step-wise area under the PR curve."""
    precision, recall = precision_recall_curve(scores, positives)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclasses.dataclass(frozen=True)
class Reliability:
    """Top-1 confidence against accuracy, in `bins` equal-width bins of (0, 1].

    Attributes:
      counts: [bins] examples whose confidence falls in (lower, upper].
      confidence, accuracy: [bins] their mean confidence and accuracy (0 if
        the bin is empty).
      expected_calibration_error: sum over the bins of count / n times
        |accuracy - confidence|.
    """
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    expected_calibration_error: float

    def bins(self) -> list[dict]:
        """JSON-ready rows: lower, upper, count, confidence and accuracy (None if empty)."""
        edges = np.linspace(0.0, 1.0, len(self.counts) + 1)
        return [{'lower': float(edges[index]), 'upper': float(edges[index + 1]),
                 'count': int(count),
                 'confidence': float(self.confidence[index]) if count else None,
                 'accuracy': float(self.accuracy[index]) if count else None}
                for index, count in enumerate(self.counts)]


def reliability(confidences: np.ndarray, correct: np.ndarray, bins: int) -> Reliability:
    """Bins the top-1 `confidences` (in [0, 1]) with whether each top-1 class was `correct`."""
    confidences = np.asarray(confidences, np.float64)
    correct = np.asarray(correct, np.float64)
    # Bin b holds (b / bins, (b + 1) / bins]; a confidence of 0 joins the first.
    index = np.clip(np.ceil(confidences * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    occupied = np.maximum(counts, 1)
    confidence = np.bincount(index, confidences, minlength=bins) / occupied
    accuracy = np.bincount(index, correct, minlength=bins) / occupied
    total = max(confidences.size, 1)
    error = float(np.sum(counts / total * np.abs(accuracy - confidence)))
    return Reliability(counts, confidence, accuracy, error)


# Pictures.

def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _encoded(image: Image.Image) -> tuple[bytes, tuple[int, int]]:
    encoded = io.BytesIO()
    image.save(encoded, format='PNG')
    return encoded.getvalue(), image.size


@dataclasses.dataclass(frozen=True)
class Line:
    """One curve of a plot: its legend, points in [0, 1]^2 (none: a legend only), colour."""
    label: str
    xs: np.ndarray
    ys: np.ndarray
    colour: tuple[int, int, int]
    width: int = 2


def _plot(title: str, x_label: str, y_label: str, lines: list[Line],
          diagonal: bool = False) -> tuple[Image.Image, Callable]:
    """A white image with unit axes, `lines` drawn and named; returns it and (x, y) -> pixel."""
    font = _font()
    image = Image.new('RGB', (2 * _MARGIN + _PLOT + _LEGEND_WIDTH, 2 * _MARGIN + _PLOT), _WHITE)
    draw = ImageDraw.Draw(image)

    def pixel(x: float, y: float) -> tuple[float, float]:
        return _MARGIN + x * _PLOT, _MARGIN + (1.0 - y) * _PLOT

    draw.rectangle([pixel(0, 1), pixel(1, 0)], outline=_BLACK)
    for tick in np.linspace(0, 1, 6):
        x, y = pixel(tick, 0)
        draw.line([(x, y), (x, y + 4)], fill=_BLACK)
        draw.text((x, y + 6), '%.1f' % tick, fill=_BLACK, font=font, anchor='mt')
        x, y = pixel(0, tick)
        draw.line([(x - 4, y), (x, y)], fill=_BLACK)
        draw.text((x - 6, y), '%.1f' % tick, fill=_BLACK, font=font, anchor='rm')
    draw.text((_MARGIN, 10), title, fill=_BLACK, font=font, anchor='lm')
    draw.text((_MARGIN + _PLOT // 2, 2 * _MARGIN + _PLOT - 8), x_label, fill=_BLACK,
              font=font, anchor='mm')
    draw.text((4, _MARGIN - 14), y_label, fill=_BLACK, font=font, anchor='lm')
    if diagonal:
        draw.line([pixel(0, 0), pixel(1, 1)], fill=_GREY, width=1)
    legend_x = 2 * _MARGIN + _PLOT - 16
    for row, line in enumerate(lines):
        if len(line.xs) > 1:
            draw.line([pixel(x, y) for x, y in zip(line.xs, line.ys)], fill=line.colour,
                      width=line.width)
        legend_y = _MARGIN + 14 * row
        draw.line([(legend_x, legend_y), (legend_x + 14, legend_y)], fill=line.colour,
                  width=line.width)
        draw.text((legend_x + 18, legend_y), line.label, fill=_BLACK, font=font, anchor='lm')
    return image, pixel


def shown_classes(areas: list[float | None]) -> list[int]:
    """The classes whose curves are drawn: every defined one up to `CURVES_PER_CLASS`
    classes, else the `EXTREME_CURVES` worst and best, worst first."""
    defined = sorted((area, index) for index, area in enumerate(areas) if area is not None)
    if len(areas) <= CURVES_PER_CLASS or len(defined) <= 2 * EXTREME_CURVES:
        return [index for index, area in enumerate(areas) if area is not None]
    extremes = defined[:EXTREME_CURVES] + defined[-EXTREME_CURVES:]
    return [index for _, index in extremes]


def _class_lines(curves: dict[int, tuple[np.ndarray, np.ndarray]], areas: list[float | None],
                 class_names: list[str]) -> list[Line]:
    return [Line('%s %.3f' % (class_names[index][:18], areas[index]), xs, ys,
                 _PALETTE[row % len(_PALETTE)])
            for row, (index, (xs, ys)) in enumerate(curves.items())]


def draw_roc_curves(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str],
                    areas: list[float | None]) -> tuple[bytes, tuple[int, int]]:
    """One-vs-rest ROC curves of `shown_classes`, and the macro average of the defined ones.

    Args:
      labels: [n] true class ids, or the multi-hot truth [n, classes].
      probabilities: [n, classes].
      class_names: names by class id.
      areas: each class's ROC AUC, None where undefined.

    Returns:
      (PNG bytes, (width, height)).
    """
    positives = class_positives(labels, probabilities.shape[1])
    curves = {index: roc_curve(probabilities[:, index], positives[:, index])
              for index in shown_classes(areas)}
    lines = _class_lines(curves, areas, class_names)
    defined = [index for index, area in enumerate(areas) if area is not None]
    if len(areas) > CURVES_PER_CLASS and defined:
        # The macro curve: the mean true positive rate over a common false positive grid.
        grid = np.linspace(0.0, 1.0, 101)
        mean_tpr = np.mean([np.interp(grid, *roc_curve(probabilities[:, index],
                                                          positives[:, index]))
                            for index in defined], axis=0)
        lines.append(Line('macro %.3f' % np.mean([areas[index] for index in defined]), grid,
                          mean_tpr, _BLACK, width=3))
    image, _ = _plot('ROC, one class against the rest (AUC)', 'false positive rate',
                     'true positive rate', lines, diagonal=True)
    return _encoded(image)


def draw_precision_recall_curves(labels: np.ndarray, probabilities: np.ndarray,
                                 class_names: list[str], areas: list[float | None]
                                 ) -> tuple[bytes, tuple[int, int]]:
    """Precision-recall curves of `shown_classes` (by average precision `areas`); see
    `draw_roc_curves`."""
    positives = class_positives(labels, probabilities.shape[1])
    curves = {}
    for index in shown_classes(areas):
        precision, recall = precision_recall_curve(probabilities[:, index], positives[:, index])
        # Steps, as average precision counts them, from recall 0.
        curves[index] = (np.repeat(np.r_[0.0, recall], 2)[1:-1], np.repeat(precision, 2))
    image, _ = _plot('precision-recall (average precision)', 'recall', 'precision',
                     _class_lines(curves, areas, class_names))
    return _encoded(image)


def draw_reliability_diagram(measured: Reliability) -> tuple[bytes, tuple[int, int]]:
    """Accuracy per confidence bin as bars against the diagonal of perfect calibration."""
    num_bins = len(measured.counts)
    image, pixel = _plot('reliability: ECE %.4f' % measured.expected_calibration_error,
                         'top-1 confidence', 'accuracy',
                         [Line('accuracy', np.zeros(0), np.zeros(0), _BLUE),
                          Line('gap to confidence', np.zeros(0), np.zeros(0), _RED)],
                         diagonal=True)
    draw = ImageDraw.Draw(image)
    for index in np.flatnonzero(measured.counts):
        lower, upper = index / num_bins, (index + 1) / num_bins
        accuracy, confidence = measured.accuracy[index], measured.confidence[index]
        draw.rectangle([pixel(lower, accuracy), pixel(upper, 0)], fill=_BLUE, outline=_WHITE)
        low, high = sorted((accuracy, confidence))
        if high > low:
            draw.rectangle([pixel(lower, high), pixel(upper, low)], outline=_RED)
    return _encoded(image)


@dataclasses.dataclass(frozen=True)
class Mistake:
    """An example whose top-1 class is wrong, with the image the model saw (uint8 HxWxC)."""
    confidence: float
    label: int
    prediction: int
    image: np.ndarray
    record: int | None = None


def displayable(image: np.ndarray) -> np.ndarray:
    """A preprocessed float image stretched to uint8 [0, 255], 3 channels."""
    image = np.asarray(image, np.float64)
    low, high = image.min(), image.max()
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    pixels = (scaled * 255.0).round().astype(np.uint8)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]


class ConfidentMistakes:
    """Keeps the `capacity` most confident mistakes of a stream of batches, and only them."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._heap: list[tuple[float, int, Mistake]] = []  # least confident first
        self._order = itertools.count()

    def offer(self, probabilities: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
              image_of: Callable[[int], np.ndarray], records: np.ndarray | None = None) -> None:
        """Considers the mistakes of one batch; `image_of(i)` gives example i's uint8 image,
        asked only for the mistakes kept."""
        confidences = probabilities[np.arange(len(labels)), predictions]
        for index in np.flatnonzero(labels != predictions):
            confidence = float(confidences[index])
            full = len(self._heap) >= self.capacity
            if self.capacity == 0 or (full and confidence <= self._heap[0][0]):
                continue
            record = None if records is None else int(records[index])
            entry = (confidence, next(self._order),
                     Mistake(confidence, int(labels[index]), int(predictions[index]),
                             image_of(index), record))
            if full:
                heapq.heapreplace(self._heap, entry)
            else:
                heapq.heappush(self._heap, entry)

    def most_confident(self) -> list[Mistake]:
        """The mistakes kept, most confident first."""
        return [mistake for _, _, mistake in sorted(self._heap, reverse=True)]


def draw_mistakes(mistakes: list[Mistake], class_names: list[str]
                  ) -> tuple[bytes, tuple[int, int]]:
    """A contact sheet of `mistakes`, each tile captioned 'true -> predicted' and confidence."""
    font = _font()
    columns = max(1, min(6, len(mistakes)))
    rows = max(1, -(-len(mistakes) // columns))
    tile_height = _TILE + _TILE_CAPTION
    sheet = Image.new('RGB', (columns * _TILE, rows * tile_height + 20), _WHITE)
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 10), 'most confident mistakes: true -> predicted (confidence)' if mistakes
              else 'no mistakes', fill=_BLACK, font=font, anchor='lm')
    for number, mistake in enumerate(mistakes):
        x, y = (number % columns) * _TILE, 20 + (number // columns) * tile_height
        tile = Image.fromarray(mistake.image).convert('RGB')
        # Small images (28 x 28 digits) are enlarged to the tile, large ones shrunk.
        scale = (_TILE - 4) / max(tile.size)
        tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))),
                           Image.NEAREST if scale > 1 else Image.BILINEAR)
        sheet.paste(tile, (x + (_TILE - tile.width) // 2, y + (_TILE - tile.height) // 2))
        caption = '%s -> %s' % (class_names[mistake.label][:7],
                                class_names[mistake.prediction][:7])
        draw.text((x + 2, y + _TILE), caption, fill=_RED, font=font, anchor='lt')
        draw.text((x + 2, y + _TILE + 11), '%.3f' % mistake.confidence, fill=_BLACK,
                  font=font, anchor='lt')
    return _encoded(sheet)
