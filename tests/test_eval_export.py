"""eval_image_classifier --model_path: any export, one exact pass, compared with its checkpoint."""

import glob
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from slim_classifier.cli import runner
from slim_classifier.evaluation import evaluator, export_evaluation
from slim_classifier.evaluation.config import EvalConfig
from slim_classifier.serving import classifier, exporter
from slim_classifier.serving.config import ExportConfig
from slim_classifier.training import trainer
from tests import training_helpers as helpers

DIGIT_NAMES = [str(digit) for digit in range(10)]
# The 359 test records leave a partial last batch of 50.
BATCH_SIZE = 50
# A float export computes what its checkpoint does, up to float rounding.
MAX_FLOAT_GAP_POINTS = 0.3
MAX_FLOAT_CHANGED_FRACTION = 0.01
CALIBRATION_STEPS = 32  # int8_io
# The quantized exports keep the top-1 class of nearly every digit.
MAX_QUANTIZED_CHANGED_FRACTION = 0.05
NOISY_STEP = 7


@pytest.fixture(scope='module')
def trained(digits_dir, tmp_path_factory):
    """(training directory, checkpoint) of a LeNet trained on digits."""
    train_dir = str(tmp_path_factory.mktemp('train'))
    result = trainer.train(helpers.lenet_config(train_dir, digits_dir, max_number_of_steps=150))
    return train_dir, result.checkpoint


@pytest.fixture(scope='module')
def exports(trained, digits_dir, tmp_path_factory):
    """{name: path}: a frozen graph, a SavedModel, a float TFLite model and two quantized ones."""
    _, checkpoint = trained
    directory = tmp_path_factory.mktemp('exports')
    formats = {'graphdef': ('graphdef', 'none', 'lenet.pb'),
               'saved_model': ('saved_model', 'none', 'saved_model'),
               'tflite': ('tflite', 'none', 'lenet.tflite'),
               'dynamic_range': ('tflite', 'dynamic_range', 'lenet_dynamic_range.tflite'),
               'int8_io': ('tflite', 'int8_io', 'lenet_int8_io.tflite')}
    paths = {}
    for name, (export_format, quantization, filename) in formats.items():
        paths[name] = str(directory / filename)
        exporter.export(ExportConfig(model_name='lenet', output_file=paths[name],
                                     class_names=DIGIT_NAMES, export_format=export_format,
                                     quantization=quantization, checkpoint_path=checkpoint,
                                     dataset_name='digits', dataset_dir=digits_dir,
                                     calibration_steps=CALIBRATION_STEPS))
    return paths


@pytest.fixture(scope='module')
def onnx_export(trained, tmp_path_factory):
    """The LeNet as ONNX (the test extra installs the optional 'onnx' extra)."""
    path = str(tmp_path_factory.mktemp('onnx') / 'lenet.onnx')
    exporter.export(ExportConfig(model_name='lenet', output_file=path, class_names=DIGIT_NAMES,
                                 export_format='onnx', checkpoint_path=trained[1]))
    return path


@pytest.fixture(scope='module')
def checkpoint_results(trained, digits_dir, tmp_path_factory):
    """The checkpoint's own evaluation (the checkpoint path of eval_image_classifier)."""
    return evaluator.evaluate(_config(digits_dir, tmp_path_factory.mktemp('eval'),
                                      checkpoint_path=trained[1]))


@pytest.fixture(scope='module')
def split_size(digits_dir):
    with open(os.path.join(digits_dir, 'dataset_info.json'), encoding='utf-8') as info_file:
        return json.load(info_file)['splits']['test']


def _config(digits_dir, eval_dir, **overrides):
    values = dict(eval_dir=str(eval_dir), dataset_dir=digits_dir, dataset_name='digits',
                  model_name='lenet', batch_size=BATCH_SIZE, num_readers=2,
                  num_preprocessing_threads=2)
    values.update(overrides)
    return EvalConfig(**values)


def _written(eval_dir):
    with open(os.path.join(eval_dir, evaluator.METRICS_FILENAME), encoding='utf-8') as metrics:
        return json.load(metrics)


def _test_records(digits_dir):
    """(encoded images, labels) of the test split, read in shard order without project code."""
    images, labels = [], []
    for path in sorted(glob.glob(os.path.join(digits_dir, 'digits_test_*.tfrecord'))):
        for record in tf.data.TFRecordDataset(path):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            images.append(feature['image/encoded'].bytes_list.value[0])
            labels.append(feature['image/class/label'].int64_list.value[0])
    return images, np.array(labels)


