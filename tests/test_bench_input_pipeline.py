"""bench_input_pipeline.py: both sides deliver training batches, and the stage profile's figures."""

import os
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'benchmarks'))

import bench_input_pipeline as bench  # noqa: E402

from datasets import dataset_factory  # noqa: E402

BATCH, SIZE = 4, 32


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    dataset_dir = str(tmp_path_factory.mktemp('photos'))
    bench.write_photo_records(dataset_dir, num_records=12, num_shards=2, seed=0)
    return dataset_factory.get_dataset('photos', 'train', dataset_dir)


@pytest.mark.parametrize('build', [bench.tf_data_batches, bench.queue_batches])
def test_each_side_gives_inception_training_batches_of_the_records(photos, build):
    graph = tf.Graph()
    with graph.as_default():
        batch = build(photos, BATCH, SIZE, threads=2)
    images_per_sec, cpu_ms = bench.measure(graph, batch, BATCH, threads=2, warmup=0,
                                           num_batches=1)
    assert images_per_sec > 0 and cpu_ms > 0
    with graph.as_default(), tf.Session() as session:
        coordinator = tf.train.Coordinator(
            clean_stop_exception_types=(tf.errors.OutOfRangeError, tf.errors.CancelledError))
        runners = tf.train.start_queue_runners(session, coordinator)
        images, labels = session.run(batch)
        coordinator.request_stop()
        coordinator.join(runners)
    assert images.shape == (BATCH, SIZE, SIZE, 3) and images.dtype == np.float32
    assert -1 <= images.min() < images.max() <= 1
    assert set(labels.tolist()) <= set(range(bench.NUM_CLASSES))


def test_the_stage_profile_prints_a_row_for_every_stage_of_both_sides(photos, capsys):
    bench.stage_profile(photos, BATCH, SIZE, threads=2, warmup=0, num_batches=1, rounds=1)
    lines = capsys.readouterr().out.splitlines()
    header = lines.index(next(line for line in lines if line.lstrip().startswith('stage ')))
    rows = [line.split() for line in lines[header + 2:header + 2 + len(bench.STAGES) + 1]]
    labels = [' '.join(cell for cell in row if not cell[0].isdigit() and cell[0] != '-')
              for row in rows]
    assert labels == [bench.READ_STAGE] + ['+ ' + stage for stage in bench.STAGES[1:]] + [
        bench.WHOLE_PIPELINE]
    # A stage row holds each side's cumulative cost, its own cost and its share.
    assert all(len(row) - len(label.split()) == 6 for row, label in zip(rows[:-1], labels))
    assert any(line.startswith('shared stages (resize, flip, colour, scale): ')
               for line in lines)


def _costs(tf_data, queues):
    """Cumulative costs per stage, from each stage's own cost, as `stage_profile` measures."""
    return {(side, stage): float(total) for side, own in (('tf.data', tf_data), ('queues', queues))
            for stage, total in zip(bench.STAGES, np.cumsum(own))}


def test_the_bound_counts_only_the_shared_stages(capsys):
    # read, decode, then resize, flip, colour, scale; the shared stages cost 1.4 and 1.6 ms.
    bench._print_shared_bound(_costs([0.1, 0.7, 0.3, 0.1, 0.9, 0.1],
                                     [0.2, 1.0, 0.4, 0.1, 1.0, 0.1]))
    out = capsys.readouterr().out
    assert 'shared stages (resize, flip, colour, scale): 1.40 CPU ms/image in tf.data, 1.60 in ' \
        'the queues' in out
    assert 'at most %.2fx less CPU per image than the queues (2.80 / 1.40 ms); tf.data does ' \
        '%.2fx' % (2.8 / 1.4, 2.8 / 2.2) in out


def test_a_bound_lost_in_the_noise_is_not_printed(capsys):
    bench._print_shared_bound(_costs([0.2, 1.3, -0.3, -1.1, 0.9, -0.4],
                                     [0.7, 0.7, 0.3, -0.5, -0.2, 0.4]))
    out = capsys.readouterr().out
    assert 'cost nothing measurable here' in out and 'at most' not in out
