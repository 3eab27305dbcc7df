"""The options of export and classification, each written once (no TensorFlow imported)."""

import dataclasses

from slim_classifier.runtime.options import (POSITIVE, UNIT_OPEN, Check, DatasetOptions,
                                             ModelOptions, option, validate)

EXPORT_FORMATS = ('graphdef', 'saved_model', 'tflite', 'onnx')
# TFLite quantization modes (see serving/tflite_quantization.py); the int8 ones are calibrated.
QUANTIZATIONS = ('none', 'dynamic_range', 'float16', 'int8', 'int8_io')
CALIBRATED_QUANTIZATIONS = ('int8', 'int8_io')
# ONNX Runtime runs opsets from 7 on.
ONNX_OPSET = Check(lambda v: isinstance(v, int) and v >= 7, 'be an ONNX opset >= 7')


@dataclasses.dataclass(kw_only=True)
class InputOptions:
    """What an exported or classifying net reads."""
    image_size: int | None = option(None, "Input image size; the net's default if unset.",
                                    'model', check=POSITIVE)


@dataclasses.dataclass(kw_only=True)
class MultiLabelOptions:
    """How a multi-label net's outputs become labels (export, classify, predict)."""
    multi_label: bool = option(False, 'The net is multi-label: its outputs are per-label '
                               'sigmoid probabilities, not a softmax. Set by itself when the '
                               'training run or its dataset is multi-label.', 'model')
    threshold: float | None = option(None, 'Multi-label only: a label is predicted when its '
                                     'probability is at or above this, for every label. By '
                                     "default each label's tuned threshold (the export's "
                                     'metadata, or the thresholds.json of --tune_thresholds '
                                     'beside the checkpoint), else 0.5.', 'output',
                                     check=UNIT_OPEN)


@dataclasses.dataclass(kw_only=True)
class ExportConfig(ModelOptions, InputOptions, MultiLabelOptions, DatasetOptions):
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
                                'directory; tflite: a TFLite model; onnx: an ONNX model '
                                '(needs pip install .[onnx]).', 'output',
                                choices=EXPORT_FORMATS)
    quantization: str = option('none', 'TFLite only. none: float; dynamic_range: int8 '
                               'weights; float16: float16 weights; int8: integer ops, float '
                               'input and output; int8_io: integer ops, uint8 input and '
                               'output. int8 and int8_io are calibrated on images of '
                               '--dataset_dir.', 'output', choices=QUANTIZATIONS)
    calibration_split: str = option('train', 'The split whose images calibrate '
                                    '--quantization=int8 and int8_io.', 'data')
    calibration_steps: int = option(100, 'How many images calibrate --quantization=int8 and '
                                    'int8_io (the first of --calibration_split, through the '
                                    "net's evaluation preprocessing).", 'data', check=POSITIVE)
    onnx_opset: int = option(17, 'The ONNX opset of --export_format=onnx.', 'output',
                             check=ONNX_OPSET)
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
class ClassifyOptions(ModelOptions, InputOptions, MultiLabelOptions, DatasetOptions):
    """The options of classify_image.py."""
    model_path: str | None = option(None, 'A frozen GraphDef (.pb/.pbtxt), a SavedModel '
                                    'directory, a .tflite file, or a checkpoint file or '
                                    'training directory.', 'model', required=True)
    labels_file: str | None = option(None, 'Lines <id>:<name>; by default labels.txt beside '
                                     'the model.', 'data')
    top_k: int = option(5, 'How many of the most likely classes to print (a single-label '
                        'net; a multi-label one prints the labels at or above their '
                        'threshold).', 'output', check=POSITIVE)

    def __post_init__(self):
        validate(self)


PREDICTION_OUTPUT_TYPES = ('predictions', 'features')


@dataclasses.dataclass(kw_only=True)
class PredictOptions(ClassifyOptions):
    """The options of predict_image_classifier.py.

    The images are `input` (files) or the records of `dataset_split_name` of
    `dataset_dir`, exactly one of them.
    """
    input: str | None = option(None, 'The images: a directory (read recursively, hidden files '
                               'left out), a glob (quoted: "photos/**/*.jpg"), or @FILE, a '
                               'text file with one image path per line. Not with '
                               '--dataset_split_name.', 'data')
    dataset_split_name: str | None = option(None, 'Predict the records of this split of '
                                            '--dataset_dir instead of --input; each row then '
                                            'has the record index and the true label.', 'data')
    output: str | None = option(None, 'The file to write, one row per image: .csv or .jsonl. '
                                'It appears complete or not at all; an existing file is '
                                'replaced only if it is an output of this command.', 'output',
                                required=True)
    output_type: str = option('predictions', 'predictions: the --top_k likeliest classes and '
                              "their probabilities; features: the net's pre-logits feature "
                              'vector (a checkpoint or training directory only).', 'output',
                              choices=PREDICTION_OUTPUT_TYPES)
    top_k: int = option(5, 'How many of the most likely classes each row lists (at most the '
                        "class count). A multi-label row lists every label's probability "
                        'unless --top_k is given.', 'output', check=POSITIVE)
    batch_size: int = option(32, 'Images per call of the model.', 'performance', check=POSITIVE)

    def __post_init__(self):
        validate(self)
        if (self.input is None) == (self.dataset_split_name is None):
            raise ValueError('give the images as --input (files) or --dataset_split_name with '
                             '--dataset_dir (records), one of them; got %s'
                             % ('both' if self.input else 'neither'))
        if self.dataset_split_name is not None and not self.dataset_dir:
            raise ValueError('--dataset_split_name=%s needs --dataset_dir, the directory of '
                             'its records' % self.dataset_split_name)
