"""Every export format loads and runs for every registered preprocessing, and carries its metadata."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf2
import tensorflow.compat.v1 as tf
from PIL import Image

from nets import nets_factory
from preprocessing import preprocessing_factory
from slim_classifier.serving import classifier, exporter, metadata
from slim_classifier.serving.config import EXPORT_FORMATS, ExportConfig
from tests import training_helpers as helpers

CLASS_NAMES = ['zero', 'one', 'two']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A LeNet with 3 classes and random weights, saved as a checkpoint."""
    directory = tmp_path_factory.mktemp('lenet')
    with tf.Graph().as_default():
        nets_factory.get_network_fn('lenet', len(CLASS_NAMES))(tf.zeros([1, 28, 28, 1]))
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return tf.train.Saver().save(session, str(directory / 'model.ckpt'))


def _encoded_png(seed=0):
    pixels = np.random.RandomState(seed).randint(0, 255, [40, 36, 3], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='PNG')
    return buffer.getvalue()


@pytest.mark.parametrize('export_format', EXPORT_FORMATS)
@pytest.mark.parametrize('preprocessing_name', preprocessing_factory.list_preprocessing_names())
def test_export_loads_and_runs(checkpoint, tmp_path, preprocessing_name, export_format):
    name = 'lenet.%s' % {'graphdef': 'pb', 'tflite': 'tflite', 'saved_model': 'sm',
                         'onnx': 'onnx'}[export_format]
    output = str(tmp_path / name)
    result = exporter.export(ExportConfig(
        model_name='lenet', output_file=output, class_names=CLASS_NAMES,
        export_format=export_format, checkpoint_path=checkpoint,
        preprocessing_name=preprocessing_name, use_grayscale=True))
    described = metadata.read(output)
    assert result.metadata_file == metadata.metadata_path(output)
    assert (described.model_name, described.preprocessing_name, described.image_size,
            described.channels, described.class_names) == (
                'lenet', preprocessing_name, 28, 1, CLASS_NAMES)
    model = classifier.load_model(output, 'lenet', preprocessing_name=described.preprocessing_name)
    try:
        probabilities = model.predict(_encoded_png())
    finally:
        model.close()
    assert probabilities.shape == (len(CLASS_NAMES),)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    if export_format == 'saved_model':
        # The TF2 loader, too: no node of the saved graph may be missing (as image
        # summaries of the evaluation preprocessing once were).
        loaded = tf2.saved_model.load(output)
        served = loaded.signatures['serving_default'](
            encoded_images=tf2.constant([_encoded_png()]))
        assert served['probabilities'].shape == (1, len(CLASS_NAMES))


def test_exports_in_one_folder_keep_their_own_metadata(checkpoint, tmp_path):
    for model_format, names in (('graphdef', CLASS_NAMES), ('tflite', ['a', 'b', 'c'])):
        exporter.export(ExportConfig(model_name='lenet', output_file=str(tmp_path / (
            'lenet.' + model_format)), class_names=names, export_format=model_format,
            checkpoint_path=checkpoint))
    assert sorted(os.listdir(tmp_path)) == ['lenet.graphdef', 'lenet.graphdef.json',
                                            'lenet.tflite', 'lenet.tflite.json']
    assert metadata.read(str(tmp_path / 'lenet.graphdef')).class_names == CLASS_NAMES
    assert metadata.read(str(tmp_path / 'lenet.tflite')).class_names == ['a', 'b', 'c']


def test_classify_uses_the_metadata_and_refuses_a_contradicting_flag(checkpoint, tmp_path):
    output = str(tmp_path / 'cifar_pre.tflite')
    exporter.export(ExportConfig(model_name='lenet', output_file=output, class_names=CLASS_NAMES,
                                 export_format='tflite', checkpoint_path=checkpoint,
                                 preprocessing_name='cifarnet', use_grayscale=True))
    image = tmp_path / 'x.png'
    image.write_bytes(_encoded_png())
    result = helpers.run_command('classify_image.py', '--model_path=' + output, str(image))
    assert result.stdout.splitlines()[1].split()[1] in CLASS_NAMES  # names from the metadata
    wrong = helpers.run_command('classify_image.py', '--model_path=' + output,
                                '--preprocessing_name=inception', str(image), check=False)
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines()[-1] == (
        'error: --preprocessing_name=inception contradicts the export %s, made for '
        'preprocessing_name=cifarnet (%s.json)' % (output, output))
    os.remove(output + '.json')
    bare = helpers.run_command('classify_image.py', '--model_path=' + output, str(image),
                               check=False)
    assert bare.returncode == 1
    assert bare.stderr.strip().splitlines()[-1].startswith(
        'error: %s has no metadata (%s.json): give the --model_name' % (output, output))
