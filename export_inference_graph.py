"""Exports a net for inference: python export_inference_graph.py --checkpoint_path=RUN --output_file=F

Without --checkpoint_path it writes the inference GraphDef, as the original
tool did; with it, the weights are frozen into the graph. --export_format
chooses a GraphDef (default), a SavedModel directory, a TFLite model
(--quantization: int8 or float16 weights, or integer ops calibrated on the
first --calibration_steps images of --calibration_split) or an ONNX model
(--onnx_opset; needs pip install .[onnx]).
When --checkpoint_path is a training directory (or a checkpoint in one), the
model and data options default to those of its train_config.json.
A multi-label net (its run or dataset is multi-label, or --multi_label) is
exported with per-label sigmoid probabilities, and its metadata keeps each
label's threshold: the run's tuned thresholds.json, or --threshold (0.5).
"""

import os

from slim_classifier.cli import flags, runner
from slim_classifier.runtime import run_config
from slim_classifier.serving.config import ExportConfig

SUMMARY = """Exports a net for inference: a frozen GraphDef, a SavedModel, a TFLite or ONNX model.

  export_inference_graph.py --checkpoint_path=RUN --output_file=FILE [--export_format=tflite]
  export_inference_graph.py --checkpoint_path=RUN --output_file=FILE --export_format=tflite \\
      --quantization=int8 [--calibration_split=train --calibration_steps=100]

RUN is a training directory (its train_config.json gives the net and the data) or a
checkpoint; the export's metadata (net, preprocessing, input, class names) is written
beside it as FILE.json (inside a SavedModel as export.json). A multi-label net (its run
or dataset is, or --multi_label) gives per-label sigmoid probabilities; its metadata keeps
each label's threshold (the run's thresholds.json, else --threshold, 0.5 by default)."""

flags.define_flags(ExportConfig)


def config_from_flags(values) -> ExportConfig:
    """The ExportConfig that a parsed flag set describes, with the run's defaults."""
    from slim_classifier.serving import labels, multi_label
    given = flags.config_values(ExportConfig, values)
    explicit = flags.explicit_flags(values)
    given.update(run_config.checkpoint_defaults(given['checkpoint_path'], given, explicit))
    if 'multi_label' not in explicit:
        given['multi_label'] = given['multi_label'] or multi_label.is_multi_label(
            given['checkpoint_path'], given['dataset_name'], given['dataset_dir'])
    return ExportConfig(**given, class_names=labels.dataset_classes(
        given['dataset_name'], given['dataset_dir'], given['labels_offset']))


def _shape(shape: list[int | None]) -> str:
    return '[%s]' % ', '.join('None' if size is None else str(size) for size in shape)


def _node(name: str, shape: list[int | None], storage, what: str, quantized: str) -> str:
    """A model's input or output: its name, dtype and shape, and how values are stored in it."""
    if storage.scale is None:
        return '%s %s %s (%s)' % (name, storage.dtype, _shape(shape), what)
    return '%s %s %s (%s quantized: %s)' % (
        name, storage.dtype, _shape(shape), what,
        quantized.format(scale=storage.scale, zero_point=storage.zero_point))


def _describe(result) -> str:
    weights = ('weights of %s' % result.checkpoint if result.checkpoint
               else 'not frozen: no --checkpoint_path')
    lines = ['wrote %s (%s)' % (os.path.abspath(result.path), weights),
             'input node: ' + _node(result.input_name, result.input_shape, result.input_storage,
                                    'preprocessed images', 'round(image / {scale:g}) + '
                                    '{zero_point}'),
             'output node: ' + _node(result.output_name, result.output_shape,
                                     result.output_storage,
                                     'per-label sigmoid probabilities' if result.multi_label
                                     else 'class probabilities',
                                     'probability = (output - {zero_point}) * {scale:g}'),
             'metadata (net, preprocessing, input, class names): %s' % result.metadata_file]
    if result.multi_label:
        lines.append('label thresholds: %s (%s)' % (
            ' '.join('%g' % value for value in result.thresholds),
            result.thresholds_file or '--threshold, or 0.5 by default'))
    outputs = "'probabilities', 'classes'" + (", 'above_threshold'" if result.multi_label
                                              else '')
    lines.extend("signature '%s': input '%s' -> outputs %s" % (*item, outputs)
                 for item in result.signatures.items())
    return '\n'.join(lines)


def main(argv):
    del argv
    from slim_classifier.serving import exporter
    print(_describe(exporter.export(config_from_flags(flags.FLAGS))))


def _registered_nets():
    from nets import nets_factory
    return {'model_name': nets_factory.list_networks()}


def run():
    runner.run_command(main, SUMMARY, (ExportConfig,), choices=_registered_nets)


if __name__ == '__main__':
    run()
