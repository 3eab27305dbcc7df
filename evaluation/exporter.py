"""Exports a net for inference, as a library: a GraphDef, a SavedModel or a TFLite model.

Every export reads preprocessed float images on the placeholder `input`
([batch, size, size, channels]) and gives the class probabilities as the op
`output`; `labels.txt` (`<output index>:<class name>`) is written beside it.

* `graphdef`: the inference GraphDef; with a checkpoint, frozen (variables
  folded into constants), ready for `tf.import_graph_def`.
* `saved_model`: a SavedModel with two signatures: `serving_default` takes
  encoded image bytes (`encoded_images`, string [batch]) and decodes and
  preprocesses them inside; `images` takes preprocessed float `images`. Both
  return `probabilities` and `classes`.
* `tflite`: a TFLite flatbuffer of the frozen graph.

Files appear complete or not at all: each is written under a temporary name
and renamed, so a failed export leaves no half file.
"""

import dataclasses
import os

import tensorflow.compat.v1 as tf
from google.protobuf import text_format

from evaluation import inference, labels, restoring
from evaluation.files import AtomicDirectory, write_atomically

EXPORT_FORMATS = ('graphdef', 'saved_model', 'tflite')
ENCODED_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
IMAGES_SIGNATURE = 'images'
IMAGES_INPUT_KEY = 'images'


@dataclasses.dataclass
class ExportConfig:
    """Everything one export needs.

    Attributes:
      model_name: a registered network name.
      output_file: the file to write; a directory for `saved_model`.
      class_names: names by net output; their number is the class count.
      export_format: one of EXPORT_FORMATS.
      checkpoint_path: a checkpoint file or directory whose weights are
        frozen in; required except for an unfrozen `graphdef`.
      moving_average_decay: export the moving averages of the weights.
      is_training: export the training variant of the net.
      image_size: input height and width; the net's default if None.
      batch_size: static batch size; None accepts any.
      use_grayscale: the net reads 1-channel images.
      preprocessing_name: preprocessing of the SavedModel's encoded images;
        the net's own if None.
      write_text_graphdef: write a `graphdef` as text rather than binary.
    """
    model_name: str
    output_file: str
    class_names: list[str]
    export_format: str = 'graphdef'
    checkpoint_path: str | None = None
    moving_average_decay: float | None = None
    is_training: bool = False
    image_size: int | None = None
    batch_size: int | None = None
    use_grayscale: bool = False
    preprocessing_name: str | None = None
    write_text_graphdef: bool = False


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What was written and how to feed it.

    Attributes:
      path: the export (file or SavedModel directory).
      labels_file: the labels file written with it.
      input_name: the input tensor's name ('input:0').
      output_name: the probabilities tensor's name ('output:0').
      input_shape: [batch, height, width, channels], batch None if any.
      output_shape: [batch, num_classes].
      checkpoint: the checkpoint file whose weights were exported, or None.
      signatures: SavedModel signature name -> its input key (empty for
        other formats).
    """
    path: str
    labels_file: str
    input_name: str
    output_name: str
    input_shape: list[int | None]
    output_shape: list[int | None]
    checkpoint: str | None
    signatures: dict[str, str] = dataclasses.field(default_factory=dict)


def _check(config: ExportConfig) -> None:
    if config.export_format not in EXPORT_FORMATS:
        raise ValueError("export_format must be one of %s; got '%s'"
                         % (', '.join(EXPORT_FORMATS), config.export_format))
    if not config.output_file:
        raise ValueError('output_file is required: where to write the export')
    if config.export_format != 'graphdef' and not config.checkpoint_path:
        raise ValueError('export_format %s needs a checkpoint_path: the weights to export'
                         % config.export_format)
    if config.write_text_graphdef and config.export_format != 'graphdef':
        raise ValueError('write_text_graphdef applies to export_format graphdef only; got %s'
                         % config.export_format)
    if config.export_format == 'saved_model' and os.path.isfile(config.output_file):
        raise ValueError("a SavedModel is a directory, but output_file '%s' is a file"
                         % config.output_file)


def export(config: ExportConfig) -> ExportResult:
    """Writes the export that `config` describes, and labels.txt beside it.

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
            preprocessing_name=config.preprocessing_name)
        restorer = (restoring.CheckpointRestorer(config.model_name, len(config.class_names),
                                                 config.moving_average_decay)
                    if config.checkpoint_path else None)
        with tf.Session() as session:
            checkpoint = restorer.restore(session, config.checkpoint_path) if restorer else None
            if config.export_format == 'saved_model':
                labels_file = _write_saved_model(config, session, model)
            else:
                labels_file = _write_file(config, session, model, checkpoint)
    signatures = ({ENCODED_SIGNATURE: inference.ENCODED_INPUT_NAME,
                   IMAGES_SIGNATURE: IMAGES_INPUT_KEY}
                  if config.export_format == 'saved_model' else {})
    return ExportResult(path=config.output_file, labels_file=labels_file,
                        input_name=model.images.name, output_name=model.probabilities.name,
                        input_shape=model.images.shape.as_list(),
                        output_shape=model.probabilities.shape.as_list(), checkpoint=checkpoint,
                        signatures=signatures)


def _write_file(config: ExportConfig, session: tf.Session,
                model: inference.InferenceGraph, checkpoint: str | None) -> str:
    """Writes a GraphDef or TFLite file, then labels.txt in its directory."""
    if config.export_format == 'tflite':
        converter = tf.lite.TFLiteConverter.from_session(session, [model.images],
                                                         [model.probabilities])
        contents = converter.convert()
    else:
        graph_def = session.graph.as_graph_def()
        if checkpoint:
            graph_def = tf.graph_util.convert_variables_to_constants(
                session, graph_def, [inference.OUTPUT_NAME])
        contents = (text_format.MessageToString(graph_def) if config.write_text_graphdef
                    else graph_def.SerializeToString())
    write_atomically(config.output_file, contents)
    labels_file = os.path.join(os.path.dirname(config.output_file), labels.LABELS_FILENAME)
    labels.write_labels_file(labels_file, config.class_names)
    return labels_file


def _write_saved_model(config: ExportConfig, session: tf.Session,
                       model: inference.InferenceGraph) -> str:
    """Writes the SavedModel directory, labels.txt inside, all at once."""
    def signature(name, inputs, probabilities):
        return tf.saved_model.signature_def_utils.predict_signature_def(
            inputs={name: inputs},
            outputs={'probabilities': probabilities,
                     'classes': tf.argmax(probabilities, 1, name=name + '_classes')})

    signatures = {
        ENCODED_SIGNATURE: signature(inference.ENCODED_INPUT_NAME, model.encoded_images,
                                     model.encoded_probabilities),
        IMAGES_SIGNATURE: signature(IMAGES_INPUT_KEY, model.images, model.probabilities),
    }
    with AtomicDirectory(config.output_file) as temporary:
        builder = tf.saved_model.builder.SavedModelBuilder(temporary)
        builder.add_meta_graph_and_variables(session, [tf.saved_model.tag_constants.SERVING],
                                             signature_def_map=signatures,
                                             strip_default_attrs=True)
        builder.save()
        labels.write_labels_file(os.path.join(temporary, labels.LABELS_FILENAME),
                                 config.class_names)
    return os.path.join(config.output_file, labels.LABELS_FILENAME)
