"""export_inference_graph: every format loads with plain TensorFlow and matches the checkpoint."""

import os

import numpy as np
import pytest
import sklearn.datasets
import tensorflow as tf2
import tensorflow.compat.v1 as tf
from google.protobuf import text_format

from nets import inception_utils, inception_v1
from preprocessing import preprocessing_factory
from slim_classifier.compat import slim
from slim_classifier.runtime.checkpoints import CheckpointMismatch
from slim_classifier.runtime.files import write_atomically
from slim_classifier.serving import exporter, metadata
from slim_classifier.training import trainer
from tests import training_helpers as helpers

PHOTOS = [os.path.join(os.path.dirname(sklearn.datasets.__file__), 'images', name)
          for name in ('china.jpg', 'flower.jpg')]
DIGIT_NAMES = [str(digit) for digit in range(10)]
# The flowers classes, in the order of the original TF-Slim dataset.
FLOWER_NAMES = ['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips']
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def trained(digits_dir, tmp_path_factory):
    train_dir = tmp_path_factory.mktemp('train')
    return trainer.train(helpers.lenet_config(train_dir, digits_dir,
                                              max_number_of_steps=100)).checkpoint


@pytest.fixture(scope='module')
def photos():
    encoded = []
    for path in PHOTOS:
        with open(path, 'rb') as photo:
            encoded.append(photo.read())
    return encoded


def _preprocessed(photos, name, size):
    """The photos decoded and given the evaluation preprocessing of `name`."""
    with tf.Graph().as_default():
        preprocess = preprocessing_factory.get_preprocessing(name)
        images = [preprocess(tf.io.decode_jpeg(photo, channels=3), size, size)
                  for photo in photos]
        with tf.Session() as session:
            return session.run(tf.stack(images))


@pytest.fixture(scope='module')
def lenet_reference(trained, photos):
    images = _preprocessed(photos, 'lenet', 28)
    return images, helpers.checkpoint_probabilities(trained, 'lenet', 10, images)


def _export(output_file, **overrides):
    values = dict(model_name='lenet', output_file=str(output_file), class_names=DIGIT_NAMES)
    values.update(overrides)
    return exporter.export(exporter.ExportConfig(**values))


def _read_graph_def(path):
    graph_def = tf.GraphDef()
    with open(path, 'rb') as graph_file:
        graph_def.ParseFromString(graph_file.read())
    return graph_def


def _labels(path):
    with open(path, encoding='utf-8') as labels_file:
        return labels_file.read()


def test_frozen_graph_matches_the_checkpoint(trained, lenet_reference, tmp_path):
    images, expected = lenet_reference
    result = _export(tmp_path / 'lenet.pb', checkpoint_path=trained)
    graph_def = _read_graph_def(result.path)
    assert not [node.name for node in graph_def.node
                if node.op in ('VariableV2', 'VarHandleOp', 'Variable')]
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name='')
        with tf.Session() as session:
            probabilities = session.run('output:0', {'input:0': images})
    assert graph.get_tensor_by_name('input:0').shape.as_list() == [None, 28, 28, 1]
    assert np.abs(probabilities - expected).max() < TOLERANCE
    assert (result.input_name, result.output_name) == ('input:0', 'output:0')
    assert result.metadata_file == str(tmp_path / 'lenet.pb.json')
    assert metadata.read(result.path).class_names == DIGIT_NAMES


def test_saved_model_signatures_match_the_checkpoint(trained, lenet_reference, photos,
                                                     tmp_path):
    images, expected = lenet_reference
    result = _export(tmp_path / 'saved', export_format='saved_model', checkpoint_path=trained)
    loaded = tf2.saved_model.load(result.path)
    from_images = loaded.signatures['images'](images=tf2.constant(images))
    from_bytes = loaded.signatures['serving_default'](encoded_images=tf2.constant(photos))
    assert np.abs(from_images['probabilities'].numpy() - expected).max() < TOLERANCE
    assert np.abs(from_bytes['probabilities'].numpy() - expected).max() < TOLERANCE
    assert from_bytes['classes'].numpy().tolist() == expected.argmax(1).tolist()
    assert _labels(tmp_path / 'saved' / 'labels.txt').splitlines()[3] == '3:3'


def test_tflite_model_matches_the_checkpoint(trained, lenet_reference, tmp_path):
    images, expected = lenet_reference
    result = _export(tmp_path / 'lenet.tflite', export_format='tflite', checkpoint_path=trained)
    interpreter = tf2.lite.Interpreter(model_path=result.path)
    input_index = interpreter.get_input_details()[0]['index']
    interpreter.resize_tensor_input(input_index, images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, images)
    interpreter.invoke()
    probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
    assert np.abs(probabilities - expected).max() < TOLERANCE
    assert sorted(os.listdir(tmp_path)) == ['lenet.tflite', 'lenet.tflite.json']


def test_without_checkpoint_the_text_graph_keeps_its_variables(tmp_path):
    result = _export(tmp_path / 'lenet.pbtxt', write_text_graphdef=True, batch_size=1)
    with open(result.path, encoding='utf-8') as graph_file:
        graph_def = text_format.Parse(graph_file.read(), tf.GraphDef())
    nodes = {node.name: node for node in graph_def.node}
    assert [dim.size for dim in nodes['input'].attr['shape'].shape.dim] == [1, 28, 28, 1]
    assert nodes['output'].op == 'Softmax'
    assert any(node.op in ('VariableV2', 'VarHandleOp') for node in graph_def.node)
    assert result.checkpoint is None


