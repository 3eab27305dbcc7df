"""Exports a net for inference, as a library: a GraphDef, a SavedModel or a TFLite model.

Every export reads preprocessed float images on the placeholder `input`
([batch, size, size, channels]) and gives the class probabilities as the op
`output`: a softmax, or for a multi-label net (`multi_label`) one sigmoid
probability per label. Its metadata (net, preprocessing, input size and
channels, labels offset, class names, and a multi-label net's threshold of
each label; see serving/metadata.py) is written beside a file export as
`<output_file>.json`, and inside a SavedModel as `export.json` with
`labels.txt`.

* `graphdef`: the inference GraphDef; with a checkpoint, frozen (variables
  folded into constants), ready for `tf.import_graph_def`.
* `saved_model`: a SavedModel with two signatures: `serving_default` takes
  encoded image bytes (`encoded_images`, string [batch]) and decodes and
  preprocesses them inside; `images` takes preprocessed float `images`. Both
  return `probabilities` and `classes` (the likeliest), and for a multi-label
  net `above_threshold` (bool [batch, labels]: each label at or above its
  threshold).
* `tflite`: a TFLite flatbuffer of the frozen graph; `quantization` makes
  its weights int8 or float16, or all its ops integer, calibrated on the
  first images of a dataset split (see serving/tflite_quantization.py). The
  metadata then records the mode, and the scale and zero point of an integer
  input or output.
* `onnx`: an ONNX model of the frozen graph (tf2onnx, the optional `onnx`
  extra; see serving/onnx_export.py).

Files appear complete or not at all: each is written under a temporary name
and renamed, so a failed export leaves no half file.
"""

import dataclasses
import os

import numpy as np
import tensorflow.compat.v1 as tf
from google.protobuf import text_format

from nets import nets_factory
from slim_classifier.runtime import checkpoints
from slim_classifier.runtime.files import AtomicDirectory, check_replaceable, write_atomically
from slim_classifier.serving import (inference, labels, metadata, multi_label, onnx_export,
                                     tflite_quantization)
from slim_classifier.serving.config import CALIBRATED_QUANTIZATIONS, ExportConfig

