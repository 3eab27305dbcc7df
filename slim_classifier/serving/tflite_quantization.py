"""TFLite models with quantized weights, or integer ops calibrated on real images.

The modes of `--quantization`:

* `none`: the float model.
* `dynamic_range`: weights stored as int8 (about 4x smaller), activations
  float; no calibration.
* `float16`: weights stored as float16 (about 2x smaller).
* `int8`: weights and activations int8, every op integer; input and output
  stay float (quantized and dequantized inside the model). The activations'
  ranges are calibrated on real images.
* `int8_io`: as `int8`, with uint8 input and output, like the published
  quantized MobileNets: a caller quantizes its preprocessed images as
  `round(image / scale) + zero_point` with the input's scale and zero point,
  and reads the probabilities as `(output - zero_point) * scale`.

The converter leaves an op that has no integer kernel in float without a word,
so an integer conversion is checked op by op afterwards, and an op that stayed
float is reported by name (QuantizationError), as are the ops the converter
itself refuses.
"""

import dataclasses
import re
from collections.abc import Iterator

import numpy as np
import tensorflow.compat.v1 as tf

from datasets import dataset_factory, input_pipeline
from slim_classifier.errors import UserError
from slim_classifier.runtime import batches
from slim_classifier.serving.config import CALIBRATED_QUANTIZATIONS

# Ops that only move values between float and integer: allowed around an integer model.
_CONVERSION_OPS = ('QUANTIZE', 'DEQUANTIZE')
# How the converter names the ops it refuses, in its messages.
_REFUSED_OP_PATTERNS = (
    re.compile(r"'tfl?\.(\w+)' op"),
    re.compile(r"Quantization not yet supported for op: '(\w+)'"),
    re.compile(r'TF Select ops: ([\w, ]+)'),
)
_CALIBRATION_BATCH_SIZE = 32


class QuantizationError(UserError):
    """The net cannot be quantized as asked: the message names the ops at fault."""


@dataclasses.dataclass(frozen=True)
class TensorQuantization:
    """How a model's input or output is stored.

    Attributes:
      dtype: 'float32', 'uint8' or 'int8'.
      scale, zero_point: real value = (stored - zero_point) * scale, for an
        integer tensor; None for a float one.
    """
    dtype: str
    scale: float | None = None
    zero_point: int | None = None


FLOAT = TensorQuantization('float32')


def calibration_images(dataset_name: str, dataset_dir: str, split_name: str,
                       preprocessing_name: str, image_size: int, use_grayscale: bool,
                       count: int) -> np.ndarray:
    """The first `count` images of a split, given the net's evaluation preprocessing.

    Returns:
      float32 [n, image_size, image_size, channels], n = `count` or the
      split's size if smaller.

    Raises:
      FileNotFoundError, ValueError: as `dataset_factory.get_dataset`, for a
        missing dataset or an unknown split.
    """
    with tf.Graph().as_default():
        try:
            dataset = dataset_factory.get_dataset(dataset_name, split_name, dataset_dir)
        except ValueError as error:
            raise ValueError('--calibration_split=%s: %s' % (split_name, error)) from None
        images, _ = input_pipeline.one_shot_batch(batches.evaluation_batches(
            dataset, preprocessing_name, image_size, min(count, _CALIBRATION_BATCH_SIZE),
            use_grayscale=use_grayscale))
        collected = []
        with tf.Session() as session:
            while sum(len(batch) for batch in collected) < count:
                try:
                    collected.append(session.run(images))
                except tf.errors.OutOfRangeError:
                    break
    if not collected:
        raise ValueError("--calibration_split=%s of %s has no images to calibrate on"
                         % (split_name, dataset_dir))
    return np.concatenate(collected)[:count]


def convert(session: tf.Session, images: tf.Tensor, probabilities: tf.Tensor, mode: str,
            calibration: np.ndarray | None = None) -> bytes:
    """The TFLite model of `images` -> `probabilities` in `session`, quantized as `mode` says.

    Args:
      session: holds the net's weights.
      images, probabilities: the model's input and output.
      mode: one of config.QUANTIZATIONS (see the module docstring).
      calibration: preprocessed images [n, height, width, channels], for the
        int8 modes.

    Raises:
      ValueError: an int8 mode without calibration images.
      QuantizationError: an op could not be quantized (or converted); the
        message names it.
    """
    converter = tf.lite.TFLiteConverter.from_session(session, [images], [probabilities])
    if mode != 'none':
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == 'float16':
        converter.target_spec.supported_types = [tf.float16]
    if mode in CALIBRATED_QUANTIZATIONS:
        if calibration is None or not len(calibration):
            raise ValueError('--quantization=%s needs calibration images' % mode)
        converter.representative_dataset = lambda: _one_by_one(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if mode == 'int8_io':
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    try:
        contents = converter.convert()
    # The converter's own error class is not public API, and its older quantizer raises
    # RuntimeError: any failure here is the converter refusing the graph.
    except Exception as error:  # pylint: disable=broad-except
        raise QuantizationError('--quantization=%s: the TFLite converter refused %s'
                                % (mode, _refused_ops(str(error)))) from None
    if mode in CALIBRATED_QUANTIZATIONS:
        _check_integer(contents, mode)
    return contents


def _one_by_one(images: np.ndarray) -> Iterator[list[np.ndarray]]:
    for image in images:
        yield [image[np.newaxis]]


def _refused_ops(message: str) -> str:
    """The ops that a converter message names, or its first line if it names none."""
    names = []
    for pattern in _REFUSED_OP_PATTERNS:
        for match in pattern.findall(message):
            names.extend(name.strip() for name in match.split(','))
    if names:
        return 'the ops ' + ', '.join(sorted(set(names)))
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return '(%s)' % (lines[0] if lines else 'no reason given')


def _check_integer(contents: bytes, mode: str) -> None:
    """Raises QuantizationError naming the ops of an integer model that stayed float."""
    interpreter = tf.lite.Interpreter(model_content=contents)
    tensors = {detail['index']: detail for detail in interpreter.get_tensor_details()}
    float_ops = []
    # The interpreter's op listing is not public API, but the only one that TensorFlow has.
    for op in interpreter._get_ops_details():  # pylint: disable=protected-access
        outputs = [tensors[index] for index in op['outputs'] if index >= 0]
        if op['op_name'] not in _CONVERSION_OPS and any(
                output['dtype'] == np.float32 for output in outputs):
            float_ops.append('%s (%s)' % (op['op_name'], outputs[0]['name']))
    if float_ops:
        raise QuantizationError('--quantization=%s: these ops have no integer kernel and would '
                                'run in float: %s; export with --quantization=dynamic_range, '
                                'or without them' % (mode, ', '.join(float_ops)))


def io_quantization(contents: bytes) -> tuple[TensorQuantization, TensorQuantization]:
    """How the input and the output of a TFLite model are stored."""
    interpreter = tf.lite.Interpreter(model_content=contents)
    return (_described(interpreter.get_input_details()[0]),
            _described(interpreter.get_output_details()[0]))


def _described(detail: dict) -> TensorQuantization:
    dtype = np.dtype(detail['dtype']).name
    if dtype == 'float32':
        return TensorQuantization(dtype)
    scale, zero_point = detail['quantization']
    return TensorQuantization(dtype, float(scale), int(zero_point))
