"""Multi-label export, classification and batch prediction: sigmoids, thresholds, labels."""

import csv
import dataclasses
import glob
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from datasets import converters
from nets import nets_factory
from preprocessing import preprocessing_factory
from slim_classifier.serving import (classifier, exporter, metadata, multi_label, prediction,
                                     prediction_files)
from slim_classifier.serving.config import ExportConfig, PredictOptions
from slim_classifier.training import trainer
from tests import training_helpers as helpers

LABEL_NAMES = [str(digit) for digit in range(10)]
TILES = 8  # test tiles classified from files, besides a blank one
TOLERANCE = 1e-5


def _test_records(dataset_dir):
    """(encoded PNG, sorted label ids) of each record of the digit_tiles test split."""
    records = []
    for path in sorted(glob.glob(os.path.join(dataset_dir, 'digit_tiles_test_*'))):
        for record in tf.io.tf_record_iterator(path):
            feature = tf.train.Example.FromString(record).features.feature
            records.append((feature['image/encoded'].bytes_list.value[0],
                            list(feature['image/class/labels'].int64_list.value)))
    return records


def _checkpoint_logits(checkpoint, encoded_images):
    """LeNet's logits on the images, built from the factories and restored by a plain Saver."""
    with tf.Graph().as_default():
        preprocess = preprocessing_factory.get_preprocessing('lenet')
        images = tf.stack([preprocess(tf.io.decode_image(encoded, channels=3,
                                                         expand_animations=False), 28, 28)
                           for encoded in encoded_images])
        logits, _ = nets_factory.get_network_fn('lenet', len(LABEL_NAMES))(images)
        with tf.Session() as session:
            tf.train.Saver().restore(session, checkpoint)
            return session.run(logits)


def _sigmoid(logits):
    return 1 / (1 + np.exp(-logits.astype(np.float64)))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A LeNet trained 120 steps on digit_tiles, with a tuned thresholds.json beside it, exported
    as a frozen graph (in process) and as TFLite (from the command line); and image files: test
    tiles and a blank tile that every label's threshold is above. (After 40 steps the
    probabilities sat near the prior, and at times no tile had two labels above the blank's.)"""
    directory = tmp_path_factory.mktemp('multi_label')
    dataset_dir = str(directory / 'digit_tiles')
    converters.convert('digit_tiles', dataset_dir)
    train_dir = str(directory / 'train')
    checkpoint = trainer.train(helpers.lenet_config(
        train_dir, dataset_dir, dataset_name='digit_tiles', max_number_of_steps=120,
        learning_rate=0.05)).checkpoint
    records = _test_records(dataset_dir)
    image_dir = directory / 'images'
    image_dir.mkdir()
    paths = []
    for index, (encoded, _) in enumerate(records[:TILES]):
        paths.append(str(image_dir / ('tile_%d.png' % index)))
        with open(paths[-1], 'wb') as image_file:
            image_file.write(encoded)
    blank = str(image_dir / 'blank.png')
    Image.fromarray(np.zeros([56, 56], np.uint8)).save(blank)
    paths.append(blank)
    # Thresholds as --tune_thresholds writes them: each just above the blank tile's probability.
    blank_probabilities = _sigmoid(_checkpoint_logits(checkpoint, [_read(blank)]))[0]
    thresholds = [round(float(value) + 1e-3, 6) for value in blank_probabilities]
    with open(os.path.join(train_dir, multi_label.THRESHOLDS_FILENAME), 'w') as record:
        json.dump({'labels': LABEL_NAMES, 'thresholds': thresholds, 'f1': [0.5] * 10,
                   'split': 'test', 'checkpoint': checkpoint}, record)
    graph_path = str(directory / 'export' / 'lenet.pb')
    exporter.export(ExportConfig(model_name='lenet', output_file=graph_path,
                                 class_names=LABEL_NAMES, checkpoint_path=checkpoint,
                                 multi_label=True))
    tflite_path = str(directory / 'export' / 'lenet.tflite')
    exported = helpers.run_command('export_inference_graph.py', '--checkpoint_path=' + train_dir,
                                   '--output_file=' + tflite_path, '--export_format=tflite')
    return dict(dataset_dir=dataset_dir, train_dir=train_dir, checkpoint=checkpoint,
                records=records, paths=paths, thresholds=thresholds, graphdef=graph_path,
                tflite=tflite_path, export_stdout=exported.stdout)


