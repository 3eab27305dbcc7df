"""The start-up and memory benchmarks' own pieces, on LeNet: records, clocks, children, peaks."""

import argparse
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'benchmarks'))

import bench_memory  # noqa: E402
import bench_startup  # noqa: E402
import run_all  # noqa: E402

from datasets import dataset_factory  # noqa: E402
from tests import zoo_facts  # noqa: E402


@pytest.fixture(scope='module')
def lenet_data(tmp_path_factory):
    """A few grey photo records at LeNet's size and a published-format LeNet checkpoint."""
    directory = tmp_path_factory.mktemp('startup')
    size, channels = bench_startup.net_input('lenet')
    classes = bench_startup.published_num_classes('lenet')
    records = str(directory / 'records')
    bench_startup.write_records(records, size, channels, classes)
    checkpoint = bench_startup.write_published_checkpoint('lenet', str(directory / 'model.ckpt'))
    return {'dataset_dir': records, 'checkpoint': checkpoint, 'image_size': size,
            'num_classes': classes, 'work_dir': str(directory)}


def _child_args(data, mode, **overrides):
    values = {'model_name': 'lenet', 'dataset_dir': data['dataset_dir'],
              'checkpoint': data['checkpoint'], 'image_size': data['image_size'],
              'num_classes': data['num_classes'], 'batch_size': bench_startup.BATCH_SIZE,
              'mode': mode, 'profile': False, 'train_dir': None, 'weights': None,
              'save_weights': False}
    values.update(overrides)
    return argparse.Namespace(**values)


def test_records_hold_photos_at_the_nets_size_under_the_checkpoints_classes(lenet_data):
    dataset = dataset_factory.get_dataset('startup', 'train', lenet_data['dataset_dir'])
    # Every class of the checkpoint's logits, so that the whole checkpoint fits.
    assert dataset.num_classes == zoo_facts.load('lenet')['num_classes']
    assert dataset.num_samples == bench_startup.NUM_RECORDS
    image, label = bench_startup.keras_batch(lenet_data['dataset_dir'], 28, 1, 2)
    assert image.shape == (2, 28, 28, 1)
    # Photos, not a blank: the pixels vary, inside the [-1, 1] of the preprocessing.
    assert float(np.std(image)) > 0.05
    assert -1.0 <= float(np.min(image)) and float(np.max(image)) <= 1.0
    assert list(label.numpy()) == [0, 1]


def test_our_phases_follow_the_trainers_start_up_and_restore_the_checkpoint(lenet_data):
    train_dir = os.path.join(lenet_data['work_dir'], 'phases')
    report = bench_startup.ours_phases_child(_child_args(lenet_data, 'train',
                                                         train_dir=train_dir))
    marks = report['marks']
    assert list(marks) == ['import_tensorflow', 'import_project', 'graph', 'session',
                           'restored', 'first_step', 'second_step']
    assert list(marks.values()) == sorted(marks.values())
    assert report['graph_ops'] > 100 and 'profile' not in report


def test_keras_side_times_each_part_after_loading_the_weights_it_saved(lenet_data):
    weights = os.path.join(lenet_data['work_dir'], 'keras.weights.h5')
    saved = bench_startup.keras_child(_child_args(lenet_data, 'train', weights=weights,
                                                  save_weights=True))
    assert os.path.getsize(saved['saved']) > 0
    report = bench_startup.keras_child(_child_args(lenet_data, 'eval', weights=weights))
    marks = report['marks']
    assert list(marks) == ['import', 'data', 'build', 'restored', 'first_batch',
                           'second_batch']
    assert list(marks.values()) == sorted(marks.values())


def test_a_watched_command_is_stopped_at_the_event_and_its_times_are_in_order(tmp_path):
    finished = tmp_path / 'finished'
    script = ('import time; print("graph built", flush=True); time.sleep(0.3); '
              'print("step 1: loss", flush=True); time.sleep(20); open(%r, "w")' % str(finished))
    watched = bench_startup.run_and_watch([sys.executable, '-c', script],
                                          {'restored': 'graph built', 'first_step': 'step 1:'},
                                          stop_after='first_step')
    seconds = watched['seconds']
    # The step comes 0.3 s after the restore, whenever the parent reads the lines.
    assert 0 < seconds['restored'] < seconds['first_step'] and seconds['first_step'] >= 0.3
    # Killed at the first step: what the command does after it is not start-up.
    assert not finished.exists() and 'exit' not in seconds


def test_a_watched_command_without_the_event_names_what_it_missed():
    with pytest.raises(RuntimeError, match=r'no first_batch \(exit 0\):\nstarted'):
        bench_startup.run_and_watch([sys.executable, '-c', 'print("started")'],
                                    {'first_batch': 'batch 1/'}, stop_after='first_batch')


def test_parts_are_the_durations_between_consecutive_marks():
    seconds = {'graph': 4.0, 'import': 1.5, 'first_step': 9.0}
    assert bench_startup.parts(seconds) == [('import', 1.5), ('graph', 2.5), ('first_step', 5.0)]
    assert sum(duration for _, duration in bench_startup.parts(seconds)) == max(seconds.values())


def test_memory_plans_are_run_alls_cut_to_whole_windows():
    plan = bench_memory.plan_of('inception_v3', windows=2)
    suite = run_all.PLANS['inception_v3']
    assert (plan.batch_size, plan.log_every) == (suite.batch_size, suite.log_every)
    assert plan.steps == 2 * suite.log_every
    assert bench_memory.plan_of('lenet', windows=1).warmup_windows == 0


def test_memory_variants_reach_the_child_and_leave_the_environment_as_it_was(monkeypatch):
    monkeypatch.delenv('TF_ENABLE_ONEDNN_OPTS', raising=False)
    # The child holds 200 MB for a while, so that the parent's readings of its peak catch it.
    script = ('import os, sys, time; held = bytearray(200 << 20); time.sleep(0.5); '
              'sys.exit(os.environ["TF_ENABLE_ONEDNN_OPTS"] != "0")')
    with bench_memory.environment({'TF_ENABLE_ONEDNN_OPTS': '0'}):
        _, peak_mb = run_all.run_job([sys.executable, '-c', script])
    assert 'TF_ENABLE_ONEDNN_OPTS' not in os.environ
    assert peak_mb >= 200

