"""The inference graph shared by export and classification.

`build_inference_graph` adds to the current graph a float placeholder named
`input` ([batch, size, size, channels], preprocessed images) and the class
probabilities as the op `output`, the names every export carries: the softmax
of the logits, or for a multi-label net their sigmoid (one independent
probability per label).
Optionally the same net also reads encoded image bytes (`encoded_images`),
decoded as the training records are and given the net's evaluation
preprocessing, for SavedModels and classification.
"""

import dataclasses

import tensorflow.compat.v1 as tf

from nets import nets_factory
from preprocessing import preprocessing_factory

INPUT_NAME = 'input'
OUTPUT_NAME = 'output'
ENCODED_INPUT_NAME = 'encoded_images'
ENCODED_OUTPUT_NAME = 'encoded_output'
GRAYSCALE_CHANNELS = 1
RGB_CHANNELS = 3


@dataclasses.dataclass(frozen=True)
class InferenceGraph:
    """The tensors of a net built for inference.

    Attributes:
      images: the `input` placeholder, float32 [batch, size, size, channels].
      probabilities: the `output` op's tensor [batch, num_classes], the
        softmax of the net's logits on `images` (their sigmoid for a
        multi-label net).
      image_size: the height and width of `images`.
      num_channels: the channels of `images`.
      encoded_images: a string placeholder [batch] of encoded images, or None.
      encoded_probabilities: the probabilities of the net on
        `encoded_images`, decoded and preprocessed, or None.
    """
    images: tf.Tensor
    probabilities: tf.Tensor
    image_size: int
    num_channels: int
    encoded_images: tf.Tensor | None = None
    encoded_probabilities: tf.Tensor | None = None


def input_channels(model_name: str, use_grayscale: bool) -> int:
    """The channels a net reads: 1 if grayscale is asked for or the net is 1-channel, else 3.

    Raises:
      ValueError: for an unknown network name.
    """
    spec = nets_factory.get_network_spec(model_name)
    if use_grayscale or spec.num_channels == GRAYSCALE_CHANNELS:
        return GRAYSCALE_CHANNELS
    return RGB_CHANNELS


def build_inference_graph(model_name: str, num_classes: int, image_size: int | None = None,
                          batch_size: int | None = None, is_training: bool = False,
                          use_grayscale: bool = False, encoded_input: bool = False,
                          preprocessing_name: str | None = None,
                          multi_label: bool = False) -> InferenceGraph:
    """Builds a net on a placeholder `input`, with its probabilities as op `output`.

    Args:
      model_name: a registered network name.
      num_classes: the net's class count (> 0).
      image_size: input height and width; the net's default if None.
      batch_size: the static batch size; None accepts any.
      is_training: build the training variant (dropout, batch statistics).
      use_grayscale: the net reads 1-channel images.
      encoded_input: also apply the net, with the same variables, to encoded
        images decoded and preprocessed in the graph (placeholder
        `encoded_images`).
      preprocessing_name: the preprocessing of `encoded_input`; the net's own
        if None.
      multi_label: the probabilities are the sigmoid of each logit, not
        their softmax.

    Returns:
      The InferenceGraph.

    Raises:
      ValueError: for an unknown net or preprocessing, a class count or size
        below 1, or a preprocessing whose channels differ from the net's.
    """
    if num_classes < 1:
        raise ValueError('num_classes must be > 0; got %d' % num_classes)
    network_fn = nets_factory.get_network_fn(model_name, num_classes, is_training=is_training)
    image_size = image_size or network_fn.default_image_size
    if image_size < 1:
        raise ValueError('image_size must be > 0; got %d' % image_size)
    channels = input_channels(model_name, use_grayscale)
    images = tf.placeholder(tf.float32, [batch_size, image_size, image_size, channels],
                            name=INPUT_NAME)
    # Not every net has a 'Predictions' end point (VGG and AlexNet have none, as in
    # TF-Slim), so the probabilities are computed from the logits for all of them.
    activation = tf.nn.sigmoid if multi_label else tf.nn.softmax
    logits, _ = network_fn(images)
    probabilities = activation(logits, name=OUTPUT_NAME)
    if not encoded_input:
        return InferenceGraph(images, probabilities, image_size, channels)
    encoded_images = tf.placeholder(tf.string, [batch_size], name=ENCODED_INPUT_NAME)
    preprocessing_name = preprocessing_name or model_name
    decoded = decode_and_preprocess(encoded_images, preprocessing_name, image_size,
                                    use_grayscale)
    if decoded.shape[-1] != channels:
        raise ValueError("preprocessing '%s' gives %d-channel images but %s reads %d; "
                         'set use_grayscale or choose another preprocessing'
                         % (preprocessing_name, decoded.shape[-1], model_name, channels))
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
        encoded_logits, _ = network_fn(decoded)
    return InferenceGraph(images, probabilities, image_size, channels, encoded_images,
                          activation(encoded_logits, name=ENCODED_OUTPUT_NAME))


def decode_and_preprocess(encoded_images: tf.Tensor, preprocessing_name: str,
                          image_size: int, use_grayscale: bool = False) -> tf.Tensor:
    """Decodes and preprocesses a batch of encoded images for evaluation.

    Args:
      encoded_images: string [batch], JPEG, PNG, GIF, BMP or WebP bytes.
      preprocessing_name: a preprocessing or network name (see
        `preprocessing_factory.get_preprocessing`).
      image_size: the output height and width.
      use_grayscale: produce 1-channel images.

    Returns:
      float32 [batch, image_size, image_size, channels], channels as
      `preprocessing_factory` decides for the name.
    """
    preprocess = preprocessing_factory.get_preprocessing(
        preprocessing_name, is_training=False, use_grayscale=use_grayscale)

    def one_image(encoded):
        # 3 channels, as the dataset decoder gives: preprocessing then makes the
        # same channel conversion for both, so served images match evaluated ones.
        image = tf.io.decode_image(encoded, channels=RGB_CHANNELS, expand_animations=False)
        image.set_shape([None, None, RGB_CHANNELS])
        return preprocess(image, image_size, image_size)

    return tf.map_fn(one_image, encoded_images, fn_output_signature=tf.float32)
