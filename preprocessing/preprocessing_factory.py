"""Chooses the preprocessing for a preprocessing name or a network name.

A network name maps to its default preprocessing through the one network
registry, `nets.nets_factory.NETWORKS`; this module keeps no table of
network names. The returned function also matches the image's channels to
what the network reads: 1 channel for 1-channel networks (LeNet) or when
grayscale is asked for, otherwise 3.
"""

import difflib
from collections.abc import Callable
from types import ModuleType

import tensorflow.compat.v1 as tf

from datasets.input_pipeline import CropWindowFn
from nets import nets_factory
from preprocessing import cifarnet_preprocessing
from preprocessing import inception_preprocessing
from preprocessing import lenet_preprocessing
from preprocessing import vgg_preprocessing

# preprocessing_fn(image, output_height, output_width, **kwargs) -> float32 image
PreprocessingFn = Callable[..., tf.Tensor]

# Training preprocessings whose random crop can be drawn from the image's
# shape before decoding, so that a JPEG need only be decoded in that window.
_TRAINING_CROP_WINDOWS: dict[ModuleType, CropWindowFn] = {
        inception_preprocessing: inception_preprocessing.sample_crop_window,
}

_PREPROCESSINGS: dict[str, ModuleType] = {
        'cifarnet': cifarnet_preprocessing,
        'inception': inception_preprocessing,
        'lenet': lenet_preprocessing,
        'vgg': vgg_preprocessing,
}
_RGB_CHANNELS = 3


def list_preprocessing_names() -> list[str]:
    """The preprocessing names (not network names), sorted."""
    return sorted(_PREPROCESSINGS)


def _unknown_name_error(name: str) -> ValueError:
    close = difflib.get_close_matches(
            str(name), list_preprocessing_names() + nets_factory.list_networks(), n=1)
    hint = " (did you mean '%s'?)" % close[0] if close else ''
    return ValueError("unknown preprocessing '%s'%s; valid names: %s (preprocessings) "
                      "and %s (networks)"
                      % (name, hint, ', '.join(list_preprocessing_names()),
                         ', '.join(nets_factory.list_networks())))


def _resolve(name: str) -> tuple[ModuleType, int]:
    """Returns (preprocessing module, channels the name's network reads).

    Raises:
      ValueError: if `name` is neither a network nor a preprocessing name, or
        its network names a preprocessing that does not exist.
    """
    if name in nets_factory.NETWORKS:
        spec = nets_factory.get_network_spec(name)
        if spec.preprocessing_name not in _PREPROCESSINGS:
            raise ValueError("network '%s' asks for preprocessing '%s'; valid names: %s"
                             % (name, spec.preprocessing_name,
                                ', '.join(list_preprocessing_names())))
        return _PREPROCESSINGS[spec.preprocessing_name], spec.num_channels
    if name in _PREPROCESSINGS:
        return _PREPROCESSINGS[name], _RGB_CHANNELS
    raise _unknown_name_error(name)


def _image_channels(image: tf.Tensor) -> int:
    """The static channel count of an image [height, width, channels].

    Raises:
      ValueError: unless the image has rank 3 and a known 1 or 3 channels.
    """
    shape = image.shape
    if shape.rank != 3 or shape[-1] not in (1, _RGB_CHANNELS):
        raise ValueError('image must be [height, width, channels] with 1 or 3 channels '
                         'known when the graph is built (decode with channels=1 or 3); '
                         'got shape %s' % shape)
    return shape[-1]


def get_preprocessing(name: str, is_training: bool = False,
                      use_grayscale: bool = False) -> PreprocessingFn:
    """Returns `preprocessing_fn(image, output_height, output_width, **kwargs)`.

    Args:
      name: a preprocessing name (see `list_preprocessing_names()`) or a
        network name (see `nets.nets_factory.list_networks()`), which selects
        that network's default preprocessing.
      is_training: build the training variant (random distortions).
      use_grayscale: return 1-channel images whatever the network.

    Returns:
      A function of a uint8 image [height, width, 1 or 3] returning a float32
      image [output_height, output_width, channels], with channels 1 when
      `use_grayscale` is set or the named network reads 1 channel, else 3.
      Extra keyword arguments go to the module's `preprocess_image` (e.g.
      `fast_mode` for inception, `resize_side_min` for vgg).

    Raises:
      ValueError: if `name` is neither a preprocessing nor a network name;
        the message lists the valid names.
    """
    module, network_channels = _resolve(name)
    grayscale_output = use_grayscale or network_channels == 1

    def preprocessing_fn(image, output_height: int, output_width: int,
                         **kwargs) -> tf.Tensor:
        image = tf.convert_to_tensor(image)
        if _image_channels(image) == 1 and not grayscale_output:
            # Convert while still uint8: the cheapest point, and RGB-only
            # steps (mean subtraction, colour jitter) then see 3 channels.
            image = tf.image.grayscale_to_rgb(image)
        return module.preprocess_image(image, output_height, output_width,
                                       is_training=is_training,
                                       use_grayscale=grayscale_output, **kwargs)

    return preprocessing_fn


def get_training_crop_window(name: str) -> CropWindowFn | None:
    """The training crop of `name`'s preprocessing, drawn from an image's shape alone.

    An input pipeline that crops each image to this window before it is
    decoded whole (`input_pipeline.build_dataset(crop_window_fn=...)`) must
    then call the training preprocessing with `crop_image=False`; the images
    are distributed as with the preprocessing's own crop.

    Args:
      name: a preprocessing or network name, as for `get_preprocessing`.

    Returns:
      `fn(image_shape) -> [offset_y, offset_x, height, width]`, or None when
      the preprocessing has no such crop (lenet, cifarnet and vgg crop after
      resizing or padding the whole image).

    Raises:
      ValueError: if `name` is neither a preprocessing nor a network name.
    """
    module, _ = _resolve(name)
    return _TRAINING_CROP_WINDOWS.get(module)