def _read(path):
    with open(path, 'rb') as image_file:
        return image_file.read()


@pytest.fixture(scope='module')
def expected(run):
    """The sigmoid of the checkpoint's logits on the image files, by path."""
    logits = _checkpoint_logits(run['checkpoint'], [_read(path) for path in run['paths']])
    return dict(zip(run['paths'], _sigmoid(logits)))


@pytest.mark.parametrize('kind', ['graphdef', 'tflite'])
def test_exports_give_the_sigmoid_of_the_checkpoint_logits(run, expected, kind):
    model = classifier.load_model(run[kind], 'lenet')
    try:
        outputs = model.predict_batch([_read(path) for path in run['paths']])
    finally:
        model.close()
    reference = np.stack([expected[path] for path in run['paths']])
    assert np.abs(outputs - reference).max() < TOLERANCE
    # Independent per-label probabilities, not a distribution over the labels.
    assert np.abs(outputs.sum(axis=1) - 1).max() > 0.1


def test_metadata_carries_the_thresholds(run):
    from_command = metadata.read(run['tflite'])
    assert from_command.multi_label
    assert from_command.thresholds == run['thresholds']
    assert from_command.thresholds_file == os.path.join(run['train_dir'],
                                                        multi_label.THRESHOLDS_FILENAME)
    assert 'per-label sigmoid probabilities' in run['export_stdout']
    assert metadata.read(run['graphdef']).thresholds == run['thresholds']
    uniform = exporter.export(ExportConfig(
        model_name='lenet', output_file=os.path.join(os.path.dirname(run['graphdef']), 'u.pb'),
        class_names=LABEL_NAMES, checkpoint_path=run['checkpoint'], multi_label=True,
        threshold=0.3))
    assert (uniform.thresholds, uniform.thresholds_file) == ([0.3] * 10, None)


def test_a_multi_label_run_is_recognised_and_thresholds_must_fit_its_labels(run, tmp_path):
    assert multi_label.is_multi_label(run['train_dir'], None, None)
    assert multi_label.is_multi_label(None, 'tiles', run['dataset_dir'])
    assert multi_label.is_multi_label(None, 'digit_tiles', None)
    assert not multi_label.is_multi_label(None, 'digits', None)
    wrong = tmp_path / multi_label.THRESHOLDS_FILENAME
    wrong.write_text(json.dumps({'labels': LABEL_NAMES[:9], 'thresholds': [0.5] * 9}))
    with pytest.raises(ValueError, match='has thresholds for the labels .* but the net has'):
        multi_label.read_thresholds(str(wrong), LABEL_NAMES)
    with pytest.raises(ValueError, match='--threshold=0.3 applies to a multi-label net only'):
        exporter.export(ExportConfig(model_name='lenet', output_file=str(tmp_path / 'x.pb'),
                                     class_names=LABEL_NAMES, threshold=0.3))


def _classified(stdout):
    """{image path: ([(label id, name, probability)...], whether no label was above)}."""
    printed, current = {}, None
    for line in stdout.splitlines():
        match = re.fullmatch(r'  ([0-9.]+)  (.+) \((\d+)\)', line)
        if match:
            printed[current][0].append((int(match[3]), match[2], float(match[1])))
        elif line == '  no label above threshold; the likeliest:':
            printed[current][1] = True
        else:
            current = line
            printed[current] = [[], False]
    return printed


@pytest.fixture(scope='module')
def classified(run, expected):
    """classify_image.py on the TFLite export with a uniform --threshold, and that threshold:
    just above the blank tile's likeliest label."""
    threshold = round(float(expected[run['paths'][-1]].max()) + 1e-3, 4)
    result = helpers.run_command('classify_image.py', '--model_path=' + run['tflite'],
                                 '--multi_label', '--threshold=%g' % threshold, *run['paths'])
    return _classified(result.stdout), threshold


