"""--precision bf16 and float16, and --xla: the math changes, accuracy holds, float32 checkpoints."""

import json
import os

import pytest
import tensorflow.compat.v1 as tf

from slim_classifier.runtime import session_config
from slim_classifier.training import optimization, trainer
from tests import training_helpers as helpers

# LeNet passes 0.95 on digits in float32 by 200 steps (seed 1); the other precisions must hold
# most of it. Chance is 0.1.
ACCURACY_STEPS = 250
HELD_ACCURACY = 0.93
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


def _separable_gradient_dtypes(config):
    """{'depthwise' or 'conv2d': dtypes} of the kernels of a separable convolution's gradients."""
    with tf.Graph().as_default():
        images = tf.random.normal([2, 8, 8, 3], seed=1)
        depthwise = tf.Variable(tf.random.normal([3, 3, 3, 1], seed=2))
        pointwise = tf.Variable(tf.random.normal([1, 1, 3, 4], seed=3))
        mixed = tf.nn.depthwise_conv2d(images, depthwise, [1, 1, 1, 1], 'SAME')
        loss = tf.reduce_sum(tf.nn.conv2d(mixed, pointwise, 1, 'SAME'))
        gradients = tf.gradients(loss, [images, depthwise, pointwise])
        with tf.Session(config=config) as session:
            session.run([depthwise.initializer, pointwise.initializer])
            metadata = tf.RunMetadata()
            session.run(gradients, options=tf.RunOptions(output_partition_graphs=True),
                        run_metadata=metadata)
    dtypes = {}
    for partition in metadata.partition_graphs:
        for node in partition.node:
            if 'Conv2D' in node.op or 'Depthwise' in node.op:
                kind = 'depthwise' if 'Depthwise' in node.op else 'conv2d'
                dtypes.setdefault(kind, set()).add(tf.as_dtype(node.attr['T'].type).name)
    return dtypes


def test_bf16_keeps_depthwise_convolutions_and_their_gradients_in_float32():
    dtypes = _separable_gradient_dtypes(session_config.make_session_config('bf16'))
    assert dtypes['depthwise'] == {'float32'}
    assert 'bfloat16' in dtypes['conv2d']


def test_a_users_own_allowlist_removal_is_left_as_it_is(monkeypatch):
    monkeypatch.setenv(session_config.ALLOWLIST_REMOVE, 'Relu6')
    dtypes = _separable_gradient_dtypes(session_config.make_session_config('bf16'))
    assert os.environ[session_config.ALLOWLIST_REMOVE] == 'Relu6'
    assert 'bfloat16' in dtypes['depthwise']


def _batch_norm_dtypes(config):
    """The dtypes of the batch-norm kernels (forward and gradient) after a convolution."""
    with tf.Graph().as_default():
        images = tf.random.normal([2, 8, 8, 3], seed=1)
        kernel = tf.Variable(tf.random.normal([3, 3, 3, 16], seed=2))
        scale, offset = tf.Variable(tf.ones([16])), tf.Variable(tf.zeros([16]))
        normalised, _, _ = tf.nn.fused_batch_norm(tf.nn.conv2d(images, kernel, 1, 'SAME'),
                                                  scale, offset, is_training=True)
        loss = tf.reduce_sum(tf.nn.relu(normalised))
        gradients = tf.gradients(loss, [kernel, scale, offset])
        with tf.Session(config=config) as session:
            session.run([kernel.initializer, scale.initializer, offset.initializer])
            metadata = tf.RunMetadata()
            session.run(gradients, options=tf.RunOptions(output_partition_graphs=True),
                        run_metadata=metadata)
    return {tf.as_dtype(node.attr['T'].type).name for partition in metadata.partition_graphs
            for node in partition.node if 'BatchNorm' in node.op}


