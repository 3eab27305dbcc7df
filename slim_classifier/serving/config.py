"""The options of export and classification, each written once (no TensorFlow imported)."""

import dataclasses

from slim_classifier.runtime.options import POSITIVE, DatasetOptions, ModelOptions, option, validate

EXPORT_FORMATS = ('graphdef', 'saved_model', 'tflite')


@dataclasses.dataclass(kw_only=True)
class InputOptions:
    """What an exported or classifying net reads."""
    image_size: int | None = option(None, "Input image size; the net's default if unset.",
                                    'model', check=POSITIVE)


@dataclasses.dataclass(kw_only=True)
class ExportConfig(ModelOptions, InputOptions, DatasetOptions):
    """Everything one export needs.

    `class_names` (names by net output; their number is the class count) is
    set by the caller; export_inference_graph.py reads it from the dataset
    that the DatasetOptions name.
    """
    output_file: str | None = option(None, 'Where to write the export: a file, or a directory '
                                     'for --export_format=saved_model.', 'output',
                                     required=True)
    export_format: str = option('graphdef', 'graphdef: a GraphDef, frozen when '
                                '--checkpoint_path is set; saved_model: a SavedModel '
                                'directory; tflite: a TFLite model.', 'output',
                                choices=EXPORT_FORMATS)
    checkpoint_path: str | None = option(None, 'A checkpoint file or directory whose weights '
                                         'are frozen into the export; a training directory '
                                         'also gives the model options.', 'model')
    is_training: bool = option(False, 'Export the training graph (dropout, batch-norm '
                               'statistics of the batch).', 'model')
    batch_size: int | None = option(None, 'Batch size of the input; any if unset.', 'model',
                                    check=POSITIVE)
    write_text_graphdef: bool = option(False, 'Write the GraphDef as text.', 'output')
    class_names: list[str] = option([], 'Names by net output.', 'data', flag=False)

    def __post_init__(self):
        validate(self)


@dataclasses.dataclass(kw_only=True)
class ClassifyOptions(ModelOptions, InputOptions, DatasetOptions):
    """The options of classify_image.py."""
    model_path: str | None = option(None, 'A frozen GraphDef (.pb/.pbtxt), a SavedModel '
                                    'directory, a .tflite file, or a checkpoint file or '
                                    'training directory.', 'model', required=True)
    labels_file: str | None = option(None, 'Lines <id>:<name>; by default labels.txt beside '
                                     'the model.', 'data')
    top_k: int = option(5, 'How many of the most likely classes to print.', 'output',
                        check=POSITIVE)

    def __post_init__(self):
        validate(self)
