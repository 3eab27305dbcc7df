"""Inception preprocessing: random crops and colour jitter, outputs in [-1, 1].

Training takes a random crop that covers part of the object's bounding box,
resizes it to the output size, flips it at random and jitters its colours.
Evaluation crops the central 87.5% of the image and resizes it bilinearly.
Both map pixel values to [-1, 1] with (x - 0.5) * 2, x being in [0, 1].

The pipeline is ordered for speed at Inception sizes: crops are taken on
the uint8 image, which is cast to float32 just before the resize (TensorFlow's
resize kernels read float32 at about half the cost of uint8, with identical
results), and the scaling to [0, 1] happens once on the output-sized image.
`sample_crop_window` draws the training crop from the image's shape alone, so
that an input pipeline can decode only that window of a JPEG and skip the rest.
"""

from collections.abc import Callable

import tensorflow.compat.v1 as tf

from preprocessing.image_ops import image_summary
from slim_classifier.runtime import determinism

# Parameters of the distorted bounding-box crop used for training.
_MIN_OBJECT_COVERED = 0.1
_ASPECT_RATIO_RANGE = (0.75, 1.33)
_AREA_RANGE = (0.05, 1.0)
_MAX_ATTEMPTS = 100

# Colour jitter ranges, for pixel values in [0, 1].
_MAX_BRIGHTNESS_DELTA = 32.0 / 255.0
_SATURATION_RANGE = (0.5, 1.5)
_MAX_HUE_DELTA = 0.2
_CONTRAST_RANGE = (0.5, 1.5)

# Evaluation keeps this central fraction of the image.
_CENTRAL_FRACTION = 0.875

_COLOUR_OPS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
        'brightness': lambda image: determinism.random_brightness(
                image, max_delta=_MAX_BRIGHTNESS_DELTA),
        'saturation': lambda image: determinism.random_saturation(
                image, *_SATURATION_RANGE),
        'hue': lambda image: determinism.random_hue(image, max_delta=_MAX_HUE_DELTA),
        'contrast': lambda image: determinism.random_contrast(image, *_CONTRAST_RANGE),
}
# The orders in which colour jitter may be applied; one is drawn per image.
_FAST_COLOUR_ORDERINGS = (
        ('brightness', 'saturation'),
        ('saturation', 'brightness'),
)
_FULL_COLOUR_ORDERINGS = (
        ('brightness', 'saturation', 'hue', 'contrast'),
        ('saturation', 'brightness', 'contrast', 'hue'),
        ('contrast', 'hue', 'brightness', 'saturation'),
        ('hue', 'saturation', 'contrast', 'brightness'),
)
# Saturation and hue leave grey pixels grey, so a 1-channel image gets only these.
_GRAYSCALE_COLOUR_OPS = frozenset({'brightness', 'contrast'})

# Training resizes with one of these methods, drawn per image unless fast_mode.
_RESIZE_METHODS = (
        tf.image.ResizeMethod.BILINEAR,
        tf.image.ResizeMethod.NEAREST_NEIGHBOR,
        tf.image.ResizeMethod.BICUBIC,
        tf.image.ResizeMethod.AREA,
)

# A named step of the training preprocessing: (name, fn(image) -> image).
TrainingStage = tuple[str, Callable[[tf.Tensor], tf.Tensor]]
# The image summaries of training, taken after the stage named.
_STAGE_SUMMARIES = {'resize': 'cropped_resized_image', 'colour': 'final_distorted_image'}


def _unit_scale(dtype: tf.DType) -> float:
    """The factor that maps pixel values of `dtype` to [0, 1]."""
    return 1.0 / dtype.max if dtype.is_integer else 1.0