def test_bf16_keeps_batch_norm_in_float32_for_nasnet_only():
    assert _batch_norm_dtypes(session_config.make_session_config(
        'bf16', model_name='nasnet_mobile')) == {'float32'}
    # Another net in the same process: the list this module wrote is rewritten.
    assert 'bfloat16' in _batch_norm_dtypes(session_config.make_session_config(
        'bf16', model_name='resnet_v1_50'))
    assert session_config.INFERLIST_REMOVE not in os.environ


def test_a_users_own_inferlist_removal_is_left_as_it_is(monkeypatch):
    monkeypatch.setenv(session_config.INFERLIST_REMOVE, '')
    assert 'bfloat16' in _batch_norm_dtypes(session_config.make_session_config(
        'bf16', model_name='nasnet_mobile'))
    assert os.environ[session_config.INFERLIST_REMOVE] == ''


def test_float32_runs_no_bfloat16_cast():
    nodes = _traced_nodes(session_config.make_session_config('float32'))
    assert 'Conv2D' in nodes
    assert not any('Bf16' in name for name in nodes)


def test_lenet_holds_accuracy_in_bf16_with_float32_checkpoints(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, precision='bf16',
                                                max_number_of_steps=ACCURACY_STEPS))
    assert result.global_step == ACCURACY_STEPS
    _assert_float32_checkpoint(result.checkpoint)
    assert helpers.digits_test_accuracy(result.checkpoint, digits_dir) >= HELD_ACCURACY


def test_lenet_holds_accuracy_with_xla_compiled_training(digits_dir, tmp_path):
    # Its own process: XLA's switch for CPUs is read when a process creates
    # its first device, which this test process has done already.
    result = helpers.run_command(
        'train_image_classifier.py', '--xla',
        '--dataset_name=digits', '--dataset_dir=' + digits_dir, '--model_name=lenet',
        '--train_dir=%s' % tmp_path, '--batch_size=32', '--optimizer=momentum',
        '--learning_rate=0.01', '--learning_rate_decay_type=fixed', '--weight_decay=0',
        '--num_readers=2', '--num_preprocessing_threads=2',
        '--max_number_of_steps=%d' % ACCURACY_STEPS, '--log_every_n_steps=100',
        timeout=600, env={'TF_CPP_MIN_LOG_LEVEL': '0'})
    assert XLA_COMPILED_LINE in result.stderr
    checkpoint = tf.train.latest_checkpoint(str(tmp_path))
    assert checkpoint.endswith('-%d' % ACCURACY_STEPS)
    _assert_float32_checkpoint(checkpoint)
    assert helpers.digits_test_accuracy(checkpoint, digits_dir) >= HELD_ACCURACY


def test_unknown_precision_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^--precision must be one of float32, bf16, float16; "
                                         r"got 'fp16'$"):
        session_config.make_session_config('fp16')


def test_unknown_precision_flag_names_the_choices(tmp_path):
    result = helpers.run_command('train_image_classifier.py', '--precision=fp16',
                                 '--dataset_dir=%s' % tmp_path, check=False)
    assert result.returncode != 0
    assert '--precision=fp16: value should be one of <float32|bf16|float16>' in result.stderr


@pytest.mark.parametrize('name', ['intra_op_threads', 'inter_op_threads'])
def test_negative_thread_count_is_named(name):
    with pytest.raises(ValueError, match=r'^%s must be >= 0 \(0: one per core\); got -1$'
                       % name):
        session_config.make_session_config(**{name: -1})


def test_thread_counts_reach_the_config():
    config = session_config.make_session_config(intra_op_threads=3, inter_op_threads=1)
    assert config.intra_op_parallelism_threads == 3
    assert config.inter_op_parallelism_threads == 1


def test_float16_runs_the_convolution_on_half_inputs():
    # Without a GPU the rewrite emulates float16 with casts around the CPU kernels.
    nodes = _traced_nodes(session_config.make_session_config('float16'))
    casts = [name for name in nodes if 'CastToFp16' in name]
    assert casts, sorted(nodes)
    assert any(cast in nodes['Conv2D'] for cast in casts), nodes['Conv2D']
    assert not any('Bf16' in name for name in nodes)


