"""Exports a net for inference: python export_inference_graph.py --model_name=... --output_file=...

Without --checkpoint_path it writes the inference GraphDef, as the original
tool did; with it, the weights are frozen into the graph. --export_format
chooses a GraphDef (default), a SavedModel directory or a TFLite model.
labels.txt is written beside the export, and the input and output node names
are printed.
"""

from absl import flags

from evaluation import exporter, labels
from training import checkpoints, cli
from training import flags as shared_flags

shared_flags.define_export_flags()
FLAGS = flags.FLAGS


def config_from_flags(values) -> exporter.ExportConfig:
    """The ExportConfig that a parsed flag set describes."""
    if not values.output_file:
        raise ValueError('--output_file is required: where to write the export')
    return exporter.ExportConfig(
        model_name=values.model_name, output_file=values.output_file,
        class_names=labels.dataset_classes(values.dataset_name, values.dataset_dir,
                                           values.labels_offset),
        export_format=values.export_format, checkpoint_path=values.checkpoint_path,
        moving_average_decay=values.moving_average_decay, is_training=values.is_training,
        image_size=values.image_size, batch_size=values.batch_size,
        use_grayscale=values.use_grayscale, preprocessing_name=values.preprocessing_name,
        write_text_graphdef=values.write_text_graphdef)


def _shape(shape: list[int | None]) -> str:
    return '[%s]' % ', '.join('None' if size is None else str(size) for size in shape)


def _describe(result: exporter.ExportResult) -> str:
    weights = ('weights of %s' % result.checkpoint if result.checkpoint
               else 'not frozen: no --checkpoint_path')
    lines = ['wrote %s (%s)' % (result.path, weights),
             'input node: %s float32 %s (preprocessed images)'
             % (result.input_name, _shape(result.input_shape)),
             'output node: %s float32 %s (class probabilities)'
             % (result.output_name, _shape(result.output_shape)),
             'labels: %s' % result.labels_file]
    lines.extend("signature '%s': input '%s' -> outputs 'probabilities', 'classes'"
                 % item for item in result.signatures.items())
    return '\n'.join(lines)


def main(argv):
    del argv
    print(_describe(exporter.export(config_from_flags(FLAGS))))


def run():
    cli.add_user_error(checkpoints.CheckpointMismatch)
    cli.run_main(main)


if __name__ == '__main__':
    run()
