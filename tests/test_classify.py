"""classify_image: the top classes of real photographs from every kind of model."""

import glob
import os
import re
import shutil

import numpy as np
import pytest
import sklearn.datasets
import tensorflow.compat.v1 as tf
from PIL import Image

from nets import nets_factory
from preprocessing import preprocessing_factory
from slim_classifier.serving import classifier, exporter, labels, metadata
from slim_classifier.training import trainer
from tests import training_helpers as helpers

PHOTOS = [os.path.join(os.path.dirname(sklearn.datasets.__file__), 'images', name)
          for name in ('china.jpg', 'flower.jpg')]
DIGIT_NAMES = [str(digit) for digit in range(10)]
TOLERANCE = 1e-4
KINDS = ('graphdef', 'saved_model', 'tflite', 'checkpoint')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """The two photographs and a handwritten digit saved as a PNG."""
    digits, _ = helpers.digits_arrays()
    digit_path = str(tmp_path_factory.mktemp('images') / 'digit.png')
    Image.fromarray(digits[0]).save(digit_path)
    return PHOTOS + [digit_path]


@pytest.fixture(scope='module')
def models(digits_dir, tmp_path_factory):
    """kind -> model path: a trained LeNet checkpoint and its three exports."""
    directory = tmp_path_factory.mktemp('models')
    checkpoint = trainer.train(helpers.lenet_config(directory / 'train', digits_dir,
                                                    max_number_of_steps=100)).checkpoint
    paths = {'checkpoint': checkpoint,
             'graphdef': str(directory / 'graph' / 'lenet.pb'),
             'saved_model': str(directory / 'saved_model'),
             'tflite': str(directory / 'tflite' / 'lenet.tflite')}
    for kind in ('graphdef', 'saved_model', 'tflite'):
        exporter.export(exporter.ExportConfig(model_name='lenet', output_file=paths[kind],
                                              class_names=DIGIT_NAMES, export_format=kind,
                                              checkpoint_path=checkpoint))
    return paths


def _reference(checkpoint, model_name, num_classes, image_paths, size, preprocessing=None):
    """Probabilities of a checkpoint, with the images preprocessed by the factory."""
    with tf.Graph().as_default():
        preprocess = preprocessing_factory.get_preprocessing(preprocessing or model_name)
        images = tf.stack([preprocess(tf.io.decode_image(tf.io.read_file(path), channels=3,
                                                         expand_animations=False), size, size)
                           for path in image_paths])
        _, end_points = nets_factory.get_network_fn(model_name, num_classes)(images)
        with tf.Session() as session:
            tf.train.Saver().restore(session, checkpoint)
            return session.run(end_points['Predictions'])


@pytest.fixture(scope='module')
def expected(models, images):
    return _reference(models['checkpoint'], 'lenet', 10, images, 28)


@pytest.mark.parametrize('kind', KINDS)
def test_every_kind_of_model_gives_the_checkpoint_probabilities(models, images, expected,
                                                                kind):
    model = classifier.load_model(models[kind], 'lenet', num_classes=10)
    try:
        probabilities = np.stack([classifier.classify_file(model, path) for path in images])
    finally:
        model.close()
    assert model.kind == kind
    assert np.abs(probabilities - expected).max() < TOLERANCE


@pytest.mark.parametrize('kind', KINDS)
def test_a_batch_gives_what_each_image_gives(models, images, expected, kind):
    encoded = [classifier.read_image(path) for path in images]
    model = classifier.load_model(models[kind], 'lenet', num_classes=10)
    try:
        batch = model.predict_batch(encoded + encoded[:1])
        outcomes = classifier.predict_each(model, [encoded[0], b'not an image', encoded[2]])
    finally:
        model.close()
    assert batch.shape == (len(images) + 1, model.output_size) == (4, 10)
    assert np.abs(batch - np.concatenate([expected, expected[:1]])).max() < TOLERANCE
    assert [outcome.error is None for outcome in outcomes] == [True, False, True]
    assert 'Unknown image file format' in outcomes[1].error
    assert np.abs(outcomes[2].outputs - expected[2]).max() < TOLERANCE


def _printed(stdout):
    """{image path: [(probability, name, id), ...]} from the command's output."""
    printed, current = {}, None
    for line in stdout.splitlines():
        match = re.fullmatch(r'  ([0-9.]+)  (.+) \((\d+)\)', line)
        if match:
            printed[current].append((float(match[1]), match[2], int(match[3])))
        elif line:
            current = line
            printed[current] = []
    return printed


