"""Classifies image files with an export or a checkpoint, as a library.

`load_model(path, ...)` recognises what `path` holds:

* a SavedModel directory: its `serving_default` signature decodes and
  preprocesses the images itself;
* a TFLite model (by its file identifier) or a GraphDef file (binary or
  text): these read preprocessed images on `input`, so the images are decoded
  and given the preprocessing of `model_name` here, at the size and channels
  of the model's input;
* a checkpoint file or directory: the net `model_name` is built and its
  weights restored; the class count is that of the labels.

Every kind decodes images with `tf.io.decode_image`, as training read them, so
the probabilities match the evaluation of the same weights.
"""

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import tensorflow.compat.v1 as tf
from google.protobuf import message, text_format

from slim_classifier.runtime import checkpoints
from slim_classifier.serving import inference, labels

SAVED_MODEL_FILENAMES = ('saved_model.pb', 'saved_model.pbtxt')
# A TFLite flatbuffer carries this file identifier at bytes 4 to 8.
_TFLITE_IDENTIFIER = b'TFL3'


@dataclasses.dataclass
class LoadedModel:
    """A model ready to classify encoded images.

    Attributes:
      kind: 'saved_model', 'tflite', 'graphdef' or 'checkpoint'.
      path: what was loaded (for a checkpoint, the checkpoint file).
      predict: encoded image bytes -> probabilities [num_classes].
      close: releases the model's session.
    """
    kind: str
    path: str
    predict: Callable[[bytes], np.ndarray]
    close: Callable[[], None]


def _is_saved_model(path: str) -> bool:
    return any(tf.io.gfile.exists(os.path.join(path, name)) for name in SAVED_MODEL_FILENAMES)


def _is_checkpoint(path: str) -> bool:
    return (tf.io.gfile.isdir(path) or path.endswith(('.index', '.meta'))
            or tf.io.gfile.exists(path + '.index'))


def model_kind(path: str) -> str:
    """'saved_model', 'checkpoint', 'tflite' or 'graphdef', from what is at `path`.

    Raises:
      FileNotFoundError: if nothing is there.
    """
    if tf.io.gfile.isdir(path) and _is_saved_model(path):
        return 'saved_model'
    if _is_checkpoint(path):
        return 'checkpoint'
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError("--model_path '%s' does not exist" % path)
    with tf.io.gfile.GFile(path, 'rb') as model_file:
        header = model_file.read(8)
    return 'tflite' if header[4:8] == _TFLITE_IDENTIFIER else 'graphdef'


def load_model(path: str, model_name: str, num_classes: int | None = None,
               preprocessing_name: str | None = None, image_size: int | None = None,
               use_grayscale: bool = False,
               moving_average_decay: float | None = None) -> LoadedModel:
    """Loads an export or a checkpoint for `LoadedModel.predict`.

    Args:
      path: a SavedModel directory, a TFLite or GraphDef file, or a
        checkpoint file or directory.
      model_name: the network; picks the preprocessing of TFLite and GraphDef
        models, and the net of a checkpoint.
      num_classes: the class count; needed for a checkpoint only.
      preprocessing_name: overrides the net's preprocessing.
      image_size: a checkpoint's input size; the net's default if None.
        Exports carry their own.
      use_grayscale: a checkpoint's net reads 1-channel images. Exports
        carry their own channel count.
      moving_average_decay: restore a checkpoint's moving averages.

    Returns:
      The LoadedModel.

    Raises:
      FileNotFoundError: if nothing is at `path`.
      ValueError: for a file that is no model, an unknown net, or a
        checkpoint without `num_classes`.
      CheckpointMismatch: a checkpoint that does not fit the net.
    """
    kind = model_kind(path)
    preprocessing_name = preprocessing_name or model_name
    if kind == 'saved_model':
        return _load_saved_model(path)
    if kind == 'tflite':
        return _load_tflite(path, preprocessing_name)
    if kind == 'graphdef':
        return _load_graph_def(path, preprocessing_name)
    if not num_classes:
        raise ValueError('classifying with a checkpoint needs the class count: give a labels '
                         'file')
    return _load_checkpoint(path, model_name, num_classes, preprocessing_name, image_size,
                            use_grayscale, moving_average_decay)


