"""Image steps that several preprocessing modules take the same way."""

import tensorflow.compat.v1 as tf


def image_summary(name: str, image: tf.Tensor) -> None:
    """Adds an image summary of one image [height, width, channels].

    Args:
      name: the summary's name.
      image: the image; a batch of one is made of it.
    """
    tf.summary.image(name, tf.expand_dims(image, 0))


def maybe_grayscale(image: tf.Tensor, use_grayscale: bool) -> tf.Tensor:
    """Converts a 3-channel image to one channel when asked; a 1-channel image stays.

    Args:
      image: an image [height, width, channels] with 1 or 3 channels.
      use_grayscale: whether to convert.

    Returns:
      The image, with one channel if `use_grayscale`.
    """
    if use_grayscale and image.shape[-1] != 1:
        return tf.image.rgb_to_grayscale(image)
    return image


def crop_or_pad_to_float(image: tf.Tensor, height: int, width: int,
                         use_grayscale: bool) -> tf.Tensor:
    """Centrally crops or zero pads an image to height x width, then makes it float32.

    Cropping first converts only the pixels that are kept.

    Args:
      image: an image [image_height, image_width, channels] with 1 or 3 channels.
      height: height of the returned image.
      width: width of the returned image.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [height, width, channels] with the input's pixel values.
    """
    image = tf.image.resize_with_crop_or_pad(image, height, width)
    return maybe_grayscale(tf.cast(image, tf.float32), use_grayscale)