@pytest.mark.parametrize('kind', ['saved_model', 'checkpoint'])
def test_command_prints_the_top_classes_of_photographs(models, images, expected, digits_dir,
                                                       kind):
    result = helpers.run_command(
        'classify_image.py', '--model_path=' + models[kind], '--model_name=lenet',
        '--top_k=3', '--labels_file=' + os.path.join(digits_dir, 'labels.txt'), *images)
    printed = _printed(result.stdout)
    assert list(printed) == images
    for path, probabilities in zip(images, expected):
        top = np.argsort(-probabilities)[:3]
        assert [class_id for _, _, class_id in printed[path]] == top.tolist()
        assert [name for _, name, _ in printed[path]] == [DIGIT_NAMES[i] for i in top]
        assert [p for p, _, _ in printed[path]] == pytest.approx(probabilities[top], abs=1e-4)


def test_labels_inside_a_saved_model_and_in_the_metadata_of_a_file(models):
    assert classifier.default_labels_file(models['saved_model']) == os.path.join(
        models['saved_model'], 'labels.txt')
    assert metadata.read(models['tflite']).class_names == DIGIT_NAMES


def test_checkpoint_of_an_rgb_net_gets_its_own_preprocessing(tmp_path, images):
    with tf.Graph().as_default():
        nets_factory.get_network_fn('cifarnet', 4)(tf.zeros([1, 32, 32, 3]))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            checkpoint = tf.train.Saver().save(session, str(tmp_path / 'model.ckpt'))
    own = _reference(checkpoint, 'cifarnet', 4, images, 32)
    other = _reference(checkpoint, 'cifarnet', 4, images, 32, preprocessing='inception')
    assert np.abs(own - other).max() > 10 * TOLERANCE, 'the preprocessings should differ'
    for preprocessing, reference in ((None, own), ('inception', other)):
        model = classifier.load_model(checkpoint, 'cifarnet', num_classes=4,
                                      preprocessing_name=preprocessing)
        probabilities = np.stack([classifier.classify_file(model, path) for path in images])
        model.close()
        assert np.abs(probabilities - reference).max() < TOLERANCE


def test_command_with_a_checkpoint_outside_a_run_needs_labels(models, images, tmp_path):
    for path in glob.glob(models['checkpoint'] + '.*'):
        shutil.copy(path, tmp_path)
    lone = str(tmp_path / os.path.basename(models['checkpoint']))
    result = helpers.run_command('classify_image.py', '--model_path=' + lone,
                                 '--model_name=lenet', images[0], check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        'error: classifying with a checkpoint needs --labels_file')


def test_a_file_that_is_no_image_is_named(models, tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('not an image')
    model = classifier.load_model(models['graphdef'], 'lenet')
    with pytest.raises(ValueError, match="cannot classify '.*notes.txt': Unknown image file"):
        classifier.classify_file(model, str(text))
    model.close()


def test_unfrozen_graph_is_refused(tmp_path):
    exporter.export(exporter.ExportConfig(model_name='lenet', output_file=str(tmp_path / 'lenet.pb'),
                                          class_names=DIGIT_NAMES))
    with pytest.raises(ValueError, match='holds variables, not weights'):
        classifier.load_model(str(tmp_path / 'lenet.pb'), 'lenet')


def test_model_kinds_are_recognised(models, tmp_path):
    for kind in KINDS:
        assert classifier.model_kind(models[kind]) == kind
    assert classifier.model_kind(os.path.dirname(models['checkpoint'])) == 'checkpoint'
    onnx_file = tmp_path / 'model.onnx'
    onnx_file.write_bytes(b'not really ONNX')
    assert classifier.model_kind(str(onnx_file)) == 'onnx'
    with pytest.raises(ValueError, match='is not an ONNX model that ONNX Runtime can run'):
        classifier.load_model(str(onnx_file), 'lenet')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        classifier.model_kind(str(tmp_path / 'missing.pb'))


def test_top_k_orders_by_probability_and_names_by_id():
    top = classifier.top_k(np.array([0.1, 0.6, 0.3]), ['a', 'b', 'c'], 2)
    assert [(p.class_id, p.name) for p in top] == [(1, 'b'), (2, 'c')]
    assert top[0].probability == pytest.approx(0.6)
    assert [p.name for p in classifier.top_k(np.array([0.2, 0.8]), None, 5)] == ['1', '0']
    with pytest.raises(ValueError, match='the labels name 2 classes but the model gives 3'):
        classifier.top_k(np.array([0.1, 0.6, 0.3]), ['a', 'b'], 1)


def test_labels_offset_drops_the_background_class(tmp_path):
    path = tmp_path / 'labels.txt'
    path.write_text('0:background\n1:tench\n2:goldfish\n')
    assert labels.read_labels_file(str(path), labels_offset=1) == ['tench', 'goldfish']