ENCODED_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
IMAGES_SIGNATURE = 'images'
IMAGES_INPUT_KEY = 'images'


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What was written and how to feed it.

    Attributes:
      path: the export (file or SavedModel directory).
      metadata_file: its metadata (net, preprocessing, input, class names).
      input_name: the input tensor's name ('input:0').
      output_name: the probabilities tensor's name ('output:0').
      input_shape: [batch, height, width, channels], batch None if any.
      output_shape: [batch, num_classes].
      checkpoint: the checkpoint file whose weights were exported, or None.
      signatures: SavedModel signature name -> its input key (empty for
        other formats).
      input_storage, output_storage: how the input and output are stored:
        float32, or integers with a scale and zero point (--quantization=int8_io).
      multi_label: the outputs are per-label sigmoid probabilities.
      thresholds: a multi-label export's threshold of each label, else None.
      thresholds_file: the thresholds.json they come from, or None.
    """
    path: str
    metadata_file: str
    input_name: str
    output_name: str
    input_shape: list[int | None]
    output_shape: list[int | None]
    checkpoint: str | None
    signatures: dict[str, str] = dataclasses.field(default_factory=dict)
    input_storage: tflite_quantization.TensorQuantization = tflite_quantization.FLOAT
    output_storage: tflite_quantization.TensorQuantization = tflite_quantization.FLOAT
    multi_label: bool = False
    thresholds: list[float] | None = None
    thresholds_file: str | None = None


def _check(config: ExportConfig) -> None:
    if config.export_format != 'graphdef' and not config.checkpoint_path:
        raise ValueError('--export_format=%s needs a --checkpoint_path: the weights to export'
                         % config.export_format)
    if config.write_text_graphdef and config.export_format != 'graphdef':
        raise ValueError('--write_text_graphdef applies to --export_format=graphdef only; got '
                         '%s' % config.export_format)
    if config.quantization != 'none' and config.export_format != 'tflite':
        raise ValueError('--quantization=%s applies to --export_format=tflite only; got '
                         '--export_format=%s' % (config.quantization, config.export_format))
    if config.threshold is not None and not config.multi_label:
        raise ValueError('--threshold=%g applies to a multi-label net only; give --multi_label '
                         'if this one is' % config.threshold)
    if config.quantization in CALIBRATED_QUANTIZATIONS and not config.dataset_dir:
        raise ValueError('--quantization=%s is calibrated on real images: give the '
                         '--dataset_dir whose --calibration_split=%s to read'
                         % (config.quantization, config.calibration_split))
    if config.export_format == 'saved_model' and os.path.isfile(config.output_file):
        raise ValueError("a SavedModel is a directory, but --output_file '%s' is a file"
                         % config.output_file)
    if config.export_format != 'saved_model':
        if os.path.isdir(config.output_file):
            raise ValueError("--output_file '%s' is a directory; --export_format=%s writes a "
                             'file' % (config.output_file, config.export_format))
        check_replaceable(config.output_file, _is_our_export, 'an export')


def _is_our_export(path: str) -> bool:
    """Whether `path` is an export of ours: its metadata says so."""
    try:
        return metadata.read(path) is not None
    except ValueError:
        return False


def export(config: ExportConfig) -> ExportResult:
    """Writes the export that `config` describes, and its metadata (see `metadata`).

    Returns:
      The ExportResult.

    Raises:
      ValueError: for an invalid config, unknown net or preprocessing.
      CheckpointMismatch: no checkpoint, or one that does not fit the net.
    """
    _check(config)
    graph = tf.Graph()
    with graph.as_default():
        model = inference.build_inference_graph(
            config.model_name, len(config.class_names), image_size=config.image_size,
            batch_size=config.batch_size, is_training=config.is_training,
            use_grayscale=config.use_grayscale,
            encoded_input=config.export_format == 'saved_model',
            preprocessing_name=config.preprocessing_name, multi_label=config.multi_label)
        restorer = (checkpoints.CheckpointRestorer(config.model_name, len(config.class_names),
                                                 config.moving_average_decay)
                    if config.checkpoint_path else None)
        with tf.Session() as session:
            checkpoint = restorer.restore(session, config.checkpoint_path) if restorer else None
            description = _metadata(config, model, checkpoint)
            if config.export_format == 'saved_model':
                _write_saved_model(config, session, model, description)
                storage = tflite_quantization.FLOAT, tflite_quantization.FLOAT
            else:
                storage = _write_file(config, session, model, checkpoint, description)
    signatures = ({ENCODED_SIGNATURE: inference.ENCODED_INPUT_NAME,
                   IMAGES_SIGNATURE: IMAGES_INPUT_KEY}
                  if config.export_format == 'saved_model' else {})
    return ExportResult(path=config.output_file,
                        metadata_file=metadata.metadata_path(config.output_file),
                        input_name=model.images.name, output_name=model.probabilities.name,
                        input_shape=model.images.shape.as_list(),
                        output_shape=model.probabilities.shape.as_list(), checkpoint=checkpoint,
                        signatures=signatures, input_storage=storage[0],
                        output_storage=storage[1], multi_label=description.multi_label,
                        thresholds=description.thresholds,
                        thresholds_file=description.thresholds_file)


def _metadata(config: ExportConfig, model: inference.InferenceGraph,
              checkpoint: str | None) -> metadata.ExportMetadata:
    thresholds, thresholds_file = (
        multi_label.label_thresholds(config.threshold, list(config.class_names), checkpoint)
        if config.multi_label else (None, None))
    return metadata.ExportMetadata(
        model_name=config.model_name,
        preprocessing_name=(config.preprocessing_name
                            or nets_factory.get_network_spec(config.model_name).preprocessing_name),
        image_size=model.image_size, channels=model.num_channels,
        labels_offset=config.labels_offset, class_names=list(config.class_names),
        export_format=config.export_format, input_name=model.images.name,
        output_name=model.probabilities.name, checkpoint=checkpoint,
        multi_label=config.multi_label, thresholds=thresholds, thresholds_file=thresholds_file)


def _write_file(config: ExportConfig, session: tf.Session, model: inference.InferenceGraph,
                checkpoint: str | None, description: metadata.ExportMetadata
                ) -> tuple[tflite_quantization.TensorQuantization,
                           tflite_quantization.TensorQuantization]:
    """Writes a GraphDef, TFLite or ONNX file, then its metadata beside it.

    Returns:
      How the model's input and output are stored.
    """
    storage = tflite_quantization.FLOAT, tflite_quantization.FLOAT
    if config.export_format == 'tflite':
        contents = tflite_quantization.convert(session, model.images, model.probabilities,
                                               config.quantization, _calibration(config, model))
        storage = tflite_quantization.io_quantization(contents)
        if config.quantization != 'none':
            description = _quantized(description, config.quantization, *storage)
    else:
        graph_def = session.graph.as_graph_def()
        if checkpoint:
            graph_def = tf.graph_util.convert_variables_to_constants(
                session, graph_def, [inference.OUTPUT_NAME])
        if config.export_format == 'onnx':
            contents = onnx_export.convert(graph_def, model.images.name,
                                           model.probabilities.name, config.onnx_opset)
        elif config.write_text_graphdef:
            contents = text_format.MessageToString(graph_def)
        else:
            contents = graph_def.SerializeToString()
    write_atomically(config.output_file, contents)
    metadata.write(metadata.metadata_path(config.output_file), description)
    return storage


def _calibration(config: ExportConfig,
                 model: inference.InferenceGraph) -> np.ndarray | None:
    """The preprocessed images that calibrate an int8 conversion, or None for other modes."""
    if config.quantization not in CALIBRATED_QUANTIZATIONS:
        return None
    return tflite_quantization.calibration_images(
        config.dataset_name, config.dataset_dir, config.calibration_split,
        config.preprocessing_name or config.model_name, model.image_size,
        model.num_channels == inference.GRAYSCALE_CHANNELS, config.calibration_steps)


def _quantized(description: metadata.ExportMetadata, mode: str,
               inputs: tflite_quantization.TensorQuantization,
               outputs: tflite_quantization.TensorQuantization) -> metadata.ExportMetadata:
    """`description` with the quantization mode and how the model's input and output are stored."""
    return dataclasses.replace(
        description, quantization=mode,
        input_dtype=inputs.dtype, input_scale=inputs.scale, input_zero_point=inputs.zero_point,
        output_dtype=outputs.dtype, output_scale=outputs.scale,
        output_zero_point=outputs.zero_point)