def test_classify_prints_the_labels_at_or_above_the_threshold(run, expected, classified):
    printed, threshold = classified
    assert list(printed) == run['paths']
    for path, (labels, none_above) in printed.items():
        probabilities = expected[path]
        above = [index for index in np.argsort(-probabilities, kind='stable')
                 if probabilities[index] >= threshold]
        assert none_above == (not above)
        wanted = above or [int(np.argmax(probabilities))]
        assert [(class_id, name) for class_id, name, _ in labels] == [
            (int(index), LABEL_NAMES[index]) for index in wanted]
        assert [p for _, _, p in labels] == pytest.approx(probabilities[wanted], abs=1e-4)
    assert any(none_above for _, none_above in printed.values())
    assert any(len(labels) > 1 for labels, _ in printed.values())


def _predict_here(**values):
    """predict_image_classifier.py's library, as flags `values` would run it; the Summary."""
    options, names_dataset = prediction.model_options(
        PredictOptions, {field.name: field.default for field in dataclasses.fields(PredictOptions)
                         if field.metadata.get('flag')} | values, set(values))
    return prediction.predict(options, names_dataset, set(values), progress_stream=None)


def test_predicted_rows_agree_with_classify_row_by_row(run, classified, tmp_path):
    printed, threshold = classified
    output = str(tmp_path / 'predictions.csv')
    image_dir = os.path.dirname(run['paths'][0])
    _predict_here(model_path=run['tflite'], input=image_dir, output=output, threshold=threshold,
                  batch_size=4)
    with open(output, newline='', encoding='utf-8') as rows:
        rows = list(csv.DictReader(rows))
    assert prediction_files.is_prediction_file(output)
    assert sorted(row['path'] for row in rows) == sorted(printed)
    for row in rows:
        labels, none_above = printed[row['path']]
        predicted = [] if none_above else labels
        assert row['labels'] == ';'.join(str(class_id) for class_id, _, _ in predicted)
        assert row['names'] == ';'.join(name for _, name, _ in predicted)
        for class_id, _, probability in labels:
            assert float(row['probability_of_%d' % class_id]) == pytest.approx(probability,
                                                                               abs=1e-5)


def test_predicting_a_split_gives_true_labels_and_the_tuned_thresholds(run, tmp_path):
    records = run['records']
    output = str(tmp_path / 'split.jsonl')
    summary = _predict_here(model_path=run['train_dir'], dataset_dir=run['dataset_dir'],
                            dataset_name='digit_tiles', dataset_split_name='test', output=output,
                            batch_size=100)
    with open(output, encoding='utf-8') as lines:
        rows = [json.loads(line) for line in lines]
    assert (summary.rows, summary.model_kind) == (len(records), 'checkpoint')
    assert [row['true_labels'] for row in rows] == [labels for _, labels in records]
    logits = _checkpoint_logits(run['checkpoint'], [encoded for encoded, _ in records[:TILES]])
    for row, (_, labels), probabilities in zip(rows, records, _sigmoid(logits)):
        assert row['true_labels'] == labels
        assert row['true_names'] == [LABEL_NAMES[label] for label in labels]
        assert row['probabilities'] == pytest.approx(probabilities, abs=TOLERANCE)
        assert set(row['labels']) == {index for index in range(10)
                                      if row['probabilities'][index] >= run['thresholds'][index]}
        assert row['names'] == [LABEL_NAMES[label] for label in row['labels']]
    top = str(tmp_path / 'top.csv')
    shutil.copy(run['paths'][0], tmp_path / 'tile.png')
    _predict_here(model_path=run['graphdef'], input=str(tmp_path / 'tile.png'), output=top,
                  top_k=2)
    with open(top, newline='', encoding='utf-8') as rows:
        header = next(csv.reader(rows))
    assert header == ['path', 'error', 'labels', 'names', 'class_1', 'name_1', 'probability_1',
                      'class_2', 'name_2', 'probability_2']