def _noisy_checkpoint(checkpoint, prefix):
    """`checkpoint`'s LeNet with noise added to its logits weights; returns its path."""
    values = {name: value for name, value in helpers.checkpoint_values(checkpoint).items()
              if name.startswith('LeNet/')}
    weights = values['LeNet/fc4/weights']
    noise = np.random.RandomState(0).normal(0, 2 * weights.std(), weights.shape)
    values['LeNet/fc4/weights'] = (weights + noise).astype(weights.dtype)
    with tf.Graph().as_default():
        variables = {name: tf.Variable(value) for name, value in values.items()}
        variables['global_step'] = tf.Variable(np.int64(NOISY_STEP))
        saver = tf.train.Saver(variables)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return saver.save(session, str(prefix), global_step=NOISY_STEP)


def _top_1(model_path, images, num_classes=None):
    model = classifier.load_model(model_path, 'lenet', num_classes=num_classes)
    try:
        return model.predict_batch(images).argmax(axis=1)
    finally:
        model.close()


@pytest.mark.parametrize('kind', ['graphdef', 'saved_model', 'onnx'])
def test_float_export_scores_what_its_checkpoint_scores(kind, exports, request, digits_dir,
                                                        checkpoint_results, split_size,
                                                        tmp_path):
    path = request.getfixturevalue('onnx_export') if kind == 'onnx' else exports[kind]
    results = export_evaluation.evaluate_export(_config(digits_dir, tmp_path, model_path=path))

    gap_points = 100 * abs(results['accuracy'] - checkpoint_results['accuracy'])
    assert gap_points <= MAX_FLOAT_GAP_POINTS
    assert results['num_examples'] == split_size
    assert np.sum(results['confusion_matrix']) == split_size
    assert (results['model_path'], results['model_kind']) == (path, kind)
    assert results['exported_from'] == checkpoint_results['checkpoint']
    assert 'comparison' not in results
    assert _written(tmp_path) == results
    assert (tmp_path / evaluator.CONFUSION_FILENAME).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_command_compares_a_tflite_export_with_its_checkpoint(trained, exports,
                                                              checkpoint_results, split_size,
                                                              tmp_path):
    # The export's metadata names the net, the training directory the dataset.
    train_dir, checkpoint = trained
    result = helpers.run_command(
        'eval_image_classifier.py', '--model_path=' + exports['tflite'],
        '--checkpoint_path=' + train_dir, '--eval_dir=%s' % tmp_path,
        '--batch_size=%d' % BATCH_SIZE)

    written = _written(tmp_path)
    comparison = written['comparison']
    assert (written['model_kind'], written['quantization']) == ('tflite', 'none')
    assert (written['model_name'], written['dataset_split_name']) == ('lenet', 'test')
    assert 100 * abs(written['accuracy'] - checkpoint_results['accuracy']) <= (
        MAX_FLOAT_GAP_POINTS)
    assert np.sum(written['confusion_matrix']) == split_size
    # The checkpoint is evaluated as by itself, then compared record by record.
    assert comparison['checkpoint'] == checkpoint
    assert comparison['checkpoint_accuracy'] == pytest.approx(checkpoint_results['accuracy'])
    assert comparison['accuracy_drop_points'] == pytest.approx(
        100 * (checkpoint_results['accuracy'] - written['accuracy']))
    assert comparison['num_examples'] == split_size
    assert comparison['changed_fraction'] < MAX_FLOAT_CHANGED_FRACTION
    assert 'accuracy                 %.4f' % written['accuracy'] in result.stdout
    assert 'accuracy_drop            %.2f points' % comparison['accuracy_drop_points'] in (
        result.stdout)
    assert ('lenet.tflite against %s: accuracy %.4f -> %.4f' % (
        checkpoint, comparison['checkpoint_accuracy'], written['accuracy'])) in result.stdout
    assert (tmp_path / evaluator.CONFUSION_FILENAME).exists()


@pytest.mark.parametrize('quantization', ['dynamic_range', 'int8_io'])
def test_quantized_export_is_compared_with_its_checkpoint(quantization, trained, exports,
                                                          digits_dir, checkpoint_results,
                                                          tmp_path):
    results = export_evaluation.evaluate_export(_config(
        digits_dir, tmp_path, model_path=exports[quantization], checkpoint_path=trained[1]))

    comparison = results['comparison']
    assert results['quantization'] == quantization
    assert comparison['checkpoint_accuracy'] == pytest.approx(checkpoint_results['accuracy'])
    assert comparison['accuracy_drop_points'] == pytest.approx(
        100 * (checkpoint_results['accuracy'] - results['accuracy']))
    assert comparison['changed_fraction'] == pytest.approx(
        comparison['predictions_changed'] / comparison['num_examples'])
    assert comparison['changed_fraction'] < MAX_QUANTIZED_CHANGED_FRACTION
    assert _written(tmp_path)['comparison'] == comparison


