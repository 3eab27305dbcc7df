"""Training augmentations of current recipes, as TensorFlow ops: RandAugment, random erasing,
mixup and CutMix.

They wrap a net's own preprocessing rather than replace it (see
`slim_classifier.runtime.batches.training_batches`): RandAugment distorts the
uint8 image before the preprocessing, random erasing blanks a rectangle of
the preprocessed float image, and mixup or CutMix blend whole batches, whose
labels then become soft (one-hot mixtures). An `Augmentation` whose fields
are all off adds no op, so the preprocessing stays exactly the net's own.

RandAugment (Cubuk et al., 2019) applies `num_ops` operations drawn uniformly
from `RAND_AUGMENT_OPS`, each at `magnitude` on the paper's scale of 0 to
`MAX_MAGNITUDE`, where 30 is the strongest (rotations of 30 degrees, shears of
0.3, translations of 45% of the side, colour factors 1 +- 0.9, 4-bit
posterize, solarize at 0); signed distortions take a random sign.
"""

import dataclasses
import math
from collections.abc import Callable

import tensorflow.compat.v1 as tf

from slim_classifier.runtime import determinism

MAX_MAGNITUDE = 30.0
# The strength of each distortion at MAX_MAGNITUDE.
_MAX_ROTATE_DEGREES = 30.0
_MAX_SHEAR = 0.3
_MAX_TRANSLATE_FRACTION = 0.45
_MAX_ENHANCE_DELTA = 0.9  # colour, contrast, brightness and sharpness factors 1 +- this
_MAX_POSTERIZE_BITS_DROPPED = 4
# Pixels that an affine distortion brings in from outside the image.
_FILL_VALUE = 128.0
# Random erasing (Zhong et al., 2017): the erased share of the image and the
# aspect ratio range of the rectangle.
_ERASED_AREA = (0.02, 1.0 / 3.0)
_ERASED_ASPECT = (0.3, 1.0 / 0.3)
# With both mixup and CutMix, each batch takes one of them, CutMix at this probability.
_CUTMIX_PROBABILITY = 0.5


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Which augmentations a training pipeline applies; the defaults apply none.

    Attributes:
      rand_augment_ops: RandAugment's N, the operations per image (0: off).
      rand_augment_magnitude: RandAugment's M, in [0, MAX_MAGNITUDE].
      random_erasing_prob: the probability that an image has a rectangle erased.
      mixup_alpha: alpha of the Beta distribution of mixup's weights (0: off).
      cutmix_alpha: alpha of the Beta distribution of CutMix's areas (0: off).
    """
    rand_augment_ops: int = 0
    rand_augment_magnitude: float = 0.0
    random_erasing_prob: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    def __post_init__(self):
        if self.rand_augment_ops < 0:
            raise ValueError('RandAugment needs N >= 0 operations; got %r'
                             % self.rand_augment_ops)
        if not 0.0 <= self.rand_augment_magnitude <= MAX_MAGNITUDE:
            raise ValueError('RandAugment magnitude must be in [0, %g]; got %r'
                             % (MAX_MAGNITUDE, self.rand_augment_magnitude))
        if not 0.0 <= self.random_erasing_prob <= 1.0:
            raise ValueError('random erasing probability must be in [0, 1]; got %r'
                             % self.random_erasing_prob)
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError('mixup and CutMix alphas must be >= 0; got %r and %r'
                             % (self.mixup_alpha, self.cutmix_alpha))

    @property
    def changes_images(self) -> bool:
        """Whether images are augmented one by one (RandAugment or random erasing)."""
        return self.rand_augment_ops > 0 or self.random_erasing_prob > 0

    @property
    def mixes_batches(self) -> bool:
        """Whether batches are blended (mixup or CutMix), making the labels soft."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


PreprocessFn = Callable[..., tf.Tensor]


def augmented_preprocessing(preprocess_fn: PreprocessFn, augmentation: Augmentation
                            ) -> PreprocessFn:
    """`preprocess_fn` with RandAugment before it and random erasing after it, as asked.

    Args:
      preprocess_fn: `fn(uint8 image, height, width, **kwargs) -> float image`.
      augmentation: what to add; an `Augmentation()` returns `preprocess_fn` itself.
    """
    if not augmentation.changes_images:
        return preprocess_fn

    def preprocess(image, height, width, **kwargs):
        if augmentation.rand_augment_ops:
            image = rand_augment(image, augmentation.rand_augment_ops,
                                 augmentation.rand_augment_magnitude)
        image = preprocess_fn(image, height, width, **kwargs)
        if augmentation.random_erasing_prob:
            image = random_erasing(image, augmentation.random_erasing_prob)
        return image
    return preprocess


