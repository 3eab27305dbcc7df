"""Classifies image files with an export or a checkpoint, as a library.

`load_model(path, ...)` recognises what `path` holds:

* a SavedModel directory: its `serving_default` signature decodes and
  preprocesses the images itself;
* a TFLite model (by its file identifier), a GraphDef file (binary or
  text) or an ONNX model (a `.onnx` file, run by ONNX Runtime, the optional
  `onnx` extra): these read preprocessed images on `input`, so the images are
  decoded and given the preprocessing of `model_name` here, at the size and
  channels of the model's input; a TFLite model with uint8 or int8 input and
  output is fed and read through its scale and zero point;
* a checkpoint file or directory: the net `model_name` is built and its
  weights restored; the class count is that of the labels, and a multi-label
  net (`multi_label`) gives per-label sigmoid probabilities, as its exports
  do. A checkpoint also gives the net's pre-logits features
  (`features=True`): the output of the net built without logits
  (`num_classes=0`), e.g. LeNet's `fc3`, CifarNet's `fc4`, VGG's and
  AlexNet's `fc7`, the final average pool of the Inception, ResNet,
  MobileNet and NASNet families; exports carry the probabilities only.

Every kind decodes images with `tf.io.decode_image`, as training read them, so
the probabilities match the evaluation of the same weights. A model classifies
a batch of images in one call (`LoadedModel.predict_batch`); TFLite and ONNX
models also give its halves (`prepare` and `infer`), so that a caller may
decode the next batch while the model runs (`prepare_each`, `infer_prepared`).
A single-label image's classes are its `top_k`; a multi-label image's labels
are those at or above their thresholds (`labels_above`).
"""

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import tensorflow.compat.v1 as tf
from google.protobuf import message, text_format

from nets import nets_factory
from slim_classifier.errors import MissingExtraError
from slim_classifier.runtime import checkpoints
from slim_classifier.serving import inference, labels

SAVED_MODEL_FILENAMES = ('saved_model.pb', 'saved_model.pbtxt')
ONNX_SUFFIX = '.onnx'
ONNX_INSTALL_HINT = 'pip install .[onnx]'
# The kinds whose nets are built here, so that their pre-logits features can be read.
FEATURE_KINDS = ('checkpoint',)
# A TFLite flatbuffer carries this file identifier at bytes 4 to 8.
_TFLITE_IDENTIFIER = b'TFL3'


@dataclasses.dataclass
class LoadedModel:
    """A model ready to classify encoded images.

    Attributes:
      kind: 'saved_model', 'tflite', 'graphdef', 'onnx' or 'checkpoint'.
      path: what was loaded (for a checkpoint, the checkpoint file).
      predict_batch: a list of encoded images -> outputs [images, output_size]
        (the probabilities, or the features of `load_model(features=True)`).
      close: releases the model's session.
      output_size: the number of outputs per image (the class count, or the
        feature dimension).
      thresholds: a multi-label model's threshold of each label (its outputs
        are sigmoid probabilities); None for a single-label model.
      prepare, infer: where decoding and preprocessing run apart from the
        model (TFLite, ONNX), `predict_batch` in its two halves: encoded
        images -> the model's input, and that input -> outputs. A caller may
        run them in different threads (one thread for each). None where one
        graph does both (a session model).
    """
    kind: str
    path: str
    predict_batch: Callable[[list[bytes]], np.ndarray]
    close: Callable[[], None]
    output_size: int
    thresholds: list[float] | None = None
    prepare: Callable[[list[bytes]], np.ndarray] | None = None
    infer: Callable[[np.ndarray], np.ndarray] | None = None

    def predict(self, encoded: bytes) -> np.ndarray:
        """The outputs [output_size] of one encoded image."""
        return self.predict_batch([encoded])[0]


def _is_saved_model(path: str) -> bool:
    return any(tf.io.gfile.exists(os.path.join(path, name)) for name in SAVED_MODEL_FILENAMES)


def _is_checkpoint(path: str) -> bool:
    return (tf.io.gfile.isdir(path) or path.endswith(('.index', '.meta'))
            or tf.io.gfile.exists(path + '.index'))


def model_kind(path: str) -> str:
    """'saved_model', 'checkpoint', 'tflite', 'onnx' or 'graphdef', from what is at `path`.

    An ONNX model is known by its `.onnx` suffix, a TFLite model by its file
    identifier; any other file is read as a GraphDef.

    Raises:
      FileNotFoundError: if nothing is there.
    """
    if tf.io.gfile.isdir(path) and _is_saved_model(path):
        return 'saved_model'
    if _is_checkpoint(path):
        return 'checkpoint'
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError("--model_path '%s' does not exist" % path)
    if path.lower().endswith(ONNX_SUFFIX):
        return 'onnx'
    with tf.io.gfile.GFile(path, 'rb') as model_file:
        header = model_file.read(8)
    return 'tflite' if header[4:8] == _TFLITE_IDENTIFIER else 'graphdef'


