"""Training, evaluation and export failures: one line each, and no work lost.

A full device is a real tmpfs mounted for the test (see conftest's
`mount_tmpfs`), a memory limit a real rlimit on the trainer's process, a bad
record a real corrupted TFRecord.
"""

import errno
import os
import resource
import shutil
import subprocess
import sys

import pytest
import tensorflow.compat.v1 as tf

from datasets import input_pipeline
from slim_classifier.errors import DiskFullError
from slim_classifier.serving import exporter
from slim_classifier.training import trainer
from tests import training_helpers as helpers

DIGIT_NAMES = [str(digit) for digit in range(10)]
FREE_AFTER_FILLING = 2 << 20  # bytes: room for a run's events and logs, not a LeNet checkpoint


def _fill(directory, leave=0):
    """Fills the device of `directory` with a filler file, up to `leave` bytes."""
    chunk = b'\0' * (64 << 10)
    with open(os.path.join(directory, 'filler'), 'wb') as filler:
        try:
            while os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize > leave:
                filler.write(chunk)
                filler.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC


def _error_line(result):
    """The one line of a command that failed as the user's problem."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope='module')
def lenet_run(digits_dir, tmp_path_factory):
    """A LeNet train_dir with a checkpoint at step 1."""
    train_dir = tmp_path_factory.mktemp('lenet_run')
    trainer.train(helpers.lenet_config(train_dir, digits_dir, max_number_of_steps=1,
                                       batch_size=8))
    return str(train_dir)


# --- A full device -----------------------------------------------------------


def test_a_checkpoint_that_does_not_fit_keeps_the_last_good_one(digits_dir, mount_tmpfs):
    train_dir = mount_tmpfs('full', '64m') / 'run'
    trainer.train(helpers.lenet_config(train_dir, digits_dir, max_number_of_steps=2,
                                       batch_size=8))
    good = str(train_dir / 'model.ckpt-2')
    saved = helpers.checkpoint_values(good)
    _fill(train_dir.parent, leave=FREE_AFTER_FILLING)

    result = helpers.run_command(
        'train_image_classifier.py', '--dataset_name=digits', '--dataset_dir=' + digits_dir,
        '--model_name=lenet', '--optimizer=momentum', '--train_dir=%s' % train_dir,
        '--batch_size=8',
        '--max_number_of_steps=4', check=False)
    assert _error_line(result) == (
        'error: no space left on the device to write checkpoint %s/model.ckpt-4: training '
        'stopped; the last good checkpoint (%s) is kept. Free space there or choose another '
        '--train_dir' % (train_dir, good))
    assert tf.train.latest_checkpoint(str(train_dir)) == good
    restored = helpers.checkpoint_values(good)
    assert all((restored[name] == value).all() for name, value in saved.items())
    # The half-written save is gone, so its space is free again.
    assert not [name for name in os.listdir(train_dir) if 'model.ckpt-4' in name]


def test_evaluation_on_a_full_device_names_the_file(lenet_run, digits_dir, mount_tmpfs):
    eval_dir = mount_tmpfs('full', '1m')
    _fill(eval_dir)
    result = helpers.run_command(
        'eval_image_classifier.py', '--checkpoint_path=' + lenet_run,
        '--dataset_dir=' + digits_dir, '--eval_dir=%s' % eval_dir, check=False)
    assert _error_line(result) == (
        'error: no space left on the device to write %s/metrics.json; free space there or '
        'choose another --eval_dir' % eval_dir)
    # Nothing half-written is left: the filler and the events file that could not grow.
    assert all(name == 'filler' or name.startswith('events.out.tfevents.')
               for name in os.listdir(eval_dir))


@pytest.mark.parametrize('export_format', ['graphdef', 'saved_model'])
def test_an_export_that_does_not_fit_leaves_nothing(lenet_run, mount_tmpfs, export_format):
    output_dir = mount_tmpfs('full', '1m')  # a frozen LeNet is 13 MB
    output_file = str(output_dir / 'lenet')
    with pytest.raises(DiskFullError) as raised:
        exporter.export(exporter.ExportConfig(
            model_name='lenet', output_file=output_file, class_names=DIGIT_NAMES,
            checkpoint_path=lenet_run, export_format=export_format))
    assert str(raised.value) == ('no space left on the device to write %s; free space there '
                                 'or write elsewhere' % output_file)
    assert os.listdir(output_dir) == []


# --- Memory ----------------------------------------------------------------------


def test_a_batch_too_large_for_memory_names_the_batch_size(digits_dir, tmp_path):
    # 3000 MiB of address space hold the trainer of 8 images (1.9 GiB, most of it
    # TensorFlow's libraries, with two malloc arenas) and a 100 MB input batch, not
    # the 3.3 GB output of the first convolution on 32768 images. oneDNN's kernels do
    # not check their allocations and crash instead: TensorFlow's own kernels report
    # the OOM.
    limit = 3000 << 20

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run(
        [sys.executable, os.path.join(helpers.REPO, 'train_image_classifier.py'),
         '--dataset_name=digits', '--dataset_dir=' + digits_dir, '--model_name=lenet',
         '--train_dir=%s' % (tmp_path / 'run'), '--batch_size=32768', '--num_readers=1',
         '--num_preprocessing_threads=1', '--max_number_of_steps=1'],
        cwd=helpers.REPO, capture_output=True, text=True, timeout=300,
        preexec_fn=limit_memory,
        env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', 'MALLOC_ARENA_MAX': '2',
             'TF_ENABLE_ONEDNN_OPTS': '0'})
    line = _error_line(result)
    assert line.startswith('error: out of memory in a training step with --batch_size=32768 '
                           '(OOM when allocating tensor with shape[32768,')
    assert line.endswith('); choose a smaller --batch_size')
    assert not (tmp_path / 'run').exists()  # a first run that failed leaves no run behind


# --- Bad data --------------------------------------------------------------------


def _corrupt_last_record(shard):
    """Flips a byte of the last record's payload: its CRC no longer matches."""
    records = list(tf.data.TFRecordDataset(shard).as_numpy_iterator())
    with open(shard, 'r+b') as data:
        data.seek(-(4 + len(records[-1]) // 2), os.SEEK_END)
        byte = data.read(1)
        data.seek(-1, os.SEEK_CUR)
        data.write(bytes([byte[0] ^ 0xFF]))
    return len(records)


def test_a_bad_record_after_some_steps_saves_them_first(digits_dir, tmp_path):
    dataset_dir = tmp_path / 'digits'
    shutil.copytree(digits_dir, dataset_dir)
    shard = str(next(dataset_dir.glob('digits_train_*.tfrecord')))
    num_records = _corrupt_last_record(shard)
    train_dir = tmp_path / 'run'
    # The shuffle buffer (1024 records) then hands out a few hundred records, 32 a
    # step, before the reader reaches the last one; no save is due before.
    with pytest.raises(input_pipeline.DataError) as raised:
        trainer.train(helpers.lenet_config(train_dir, str(dataset_dir), batch_size=32,
                                           max_number_of_steps=1000, num_readers=1))
    assert str(raised.value).startswith(
        'corrupt record %d in %s: cannot read the record' % (num_records - 1, shard))
    step = helpers.checkpoint_step(str(train_dir))
    assert step is not None and 0 < step < 1000
    reader = tf.train.NewCheckpointReader(tf.train.latest_checkpoint(str(train_dir)))
    assert reader.get_tensor('global_step') == step
