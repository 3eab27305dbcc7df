"""predict_image_classifier: files of predictions that agree with the model, image by image."""

import csv
import dataclasses
import glob
import io
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import sklearn.datasets
import tensorflow.compat.v1 as tf
from PIL import Image

from datasets import input_pipeline
from slim_classifier.evaluation import evaluator
from slim_classifier.serving import (classifier, exporter, image_sources, metadata, prediction,
                                     prediction_files)
from slim_classifier.serving.config import PredictOptions
from slim_classifier.training import trainer
from tests import training_helpers as helpers

PHOTOS = [os.path.join(os.path.dirname(sklearn.datasets.__file__), 'images', name)
          for name in ('china.jpg', 'flower.jpg')]
DIGIT_NAMES = [str(digit) for digit in range(10)]
TOLERANCE = 1e-5


@pytest.fixture(scope='module')
def models(digits_dir, tmp_path_factory):
    """kind -> model path: a LeNet training directory, its frozen graph and that as ONNX."""
    directory = tmp_path_factory.mktemp('models')
    train_dir = str(directory / 'train')
    checkpoint = trainer.train(helpers.lenet_config(train_dir, digits_dir,
                                                    max_number_of_steps=150)).checkpoint
    graph_path = str(directory / 'graph' / 'lenet.pb')
    exporter.export(exporter.ExportConfig(model_name='lenet', output_file=graph_path,
                                          class_names=DIGIT_NAMES, checkpoint_path=checkpoint))
    return {'checkpoint': train_dir, 'graphdef': graph_path,
            'onnx': _onnx_of(graph_path, str(directory / 'onnx' / 'lenet.onnx'))}


def _onnx_of(graph_path, onnx_path):
    """The frozen graph as ONNX (tf2onnx), with the graph's metadata beside it."""
    import tf2onnx
    graph_def = tf.GraphDef()
    with open(graph_path, 'rb') as graph_file:
        graph_def.ParseFromString(graph_file.read())
    model, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=['input:0'],
                                              output_names=['output:0'], opset=13)
    os.makedirs(os.path.dirname(onnx_path))
    with open(onnx_path, 'wb') as onnx_file:
        onnx_file.write(model.SerializeToString())
    metadata.write(metadata.metadata_path(onnx_path),
                   dataclasses.replace(metadata.read(graph_path), export_format='onnx'))
    return onnx_path


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory):
    """Two photographs and 23 handwritten digits (PNG), in nested folders, and a hidden file."""
    directory = tmp_path_factory.mktemp('images')
    digits, _ = helpers.digits_arrays()
    for index in range(23):
        folder = directory / ('even' if index % 2 == 0 else 'odd') / ('deep' if index % 3 else '')
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits[index]).save(folder / ('digit_%02d.png' % index))
    for photo in PHOTOS:
        shutil.copy(photo, directory)
    (directory / '.notes.txt').write_text('hidden, so not an image to predict')
    return str(directory)


def _image_files(directory):
    return sorted(path for path in glob.glob(os.path.join(directory, '**', '*'), recursive=True)
                  if os.path.isfile(path))


def _read_csv(path):
    with open(path, newline='', encoding='utf-8') as rows:
        return list(csv.DictReader(rows))


def _read_jsonl(path):
    with open(path, encoding='utf-8') as rows:
        return [json.loads(line) for line in rows]


def _predict(*args, check=True):
    return helpers.run_command('predict_image_classifier.py', *args, check=check)


def _predict_here(**values):
    """Runs the command's library in this process, as flags `values` would; returns the Summary."""
    options, names_dataset = prediction.model_options(
        PredictOptions, {field.name: field.default for field in dataclasses.fields(PredictOptions)
                         if field.metadata.get('flag')} | values, set(values))
    return prediction.predict(options, names_dataset, set(values), progress_stream=None)


def _expected(model_path, paths):
    """{path: probabilities} from the model, one image at a time."""
    model = classifier.load_model(model_path, 'lenet', num_classes=10)
    try:
        return {path: model.predict(classifier.read_image(path)) for path in paths}
    finally:
        model.close()