def _scaled_step(gradient_value):
    """One loss-scaled step of a variable at 1.0 whose gradient is `gradient_value`.

    Returns (variable, global step, loss scale) before and after the step.
    """
    with tf.Graph().as_default():
        variable = tf.Variable(1.0)
        global_step = tf.train.get_or_create_global_step()
        optimizer = optimization.with_loss_scaling(tf.train.GradientDescentOptimizer(0.5))
        train_op = optimizer.minimize(variable * gradient_value, global_step=global_step)
        fetches = [variable.read_value(), global_step.read_value(),
                   optimization.loss_scale(optimizer)]
        with tf.Session() as session:
            session.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
            before = session.run(fetches)
            session.run(train_op)
            return before, session.run(fetches)


def test_loss_scaling_applies_finite_gradients_unscaled():
    (value, step, scale), after = _scaled_step(2.0)
    assert (value, step) == (1.0, 0) and scale > 1.0
    # The gradient reaches the variable divided by the scale again: 1 - 0.5 * 2.
    assert after == [0.0, 1, scale]


def test_loss_scaling_skips_a_step_with_an_infinite_gradient_and_halves_the_scale():
    (_, _, scale), after = _scaled_step(float('inf'))
    assert after == [1.0, 0, scale / 2]


def test_loss_scale_state_stays_out_of_checkpoints():
    with tf.Graph().as_default():
        tf.Variable(1.0, name='weights')
        optimization.with_loss_scaling(tf.train.MomentumOptimizer(0.1, 0.9))
        saved = {variable.op.name for variable in tf.global_variables()}
        local = {variable.op.name for variable in tf.local_variables()}
    assert saved == {'weights'}
    assert len(local) == 2


def test_lenet_holds_accuracy_in_float16_with_float32_checkpoints(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, precision='float16',
                                                max_number_of_steps=ACCURACY_STEPS))
    assert result.global_step == ACCURACY_STEPS
    _assert_float32_checkpoint(result.checkpoint)
    assert helpers.digits_test_accuracy(result.checkpoint, digits_dir) >= HELD_ACCURACY
    # A float16 checkpoint resumes in float32: the loss scale was never saved.
    resumed = trainer.train(helpers.lenet_config(tmp_path, digits_dir,
                                                 max_number_of_steps=ACCURACY_STEPS + 10))
    assert resumed.global_step == ACCURACY_STEPS + 10


def _command_line_evaluation(checkpoint, digits_dir, eval_dir, *flags):
    """(accuracy, stderr) of eval_image_classifier.py with `flags`, TensorFlow's log shown."""
    result = helpers.run_command(
        'eval_image_classifier.py', '--checkpoint_path=' + checkpoint, '--dataset_name=digits',
        '--dataset_dir=' + digits_dir, '--model_name=lenet', '--eval_dir=%s' % eval_dir, *flags,
        env={'TF_CPP_MIN_LOG_LEVEL': '0'})
    with open(os.path.join(eval_dir, 'metrics.json')) as metrics_file:
        return json.load(metrics_file)['accuracy'], result.stderr


def test_evaluation_takes_the_precision_flags_and_agrees_with_float32(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(tmp_path / 'train', digits_dir,
                                                max_number_of_steps=150))
    expected = helpers.digits_test_accuracy(result.checkpoint, digits_dir)
    # bf16 and XLA in one process (the XLA line shows the flags were both read).
    for flags, sign in ((('--precision=bf16', '--xla'), XLA_COMPILED_LINE),
                        (('--precision=float16',), 'float16 is emulated on the CPU')):
        eval_dir = tmp_path / '_'.join(flag.strip('-') for flag in flags)
        accuracy, stderr = _command_line_evaluation(result.checkpoint, digits_dir, eval_dir,
                                                    *flags)
        assert abs(accuracy - expected) <= 0.02, (flags, accuracy, expected)
        if not tf.config.list_physical_devices('GPU'):
            assert sign in stderr, (flags, stderr[-2000:])
