"""CifarNet preprocessing: padded random crops and photometric jitter.

Training pads the image, takes a random crop, flips it at random, jitters
brightness and contrast, then standardises each image to zero mean and unit
variance. Evaluation only crops or pads to the output size and standardises.
"""

import tensorflow.compat.v1 as tf

from preprocessing.image_ops import crop_or_pad_to_float, image_summary, maybe_grayscale
from slim_classifier.runtime import determinism

# Zero pixels added on every side before the random training crop.
_PADDING = 4
# Brightness jitter in uint8 units and the contrast factor range.
_MAX_BRIGHTNESS_DELTA = 63
_CONTRAST_RANGE = (0.2, 1.8)


def preprocess_for_train(image: tf.Tensor, output_height: int, output_width: int,
                         padding: int = _PADDING, add_image_summaries: bool = True,
                         use_grayscale: bool = False) -> tf.Tensor:
    """Distorts one image for CifarNet training.

    Args:
      image: a uint8 image [height, width, channels] with 1 or 3 channels.
      output_height: height of the returned image.
      output_width: width of the returned image.
      padding: zero pixels added on each side before the random crop.
      add_image_summaries: add image summaries of the input and the result.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [output_height, output_width, channels] with zero mean
      and unit variance.

    Raises:
      ValueError: if `padding` is negative.
    """
    if padding < 0:
        raise ValueError('padding must be >= 0; got %d' % padding)
    with tf.name_scope('cifarnet_train'):
        if add_image_summaries:
            image_summary('image', image)
        if padding:
            image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
        channels = image.shape[-1]
        crop_size = [output_height, output_width, tf.shape(image)[-1]]
        image = determinism.random_crop(image, crop_size)
        image.set_shape([output_height, output_width, channels])
        # Crop on uint8 first so that only the kept pixels are converted.
        image = maybe_grayscale(tf.cast(image, tf.float32), use_grayscale)
        image = determinism.random_flip_left_right(image)
        if add_image_summaries:
            image_summary('distorted_image', image)
        image = determinism.random_brightness(image, max_delta=_MAX_BRIGHTNESS_DELTA)
        image = determinism.random_contrast(image, *_CONTRAST_RANGE)
        return tf.image.per_image_standardization(image)


def preprocess_for_eval(image: tf.Tensor, output_height: int, output_width: int,
                        add_image_summaries: bool = True,
                        use_grayscale: bool = False) -> tf.Tensor:
    """Prepares one image for CifarNet evaluation.

    Args:
      image: a uint8 image [height, width, channels] with 1 or 3 channels.
      output_height: height of the returned image.
      output_width: width of the returned image.
      add_image_summaries: kept for the original signature; evaluation adds no
        summaries, so that an exported inference graph holds no summary nodes
        that its export leaves out.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [output_height, output_width, channels], centrally
      cropped or zero padded, with zero mean and unit variance.
    """
    del add_image_summaries
    with tf.name_scope('cifarnet_eval'):
        image = crop_or_pad_to_float(image, output_height, output_width, use_grayscale)
        return tf.image.per_image_standardization(image)


def preprocess_image(image: tf.Tensor, output_height: int, output_width: int,
                     is_training: bool = False, add_image_summaries: bool = True,
                     use_grayscale: bool = False) -> tf.Tensor:
    """Preprocesses one image for CifarNet training or evaluation.

    Args:
      image: a uint8 image [height, width, channels] with 1 or 3 channels.
      output_height: height of the returned image.
      output_width: width of the returned image.
      is_training: distort the image at random for training.
      add_image_summaries: add image summaries of the input and the result.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A standardised float32 image [output_height, output_width, channels].
    """
    if is_training:
        return preprocess_for_train(image, output_height, output_width,
                                    add_image_summaries=add_image_summaries,
                                    use_grayscale=use_grayscale)
    return preprocess_for_eval(image, output_height, output_width,
                               add_image_summaries=add_image_summaries,
                               use_grayscale=use_grayscale)
