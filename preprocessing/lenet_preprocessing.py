"""LeNet preprocessing: crop or pad to the output size, then scale to [-1, 1).

Training and evaluation are the same: LeNet is trained on centred digits and
gains nothing from random distortions.
"""

import tensorflow.compat.v1 as tf

from preprocessing.image_ops import crop_or_pad_to_float

# The image is mapped to (x - 128) / 128, so uint8 values land in [-1, 1).
_CENTRE = 128.0
_SCALE = 128.0


def preprocess_image(image: tf.Tensor, output_height: int, output_width: int,
                     is_training: bool = False,
                     use_grayscale: bool = False) -> tf.Tensor:
    """Preprocesses one image for LeNet.

    Args:
      image: a uint8 image [height, width, channels] with 1 or 3 channels.
      output_height: height of the returned image.
      output_width: width of the returned image.
      is_training: accepted for a common interface; LeNet preprocessing is
        the same for training and evaluation.
      use_grayscale: convert a 3-channel image to one channel.

    Returns:
      A float32 image [output_height, output_width, channels], centrally
      cropped or zero padded, with values (x - 128) / 128.
    """
    del is_training  # LeNet has no training-only distortion.
    with tf.name_scope('lenet_preprocessing'):
        image = crop_or_pad_to_float(image, output_height, output_width, use_grayscale)
        return (image - _CENTRE) / _SCALE