# RandAugment ---------------------------------------------------------------------------------

def rand_augment(image: tf.Tensor, num_ops: int, magnitude: float) -> tf.Tensor:
    """Applies `num_ops` operations drawn uniformly from RAND_AUGMENT_OPS at `magnitude`.

    Args:
      image: uint8 [height, width, channels].
      num_ops: how many operations, drawn independently (with repetition).
      magnitude: on the scale 0 to MAX_MAGNITUDE.

    Returns:
      The distorted uint8 image, of the same shape.
    """
    with tf.name_scope('rand_augment'):
        image = tf.convert_to_tensor(image)
        level = magnitude / MAX_MAGNITUDE
        for _ in range(num_ops):
            choice = determinism.uniform([], 0, len(RAND_AUGMENT_OPS), dtype=tf.int32)
            # -1 or +1: the direction of the signed distortions.
            sign = tf.sign(determinism.uniform([]) - 0.5)
            branches = [_bound(op, image, level, sign) for op in RAND_AUGMENT_OPS.values()]
            distorted = tf.switch_case(choice, branches)
            distorted.set_shape(image.shape)
            image = distorted
        return image


def _bound(op, image, level, sign):
    return lambda: op(image, level, sign)


def _identity(image, level, sign):
    del level, sign
    return tf.identity(image)


def _autocontrast(image, level, sign):
    """Stretches each channel from its own minimum and maximum to 0 and 255."""
    del level, sign
    pixels = tf.cast(image, tf.float32)
    low = tf.reduce_min(pixels, axis=[0, 1], keepdims=True)
    high = tf.reduce_max(pixels, axis=[0, 1], keepdims=True)
    stretched = (pixels - low) * 255.0 / tf.maximum(high - low, 1.0)
    # A channel of one value stays as it is.
    return _to_uint8(tf.where(tf.broadcast_to(high > low, tf.shape(pixels)), stretched, pixels))


def _equalize(image, level, sign):
    """Equalizes each channel's histogram (as PIL's ImageOps.equalize)."""
    del level, sign
    channels = tf.unstack(image, num=image.shape[-1], axis=-1)
    return tf.stack([_equalize_channel(channel) for channel in channels], axis=-1)