def _session_model(kind: str, path: str, session: tf.Session, encoded_images: tf.Tensor,
                   probabilities: tf.Tensor) -> LoadedModel:
    def predict(encoded: bytes) -> np.ndarray:
        return session.run(probabilities, {encoded_images: [encoded]})[0]
    return LoadedModel(kind, path, predict, session.close)


def _load_saved_model(path: str) -> LoadedModel:
    graph = tf.Graph()
    session = tf.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.saved_model.loader.load(session, [tf.saved_model.tag_constants.SERVING],
                                                path)
    signature = meta_graph.signature_def[tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
    encoded_images = graph.get_tensor_by_name(
        signature.inputs[inference.ENCODED_INPUT_NAME].name)
    probabilities = graph.get_tensor_by_name(signature.outputs['probabilities'].name)
    return _session_model('saved_model', path, session, encoded_images, probabilities)


def _read_graph_def(path: str) -> tf.GraphDef:
    """Parses a binary or text GraphDef.

    Raises:
      ValueError: if the file is neither.
    """
    with tf.io.gfile.GFile(path, 'rb') as graph_file:
        contents = graph_file.read()
    graph_def = tf.GraphDef()
    try:
        graph_def.ParseFromString(contents)
        return graph_def
    except message.DecodeError:
        pass
    try:
        return text_format.Parse(contents.decode('utf-8'), tf.GraphDef())
    except (text_format.ParseError, UnicodeDecodeError):
        raise ValueError("'%s' is not a SavedModel, TFLite model, GraphDef or checkpoint"
                         % path) from None


def _graph_input_shape(graph_def: tf.GraphDef, path: str) -> list[int]:
    """[batch, height, width, channels] of the `input` placeholder.

    Raises:
      ValueError: if the graph has no 4-D `input` placeholder of known size.
    """
    for node in graph_def.node:
        if node.name == inference.INPUT_NAME and node.op == 'Placeholder':
            shape = [dim.size for dim in node.attr['shape'].shape.dim]
            if len(shape) == 4 and min(shape[1:]) > 0:
                return shape
    raise ValueError("GraphDef '%s' has no placeholder '%s' [batch, height, width, channels]; "
                     'export it with export_inference_graph.py' % (path, inference.INPUT_NAME))


def _check_output(graph_def: tf.GraphDef, path: str) -> None:
    if not any(node.name == inference.OUTPUT_NAME for node in graph_def.node):
        raise ValueError("GraphDef '%s' has no op '%s' (the probabilities); export it with "
                         'export_inference_graph.py' % (path, inference.OUTPUT_NAME))


def _check_frozen(graph_def: tf.GraphDef, path: str) -> None:
    if any(node.op in ('VariableV2', 'VarHandleOp') for node in graph_def.node):
        raise ValueError("GraphDef '%s' holds variables, not weights: export it with "
                         '--checkpoint_path to freeze it' % path)


def _load_graph_def(path: str, preprocessing_name: str) -> LoadedModel:
    graph_def = _read_graph_def(path)
    _, size, _, channels = _graph_input_shape(graph_def, path)
    _check_output(graph_def, path)
    _check_frozen(graph_def, path)
    graph = tf.Graph()
    with graph.as_default():
        encoded_images = tf.placeholder(tf.string, [None])
        images = inference.decode_and_preprocess(
            encoded_images, preprocessing_name, size,
            use_grayscale=channels == inference.GRAYSCALE_CHANNELS)
        probabilities, = tf.import_graph_def(
            graph_def, input_map={inference.INPUT_NAME: images},
            return_elements=[inference.OUTPUT_NAME + ':0'], name='model')
    return _session_model('graphdef', path, tf.Session(graph=graph), encoded_images,
                          probabilities)


def _load_tflite(path: str, preprocessing_name: str) -> LoadedModel:
    interpreter = tf.lite.Interpreter(model_path=path)
    input_detail = interpreter.get_input_details()[0]
    _, size, _, channels = input_detail['shape']
    interpreter.allocate_tensors()
    graph = tf.Graph()
    with graph.as_default():
        encoded_images = tf.placeholder(tf.string, [1])
        images = inference.decode_and_preprocess(
            encoded_images, preprocessing_name, int(size),
            use_grayscale=channels == inference.GRAYSCALE_CHANNELS)
    session = tf.Session(graph=graph)
    output_index = interpreter.get_output_details()[0]['index']

    def predict(encoded: bytes) -> np.ndarray:
        interpreter.set_tensor(input_detail['index'],
                               session.run(images, {encoded_images: [encoded]}))
        interpreter.invoke()
        return interpreter.get_tensor(output_index)[0]

    return LoadedModel('tflite', path, predict, session.close)


def _load_checkpoint(path: str, model_name: str, num_classes: int, preprocessing_name: str,
                     image_size: int | None, use_grayscale: bool,
                     moving_average_decay: float | None) -> LoadedModel:
    graph = tf.Graph()
    with graph.as_default():
        model = inference.build_inference_graph(
            model_name, num_classes, image_size=image_size, use_grayscale=use_grayscale,
            encoded_input=True, preprocessing_name=preprocessing_name)
        restorer = checkpoints.CheckpointRestorer(model_name, num_classes, moving_average_decay)
    session = tf.Session(graph=graph)
    try:
        checkpoint = restorer.restore(session, path)
    except BaseException:
        session.close()
        raise
    return _session_model('checkpoint', checkpoint, session, model.encoded_images,
                          model.encoded_probabilities)


def default_labels_file(path: str) -> str:
    """labels.txt where an export puts it: inside a directory, else beside the file."""
    directory = path if tf.io.gfile.isdir(path) else os.path.dirname(path)
    return os.path.join(directory, labels.LABELS_FILENAME)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One of the likeliest classes of an image."""
    class_id: int
    name: str
    probability: float


def top_k(probabilities: np.ndarray, class_names: list[str] | None, k: int
          ) -> list[Prediction]:
    """The k likeliest classes, most likely first; unnamed classes are named by id.

    Raises:
      ValueError: if the names do not match the number of probabilities.
    """
    if class_names is not None and len(class_names) != len(probabilities):
        raise ValueError('the labels name %d classes but the model gives %d probabilities; '
                         'check the labels file and labels_offset'
                         % (len(class_names), len(probabilities)))
    order = np.argsort(-probabilities, kind='stable')[:k]
    return [Prediction(int(index), class_names[index] if class_names else str(index),
                       float(probabilities[index])) for index in order]


def classify_file(model: LoadedModel, image_path: str) -> np.ndarray:
    """The probabilities of one image file.

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: if it is not an image TensorFlow decodes.
    """
    if not tf.io.gfile.exists(image_path):
        raise FileNotFoundError("image '%s' does not exist" % image_path)
    with tf.io.gfile.GFile(image_path, 'rb') as image_file:
        encoded = image_file.read()
    try:
        return model.predict(encoded)
    except tf.errors.InvalidArgumentError as error:
        raise ValueError("cannot classify '%s': %s" % (image_path, _reason(error))) from None


def _reason(error: tf.errors.OpError) -> str:
    """TensorFlow's explanation, without its preamble and node names."""
    lines = [line.strip() for line in error.message.splitlines()]
    lines = [line for line in lines
             if line and not line.startswith('[[') and line != 'Graph execution error:']
    return lines[-1] if lines else type(error).__name__
