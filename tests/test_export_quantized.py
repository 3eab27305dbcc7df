"""Quantized TFLite exports of a trained LeNet: each mode runs, keeps the accuracy, and shrinks."""

import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from datasets import dataset_factory, input_pipeline
from nets import nets_factory
from preprocessing import preprocessing_factory
from slim_classifier.serving import exporter, metadata, tflite_quantization
from slim_classifier.serving.config import QUANTIZATIONS, ExportConfig
from slim_classifier.training import trainer
from tests import training_helpers as helpers

DIGIT_NAMES = [str(digit) for digit in range(10)]
# The published quantized MobileNets lose about a point; so may no mode here.
MAX_ACCURACY_DROP = 0.01
CALIBRATION_STEPS = 64


@pytest.fixture(scope='module')
def trained(digits_dir, tmp_path_factory):
    train_dir = tmp_path_factory.mktemp('train')
    trainer.train(helpers.lenet_config(train_dir, digits_dir, max_number_of_steps=150))
    return str(train_dir)


@pytest.fixture(scope='module')
def test_split(digits_dir):
    """The digits test split through LeNet's evaluation preprocessing: (images, labels)."""
    with tf.Graph().as_default():
        dataset = dataset_factory.get_dataset('digits', 'test', digits_dir)
        images, labels = input_pipeline.one_shot_batch(input_pipeline.build_dataset(
            dataset, preprocessing_factory.get_preprocessing('lenet'), 28, dataset.num_samples,
            is_training=False))
        with tf.Session() as session:
            return session.run([images, labels])


@pytest.fixture(scope='module')
def checkpoint_probabilities(trained, test_split):
    images, _ = test_split
    with tf.Graph().as_default():
        inputs = tf.placeholder(tf.float32, images.shape)
        _, end_points = nets_factory.get_network_fn('lenet', 10)(inputs)
        with tf.Session() as session:
            tf.train.Saver().restore(session, tf.train.latest_checkpoint(trained))
            return session.run(end_points['Predictions'], {inputs: images})


@pytest.fixture(scope='module')
def exports(trained, digits_dir, tmp_path_factory):
    """Every mode exported once: {mode: path}; int8_io through the command line."""
    directory = tmp_path_factory.mktemp('exports')
    paths = {mode: str(directory / ('lenet_%s.tflite' % mode)) for mode in QUANTIZATIONS}
    for mode in ('none', 'dynamic_range', 'float16', 'int8'):
        exporter.export(ExportConfig(
            model_name='lenet', output_file=paths[mode], class_names=DIGIT_NAMES,
            export_format='tflite', checkpoint_path=trained, quantization=mode,
            dataset_name='digits', dataset_dir=digits_dir,
            calibration_steps=CALIBRATION_STEPS))
    # The run directory's train_config.json gives the net and the calibration dataset.
    result = helpers.run_command(
        'export_inference_graph.py', '--checkpoint_path=' + trained, '--export_format=tflite',
        '--quantization=int8_io', '--calibration_steps=%d' % CALIBRATION_STEPS,
        '--output_file=' + paths['int8_io'])
    return paths, result.stdout


def _run_tflite(path, images):
    """The probabilities of a TFLite model, quantizing its input and output if it has to."""
    interpreter = tf.lite.Interpreter(model_path=path)
    input_detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(input_detail['index'], images.shape)
    interpreter.allocate_tensors()
    if input_detail['dtype'] == np.uint8:
        scale, zero_point = input_detail['quantization']
        images = np.clip(np.round(images / scale) + zero_point, 0, 255).astype(np.uint8)
    interpreter.set_tensor(input_detail['index'], images)
    interpreter.invoke()
    output_detail = interpreter.get_output_details()[0]
    output = interpreter.get_tensor(output_detail['index'])
    if output_detail['dtype'] == np.uint8:
        scale, zero_point = output_detail['quantization']
        return (output.astype(np.float32) - zero_point) * scale
    return output


def _accuracy(probabilities, labels):
    return float(np.mean(probabilities.argmax(1) == labels))


@pytest.mark.parametrize('mode', QUANTIZATIONS)
def test_each_mode_keeps_the_accuracy_of_the_checkpoint(exports, test_split,
                                                        checkpoint_probabilities, mode):
    images, labels = test_split
    probabilities = _run_tflite(exports[0][mode], images)
    reference = _accuracy(checkpoint_probabilities, labels)
    accuracy = _accuracy(probabilities, labels)
    print('%s: accuracy %.4f, checkpoint %.4f, on %d test images, max probability '
          'difference %.4f' % (mode, accuracy, reference, len(labels),
                               np.abs(probabilities - checkpoint_probabilities).max()))
    assert reference > 0.8, 'the trained LeNet should be far better than chance'
    assert accuracy >= reference - MAX_ACCURACY_DROP
    if mode == 'none':
        assert np.abs(probabilities - checkpoint_probabilities).max() < 1e-4
    described = metadata.read(exports[0][mode])
    assert (described.quantization, described.image_size, described.channels,
            described.preprocessing_name, described.class_names) == (
                mode, 28, 1, 'lenet', DIGIT_NAMES)