def _equalize_channel(channel):
    values = tf.cast(channel, tf.int32)
    histogram = tf.histogram_fixed_width(values, [0, 255], nbins=256)
    used = tf.boolean_mask(histogram, histogram > 0)
    # The pixels of the brightest value used are left out, as in PIL.
    step = (tf.reduce_sum(used) - used[-1]) // 255

    def remapped():
        lookup = (tf.cumsum(histogram) + step // 2) // step
        lookup = tf.clip_by_value(tf.concat([[0], lookup[:-1]], 0), 0, 255)
        return tf.cast(tf.gather(lookup, values), tf.uint8)
    return tf.cond(step > 0, remapped, lambda: channel)


def _rotate(image, level, sign):
    radians = sign * level * _MAX_ROTATE_DEGREES * math.pi / 180.0
    height, width = _float_size(image)
    cos, sin = tf.cos(radians), tf.sin(radians)
    # Maps each output pixel to the input pixel it shows, about the centre.
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    return _transform(image, [cos, -sin, x_offset, sin, cos, y_offset])


def _solarize(image, level, sign):
    """Inverts the pixels at or above a threshold that falls from 256 to 0 as level grows."""
    del sign
    threshold = 256.0 * (1.0 - level)
    return tf.where(tf.cast(image, tf.float32) >= threshold, 255 - image, image)


def _color(image, level, sign):
    return _blend(_grayscale(image), image, 1.0 + sign * level * _MAX_ENHANCE_DELTA)


def _posterize(image, level, sign):
    """Keeps the high bits of each pixel: 8 at level 0, 4 at level 1."""
    del sign
    dropped = tf.cast(level * _MAX_POSTERIZE_BITS_DROPPED, tf.uint8)
    return tf.bitwise.left_shift(tf.bitwise.right_shift(image, dropped), dropped)


def _contrast(image, level, sign):
    mean = tf.reduce_mean(tf.cast(_grayscale(image), tf.float32))
    return _blend(tf.fill(tf.shape(image), mean), image, 1.0 + sign * level * _MAX_ENHANCE_DELTA)


def _brightness(image, level, sign):
    return _blend(tf.zeros_like(image), image, 1.0 + sign * level * _MAX_ENHANCE_DELTA)


def _sharpness(image, level, sign):
    """Blends with a smoothed image (PIL's SMOOTH filter); the border pixels stay."""
    pixels = tf.cast(image, tf.float32)
    channels = image.shape[-1]
    kernel = tf.constant([[1., 1., 1.], [1., 5., 1.], [1., 1., 1.]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    smooth = tf.nn.depthwise_conv2d(pixels[None], kernel, [1, 1, 1, 1], 'VALID')[0]
    smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    interior = tf.pad(tf.ones_like(smooth[1:-1, 1:-1]), [[1, 1], [1, 1], [0, 0]]) > 0
    degenerate = tf.where(interior, smooth, pixels)
    return _blend(degenerate, image, 1.0 + sign * level * _MAX_ENHANCE_DELTA)


def _shear_x(image, level, sign):
    return _transform(image, [1.0, sign * level * _MAX_SHEAR, 0.0, 0.0, 1.0, 0.0])


def _shear_y(image, level, sign):
    return _transform(image, [1.0, 0.0, 0.0, sign * level * _MAX_SHEAR, 1.0, 0.0])


def _translate_x(image, level, sign):
    _, width = _float_size(image)
    return _transform(image, [1.0, 0.0, -sign * level * _MAX_TRANSLATE_FRACTION * width,
                              0.0, 1.0, 0.0])


def _translate_y(image, level, sign):
    height, _ = _float_size(image)
    return _transform(image, [1.0, 0.0, 0.0,
                              0.0, 1.0, -sign * level * _MAX_TRANSLATE_FRACTION * height])


# name -> fn(uint8 image, level in [0, 1], sign -1 or +1) -> uint8 image; the order
# is the paper's list.
RAND_AUGMENT_OPS: dict[str, Callable[[tf.Tensor, float, tf.Tensor], tf.Tensor]] = {
    'identity': _identity, 'autocontrast': _autocontrast, 'equalize': _equalize,
    'rotate': _rotate, 'solarize': _solarize, 'color': _color, 'posterize': _posterize,
    'contrast': _contrast, 'brightness': _brightness, 'sharpness': _sharpness,
    'shear_x': _shear_x, 'shear_y': _shear_y, 'translate_x': _translate_x,
    'translate_y': _translate_y,
}


def _float_size(image):
    shape = tf.cast(tf.shape(image), tf.float32)
    return shape[0], shape[1]


def _transform(image, affine):
    """The image under the affine map [a0, a1, a2, b0, b1, b2]: output (x, y) shows input
    (a0 x + a1 y + a2, b0 x + b1 y + b2), bilinearly; pixels from outside are _FILL_VALUE."""
    transform = tf.cast(tf.stack(affine + [0.0, 0.0]), tf.float32)[None]
    transformed = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=tf.shape(image)[:2],
        fill_value=_FILL_VALUE, interpolation='BILINEAR', fill_mode='CONSTANT')
    return transformed[0]


def _grayscale(image):
    """The luma of a 3-channel image in every channel; other images unchanged."""
    if image.shape[-1] != 3:
        return image
    return tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))


def _blend(degenerate, image, factor):
    """degenerate + factor * (image - degenerate), as PIL's ImageEnhance, clipped to uint8."""
    degenerate = tf.cast(degenerate, tf.float32)
    return _to_uint8(degenerate + factor * (tf.cast(image, tf.float32) - degenerate))


def _to_uint8(pixels):
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


# Random erasing --------------------------------------------------------------------------------

def random_erasing(image: tf.Tensor, probability: float) -> tf.Tensor:
    """Fills a random rectangle of the image with noise, at `probability`.

    The rectangle covers 2% to 1/3 of the image with an aspect ratio between
    0.3 and 1/0.3 (Zhong et al., 2017), cut to the image; the noise is uniform
    between the image's own minimum and maximum, whatever the preprocessing's
    value range.

    Args:
      image: a preprocessed float image [height, width, channels].
      probability: in [0, 1].
    """
    with tf.name_scope('random_erasing'):
        erase = determinism.uniform([]) < probability
        erased = tf.cond(erase, lambda: _erase_rectangle(image), lambda: tf.identity(image))
        erased.set_shape(image.shape)
        return erased