def load_model(path: str, model_name: str, num_classes: int | None = None,
               preprocessing_name: str | None = None, image_size: int | None = None,
               use_grayscale: bool = False, moving_average_decay: float | None = None,
               features: bool = False, multi_label: bool = False) -> LoadedModel:
    """Loads an export or a checkpoint for `LoadedModel.predict_batch`.

    Args:
      path: a SavedModel directory, a TFLite, GraphDef or ONNX file, or a
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
      features: give the net's pre-logits features instead of the
        probabilities (a checkpoint only; see the module docstring).
      multi_label: a checkpoint's net gives per-label sigmoid probabilities.
        Exports carry their own output.

    Returns:
      The LoadedModel.

    Raises:
      FileNotFoundError: if nothing is at `path`.
      ValueError: for a file that is no model, an unknown net, a checkpoint
        without `num_classes`, or `features` of an export.
      MissingExtraError: an ONNX model without ONNX Runtime installed.
      CheckpointMismatch: a checkpoint that does not fit the net.
    """
    kind = model_kind(path)
    preprocessing_name = preprocessing_name or model_name
    if features and kind not in FEATURE_KINDS:
        raise ValueError('--output_type=features needs a checkpoint or training directory '
                         "(the net's pre-logits end point); the %s export '%s' gives the "
                         'probabilities only' % (kind, path))
    if features:
        return _load_checkpoint_features(path, model_name, num_classes, preprocessing_name,
                                         image_size, use_grayscale, moving_average_decay)
    if kind == 'saved_model':
        return _load_saved_model(path)
    if kind == 'tflite':
        return _load_tflite(path, preprocessing_name)
    if kind == 'onnx':
        return _load_onnx(path, preprocessing_name)
    if kind == 'graphdef':
        return _load_graph_def(path, preprocessing_name)
    if not num_classes:
        raise ValueError('classifying with a checkpoint needs the class count: give a labels '
                         'file')
    return _load_checkpoint(path, model_name, num_classes, preprocessing_name, image_size,
                            use_grayscale, moving_average_decay, multi_label)


def _session_model(kind: str, path: str, session: tf.Session, encoded_images: tf.Tensor,
                   outputs: tf.Tensor, one_at_a_time: bool = False) -> LoadedModel:
    def predict_batch(encoded: list[bytes]) -> np.ndarray:
        if one_at_a_time:
            return np.concatenate([session.run(outputs, {encoded_images: [one]})
                                   for one in encoded])
        return session.run(outputs, {encoded_images: list(encoded)})
    return LoadedModel(kind, path, predict_batch, session.close, int(outputs.shape[-1]))


def _preprocessing_session(preprocessing_name: str, size: int, channels: int
                           ) -> tuple[Callable[[list[bytes]], np.ndarray], tf.Session]:
    """(encoded images -> the preprocessed images a model of `size` and `channels` reads,
    the session to close)."""
    graph = tf.Graph()
    with graph.as_default():
        encoded_images = tf.placeholder(tf.string, [None])
        images = inference.decode_and_preprocess(
            encoded_images, preprocessing_name, size,
            use_grayscale=channels == inference.GRAYSCALE_CHANNELS)
    session = tf.Session(graph=graph)

    def preprocess(encoded: list[bytes]) -> np.ndarray:
        return session.run(images, {encoded_images: list(encoded)})
    return preprocess, session


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
    batch_size, size, _, channels = _graph_input_shape(graph_def, path)
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
    # A graph exported with --batch_size=1 reads its images one at a time.
    return _session_model('graphdef', path, tf.Session(graph=graph), encoded_images,
                          probabilities, one_at_a_time=batch_size == 1)