@pytest.mark.parametrize('kind', ['checkpoint', 'graphdef', 'onnx'])
def test_rows_agree_with_the_model_image_by_image(models, image_dir, tmp_path, kind):
    output = str(tmp_path / 'predictions.csv')
    arguments = dict(model_path=models[kind], input=image_dir, output=output, top_k=3,
                     batch_size=7)
    if kind == 'checkpoint':
        result = _predict(*('--%s=%s' % item for item in arguments.items()))
        assert re.search(r'Wrote 25 rows \(0 rejected\) with the checkpoint', result.stderr)
    else:
        summary = _predict_here(**arguments)
        assert (summary.rows, summary.rejected, summary.model_kind) == (25, 0, kind)
    rows = _read_csv(output)
    files = _image_files(image_dir)
    assert sorted(row['path'] for row in rows) == files  # the hidden file left out
    expected = _expected(models[kind], files)
    for row in rows:
        probabilities = expected[row['path']]
        top = np.argsort(-probabilities)[:3]
        assert row['error'] == ''
        assert [int(row['class_%d' % rank]) for rank in (1, 2, 3)] == top.tolist()
        assert [row['name_%d' % rank] for rank in (1, 2, 3)] == [DIGIT_NAMES[i] for i in top]
        assert [float(row['probability_%d' % rank]) for rank in (1, 2, 3)] == pytest.approx(
            probabilities[top], abs=TOLERANCE)


def test_rows_agree_with_classify_image(models, image_dir, tmp_path):
    output = str(tmp_path / 'predictions.jsonl')
    _predict('--model_path=' + models['checkpoint'], '--input=' + image_dir,
             '--output=' + output, '--batch_size=4')
    printed = helpers.run_command('classify_image.py', '--model_path=' + models['checkpoint'],
                                  image_dir).stdout
    classified, current = {}, None
    for line in printed.splitlines():
        match = re.fullmatch(r'  ([0-9.]+)  (.+) \((\d+)\)', line)
        if match:
            classified[current].append((int(match[3]), match[2], float(match[1])))
        else:
            current = line
            classified[current] = []
    rows = _read_jsonl(output)
    assert sorted(row['path'] for row in rows) == sorted(classified)
    for row in rows:
        assert [(p['class_id'], p['name']) for p in row['top_k']] == [
            (class_id, name) for class_id, name, _ in classified[row['path']]]
        assert [p['probability'] for p in row['top_k']] == pytest.approx(
            [probability for _, _, probability in classified[row['path']]], abs=1e-5)