def test_inception_saved_model_from_the_command_line(photos, tmp_path):
    """A random inception_v1 through the CLI; the photos get inception preprocessing inside."""
    images = _preprocessed(photos, 'inception', 224)
    checkpoint = _random_inception_checkpoint(tmp_path / 'inception' / 'model.ckpt', images)
    expected = helpers.checkpoint_probabilities(checkpoint, 'inception_v1', 5, images)
    assert expected.max() > 0.4, 'the random net should be far from uniform'
    output = tmp_path / 'inception_saved_model'
    result = helpers.run_command(
        'export_inference_graph.py', '--model_name=inception_v1', '--dataset_name=flowers',
        '--export_format=saved_model', '--checkpoint_path=%s' % checkpoint,
        '--output_file=%s' % output)
    assert 'input node: input:0 float32 [None, 224, 224, 3]' in result.stdout
    assert 'output node: output:0 float32 [None, 5]' in result.stdout
    loaded = tf2.saved_model.load(str(output))
    probabilities = loaded.signatures['serving_default'](encoded_images=tf2.constant(photos))
    assert np.abs(probabilities['probabilities'].numpy() - expected).max() < TOLERANCE
    assert _labels(output / 'labels.txt') == ''.join(
        '%d:%s\n' % item for item in enumerate(FLOWER_NAMES))


def _random_inception_checkpoint(prefix, images):
    """inception_v1 with 5 classes, random weights and batch-norm statistics measured on
    `images` (so activations neither vanish nor explode), and logits scaled up so that
    the probabilities are far from uniform: a wrong preprocessing would show."""
    with tf.Graph().as_default():
        inputs = tf.constant(images)
        with slim.arg_scope(inception_utils.inception_arg_scope(batch_norm_decay=0.0)):
            inception_v1.inception_v1(inputs, num_classes=5, is_training=True)
        measure_statistics = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        logits_weights = tf.global_variables('InceptionV1/Logits/Conv2d_0c_1x1/weights')
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.run(measure_statistics)
            session.run(logits_weights[0].assign(logits_weights[0] * 10.0))
            return tf.train.Saver().save(session, str(prefix))


def test_failed_export_leaves_the_previous_export_and_no_stray_file(trained, tmp_path):
    first = _export(tmp_path / 'lenet.pb', checkpoint_path=trained)
    before = (tmp_path / 'lenet.pb').read_bytes()
    with pytest.raises(CheckpointMismatch, match='does not match lenet with 9 classes'):
        _export(tmp_path / 'lenet.pb', checkpoint_path=trained, class_names=DIGIT_NAMES[1:])
    with pytest.raises(CheckpointMismatch):
        _export(tmp_path / 'saved', checkpoint_path=trained, export_format='saved_model',
                class_names=DIGIT_NAMES[1:])
    assert (tmp_path / 'lenet.pb').read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ['lenet.pb', 'lenet.pb.json']
    assert first.path == str(tmp_path / 'lenet.pb')


def test_write_atomically_keeps_the_old_contents_when_writing_fails(tmp_path):
    path = str(tmp_path / 'metrics.json')
    write_atomically(path, 'old')
    with pytest.raises(TypeError):
        write_atomically(path, object())
    assert _labels(path) == 'old'
    assert os.listdir(tmp_path) == ['metrics.json']


def test_saved_model_replaces_an_earlier_export(trained, tmp_path):
    output = tmp_path / 'saved'
    _export(output, export_format='saved_model', checkpoint_path=trained)
    (output / 'stale.txt').write_text('from an earlier export')
    _export(output, export_format='saved_model', checkpoint_path=trained)
    assert sorted(os.listdir(output)) == ['export.json', 'labels.txt', 'saved_model.pb',
                                          'variables']
    assert sorted(os.listdir(tmp_path)) == ['saved']


@pytest.mark.parametrize('overrides, message', [
    (dict(export_format='tflite'), '--export_format=tflite needs a --checkpoint_path'),
    (dict(export_format='coreml'), "--export_format must be one of graphdef, saved_model, "
                                   "tflite, onnx; got 'coreml'"),
    (dict(write_text_graphdef=True, export_format='saved_model', checkpoint_path='x'),
     '--write_text_graphdef applies to --export_format=graphdef only'),
])
def test_invalid_export_requests_are_refused(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        _export(tmp_path / 'out', **overrides)


def test_command_without_output_file_is_one_line():
    result = helpers.run_command('export_inference_graph.py', '--model_name=lenet',
                                 '--dataset_name=mnist', check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'error: --output_file is required: where to write the export: a file, or a directory '
        'for --export_format=saved_model')


@pytest.mark.parametrize('export_format', ['saved_model', 'graphdef'])
def test_an_export_never_replaces_what_it_did_not_write(trained, tmp_path, export_format):
    documents = tmp_path / 'documents'
    documents.mkdir()
    (documents / 'thesis.txt').write_text('years of work')
    target = documents if export_format == 'saved_model' else documents / 'thesis.txt'
    with pytest.raises((FileExistsError, ValueError)) as error:
        _export(target, export_format=export_format, checkpoint_path=trained)
    assert 'is not an export written by this project' in str(error.value)
    assert (documents / 'thesis.txt').read_text() == 'years of work'
    assert sorted(os.listdir(documents)) == ['thesis.txt']
    assert sorted(os.listdir(tmp_path)) == ['documents']


def test_an_export_onto_a_users_directory_is_one_line(trained, tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    result = helpers.run_command('export_inference_graph.py', '--checkpoint_path=' + trained,
                                 '--model_name=lenet', '--dataset_name=mnist',
                                 '--output_file=%s' % tmp_path, '--export_format=saved_model',
                                 check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        'error: %s exists and is not an export written by this project' % tmp_path)
    assert sorted(os.listdir(tmp_path)) == ['notes.txt']