def _load_tflite(path: str, preprocessing_name: str) -> LoadedModel:
    interpreter = tf.lite.Interpreter(model_path=path)
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    _, size, _, channels = input_detail['shape']
    # A model exported for any batch size takes a batch at once; one of fixed
    # batch size takes its images one at a time.
    resizable = input_detail['shape_signature'][0] == -1
    interpreter.allocate_tensors()
    preprocess, session = _preprocessing_session(preprocessing_name, int(size), int(channels))
    input_index = input_detail['index']

    def invoke(images: np.ndarray) -> np.ndarray:
        if tuple(interpreter.get_input_details()[0]['shape']) != images.shape:
            interpreter.resize_tensor_input(input_index, images.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(input_index, _stored(images, input_detail))
        interpreter.invoke()
        return _real(interpreter.get_tensor(output_detail['index']), output_detail)

    def infer(images: np.ndarray) -> np.ndarray:
        if resizable:
            return invoke(images)
        return np.concatenate([invoke(image[np.newaxis]) for image in images])

    return LoadedModel('tflite', path, lambda encoded: infer(preprocess(encoded)), session.close,
                       int(output_detail['shape'][-1]), prepare=preprocess, infer=infer)


def _stored(values: np.ndarray, detail: dict) -> np.ndarray:
    """Real values as a TFLite tensor stores them: quantized for an integer tensor."""
    dtype = np.dtype(detail['dtype'])
    if dtype.kind == 'f':
        return values.astype(dtype)
    scale, zero_point = detail['quantization']
    limits = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, limits.min, limits.max).astype(dtype)


def _real(values: np.ndarray, detail: dict) -> np.ndarray:
    """The real values of a TFLite tensor: dequantized for an integer tensor."""
    if np.dtype(detail['dtype']).kind == 'f':
        return values.astype(np.float32)
    scale, zero_point = detail['quantization']
    return (values.astype(np.float32) - zero_point) * np.float32(scale)


def _load_onnx(path: str, preprocessing_name: str) -> LoadedModel:
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError("'%s' is an ONNX model: running it needs the optional 'onnx' "
                                'extra (onnxruntime is not installed): %s'
                                % (path, ONNX_INSTALL_HINT)) from None
    try:
        runtime = onnxruntime.InferenceSession(
            path, providers=onnxruntime.get_available_providers())
    # ONNX Runtime's load failures share no base class a caller can name.
    except Exception as error:  # pylint: disable=broad-except
        reason = ' '.join(str(error).split()) or type(error).__name__
        raise ValueError("'%s' is not an ONNX model that ONNX Runtime can run: %s"
                         % (path, reason)) from None
    model_input = runtime.get_inputs()[0]
    outputs = runtime.get_outputs()
    output = next((candidate for candidate in outputs
                   if candidate.name.split(':')[0] == inference.OUTPUT_NAME), outputs[0])
    shape = model_input.shape
    if len(shape) != 4 or not all(isinstance(dim, int) and dim > 0 for dim in shape[1:]):
        raise ValueError("ONNX model '%s' reads %s %s; expected images [batch, height, width, "
                         'channels] of known size: export it with export_inference_graph.py'
                         % (path, model_input.name, shape))
    preprocess, session = _preprocessing_session(preprocessing_name, shape[1], shape[3])

    def infer(images: np.ndarray) -> np.ndarray:
        return runtime.run([output.name], {model_input.name: images})[0]

    return LoadedModel('onnx', path, lambda encoded: infer(preprocess(encoded)), session.close,
                       int(output.shape[-1]), prepare=preprocess, infer=infer)


def _load_checkpoint(path: str, model_name: str, num_classes: int, preprocessing_name: str,
                     image_size: int | None, use_grayscale: bool,
                     moving_average_decay: float | None, multi_label: bool) -> LoadedModel:
    graph = tf.Graph()
    with graph.as_default():
        model = inference.build_inference_graph(
            model_name, num_classes, image_size=image_size, use_grayscale=use_grayscale,
            encoded_input=True, preprocessing_name=preprocessing_name,
            multi_label=multi_label)
        restorer = checkpoints.CheckpointRestorer(model_name, num_classes, moving_average_decay)
    session = tf.Session(graph=graph)
    try:
        checkpoint = restorer.restore(session, path)
    except BaseException:
        session.close()
        raise
    return _session_model('checkpoint', checkpoint, session, model.encoded_images,
                          model.encoded_probabilities)


