"""VGG preprocessing: aspect-preserving resize, crop, subtract the RGB means.

Training resizes the smaller side of the image to a random length in
[resize_side_min, resize_side_max], takes a random crop and flips it at
random. Evaluation resizes the smaller side to resize_side_min and takes the
central crop. Both subtract the ImageNet RGB means from the 0-255 pixels.
"""

import tensorflow.compat.v1 as tf

from preprocessing.image_ops import maybe_grayscale
from slim_classifier.runtime import determinism

# ImageNet per-channel means, in 0-255 pixel units.
_R_MEAN = 123.68
_G_MEAN = 116.78
_B_MEAN = 103.94
_RGB_MEANS = (_R_MEAN, _G_MEAN, _B_MEAN)

_RESIZE_SIDE_MIN = 256
_RESIZE_SIDE_MAX = 512


def _mean_image_subtraction(image: tf.Tensor, means: tuple[float, ...]) -> tf.Tensor:
    """Subtracts `means[c]` from channel c of a float image.

    Args:
      image: a float image [height, width, len(means)].
      means: one mean per channel.

    Returns:
      The centred image.

    Raises:
      ValueError: if the image's channel count is known and differs from
        the number of means.
    """
    channels = image.shape[-1]
    if channels is not None and channels != len(means):
        raise ValueError('means must have one value per image channel (%d); got %d'
                         % (channels, len(means)))
    return image - tf.constant(means, dtype=image.dtype)


def _subtract_vgg_means(image: tf.Tensor) -> tf.Tensor:
    """Subtracts the RGB means, or their grey value from a 1-channel image."""
    if image.shape[-1] == 1:
        return image - tf.image.rgb_to_grayscale(tf.constant(_RGB_MEANS))
    return _mean_image_subtraction(image, _RGB_MEANS)


