"""Each mend of slim_classifier/compat.py, shown by the tf_slim feature it keeps working.

Every test here exercises a tf_slim code path that raises on TensorFlow 2.21 /
tf-keras 2.21 / NumPy 2 without the matching mend in slim_classifier/compat.py.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from tf_slim.data import tfexample_decoder
from tf_slim.layers import utils as layer_utils

from slim_classifier import compat as slim_compat
from slim_classifier.compat import slim

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(fetches, feed_dict=None, init=True):
    with tf.Session() as sess:
        if init:
            sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
        return sess.run(fetches, feed_dict)


def _example(features):
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def test_batch_norm_builds_and_normalises():
    """Mend 1: tf.layers' batch norm loads a tf_keras module that moved."""
    with tf.Graph().as_default():
        x = tf.constant(np.arange(24, dtype=np.float32).reshape(2, 2, 2, 3))
        y = slim.batch_norm(x, is_training=True, center=False, scale=False, epsilon=0.0)
        value = _run(y)
    assert np.allclose(value.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    assert np.allclose(value.std(axis=(0, 1, 2)), 1.0, atol=1e-4)


def test_is_training_switch_accepts_a_tensor():
    """Mend 2: `ops.Tensor` backs constant_value/smart_cond (every is_training switch)."""
    with tf.Graph().as_default():
        assert bool(layer_utils.constant_value(tf.constant(True)))
        is_training = tf.placeholder(tf.bool, [])
        x = tf.ones([1000])
        y = slim.dropout(x, keep_prob=0.5, is_training=is_training)
        train_value = _run(y, {is_training: True})
        eval_value = _run(y, {is_training: False})
    assert np.all(eval_value == 1.0)
    assert 0 < np.count_nonzero(train_value) < 1000


def test_gradient_clipping_of_sparse_gradients():
    """Mend 3: `ops.IndexedSlices` is how learning.py recognises sparse gradients."""
    with tf.Graph().as_default():
        table = tf.Variable(np.ones([4, 3], np.float32))
        loss = tf.reduce_sum(tf.gather(table, [0, 2]) * 10.0)
        gradients = tf.train.GradientDescentOptimizer(1.0).compute_gradients(loss)
        assert isinstance(gradients[0][0], tf.IndexedSlices)
        clipped = slim.learning.clip_gradient_norms(gradients, max_norm=1.0)
        values = _run(clipped[0][0].values)
    assert np.linalg.norm(values) == pytest.approx(1.0, abs=1e-5)


def test_decoder_tensor_with_shape_keys():
    """Mend 4: tfexample_decoder reshapes by shape keys with `array_ops.stack`."""
    record = _example({'values': _ints(range(6)), 'shape': _ints([2, 3])})
    decoder = tfexample_decoder.TFExampleDecoder(
        {'values': tf.io.VarLenFeature(tf.int64),
         'shape': tf.io.FixedLenFeature([2], tf.int64)},
        {'matrix': tfexample_decoder.Tensor('values', shape_keys='shape')})
    with tf.Graph().as_default():
        [matrix] = decoder.decode(tf.constant(record), ['matrix'])
        value = _run(matrix, init=False)
    assert value.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_decoder_image_decodes_png():
    """Mend 5: tfexample_decoder.Image picks its decoder with `control_flow_ops.case`/`cond`."""
    pixels = np.random.RandomState(0).randint(0, 256, [5, 7, 3]).astype(np.uint8)
    with tf.Graph().as_default():
        png = _run(tf.image.encode_png(pixels), init=False)
    record = _example({'image/encoded': _bytes(png), 'image/format': _bytes(b'png')})
    decoder = tfexample_decoder.TFExampleDecoder(
        {'image/encoded': tf.io.FixedLenFeature((), tf.string),
         'image/format': tf.io.FixedLenFeature((), tf.string, default_value='jpeg')},
        {'image': tfexample_decoder.Image(channels=3)})
    with tf.Graph().as_default():
        [image] = decoder.decode(tf.constant(record), ['image'])
        value = _run(image, init=False)
    np.testing.assert_array_equal(value, pixels)


def test_local_and_global_variables():
    """Mend 6: slim.local_variable/global_variable call `variable_scope.variable`."""
    with tf.Graph().as_default():
        local = slim.local_variable(3.0, name='counter')
        glob = slim.global_variable(4.0, name='total')
        assert local in tf.local_variables()
        assert glob in tf.global_variables()
        assert _run([local, glob]) == [3.0, 4.0]


def test_streaming_metric_uses_local_variables():
    """Mends 4 and 6 together: the streaming metrics users evaluate with."""
    with tf.Graph().as_default():
        accuracy, update = slim.metrics.streaming_accuracy(
            tf.constant([1, 2, 3, 4]), tf.constant([1, 2, 0, 4]))
        with tf.Session() as sess:
            sess.run(tf.local_variables_initializer())
            sess.run(update)
            assert sess.run(accuracy) == pytest.approx(0.75)


def test_assign_partitioned_variable_from_checkpoint(tmp_path):
    """Mend 7: NumPy >= 1.23 refuses the list of slices tf_slim indexed with."""
    full = np.arange(24, dtype=np.float32).reshape(6, 4)
    with tf.Graph().as_default():
        tf.Variable(full, name='weights')
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            path = tf.train.Saver().save(sess, str(tmp_path / 'model.ckpt'))
    with tf.Graph().as_default():
        partitioned = tf.get_variable('weights', [6, 4], initializer=tf.zeros_initializer(),
                                      partitioner=tf.fixed_size_partitioner(3))
        assign_op, feed_dict = slim.assign_from_checkpoint(path, list(partitioned))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(assign_op, feed_dict)
            restored = sess.run(partitioned.as_tensor())
    np.testing.assert_array_equal(restored, full)


def test_mends_apply_only_what_is_missing():
    """Each mended name now points at its new home; nothing else was touched."""
    from tensorflow.python.framework import indexed_slices, ops, tensor
    from tensorflow.python.ops import array_ops, array_ops_stack, cond, control_flow_ops
    assert ops.Tensor is tensor.Tensor
    assert ops.IndexedSlices is indexed_slices.IndexedSlices
    assert array_ops.stack is array_ops_stack.stack
    assert control_flow_ops.cond is cond.cond
    assert len(slim_compat.APPLIED) == len(set(slim_compat.APPLIED))


def test_breakages_are_real_without_the_mends():
    """Without slim_classifier.compat, tf_slim fails on this TensorFlow: the mends are needed."""
    code = ('import tensorflow.compat.v1 as tf, tf_slim as slim\n'
            'with tf.Graph().as_default():\n'
            '    slim.batch_norm(tf.ones([2, 3]))\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
    if {'keras_batch_norm', 'ops.Tensor'} & set(slim_compat.APPLIED):
        assert result.returncode != 0
        last_line = result.stderr.strip().splitlines()[-1]
        assert last_line.startswith(('AttributeError', 'ModuleNotFoundError')), last_line
    else:
        assert result.returncode == 0, result.stderr


def _contexts_answered_by_both():
    """(sped-up answer, original answer) of executing_eagerly_outside_functions in each context."""
    from tensorflow.python.framework import ops
    fast = ops.executing_eagerly_outside_functions
    answers = {'eager': (fast(), fast.original())}
    with tf.Graph().as_default():
        answers['graph'] = (fast(), fast.original())

        @tf.function
        def in_graph_function():
            answers['function in a graph'] = (fast(), fast.original())
            return tf.constant(0)
        in_graph_function()

    @tf.function
    def in_eager_function():
        answers['function traced eagerly'] = (fast(), fast.original())
        with tf.Graph().as_default():
            answers['graph in a function'] = (fast(), fast.original())
        return tf.constant(0)
    in_eager_function()
    return answers


def test_variable_comparison_speed_up_answers_as_the_original_everywhere():
    answers = _contexts_answered_by_both()
    assert answers == {'eager': (True, True), 'graph': (False, False),
                       'function in a graph': (False, False),
                       'function traced eagerly': (True, True),
                       'graph in a function': (False, False)}
    assert 'executing_eagerly_outside_functions' in slim_compat.APPLIED


def _context_walks_building_batch_norms(monkeypatch, layers):
    """How often building `layers` conv + batch norm layers walks the context stack."""
    from tensorflow.python.framework import ops
    walks = []
    walk = ops._get_outer_context_and_inner_device_stack  # pylint: disable=protected-access
    monkeypatch.setattr(ops, '_get_outer_context_and_inner_device_stack',
                        lambda: walks.append(1) or walk())
    with tf.Graph().as_default():
        net = tf.ones([2, 4, 4, 3])
        for index in range(layers):
            net = slim.batch_norm(slim.conv2d(net, 3, 3, scope='conv%d' % index),
                                  is_training=True, scope='bn%d' % index)
        variables = tf.global_variables()
        # conv weights and biases; batch norm beta and moving statistics
        assert len(set(variables)) == len(variables) == 5 * layers
        assert variables[0] == variables[0] and variables[0] != variables[1]
    return len(walks)


def test_building_batch_norms_no_longer_walks_the_context_per_variable_comparison(monkeypatch):
    """The walks left (variable creation's own) grow linearly, not with the square."""
    from tensorflow.python.framework import ops
    fast = [_context_walks_building_batch_norms(monkeypatch, layers) for layers in (10, 20)]
    monkeypatch.setattr(ops, 'executing_eagerly_outside_functions',
                        ops.executing_eagerly_outside_functions.original)
    slow = [_context_walks_building_batch_norms(monkeypatch, layers) for layers in (10, 20)]
    assert fast[1] <= 2.2 * fast[0]
    assert slow[1] > 2.8 * slow[0] and slow[0] > 3 * fast[0], (fast, slow)


def test_tf_keras_is_loaded_only_by_the_first_batch_norm():
    code = ('import sys\n'
            'from slim_classifier.compat import slim\n'
            'import tensorflow.compat.v1 as tf\n'
            'before = "tf_keras" in sys.modules\n'
            'with tf.Graph().as_default():\n'
            '    slim.batch_norm(tf.ones([2, 4, 4, 3]), is_training=True)\n'
            'print(before, "tf_keras" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['False', 'True']