def _erase_rectangle(image):
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    area = tf.cast(height * width, tf.float32) * determinism.uniform([], *_ERASED_AREA)
    aspect = tf.exp(determinism.uniform([], math.log(_ERASED_ASPECT[0]),
                                      math.log(_ERASED_ASPECT[1])))
    box_height = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32), 1, height)
    box_width = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32), 1, width)
    top = determinism.uniform([], 0, height - box_height + 1, dtype=tf.int32)
    left = determinism.uniform([], 0, width - box_width + 1, dtype=tf.int32)
    inside = _box_mask(height, width, top, left, box_height, box_width)[:, :, None]
    noise = determinism.uniform(shape, tf.reduce_min(image), tf.reduce_max(image), image.dtype)
    return tf.where(tf.broadcast_to(inside, shape), noise, image)


def _box_mask(height, width, top, left, box_height, box_width):
    """bool [height, width]: True inside the box."""
    rows = tf.range(height)[:, None]
    columns = tf.range(width)[None, :]
    return ((rows >= top) & (rows < top + box_height)
            & (columns >= left) & (columns < left + box_width))


# Mixup and CutMix ------------------------------------------------------------------------------

def mix_batch(images: tf.Tensor, labels: tf.Tensor, num_classes: int, mixup_alpha: float,
              cutmix_alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Blends each example of a batch with the example at the mirrored position.

    Mixup (Zhang et al., 2018) averages whole images with a weight drawn from
    Beta(mixup_alpha, mixup_alpha); CutMix (Yun et al., 2019) pastes a box of
    the other image whose area follows Beta(cutmix_alpha, cutmix_alpha). One
    weight is drawn per batch; with both alphas set, each batch takes CutMix
    or mixup at even odds. The labels are mixed with the share of the pixels
    each image keeps.

    Args:
      images: float [batch, height, width, channels].
      labels: int [batch], each in [0, num_classes), or multi-hot float32
        [batch, num_classes] (a multi-label dataset).
      num_classes: the width of the soft labels.
      mixup_alpha: > 0 to mix up, 0 for no mixup.
      cutmix_alpha: > 0 to cut and mix, 0 for no CutMix.

    Returns:
      (images, soft labels float32 [batch, num_classes]: the rows sum to 1 for
      class ids; for multi-hot labels each label is the share of its images).
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        raise ValueError('mix_batch needs mixup_alpha or cutmix_alpha > 0')
    with tf.name_scope('mix_batch'):
        one_hot = labels if labels.shape.rank == 2 else tf.one_hot(labels, num_classes)
        others = tf.reverse(images, [0])
        if cutmix_alpha <= 0:
            mixed, kept = _mixup(images, others, mixup_alpha)
        elif mixup_alpha <= 0:
            mixed, kept = _cutmix(images, others, cutmix_alpha)
        else:
            mixed, kept = tf.cond(determinism.uniform([]) < _CUTMIX_PROBABILITY,
                                  lambda: _cutmix(images, others, cutmix_alpha),
                                  lambda: _mixup(images, others, mixup_alpha))
        mixed.set_shape(images.shape)
        soft_labels = kept * one_hot + (1.0 - kept) * tf.reverse(one_hot, [0])
        return mixed, soft_labels


def _beta(alpha):
    """A draw from Beta(alpha, alpha), as a ratio of Gamma draws."""
    first = determinism.gamma([], alpha)
    second = determinism.gamma([], alpha)
    # Both draws underflow to 0 for tiny alphas: then either image is as likely.
    return tf.math.divide_no_nan(first, first + second)


def _mixup(images, others, alpha):
    kept = _beta(alpha)
    return kept * images + (1.0 - kept) * others, kept


def _cutmix(images, others, alpha):
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    # The box covers a share 1 - kept of the image, centred anywhere, cut at the borders.
    side = tf.sqrt(1.0 - _beta(alpha))
    box_height = tf.cast(tf.round(side * tf.cast(height, tf.float32)), tf.int32)
    box_width = tf.cast(tf.round(side * tf.cast(width, tf.float32)), tf.int32)
    centre_y = determinism.uniform([], 0, height, dtype=tf.int32)
    centre_x = determinism.uniform([], 0, width, dtype=tf.int32)
    top = tf.maximum(centre_y - box_height // 2, 0)
    bottom = tf.minimum(centre_y + (box_height + 1) // 2, height)
    left = tf.maximum(centre_x - box_width // 2, 0)
    right = tf.minimum(centre_x + (box_width + 1) // 2, width)
    inside = _box_mask(height, width, top, left, bottom - top, right - left)
    kept = 1.0 - tf.cast((bottom - top) * (right - left), tf.float32) / tf.cast(height * width,
                                                                                  tf.float32)
    return tf.where(tf.broadcast_to(inside[None, :, :, None], shape), others, images), kept