def _write_saved_model(config: ExportConfig, session: tf.Session,
                       model: inference.InferenceGraph,
                       description: metadata.ExportMetadata) -> None:
    """Writes the SavedModel directory, its metadata and labels.txt inside, all at once."""
    def signature(name, inputs, probabilities):
        outputs = {'probabilities': probabilities,
                   'classes': tf.argmax(probabilities, 1, name=name + '_classes')}
        if description.multi_label:
            outputs['above_threshold'] = tf.greater_equal(
                probabilities, tf.constant(description.thresholds, tf.float32),
                name=name + '_above_threshold')
        return tf.saved_model.signature_def_utils.predict_signature_def(
            inputs={name: inputs}, outputs=outputs)

    signatures = {
        ENCODED_SIGNATURE: signature(inference.ENCODED_INPUT_NAME, model.encoded_images,
                                     model.encoded_probabilities),
        IMAGES_SIGNATURE: signature(IMAGES_INPUT_KEY, model.images, model.probabilities),
    }
    with AtomicDirectory(config.output_file, _is_our_export, 'an export') as temporary:
        builder = tf.saved_model.builder.SavedModelBuilder(temporary)
        builder.add_meta_graph_and_variables(session, [tf.saved_model.tag_constants.SERVING],
                                             signature_def_map=signatures,
                                             strip_default_attrs=True)
        builder.save()
        labels.write_labels_file(os.path.join(temporary, labels.LABELS_FILENAME),
                                 config.class_names)
        metadata.write(os.path.join(temporary, metadata.SAVED_MODEL_FILENAME), description)
