"""Draws a confusion matrix as a PNG with Pillow, for people who would rather look than read.

Rows are true classes, columns predicted classes. A cell's shade is its share
of the row (white: none of the class, dark blue: all of it), so a good model
draws a dark diagonal whatever the class sizes. Up to `NAMED_CLASSES` classes,
the class names run along both axes and every cell shows its count; larger
matrices are drawn as a plain heat map of at most about `GRID_PIXELS` pixels.
"""

import dataclasses
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from slim_classifier.evaluation.metrics import check_confusion_matrix, ratio

NAMED_CLASSES = 30
GRID_PIXELS = 720
_MAX_CELL = 40
_MARGIN = 8
_TITLE = 'rows: true class, columns: predicted class, shade: share of the row'
_WHITE = np.array([255, 255, 255], np.float64)
_DARK_BLUE = np.array([8, 48, 107], np.float64)
_TEXT = (0, 0, 0)
_TEXT_ON_DARK = (255, 255, 255)


@dataclasses.dataclass(frozen=True)
class ConfusionLayout:
    """Where the grid lies in the image."""
    num_classes: int
    cell: int
    left: int
    top: int
    width: int
    height: int

    def cell_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of a cell, x1 and y1 exclusive."""
        x0 = self.left + column * self.cell
        y0 = self.top + row * self.cell
        return x0, y0, x0 + self.cell, y0 + self.cell


def _text_size(font: ImageFont.ImageFont, text: str) -> tuple[int, int]:
    x0, y0, x1, y1 = font.getbbox(text)
    return x1 - x0, y1 - y0


def _layout(num_classes: int, class_names: list[str],
            font: ImageFont.ImageFont) -> ConfusionLayout:
    cell = max(1, min(_MAX_CELL, GRID_PIXELS // num_classes))
    _, title_height = _text_size(font, _TITLE)
    names_extent = 0
    if num_classes <= NAMED_CLASSES:
        names_extent = max(_text_size(font, name)[0] for name in class_names) + _MARGIN
    left = _MARGIN + names_extent
    top = 2 * _MARGIN + title_height + names_extent
    grid = cell * num_classes
    title_width, _ = _text_size(font, _TITLE)
    width = max(left + grid, title_width + 2 * _MARGIN) + _MARGIN
    return ConfusionLayout(num_classes, cell, left, top, width, top + grid + _MARGIN)


def _shades(confusion: np.ndarray) -> np.ndarray:
    """Row shares in [0, 1]; a class without examples stays white."""
    return ratio(confusion, confusion.sum(axis=1, keepdims=True))


def _draw_names(image: Image.Image, layout: ConfusionLayout, class_names: list[str],
                font: ImageFont.ImageFont) -> None:
    draw = ImageDraw.Draw(image)
    for index, name in enumerate(class_names):
        width, height = _text_size(font, name)
        x0, y0, _, y1 = layout.cell_box(index, 0)
        draw.text((x0 - _MARGIN // 2 - width, (y0 + y1 - height) // 2), name, fill=_TEXT,
                  font=font, anchor='lt')
        # Column names are written upwards, to fit narrow columns.
        label = Image.new('RGB', (width + 2, height + 4), tuple(_WHITE.astype(int)))
        ImageDraw.Draw(label).text((1, 2), name, fill=_TEXT, font=font, anchor='lt')
        label = label.rotate(90, expand=True)
        cx0, cy0, cx1, _ = layout.cell_box(0, index)
        image.paste(label, ((cx0 + cx1 - label.width) // 2, cy0 - _MARGIN // 2 - label.height))


def _draw_counts(draw: ImageDraw.ImageDraw, layout: ConfusionLayout, confusion: np.ndarray,
                 shades: np.ndarray, font: ImageFont.ImageFont) -> None:
    for (row, column), count in np.ndenumerate(confusion):
        text = str(count)
        width, height = _text_size(font, text)
        x0, y0, x1, y1 = layout.cell_box(row, column)
        if width > layout.cell - 2:
            continue
        colour = _TEXT_ON_DARK if shades[row, column] > 0.5 else _TEXT
        draw.text(((x0 + x1 - width) // 2, (y0 + y1 - height) // 2), text, fill=colour,
                  font=font, anchor='lt')


def draw_confusion_matrix(confusion: np.ndarray, class_names: list[str]
                          ) -> tuple[bytes, ConfusionLayout]:
    """Draws a confusion matrix.

    Args:
      confusion: [num_classes, num_classes] counts, rows true, columns predicted.
      class_names: names by class id.

    Returns:
      (the PNG bytes, the layout of its grid).

    Raises:
      ValueError: if the matrix is not square or the names do not match it.
    """
    confusion = np.asarray(confusion)
    num_classes = check_confusion_matrix(confusion, class_names)
    font = ImageFont.load_default()
    layout = _layout(num_classes, class_names, font)
    image = Image.new('RGB', (layout.width, layout.height), tuple(_WHITE.astype(int)))
    shades = _shades(confusion)
    colours = _WHITE + shades[..., None] * (_DARK_BLUE - _WHITE)
    grid = np.repeat(np.repeat(colours.round().astype(np.uint8), layout.cell, axis=0),
                     layout.cell, axis=1)
    image.paste(Image.fromarray(grid, 'RGB'), (layout.left, layout.top))
    draw = ImageDraw.Draw(image)
    draw.text((_MARGIN, _MARGIN), _TITLE, fill=_TEXT, font=font, anchor='lt')
    if num_classes <= NAMED_CLASSES:
        _draw_names(image, layout, class_names, font)
        _draw_counts(draw, layout, confusion, shades, font)
    encoded = io.BytesIO()
    image.save(encoded, format='PNG')
    return encoded.getvalue(), layout
