"""ONNX exports run in ONNX Runtime and give the checkpoint's probabilities."""

import os
import sys

import numpy as np
import onnxruntime
import pytest
import sklearn.datasets
import tensorflow.compat.v1 as tf

from nets import inception_utils, inception_v1, nets_factory
from preprocessing import preprocessing_factory
from slim_classifier.compat import slim
from slim_classifier.serving import exporter, metadata, onnx_export
from slim_classifier.serving.config import ExportConfig
from tests import training_helpers as helpers

DIGIT_NAMES = [str(digit) for digit in range(10)]
PHOTOS = [os.path.join(os.path.dirname(sklearn.datasets.__file__), 'images', name)
          for name in ('china.jpg', 'flower.jpg')]
TOLERANCE = 1e-4


def _random_checkpoint(prefix, build_net, images, logits_scope):
    """Random weights, batch-norm statistics (if any) measured on `images` (so activations
    neither vanish nor explode), and logits scaled up so that the probabilities are far from
    uniform: a wrong input would show."""
    with tf.Graph().as_default():
        build_net(tf.constant(images))
        logits_weights = tf.global_variables(logits_scope)[0]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
            session.run(logits_weights.assign(logits_weights * 10.0))
            return tf.train.Saver().save(session, str(prefix))


def _inception_v1_measuring_statistics(images):
    with slim.arg_scope(inception_utils.inception_arg_scope(batch_norm_decay=0.0)):
        inception_v1.inception_v1(images, num_classes=5, is_training=True)


def _preprocessed(encoded_or_pixels, name, size, decode):
    with tf.Graph().as_default():
        preprocess = preprocessing_factory.get_preprocessing(name)
        images = tf.stack([preprocess(decode(image), size, size) for image in encoded_or_pixels])
        with tf.Session() as session:
            return session.run(images)


def _onnx_probabilities(path, images):
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    (model_input,), (model_output,) = session.get_inputs(), session.get_outputs()
    assert (model_input.name, model_output.name) == ('input:0', 'output:0')
    return session.run(None, {model_input.name: images})[0]


@pytest.fixture(scope='module')
def lenet(tmp_path_factory):
    """A random LeNet checkpoint and 16 digits given its preprocessing."""
    pixels = helpers.digits_arrays()[0][:16, :, :, np.newaxis]
    images = _preprocessed(pixels, 'lenet', 28, tf.constant)
    checkpoint = _random_checkpoint(tmp_path_factory.mktemp('lenet') / 'model.ckpt',
                                    nets_factory.get_network_fn('lenet', 10), images,
                                    'LeNet/fc4/weights')
    return checkpoint, images


def test_lenet_onnx_matches_the_checkpoint(lenet, tmp_path):
    checkpoint, images = lenet
    expected = helpers.checkpoint_probabilities(checkpoint, 'lenet', 10, images)
    assert expected.max(1).mean() > 0.5, 'the random net should be far from uniform'
    output = str(tmp_path / 'lenet.onnx')
    result = exporter.export(ExportConfig(model_name='lenet', output_file=output,
                                          class_names=DIGIT_NAMES, export_format='onnx',
                                          checkpoint_path=checkpoint))
    probabilities = _onnx_probabilities(output, images)
    assert np.abs(probabilities - expected).max() < TOLERANCE
    described = metadata.read(output)
    assert (described.export_format, described.class_names, described.image_size) == (
        'onnx', DIGIT_NAMES, 28)
    assert (result.input_name, result.output_name) == ('input:0', 'output:0')
    assert sorted(os.listdir(tmp_path)) == ['lenet.onnx', 'lenet.onnx.json']


def test_inception_v1_onnx_from_the_command_line(tmp_path):
    """A random inception_v1, exported through the CLI, on real photographs."""
    encoded = [open(path, 'rb').read() for path in PHOTOS]
    images = _preprocessed(encoded, 'inception', 224,
                           lambda photo: tf.io.decode_jpeg(photo, channels=3))
    checkpoint = _random_checkpoint(tmp_path / 'inception' / 'model.ckpt',
                                    _inception_v1_measuring_statistics, images,
                                    'InceptionV1/Logits/Conv2d_0c_1x1/weights')
    expected = helpers.checkpoint_probabilities(checkpoint, 'inception_v1', 5, images)
    output = str(tmp_path / 'inception_v1.onnx')
    result = helpers.run_command(
        'export_inference_graph.py', '--model_name=inception_v1', '--dataset_name=flowers',
        '--export_format=onnx', '--onnx_opset=13', '--checkpoint_path=' + checkpoint,
        '--output_file=' + output)
    assert 'input node: input:0 float32 [None, 224, 224, 3]' in result.stdout
    probabilities = _onnx_probabilities(output, images)
    assert np.abs(probabilities - expected).max() < TOLERANCE
    assert expected.max() > 0.4, 'the random net should be far from uniform'


def test_a_missing_extra_is_one_line_naming_it(lenet, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'tf2onnx', None)  # as if it were not installed
    with pytest.raises(onnx_export.MissingExtraError) as error:
        exporter.export(ExportConfig(model_name='lenet', output_file=str(tmp_path / 'm.onnx'),
                                     class_names=DIGIT_NAMES, export_format='onnx',
                                     checkpoint_path=lenet[0]))
    assert str(error.value) == ("--export_format=onnx needs the optional 'onnx' extra (tf2onnx "
                                'is missing): pip install .[onnx]')
    assert os.listdir(tmp_path) == []


def test_an_opset_the_converter_lacks_is_one_line(lenet, tmp_path):
    with pytest.raises(onnx_export.OnnxConversionError) as error:
        exporter.export(ExportConfig(model_name='lenet', output_file=str(tmp_path / 'm.onnx'),
                                     class_names=DIGIT_NAMES, export_format='onnx',
                                     checkpoint_path=lenet[0], onnx_opset=99))
    assert 'could not convert the graph to ONNX opset 99: ' in str(error.value)
    assert 'Opset 99 is not supported' in str(error.value)
    assert '\n' not in str(error.value)
    assert os.listdir(tmp_path) == []


def test_an_opset_before_7_is_refused():
    with pytest.raises(ValueError, match=r'^--onnx_opset must be an ONNX opset >= 7; got 5$'):
        ExportConfig(model_name='lenet', output_file='m.onnx', export_format='onnx',
                     onnx_opset=5)