def test_changed_predictions_are_counted_record_by_record(trained, exports, digits_dir,
                                                          tmp_path):
    # A checkpoint with noisy logits weights disagrees with the export on some records.
    noisy = _noisy_checkpoint(trained[1], tmp_path / 'noisy' / 'model.ckpt')
    results = export_evaluation.evaluate_export(_config(
        digits_dir, tmp_path / 'eval', model_path=exports['graphdef'], checkpoint_path=noisy))

    images, labels = _test_records(digits_dir)
    export_top_1 = _top_1(exports['graphdef'], images)
    checkpoint_top_1 = _top_1(noisy, images, num_classes=10)
    comparison = results['comparison']
    assert 0 < comparison['predictions_changed'] < len(labels)
    assert comparison['predictions_changed'] == np.sum(export_top_1 != checkpoint_top_1)
    assert results['accuracy'] == pytest.approx(np.mean(export_top_1 == labels))
    assert comparison['checkpoint_accuracy'] == pytest.approx(
        np.mean(checkpoint_top_1 == labels))
    assert comparison['global_step'] == NOISY_STEP


def test_export_metadata_gives_the_model_options(exports):
    given = {field: getattr(_config('/d', '/e'), field)
             for field in ('model_name', 'preprocessing_name', 'eval_image_size',
                           'labels_offset', 'use_grayscale')}
    assert export_evaluation.export_defaults(exports['tflite'], given, set()) == {
        'model_name': 'lenet', 'preprocessing_name': 'lenet', 'eval_image_size': 28,
        'labels_offset': 0, 'use_grayscale': True}
    # LeNet reads one channel whatever --use_grayscale says, so this agrees.
    assert 'use_grayscale' not in export_evaluation.export_defaults(
        exports['tflite'], dict(given, use_grayscale=False), {'use_grayscale'})
    with pytest.raises(ValueError, match=r'^--model_name=cifarnet contradicts the export .*'
                                         r'lenet\.tflite, made for --model_name=lenet'):
        export_evaluation.export_defaults(exports['tflite'], dict(given, model_name='cifarnet'),
                                          {'model_name'})


@pytest.mark.parametrize('what, message', [
    ('junk', r"is not a SavedModel, TFLite model, GraphDef or checkpoint"),
    ('directory', r"is no export: expected a frozen GraphDef .* evaluate a checkpoint or "
                  r"training directory with --checkpoint_path"),
    ('missing', r"^--model_path '.*nothing\.pb' does not exist$"),
])
def test_what_is_not_an_export_is_one_line(what, message, trained, digits_dir, tmp_path):
    paths = {'junk': tmp_path / 'junk.pb', 'directory': trained[0],
             'missing': tmp_path / 'nothing.pb'}
    (tmp_path / 'junk.pb').write_text('not a model\n')
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        export_evaluation.evaluate_export(_config(digits_dir, tmp_path / 'eval',
                                                  model_path=str(paths[what])))
    line = runner.user_message(caught.value)
    assert re.search(message, line)
    assert '\n' not in line
    assert not (tmp_path / 'eval' / evaluator.METRICS_FILENAME).exists()


def test_an_export_without_metadata_needs_its_net_named(exports, tmp_path):
    bare = str(tmp_path / 'bare.tflite')
    shutil.copy(exports['tflite'], bare)
    junk = tmp_path / 'junk.tflite'
    junk.write_bytes(b'not a model at all')
    given = {'model_name': 'inception_v3', 'preprocessing_name': None}
    with pytest.raises(ValueError, match=r'bare\.tflite has no metadata .*bare\.tflite\.json\): '
                                         r'give the --model_name'):
        export_evaluation.export_defaults(bare, given, set())
    assert export_evaluation.export_defaults(bare, dict(given, model_name='lenet'),
                                             {'model_name'}) == {}
    with pytest.raises(ValueError, match='is not a SavedModel, TFLite model, GraphDef'):
        export_evaluation.export_defaults(str(junk), given, set())


def test_export_of_another_class_count_is_refused(exports, digits_dir, tmp_path):
    with pytest.raises(ValueError, match=r'gives 10 probabilities but digits has 9 classes '
                                         r'from --labels_offset=1 on'):
        export_evaluation.evaluate_export(_config(digits_dir, tmp_path, labels_offset=1,
                                                  model_path=exports['graphdef']))


def test_model_path_is_evaluated_once_not_watched(exports, digits_dir, tmp_path):
    with pytest.raises(ValueError, match=r'^--eval_interval_secs watches a checkpoint directory '
                                         r'.*--model_path=.*lenet\.pb\) is evaluated once'):
        _config(digits_dir, tmp_path, model_path=exports['graphdef'], eval_interval_secs=10)