def _apply_random_case(image: tf.Tensor,
                       case_fn: Callable[[tf.Tensor, int], tf.Tensor],
                       num_cases: int) -> tf.Tensor:
    """Returns `case_fn(image, k)` for a `k` drawn uniformly from [0, num_cases).

    Only the drawn case runs; with one case no branching is built at all.
    """
    if num_cases == 1:
        return case_fn(image, 0)
    case = determinism.uniform([], maxval=num_cases, dtype=tf.int32)
    return tf.switch_case(
            case, [lambda k=k: case_fn(image, k) for k in range(num_cases)])


def distort_color(image: tf.Tensor, color_ordering: int = 0, fast_mode: bool = True,
                  scope: str | None = None) -> tf.Tensor:
    """Jitters the colours of one image in a fixed order.

    Args:
      image: a float image [height, width, channels] with values in [0, 1]
        and 1 or 3 channels.
      color_ordering: which order of the colour operations to use: 0 or 1 in
        fast mode, 0 to 3 otherwise.
      fast_mode: jitter only brightness and saturation, skipping the costlier
        hue and contrast.
      scope: name scope of the ops.

    Returns:
      The jittered image, clipped to [0, 1].

    Raises:
      ValueError: if `color_ordering` is out of range.
    """
    orderings = _FAST_COLOUR_ORDERINGS if fast_mode else _FULL_COLOUR_ORDERINGS
    if not 0 <= color_ordering < len(orderings):
        raise ValueError('color_ordering must be in [0, %d) when fast_mode is %s; got %r'
                         % (len(orderings), fast_mode, color_ordering))
    with tf.name_scope(scope, 'distort_color', [image]):
        for op_name in orderings[color_ordering]:
            if image.shape[-1] == 1 and op_name not in _GRAYSCALE_COLOUR_OPS:
                continue
            image = _COLOUR_OPS[op_name](image)
        return tf.clip_by_value(image, 0.0, 1.0)


def _sample_distorted_box(image_shape: tf.Tensor, bbox: tf.Tensor, min_object_covered: float,
                          aspect_ratio_range: tuple[float, float],
                          area_range: tuple[float, float], max_attempts: int
                          ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(begin [3], size [3], normalised box [1, 1, 4]) of a random crop of the image."""
    return determinism.sample_distorted_bounding_box(
            image_shape, bbox, min_object_covered, aspect_ratio_range, area_range, max_attempts)


def distorted_bounding_box_crop(
        image: tf.Tensor, bbox: tf.Tensor,
        min_object_covered: float = _MIN_OBJECT_COVERED,
        aspect_ratio_range: tuple[float, float] = _ASPECT_RATIO_RANGE,
        area_range: tuple[float, float] = _AREA_RANGE,
        max_attempts: int = _MAX_ATTEMPTS,
        scope: str | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Crops a random part of the image that covers part of the boxes.

    Args:
      image: an image [height, width, channels] of any dtype.
      bbox: float32 boxes [1, num_boxes, 4] as normalised
        (ymin, xmin, ymax, xmax); the crop covers at least
        `min_object_covered` of one of them.
      min_object_covered: the least fraction of a box the crop must cover.
      aspect_ratio_range: allowed width / height of the crop.
      area_range: allowed crop area as a fraction of the image area.
      max_attempts: tries to meet the constraints before the whole image is
        used.
      scope: name scope of the ops.

    Returns:
      (cropped image [crop_height, crop_width, channels], the crop as a
      normalised box [1, 1, 4]).
    """
    with tf.name_scope(scope, 'distorted_bounding_box_crop', [image, bbox]):
        begin, size, crop_box = _sample_distorted_box(
                tf.shape(image), bbox, min_object_covered, aspect_ratio_range, area_range,
                max_attempts)
        cropped = tf.slice(image, begin, size)
        cropped.set_shape([None, None, image.shape[-1]])
        return cropped, crop_box


def sample_crop_window(image_shape: tf.Tensor, bbox: tf.Tensor | None = None,
                       scope: str | None = None) -> tf.Tensor:
    """Draws the training crop of an image from its shape alone.

    The window follows the constraints of `distorted_bounding_box_crop`, so
    cropping to it and then calling `preprocess_for_train(...,
    random_crop=False)` distorts images as `preprocess_for_train` does. It
    lets a JPEG be decoded only inside the window
    (`tf.io.decode_and_crop_jpeg`), see `input_pipeline.build_dataset`.

    Args:
      image_shape: int32 [3], the image's [height, width, channels].
      bbox: float32 boxes [1, num_boxes, 4] as normalised
        (ymin, xmin, ymax, xmax); None means the whole image.
      scope: name scope of the ops.

    Returns:
      int32 [4]: the window as [offset_y, offset_x, height, width].
    """
    with tf.name_scope(scope, 'sample_crop_window', [image_shape]):
        begin, size, _ = _sample_distorted_box(
                tf.cast(image_shape, tf.int32), _whole_image_box() if bbox is None else bbox,
                _MIN_OBJECT_COVERED, _ASPECT_RATIO_RANGE, _AREA_RANGE, _MAX_ATTEMPTS)
        return tf.concat([begin[:2], size[:2]], axis=0)


def _whole_image_box() -> tf.Tensor:
    return tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])