def _smallest_size_at_least(height: tf.Tensor, width: tf.Tensor,
                            smallest_side: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The size, aspect ratio kept, whose smaller side is `smallest_side`.

    Args:
      height: the image height, an int32 scalar.
      width: the image width, an int32 scalar.
      smallest_side: the wanted length of the smaller side, an int32 scalar.

    Returns:
      (new_height, new_width) as int32 scalars.
    """
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    scale = tf.cast(smallest_side, tf.float32) / tf.minimum(height, width)
    new_height = tf.cast(tf.math.rint(height * scale), tf.int32)
    new_width = tf.cast(tf.math.rint(width * scale), tf.int32)
    return new_height, new_width


def _aspect_preserving_resize(image: tf.Tensor, smallest_side: int | tf.Tensor) -> tf.Tensor:
    """Resizes `image` bilinearly so that its smaller side is `smallest_side`.

    Args:
      image: an image [height, width, channels].
      smallest_side: the wanted length of the smaller side.

    Returns:
      The resized float32 image [new_height, new_width, channels].
    """
    shape = tf.shape(image)
    new_height, new_width = _smallest_size_at_least(shape[0], shape[1], smallest_side)
    # The legacy resize keeps the sampling grid the public checkpoints were
    # trained with (no half-pixel centres); reading uint8 it writes float32.
    resized = tf.image.resize_images(image, tf.stack([new_height, new_width]))
    resized.set_shape([None, None, image.shape[-1]])
    return tf.cast(resized, tf.float32)


def _central_crop(image: tf.Tensor, crop_height: int, crop_width: int) -> tf.Tensor:
    """Returns the central crop_height x crop_width part of `image`."""
    shape = tf.shape(image)
    top = (shape[0] - crop_height) // 2
    left = (shape[1] - crop_width) // 2
    cropped = tf.slice(image, [top, left, 0], [crop_height, crop_width, -1])
    cropped.set_shape([crop_height, crop_width, image.shape[-1]])
    return cropped


def _random_crop(image: tf.Tensor, crop_height: int, crop_width: int) -> tf.Tensor:
    """Returns a crop_height x crop_width part of `image` at a random place."""
    cropped = determinism.random_crop(image, [crop_height, crop_width, tf.shape(image)[-1]])
    cropped.set_shape([crop_height, crop_width, image.shape[-1]])
    return cropped


def _check_crop_fits(output_height: int, output_width: int, resize_side_min: int) -> None:
    """Raises ValueError if the crop cannot fit in the resized image."""
    if max(output_height, output_width) > resize_side_min:
        raise ValueError('resize_side_min must be >= the output size %dx%d so that the '
                         'crop fits in the resized image; got %d'
                         % (output_height, output_width, resize_side_min))


def preprocess_for_train(image: tf.Tensor, output_height: int, output_width: int,
                         resize_side_min: int = _RESIZE_SIDE_MIN,
                         resize_side_max: int = _RESIZE_SIDE_MAX,
                         use_grayscale: bool = False) -> tf.Tensor:
    """Distorts one image for VGG training.

    Args:
      image: a uint8 image [height, width, channels] with 1 or 3 channels.
      output_height: height of the returned image.
      output_width: width of the returned image.
      resize_side_min: the least length the smaller side is resized to.
      resize_side_max: the greatest length the smaller side is resized to.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [output_height, output_width, channels] with the means
      subtracted.

    Raises:
      ValueError: if the resize range is empty or the crop cannot fit.
    """
    if resize_side_min > resize_side_max:
        raise ValueError('resize_side_min must be <= resize_side_max (%d); got %d'
                         % (resize_side_max, resize_side_min))
    _check_crop_fits(output_height, output_width, resize_side_min)
    with tf.name_scope('vgg_train'):
        resize_side = determinism.uniform([], minval=resize_side_min,
                                        maxval=resize_side_max + 1, dtype=tf.int32)
        image = _aspect_preserving_resize(image, resize_side)
        image = _random_crop(image, output_height, output_width)
        image = determinism.random_flip_left_right(image)
        image = maybe_grayscale(image, use_grayscale)
        return _subtract_vgg_means(image)


def preprocess_for_eval(image: tf.Tensor, output_height: int, output_width: int,
                        resize_side: int = _RESIZE_SIDE_MIN,
                        use_grayscale: bool = False) -> tf.Tensor:
    """Prepares one image for VGG evaluation.

    Args:
      image: a uint8 image [height, width, channels] with 1 or 3 channels.
      output_height: height of the returned image.
      output_width: width of the returned image.
      resize_side: the length the smaller side is resized to.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [output_height, output_width, channels] with the means
      subtracted.

    Raises:
      ValueError: if the crop cannot fit in the resized image.
    """
    _check_crop_fits(output_height, output_width, resize_side)
    with tf.name_scope('vgg_eval'):
        image = _aspect_preserving_resize(image, resize_side)
        image = _central_crop(image, output_height, output_width)
        image = maybe_grayscale(image, use_grayscale)
        return _subtract_vgg_means(image)


def preprocess_image(image: tf.Tensor, output_height: int, output_width: int,
                     is_training: bool = False,
                     resize_side_min: int = _RESIZE_SIDE_MIN,
                     resize_side_max: int = _RESIZE_SIDE_MAX,
                     use_grayscale: bool = False) -> tf.Tensor:
    """Preprocesses one image for VGG training or evaluation.

    Args:
      image: a uint8 image [height, width, channels] with 1 or 3 channels.
      output_height: height of the returned image.
      output_width: width of the returned image.
      is_training: distort the image at random for training.
      resize_side_min: the smaller side's length for evaluation and the
        least one for training.
      resize_side_max: training only: the greatest length of the smaller side.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [output_height, output_width, channels] with the means
      subtracted.

    Raises:
      ValueError: if the resize range is empty or the crop cannot fit.
    """
    if is_training:
        return preprocess_for_train(image, output_height, output_width,
                                    resize_side_min, resize_side_max, use_grayscale)
    return preprocess_for_eval(image, output_height, output_width, resize_side_min,
                               use_grayscale)