def test_unreadable_images_are_rejected_rows(models, image_dir, tmp_path):
    broken = tmp_path / 'broken'
    shutil.copytree(image_dir, broken)
    png = (broken / 'even' / 'digit_00.png').read_bytes()
    (broken / 'even' / 'truncated.png').write_bytes(png[:len(png) // 2])
    (broken / 'odd' / 'notes.txt').write_text('not an image')
    listing = tmp_path / 'list.txt'
    listing.write_text('# the images\n%s\n\n%s\n%s\n' % (
        broken / 'even' / 'digit_00.png', broken / 'missing.png', broken / 'odd' / 'notes.txt'))
    output = str(tmp_path / 'predictions.jsonl')
    summary = _predict_here(model_path=models['graphdef'], input=str(broken), output=output,
                            batch_size=8)
    assert (summary.rows, summary.rejected) == (27, 2)
    rows = {row['path']: row for row in _read_jsonl(output)}
    assert len(rows) == 27
    assert rows[str(broken / 'even' / 'truncated.png')]['error']
    assert 'top_k' not in rows[str(broken / 'even' / 'truncated.png')]
    assert 'Unknown image file format' in rows[str(broken / 'odd' / 'notes.txt')]['error']
    good = {path: row for path, row in rows.items() if row['error'] is None}
    assert len(good) == 25
    expected = _expected(models['graphdef'], list(good))
    for path, row in good.items():
        assert row['top_k'][0]['class_id'] == int(np.argmax(expected[path]))
        assert row['top_k'][0]['probability'] == pytest.approx(expected[path].max(),
                                                               abs=TOLERANCE)

    listed = str(tmp_path / 'listed.csv')
    result = _predict('--model_path=' + models['graphdef'], '--input=@' + str(listing),
                      '--output=' + listed)
    rows = _read_csv(listed)
    assert [row['path'] for row in rows] == [str(broken / 'even' / 'digit_00.png'),
                                             str(broken / 'missing.png'),
                                             str(broken / 'odd' / 'notes.txt')]
    assert [bool(row['error']) for row in rows] == [False, True, True]
    assert 'No such file or directory' in rows[1]['error']
    assert result.returncode == 0 and '(2 rejected)' in result.stderr


def _csv_of(outcomes_by_batch, top_k):
    """The CSV the command writes, built here: rows by batch as (path, outcome), in order."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(['path', 'error'] + ['%s_%d' % (column, rank) for rank in range(1, top_k + 1)
                                         for column in ('class', 'name', 'probability')])
    for path, outcome in (row for batch in outcomes_by_batch for row in batch):
        if outcome.error is not None:
            writer.writerow([path, outcome.error])
            continue
        values = [path, '']
        for index in np.argsort(-outcome.outputs, kind='stable')[:top_k]:
            values += [index, DIGIT_NAMES[index], '%.9g' % outcome.outputs[index]]
        writer.writerow(values)
    return text.getvalue()


@pytest.mark.parametrize('kind', ['graphdef', 'onnx'])
def test_overlapped_rows_keep_the_input_order_and_bytes(models, image_dir, tmp_path, kind):
    """Reading, predicting and writing overlap; the file is what one image after the other,
    batch by batch, gives. (An ONNX model decodes and preprocesses in the reading thread.)"""
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    digits = [path for path in _image_files(image_dir) if path.endswith('.png')]
    png = classifier.read_image(digits[0])
    (mixed / 'truncated.png').write_bytes(png[:len(png) // 2])
    (mixed / 'notes.txt').write_text('not an image')
    shuffled = [digits[index] for index in np.random.RandomState(3).permutation(len(digits))]
    listed = (shuffled[:4] + [str(mixed / 'missing.png')] + shuffled[4:9]
              + [str(mixed / 'truncated.png')] + shuffled[9:15] + [str(mixed / 'notes.txt')]
              + shuffled[15:])
    listing = tmp_path / 'list.txt'
    listing.write_text('\n'.join(listed) + '\n')
    output = tmp_path / 'mixed.csv'
    summary = _predict_here(model_path=models[kind], input='@%s' % listing,
                            output=str(output), top_k=3, batch_size=3)
    assert (summary.rows, summary.rejected) == (len(listed), 3)

    model = classifier.load_model(models[kind], 'lenet')
    try:
        expected = []
        for start in range(0, len(listed), 3):
            paths = listed[start:start + 3]
            readable = [path for path in paths if os.path.exists(path)]
            outcomes = dict(zip(readable, classifier.predict_each(
                model, [classifier.read_image(path) for path in readable])))
            expected.append([(path, outcomes.get(path, classifier.Outcome(
                error='cannot read the file: No such file or directory'))) for path in paths])
    finally:
        model.close()
    assert output.read_text(encoding='utf-8') == _csv_of(expected, 3)
    rows = _read_csv(output)
    assert [row['path'] for row in rows] == listed
    assert 'Unknown image file format' in rows[listed.index(str(mixed / 'notes.txt'))]['error']


def test_the_batch_prediction_benchmark_times_both_modes_on_the_same_rows(models, image_dir,
                                                                         tmp_path):
    sys.path.insert(0, os.path.join(helpers.REPO, 'benchmarks'))
    import bench_batch_prediction as bench
    model = classifier.load_model(models['onnx'], 'lenet')
    assert model.prepare is not None and bench.whole(model).prepare is None
    try:
        # It raises if the two modes' files differ.
        rates = bench.side_by_side(model, image_dir, str(tmp_path), batch_size=4, rounds=1,
                                   class_names=DIGIT_NAMES)
    finally:
        model.close()
    assert set(rates) == {bench.BESIDE, bench.IN_MODEL_THREAD, 'raw'}
    assert all(rate > 0 for rate in rates.values())
    assert len(_read_csv(str(tmp_path / 'rows_0.csv'))) == len(_image_files(image_dir))


def _pipeline_threads():
    return [thread for thread in threading.enumerate()
            if thread.name in ('prefetch', 'write rows') and thread.is_alive()]


def test_a_source_failing_in_its_thread_is_raised_after_the_rows_before_it(models, digits_dir,
                                                                          tmp_path):
    """A corrupt record, read a batch ahead in the reading thread: the error reaches the
    caller once the rows of the whole batches before it are written, no thread is left,
    and there is no output."""
    broken = tmp_path / 'digits'
    shutil.copytree(digits_dir, broken)
    shard, = glob.glob(str(broken / 'digits_test_*.tfrecord'))
    with open(shard, 'r+b') as records:
        records.truncate(os.path.getsize(shard) // 2)
    readable = 0
    with pytest.raises(tf.errors.DataLossError):
        for _ in tf.data.TFRecordDataset(shard):
            readable += 1
    source = image_sources.record_source('digits', 'test', str(broken))
    layout = prediction_files.RowLayout(True, 'predictions', 3, 10, DIGIT_NAMES)
    progress_lines = io.StringIO()
    output = tmp_path / 'test.csv'
    model = classifier.load_model(models['graphdef'], 'lenet')
    try:
        with pytest.raises(input_pipeline.DataError,
                           match='corrupt record %d in .*%s' % (readable,
                                                                os.path.basename(shard))):
            prediction.write_rows(model, source, layout, str(output), 8,
                                  prediction.Progress(source.total, progress_lines, interval=0.0))
    finally:
        model.close()
    assert not _pipeline_threads()
    assert progress_lines.getvalue().splitlines()[-1].startswith(
        'predicted %d/%d images' % (readable // 8 * 8, source.total))
    assert os.listdir(tmp_path) == ['digits']


def test_written_behind_writes_every_value_in_order_before_the_block_ends():
    written = []
    release = threading.Event()

    def write(value):
        release.wait(timeout=60)
        written.append(value)

    with prediction.WrittenBehind(write, depth=2) as behind:
        for value in range(3):  # one being written, two waiting
            behind.hand(value)
        assert written == [], 'the caller goes on while the rows are written'
        release.set()
        for value in range(3, 20):
            behind.hand(value)
    assert written == list(range(20))
    assert not _pipeline_threads()


def test_an_error_of_the_caller_is_raised_after_what_it_handed_is_written():
    written = []

    def write(value):
        time.sleep(0.01)
        written.append(value)

    with pytest.raises(KeyboardInterrupt):
        with prediction.WrittenBehind(write, depth=2) as behind:
            for value in range(3):
                behind.hand(value)
            raise KeyboardInterrupt
    assert written == [0, 1, 2]
    assert not _pipeline_threads()


def test_a_failing_write_stops_the_caller_with_its_error():
    written = []

    def write(value):
        if value == 3:
            raise OSError(28, 'No space left on device')
        written.append(value)

    handed = []
    with pytest.raises(OSError, match='No space left on device'):
        with prediction.WrittenBehind(write, depth=2) as behind:
            for value in range(1000):
                behind.hand(value)
                handed.append(value)
    assert written == [0, 1, 2]
    assert len(handed) < 1000, 'the failure stopped the caller'
    assert not _pipeline_threads()


def test_prefetching_stops_when_its_reader_stops():
    produced = []

    def values():
        for value in itertools.count():
            produced.append(value)
            yield value

    read = image_sources.prefetched(values(), depth=2)
    assert [next(read), next(read)] == [0, 1]
    read.close()
    assert not _pipeline_threads()
    stopped_at = len(produced)
    time.sleep(0.3)
    assert len(produced) == stopped_at <= 2 + 2 + 1

    def failing():
        yield from range(5)
        raise ValueError('record 5 is corrupt')

    received = []
    with pytest.raises(ValueError, match='record 5 is corrupt'):
        for value in image_sources.prefetched(failing(), depth=2):
            received.append(value)
    assert received == [0, 1, 2, 3, 4]
    assert not _pipeline_threads()


def _test_split_labels(digits_dir):
    """(label, file name) of each record of the digits test split, read without project code."""
    found = []
    for path in sorted(glob.glob(os.path.join(digits_dir, 'digits_test_*.tfrecord'))):
        for record in tf.data.TFRecordDataset(path):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            found.append((feature['image/class/label'].int64_list.value[0],
                          feature['image/filename'].bytes_list.value[0].decode()))
    return found


def test_records_carry_true_labels_and_give_the_evaluated_accuracy(models, digits_dir,
                                                                   tmp_path):
    output = str(tmp_path / 'test.csv')
    _predict('--model_path=' + models['checkpoint'], '--dataset_dir=' + digits_dir,
             '--dataset_split_name=test', '--output=' + output, '--batch_size=50')
    rows = _read_csv(output)
    expected = _test_split_labels(digits_dir)
    assert [int(row['record']) for row in rows] == list(range(len(expected)))
    assert [(int(row['true_label']), row['path']) for row in rows] == expected
    assert all(row['true_name'] == row['true_label'] for row in rows)
    accuracy = np.mean([row['class_1'] == row['true_label'] for row in rows])
    evaluated = evaluator.evaluate(evaluator.EvalConfig(
        checkpoint_path=models['checkpoint'], eval_dir=str(tmp_path / 'eval'),
        dataset_dir=digits_dir, dataset_name='digits', dataset_split_name='test',
        model_name='lenet', batch_size=50, num_readers=2, num_preprocessing_threads=2))
    assert evaluated['num_examples'] == len(rows)
    assert accuracy == pytest.approx(evaluated['accuracy'], abs=1e-9)
    assert 0.5 < accuracy < 1.0, 'a LeNet trained briefly should be good, not perfect'


def test_features_are_the_pre_logits_of_the_net(models, image_dir, tmp_path):
    output = str(tmp_path / 'features.jsonl')
    _predict('--model_path=' + models['checkpoint'], '--input=' + image_dir,
             '--output=' + output, '--output_type=features', '--batch_size=10')
    rows = _read_jsonl(output)
    assert len(rows) == 25
    assert {len(row['features']) for row in rows} == {1024}  # LeNet's fc3
    # The features are what the logits layer reads: with its weights they give the
    # model's probabilities.
    checkpoint = tf.train.latest_checkpoint(models['checkpoint'])
    weights = tf.train.load_variable(checkpoint, 'LeNet/fc4/weights')
    biases = tf.train.load_variable(checkpoint, 'LeNet/fc4/biases')
    features = np.array([row['features'] for row in rows])
    logits = features @ weights + biases
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    expected = _expected(models['checkpoint'], [row['path'] for row in rows])
    assert np.abs(softmax - np.stack([expected[row['path']] for row in rows])).max() < 1e-4
    assert np.abs(features).max() > 0.1

    result = _predict('--model_path=' + models['graphdef'], '--input=' + image_dir,
                      '--output=' + str(tmp_path / 'graph_features.csv'),
                      '--output_type=features', check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        'error: --output_type=features needs a checkpoint or training directory')
    assert not os.path.exists(tmp_path / 'graph_features.csv')


def test_an_interrupted_run_leaves_no_output(models, tmp_path):
    folder = tmp_path / 'many'
    folder.mkdir()
    digits, _ = helpers.digits_arrays()
    for index in range(3000):
        Image.fromarray(digits[index % len(digits)]).save(folder / ('%04d.png' % index))
    output = tmp_path / 'predictions.csv'
    process = subprocess.Popen(
        [sys.executable, os.path.join(helpers.REPO, 'predict_image_classifier.py'),
         '--model_path=' + models['graphdef'], '--input=' + str(folder),
         '--output=' + str(output), '--batch_size=1'],
        cwd=helpers.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def temporaries():
        return glob.glob(str(tmp_path / '.predictions.csv.*.tmp'))

    def rows_written():
        return temporaries() and len(open(temporaries()[0]).read().splitlines()) > 10

    try:
        helpers.wait_for(rows_written, 120, 'rows in the temporary file')
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    assert not output.exists()
    partial = open(temporaries()[0]).read().splitlines()
    assert 10 < len(partial) < 3001, 'killed mid-way'


def test_outputs_replace_only_files_of_this_command(tmp_path):
    mine = tmp_path / 'mine.csv'
    mine.write_text('path,error,class_1,name_1,probability_1\na.png,,3,3,0.9\n')
    assert prediction_files.check_output(str(mine)) == '.csv'
    jsonl = tmp_path / 'mine.jsonl'
    jsonl.write_text('{"path": "a.png", "error": null, "top_k": []}\n')
    assert prediction_files.check_output(str(jsonl)) == '.jsonl'
    theirs = tmp_path / 'theirs.csv'
    theirs.write_text('name,score\n')
    with pytest.raises(FileExistsError, match='theirs.csv exists and is not a file of '
                                              'predict_image_classifier.py'):
        prediction_files.check_output(str(theirs))
    assert theirs.read_text() == 'name,score\n'
    (tmp_path / 'folder.csv').mkdir()
    with pytest.raises(IsADirectoryError, match='folder.csv is a directory'):
        prediction_files.check_output(str(tmp_path / 'folder.csv'))
    with pytest.raises(ValueError, match=r"--output must end in \.csv or \.jsonl; got 'a.txt'"):
        prediction_files.check_output('a.txt')


def test_an_output_that_fails_leaves_the_previous_file(tmp_path):
    output = tmp_path / 'rows.csv'
    output.write_text('path,error\nold.png,\n')
    with pytest.raises(RuntimeError):
        with prediction_files.AtomicOutput(str(output)) as stream:
            stream.write('path,error\nnew.png,\n')
            raise RuntimeError('interrupted')
    assert output.read_text() == 'path,error\nold.png,\n'
    assert os.listdir(tmp_path) == ['rows.csv']
    with prediction_files.AtomicOutput(str(output)) as stream:
        stream.write('path,error\nnew.png,\n')
    assert output.read_text() == 'path,error\nnew.png,\n'
    assert os.listdir(tmp_path) == ['rows.csv']


def test_inputs_as_a_directory_and_a_glob(tmp_path):
    (tmp_path / 'a').mkdir()
    for name in ('a/1.png', 'a/2.jpg', 'b.png', '.hidden.png'):
        (tmp_path / name).write_bytes(b'')
    paths = image_sources.image_paths(str(tmp_path / '**' / '*.png'))
    assert sorted(paths()) == [str(tmp_path / 'a' / '1.png'), str(tmp_path / 'b.png')]
    assert sorted(paths()) == sorted(paths()), 'listed afresh on each call'
    assert list(image_sources.image_paths(str(tmp_path), exclude=(str(tmp_path / 'b.png'),))()) == [
        str(tmp_path / 'a' / '1.png'), str(tmp_path / 'a' / '2.jpg')]
    with pytest.raises(FileNotFoundError, match='no file matches it'):
        image_sources.image_paths(str(tmp_path / '*.gif'))
    with pytest.raises(FileNotFoundError, match="the list file '.*missing.txt' does not exist"):
        image_sources.image_paths('@' + str(tmp_path / 'missing.txt'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='holds no file to predict'):
        image_sources.file_source(str(tmp_path / 'empty'))


def test_options_need_one_source_of_images():
    with pytest.raises(ValueError, match='give the images as --input .* one of them; got both'):
        PredictOptions(model_path='m', output='o.csv', input='x', dataset_split_name='test',
                       dataset_dir='d')
    with pytest.raises(ValueError, match='got neither'):
        PredictOptions(model_path='m', output='o.csv')
    with pytest.raises(ValueError, match='--dataset_split_name=test needs --dataset_dir'):
        PredictOptions(model_path='m', output='o.csv', dataset_split_name='test')
    with pytest.raises(ValueError, match='--batch_size must be > 0'):
        PredictOptions(model_path='m', output='o.csv', input='x', batch_size=0)


def test_progress_line_has_the_rate_and_the_time_left():
    stream = io.StringIO()
    progress = prediction.Progress(100, stream, interval=0.0)
    time.sleep(0.05)
    progress.update(25, 1)
    assert re.fullmatch(r'predicted 25/100 images \(1 rejected\), [0-9.]+ images/s, '
                        r'\d+ s left\n', stream.getvalue())
    progress.update(30, 1)
    assert stream.getvalue().count('\n') == 2
    quiet = io.StringIO()
    prediction.Progress(100, quiet, interval=60.0).update(50, 0)
    assert quiet.getvalue() == '', 'at most one line a minute'


def test_onnx_without_the_extra_names_it(models, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    with pytest.raises(classifier.MissingExtraError,
                       match=r"needs the optional 'onnx' extra .*: pip install \.\[onnx\]"):
        classifier.load_model(models['onnx'], 'lenet')