def _summarise_boxes(name: str, image: tf.Tensor, boxes: tf.Tensor) -> None:
    """Adds an image summary of `image` with `boxes` drawn on it."""
    unit_image = tf.cast(image, tf.float32) * _unit_scale(image.dtype)
    image_summary(name, tf.image.draw_bounding_boxes(
            tf.expand_dims(unit_image, 0), boxes)[0])


def _resize_to_unit_float(image: tf.Tensor, height: int, width: int,
                          method: int) -> tf.Tensor:
    """Resizes `image` and maps its values to [0, 1] as float32."""
    unit_scale = _unit_scale(image.dtype)
    # The kernels compute in float32 whatever they read, so the cast changes no
    # value; the legacy resize keeps the sampling grid the public checkpoints
    # were trained with (no half-pixel centres).
    resized = tf.image.resize_images(tf.cast(image, tf.float32), [height, width], method=method)
    return resized * unit_scale


def _maybe_grayscale(image: tf.Tensor, use_grayscale: bool) -> tf.Tensor:
    if use_grayscale and image.shape[-1] != 1:
        return tf.image.rgb_to_grayscale(image)
    return image


def _to_signed_unit_range(unit_image: tf.Tensor) -> tf.Tensor:
    """Maps [0, 1] to [-1, 1] with (x - 0.5) * 2."""
    return (unit_image - 0.5) * 2.0


def training_stages(height: int, width: int, fast_mode: bool = True,
                    use_grayscale: bool = False) -> list[TrainingStage]:
    """The steps of `preprocess_for_train` after its crop, in the order it runs them.

    Each is `(name, fn(image) -> image)`: 'resize' (to float32 in [0, 1]),
    'flip', 'colour' (jitter, clip, and grayscale if asked) and 'scale' (to
    [-1, 1]). A profile can time them one by one
    (benchmarks/bench_input_pipeline.py --stages).

    Args: as `preprocess_for_train`'s.
    """
    num_resize_cases = 1 if fast_mode else len(_RESIZE_METHODS)
    num_colour_cases = 1 if fast_mode else len(_FULL_COLOUR_ORDERINGS)

    def resize(image):
        return _apply_random_case(
                image, lambda x, k: _resize_to_unit_float(x, height, width, _RESIZE_METHODS[k]),
                num_resize_cases)

    def colour(image):
        image = _apply_random_case(
                image, lambda x, k: distort_color(x, k, fast_mode), num_colour_cases)
        return _maybe_grayscale(image, use_grayscale)

    return [('resize', resize), ('flip', determinism.random_flip_left_right),
            ('colour', colour), ('scale', _to_signed_unit_range)]