def test_int8_io_reads_and_gives_uint8_with_its_scale_in_the_metadata(exports):
    paths, stdout = exports
    interpreter = tf.lite.Interpreter(model_path=paths['int8_io'])
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    assert (input_detail['dtype'], output_detail['dtype']) == (np.uint8, np.uint8)
    with open(metadata.metadata_path(paths['int8_io']), encoding='utf-8') as record:
        described = json.load(record)
    assert (described['input_dtype'], described['output_dtype']) == ('uint8', 'uint8')
    assert (described['input_scale'], described['input_zero_point']) == pytest.approx(
        input_detail['quantization'])
    assert (described['output_scale'], described['output_zero_point']) == pytest.approx(
        output_detail['quantization'])
    # LeNet's preprocessing gives [-1, 1]: about 2/255 per step of the uint8 input.
    assert described['input_scale'] == pytest.approx(2 / 255, rel=0.05)
    assert 'input node: input:0 uint8 [None, 28, 28, 1] (preprocessed images quantized: ' \
        'round(image / %g) + %d)' % (input_detail['quantization']) in stdout
    int8 = tf.lite.Interpreter(model_path=paths['int8']).get_input_details()[0]
    assert int8['dtype'] == np.float32


def test_integer_modes_are_4x_smaller_than_float(exports):
    sizes = {mode: os.path.getsize(path) for mode, path in exports[0].items()}
    print('sizes in bytes: %s' % sizes)
    assert sizes['int8'] < 0.35 * sizes['none']
    assert sizes['int8_io'] < 0.35 * sizes['none']
    assert sizes['dynamic_range'] < 0.35 * sizes['none']
    assert 0.4 * sizes['none'] < sizes['float16'] < 0.6 * sizes['none']


def test_int8_ops_are_all_integer(exports):
    interpreter = tf.lite.Interpreter(model_path=exports[0]['int8'])
    tensors = {detail['index']: detail for detail in interpreter.get_tensor_details()}
    kinds = {op['op_name']: {tensors[index]['dtype'] for index in op['outputs']}
             for op in interpreter._get_ops_details()}  # pylint: disable=protected-access
    assert kinds.pop('CONV_2D') == kinds.pop('FULLY_CONNECTED') == {np.int8}
    assert kinds['DEQUANTIZE'] == {np.float32}


def _graph_with(extra_op):
    """A small float graph input [None, 4] -> matmul -> `extra_op`, in a session."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.placeholder(tf.float32, [None, 4], name='input')
        weights = tf.constant(np.random.RandomState(0).randn(4, 3).astype(np.float32))
        outputs = extra_op(tf.matmul(inputs, weights))
    return tf.Session(graph=graph), inputs, outputs


@pytest.mark.parametrize('extra_op, named', [
    (lambda x: tf.sin(x, name='wave'), 'SIN (wave)'),  # converted, but left float
    (lambda x: tf.math.erf(x, name='bell'), 'the ops Erf'),  # refused by the converter
])
def test_an_op_that_cannot_be_quantized_is_named_in_one_line(extra_op, named):
    session, inputs, outputs = _graph_with(extra_op)
    calibration = np.random.RandomState(1).randn(8, 4).astype(np.float32)
    with session, pytest.raises(tflite_quantization.QuantizationError) as error:
        tflite_quantization.convert(session, inputs, outputs, 'int8', calibration)
    assert named in str(error.value)
    assert str(error.value).startswith('--quantization=int8: ')
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('overrides, message', [
    (dict(export_format='graphdef', quantization='int8'),
     '--quantization=int8 applies to --export_format=tflite only; got --export_format=graphdef'),
    (dict(export_format='tflite', quantization='int8_io'),
     '--quantization=int8_io is calibrated on real images: give the --dataset_dir whose '
     '--calibration_split=train to read'),
    (dict(export_format='tflite', quantization='int4'),
     "--quantization must be one of none, dynamic_range, float16, int8, int8_io; got 'int4'"),
])
def test_invalid_quantization_requests_are_refused(tmp_path, overrides, message):
    with pytest.raises(ValueError) as error:
        exporter.export(ExportConfig(model_name='lenet', output_file=str(tmp_path / 'out'),
                                     class_names=DIGIT_NAMES, checkpoint_path='x', **overrides))
    assert str(error.value) == message
    assert os.listdir(tmp_path) == []


def test_calibration_on_a_missing_split_is_one_line(trained, digits_dir, tmp_path):
    with pytest.raises(ValueError, match="^--calibration_split=validation: unknown split "
                                         "'validation' for dataset 'digits'"):
        exporter.export(ExportConfig(
            model_name='lenet', output_file=str(tmp_path / 'lenet.tflite'),
            class_names=DIGIT_NAMES, export_format='tflite', checkpoint_path=trained,
            quantization='int8', dataset_name='digits', dataset_dir=digits_dir,
            calibration_split='validation'))
    assert os.listdir(tmp_path) == []
