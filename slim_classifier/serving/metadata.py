"""What an export needs to be used: the net, its preprocessing, input and classes.

A multi-label export also records that its outputs are per-label sigmoid
probabilities, and the threshold of each label (see serving/multi_label.py).

Every export carries a small JSON record: beside a file export as
`<output_file>.json` (`lenet.tflite` -> `lenet.tflite.json`, so exports in one
folder never share or overwrite it), and inside a SavedModel directory as
`export.json`. Classification reads it, so a TFLite model or a frozen graph is
fed exactly as its net was trained, and an explicit flag that contradicts it
is a one-line error. No TensorFlow is imported here.
"""

import dataclasses
import json
import os

from slim_classifier.runtime.files import write_atomically

FORMAT_VERSION = 1
SAVED_MODEL_FILENAME = 'export.json'
SUFFIX = '.json'


@dataclasses.dataclass(frozen=True)
class ExportMetadata:
    """How to feed an export and read its output.

    Attributes:
      model_name: the net.
      preprocessing_name: the preprocessing its images need.
      image_size: input height and width.
      channels: input channels (1 for grayscale).
      labels_offset: output i is dataset label i + labels_offset.
      class_names: names by output.
      export_format: graphdef, saved_model, tflite or onnx.
      input_name, output_name: the tensors to feed and fetch.
      checkpoint: the checkpoint whose weights were exported, or None.
      quantization: the TFLite quantization mode ('none' for a float model).
      input_dtype, output_dtype: how the input and output are stored:
        'float32', or 'uint8' / 'int8' for a quantized model's.
      input_scale, input_zero_point, output_scale, output_zero_point: for
        an integer input or output, real value = (stored - zero_point) *
        scale; None for a float one.
      multi_label: the outputs are per-label sigmoid probabilities.
      thresholds: a multi-label export's threshold of each label (a label is
        predicted at or above it); None for a single-label one.
      thresholds_file: the thresholds.json they come from; None when they
        are --threshold or the default.
    """
    model_name: str
    preprocessing_name: str
    image_size: int
    channels: int
    labels_offset: int
    class_names: list[str]
    export_format: str
    input_name: str
    output_name: str
    checkpoint: str | None
    quantization: str = 'none'
    input_dtype: str = 'float32'
    input_scale: float | None = None
    input_zero_point: int | None = None
    output_dtype: str = 'float32'
    output_scale: float | None = None
    output_zero_point: int | None = None
    multi_label: bool = False
    thresholds: list[float] | None = None
    thresholds_file: str | None = None
    format_version: int = FORMAT_VERSION


def metadata_path(export_path: str) -> str:
    """Where the metadata of the export at `export_path` is."""
    if os.path.isdir(export_path):
        return os.path.join(export_path, SAVED_MODEL_FILENAME)
    return export_path + SUFFIX


def write(path: str, metadata: ExportMetadata) -> None:
    """Writes `metadata` to `path` (see `metadata_path`), atomically."""
    write_atomically(path, json.dumps(dataclasses.asdict(metadata), indent=2) + '\n')


def read(export_path: str) -> ExportMetadata | None:
    """The metadata of the export at `export_path`, or None for an export without any.

    Raises:
      ValueError: if the metadata file is not one this version reads.
    """
    path = metadata_path(export_path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            record = json.load(f)
        metadata = ExportMetadata(**record)
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError('%s is not the metadata of an export (%s); export again with '
                         'export_inference_graph.py' % (path, error)) from None
    if metadata.format_version != FORMAT_VERSION:
        raise ValueError('%s has format_version %r; expected %d'
                         % (path, metadata.format_version, FORMAT_VERSION))
    return metadata


# Options a user may give that the metadata also says, as {option: metadata field}.
_DESCRIBED = {'model_name': 'model_name', 'preprocessing_name': 'preprocessing_name',
              'image_size': 'image_size', 'labels_offset': 'labels_offset',
              'multi_label': 'multi_label'}


def check_agreement(metadata: ExportMetadata, export_path: str, given: dict) -> None:
    """Raises ValueError for an explicitly given option that contradicts the export's metadata."""
    for option, field in _DESCRIBED.items():
        if option in given and given[option] != getattr(metadata, field):
            raise ValueError('--%s=%s contradicts the export %s, made for %s=%s (%s)'
                             % (option, given[option], export_path, option,
                                getattr(metadata, field), metadata_path(export_path)))
    if 'use_grayscale' in given and given['use_grayscale'] != (metadata.channels == 1):
        raise ValueError('--use_grayscale=%s contradicts the export %s, which reads %d-channel '
                         'images (%s)' % (given['use_grayscale'], export_path, metadata.channels,
                                          metadata_path(export_path)))