def preprocess_for_train(image: tf.Tensor, height: int, width: int,
                         bbox: tf.Tensor | None = None, fast_mode: bool = True,
                         scope: str | None = None, add_image_summaries: bool = True,
                         random_crop: bool = True,
                         use_grayscale: bool = False) -> tf.Tensor:
    """Distorts one image for Inception training.

    Args:
      image: an image [height, width, channels] with 1 or 3 channels, uint8
        or float with values in [0, 1].
      height: height of the returned image.
      width: width of the returned image.
      bbox: float32 boxes [1, num_boxes, 4] as normalised
        (ymin, xmin, ymax, xmax); None means the whole image.
      fast_mode: resize only bilinearly and jitter only brightness and
        saturation, instead of drawing one of four resize methods and four
        orders of brightness, saturation, hue and contrast jitter.
      scope: name scope of the ops.
      add_image_summaries: add image summaries of the boxes and the result.
      random_crop: take the distorted bounding-box crop; False resizes the
        whole image.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [height, width, channels] with values in [-1, 1].
    """
    with tf.name_scope(scope, 'distort_image', [image, height, width, bbox]):
        if bbox is None:
            bbox = _whole_image_box()
        if add_image_summaries:
            _summarise_boxes('image_with_bounding_boxes', image, bbox)
        if random_crop:
            image, crop_box = distorted_bounding_box_crop(image, bbox)
            if add_image_summaries:
                _summarise_boxes('images_with_distorted_bounding_box', image, crop_box)
        for name, stage in training_stages(height, width, fast_mode, use_grayscale):
            image = stage(image)
            if add_image_summaries and name in _STAGE_SUMMARIES:
                image_summary(_STAGE_SUMMARIES[name], image)
        return image


def preprocess_for_eval(image: tf.Tensor, height: int | None, width: int | None,
                        central_fraction: float | None = _CENTRAL_FRACTION,
                        scope: str | None = None, central_crop: bool = True,
                        use_grayscale: bool = False) -> tf.Tensor:
    """Prepares one image for Inception evaluation.

    Args:
      image: an image [height, width, channels] with 1 or 3 channels, uint8
        or float with values in [0, 1].
      height: height of the returned image; None (with `width` None) keeps
        the cropped size.
      width: width of the returned image.
      central_fraction: the fraction of each side kept by the central crop.
      scope: name scope of the ops.
      central_crop: take the central crop; False resizes the whole image.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [height, width, channels] with values in [-1, 1].
    """
    with tf.name_scope(scope, 'eval_image', [image, height, width]):
        if central_crop and central_fraction:
            image = tf.image.central_crop(image, central_fraction=central_fraction)
        if height and width:
            image = _resize_to_unit_float(image, height, width,
                                          tf.image.ResizeMethod.BILINEAR)
        else:
            image = tf.cast(image, tf.float32) * _unit_scale(image.dtype)
        image = _maybe_grayscale(image, use_grayscale)
        return _to_signed_unit_range(image)


def preprocess_image(image: tf.Tensor, height: int, width: int,
                     is_training: bool = False, bbox: tf.Tensor | None = None,
                     fast_mode: bool = True, add_image_summaries: bool = True,
                     crop_image: bool = True, use_grayscale: bool = False) -> tf.Tensor:
    """Preprocesses one image for Inception training or evaluation.

    Args:
      image: an image [height, width, channels] with 1 or 3 channels, uint8
        or float with values in [0, 1].
      height: height of the returned image.
      width: width of the returned image.
      is_training: distort the image at random for training.
      bbox: training only: float32 boxes [1, num_boxes, 4] as normalised
        (ymin, xmin, ymax, xmax); None means the whole image.
      fast_mode: training only: see `preprocess_for_train`.
      add_image_summaries: training only: add image summaries.
      crop_image: take the random (training) or central (evaluation) crop.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [height, width, channels] with values in [-1, 1].
    """
    if is_training:
        return preprocess_for_train(image, height, width, bbox, fast_mode,
                                    add_image_summaries=add_image_summaries,
                                    random_crop=crop_image,
                                    use_grayscale=use_grayscale)
    return preprocess_for_eval(image, height, width, central_crop=crop_image,
                               use_grayscale=use_grayscale)