def _load_checkpoint_features(path: str, model_name: str, num_classes: int | None,
                              preprocessing_name: str, image_size: int | None,
                              use_grayscale: bool,
                              moving_average_decay: float | None) -> LoadedModel:
    """The net without its logits layer, restored: its output is the pre-logits features."""
    graph = tf.Graph()
    with graph.as_default():
        network_fn = nets_factory.get_network_fn(model_name, 0)
        encoded_images = tf.placeholder(tf.string, [None])
        images = inference.decode_and_preprocess(
            encoded_images, preprocessing_name, image_size or network_fn.default_image_size,
            use_grayscale)
        channels = inference.input_channels(model_name, use_grayscale)
        if images.shape[-1] != channels:
            raise ValueError("preprocessing '%s' gives %d-channel images but %s reads %d; set "
                             '--use_grayscale or choose another preprocessing'
                             % (preprocessing_name, images.shape[-1], model_name, channels))
        features, _ = network_fn(images)
        # Most nets give [batch, 1, 1, channels] after their final pool.
        features = tf.reshape(features, [-1, int(np.prod(features.shape[1:]))])
        restorer = checkpoints.CheckpointRestorer(model_name, num_classes or 0,
                                                  moving_average_decay)
    session = tf.Session(graph=graph)
    try:
        checkpoint = restorer.restore(session, path)
    except BaseException:
        session.close()
        raise
    return _session_model('checkpoint', checkpoint, session, encoded_images, features)


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


def labels_above(probabilities: np.ndarray, class_names: list[str] | None,
                 thresholds: list[float]) -> list[Prediction]:
    """A multi-label image's labels: those at or above their threshold, likeliest first.

    Raises:
      ValueError: if the names or thresholds do not match the number of probabilities.
    """
    if len(thresholds) != len(probabilities):
        raise ValueError('%d thresholds for the %d labels of the model; check the thresholds '
                         'and the labels file' % (len(thresholds), len(probabilities)))
    ranked = top_k(probabilities, class_names, len(probabilities))
    return [label for label in ranked if label.probability >= thresholds[label.class_id]]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a model made of one image: its outputs, or why it could not read it."""
    outputs: np.ndarray | None = None
    error: str | None = None


def predict_each(model: LoadedModel, encoded_images: list[bytes]) -> list[Outcome]:
    """The outcome of each image: one model call, or one per image if some cannot be read.

    An image TensorFlow cannot decode fails the whole batch, so the batch is
    then run image by image to tell which.
    """
    outputs, errors = _each(model.predict_batch, encoded_images)
    return _outcomes_of(outputs, errors)


@dataclasses.dataclass
class Prepared:
    """A batch made ready for `LoadedModel.infer` (`prepare_each`).

    Attributes:
      inputs: the model's input for the images that could be read, in order;
        None if none could.
      errors: for each image, None, or why it could not be read.
    """
    inputs: np.ndarray | None
    errors: list[str | None]


def prepare_each(model: LoadedModel, encoded_images: list[bytes]) -> Prepared:
    """`model.prepare` on the images: one call, or one per image if some cannot be read."""
    if not encoded_images:
        return Prepared(None, [])
    return Prepared(*_each(model.prepare, encoded_images))


def infer_prepared(model: LoadedModel, prepared: Prepared) -> list[Outcome]:
    """The outcome of each image of a prepared batch: `prepare_each` then this is
    `predict_each`, in two halves that may run in two threads."""
    outputs = model.infer(prepared.inputs) if prepared.inputs is not None else None
    return _outcomes_of(outputs, prepared.errors)


def _each(run: Callable[[list[bytes]], np.ndarray], encoded_images: list[bytes]
          ) -> tuple[np.ndarray | None, list[str | None]]:
    """(`run` on the images that TensorFlow can decode, stacked, or None if none can;
    for each image, None or why it cannot be decoded)."""
    try:
        return run(encoded_images), [None] * len(encoded_images)
    except tf.errors.InvalidArgumentError as error:
        if len(encoded_images) == 1:
            return None, [_reason(error)]
    results, errors = [], []
    for encoded in encoded_images:
        try:
            results.append(run([encoded]))
            errors.append(None)
        except tf.errors.InvalidArgumentError as error:
            errors.append(_reason(error))
    return (np.concatenate(results) if results else None), errors


def _outcomes_of(outputs: np.ndarray | None, errors: list[str | None]) -> list[Outcome]:
    """Each image's Outcome: the next row of `outputs` (those of the readable images,
    in order), or its error."""
    rows = iter(() if outputs is None else outputs)
    return [Outcome(error=error) if error is not None else Outcome(next(rows))
            for error in errors]


def read_image(image_path: str) -> bytes:
    """The bytes of an image file.

    Raises:
      FileNotFoundError: if the file does not exist.
    """
    if not tf.io.gfile.exists(image_path):
        raise FileNotFoundError("image '%s' does not exist" % image_path)
    with tf.io.gfile.GFile(image_path, 'rb') as image_file:
        return image_file.read()


def classify_file(model: LoadedModel, image_path: str) -> np.ndarray:
    """The probabilities of one image file.

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: if it is not an image TensorFlow decodes.
    """
    encoded = read_image(image_path)
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
