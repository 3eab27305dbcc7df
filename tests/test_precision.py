"""--precision=bf16 and --xla: the math really changes, accuracy holds, checkpoints stay float32."""

import os
import subprocess
import sys

import pytest
import tensorflow.compat.v1 as tf

from tests import training_helpers as helpers
from training import session_config, trainer

ACCURACY_STEPS = 600
# TensorFlow logs this once per process when it runs an XLA-compiled cluster.
XLA_COMPILED_LINE = 'Compiled cluster using XLA'


def _traced_nodes(config):
    """Names of the nodes a small convolution graph ran, under `config`."""
    with tf.Graph().as_default():
        images = tf.random.normal([2, 8, 8, 3], seed=1)
        weights = tf.Variable(tf.random.normal([3, 3, 3, 4], seed=2))
        output = tf.reduce_sum(tf.nn.relu(tf.nn.conv2d(images, weights, 1, 'SAME')))
        with tf.Session(config=config) as session:
            session.run(weights.initializer)
            metadata = tf.RunMetadata()
            session.run(output, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                        run_metadata=metadata)
    return {node.node_name: node.timeline_label for device in metadata.step_stats.dev_stats
            for node in device.node_stats}


def _assert_float32_checkpoint(checkpoint):
    dtypes = tf.train.NewCheckpointReader(checkpoint).get_variable_to_dtype_map()
    assert dtypes.pop('global_step') == tf.int64
    assert dtypes and set(dtypes.values()) == {tf.float32}


def test_bf16_runs_the_convolution_on_bfloat16_inputs():
    nodes = _traced_nodes(session_config.make_session_config('bf16'))
    casts = [name for name in nodes if 'CastToBf16' in name]
    assert casts, sorted(nodes)
    # The convolution reads the bfloat16 copies, not the float32 originals.
    assert any(cast in nodes['Conv2D'] for cast in casts), nodes['Conv2D']


def test_float32_runs_no_bfloat16_cast():
    nodes = _traced_nodes(session_config.make_session_config('float32'))
    assert 'Conv2D' in nodes
    assert not any('Bf16' in name for name in nodes)


def test_lenet_holds_accuracy_in_bf16_with_float32_checkpoints(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, precision='bf16',
                                                max_number_of_steps=ACCURACY_STEPS))
    assert result.global_step == ACCURACY_STEPS
    _assert_float32_checkpoint(result.checkpoint)
    assert helpers.digits_test_accuracy(result.checkpoint, digits_dir) >= 0.95


def test_lenet_holds_accuracy_with_xla_compiled_training(digits_dir, tmp_path):
    # Its own process: XLA's switch for CPUs is read when a process creates
    # its first device, which this test process has done already.
    result = subprocess.run(
        [sys.executable, os.path.join(helpers.REPO, 'train_image_classifier.py'), '--xla',
         '--dataset_name=digits', '--dataset_dir=' + digits_dir, '--model_name=lenet',
         '--train_dir=%s' % tmp_path, '--batch_size=32', '--optimizer=momentum',
         '--learning_rate=0.01', '--learning_rate_decay_type=fixed', '--weight_decay=0',
         '--num_readers=2', '--num_preprocessing_threads=2',
         '--max_number_of_steps=%d' % ACCURACY_STEPS, '--log_every_n_steps=100'],
        cwd=helpers.REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '0'})
    assert result.returncode == 0, result.stderr[-3000:]
    assert XLA_COMPILED_LINE in result.stderr
    checkpoint = tf.train.latest_checkpoint(str(tmp_path))
    assert checkpoint.endswith('-%d' % ACCURACY_STEPS)
    _assert_float32_checkpoint(checkpoint)
    assert helpers.digits_test_accuracy(checkpoint, digits_dir) >= 0.95


def test_unknown_precision_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^--precision must be one of float32, bf16; "
                                         r"got 'fp16'$"):
        session_config.make_session_config('fp16')


def test_unknown_precision_flag_names_the_choices(tmp_path):
    result = helpers.run_command('train_image_classifier.py', '--precision=fp16',
                                 '--dataset_dir=%s' % tmp_path, check=False)
    assert result.returncode != 0
    assert '--precision=fp16: value should be one of <float32|bf16>' in result.stderr


@pytest.mark.parametrize('name', ['intra_op_threads', 'inter_op_threads'])
def test_negative_thread_count_is_named(name):
    with pytest.raises(ValueError, match=r'^%s must be >= 0 \(0: one per core\); got -1$'
                       % name):
        session_config.make_session_config(**{name: -1})


def test_thread_counts_reach_the_config():
    config = session_config.make_session_config(intra_op_threads=3, inter_op_threads=1)
    assert config.intra_op_parallelism_threads == 3
    assert config.inter_op_parallelism_threads == 1
