"""NASNet-A and PNASNet-5 against the published zoo facts, and their cell machinery.

The full nets are built once each at batch 1 (no session for the large
ones); forward passes run only for the mobile nets.
"""

import dataclasses
import importlib
import inspect

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets.nasnet import nasnet, nasnet_utils, pnasnet
from slim_classifier.compat import slim
from tests import zoo_facts

NETS = ('nasnet_mobile', 'nasnet_large', 'pnasnet_mobile', 'pnasnet_large')
MOBILE_NETS = ('nasnet_mobile', 'pnasnet_mobile')


@pytest.fixture(autouse=True, scope='module')
def _identity_variable_equality():
    """Builds the ~1000-variable graphs about twice as fast.

    In graph mode variables hash and compare by identity whether or not TF2
    tensor equality is on; with it on, every hash first checks for an eager
    context, and Keras hashes every graph variable for each one it adds.
    """
    tf.disable_tensor_equality()
    yield
    tf.enable_tensor_equality()


def _dotted(dotted: str):
    module_name, attribute = dotted.rsplit('.', 1)
    return getattr(importlib.import_module(module_name), attribute)


def _signature(function) -> list[list]:
    """[[name, default or '<required>'], ...] as the facts record signatures."""
    return [[p.name, '<required>' if p.default is p.empty else p.default]
            for p in inspect.signature(function).parameters.values()]


def _parameter_count(variables) -> int:
    return sum(int(np.prod(v.shape.as_list())) for v in variables)


def _non_model_variables() -> list[str]:
    model_variables = set(slim.get_model_variables())
    return sorted(v.op.name for v in tf.global_variables() if v not in model_variables)


@pytest.mark.parametrize('name', NETS)
def test_training_build_matches_published_facts(name):
    with tf.Graph().as_default():
        _, logits, end_points = zoo_facts.build_as_published(name)
        zoo_facts.assert_matches_facts(name, logits, end_points)


@pytest.mark.parametrize('name', NETS)
def test_builder_arg_scope_and_config_are_as_published(name):
    facts = zoo_facts.load(name)
    builder = _dotted(facts['builder'])
    assert _signature(builder) == facts['builder_signature']
    assert _signature(_dotted(facts['arg_scope_fn'])) == facts['arg_scope_signature']
    assert builder.default_image_size == facts['default_image_size']
    config = _dotted(facts['hparams_config']['function'])()
    assert dataclasses.asdict(config) == facts['hparams_config']['values']


@pytest.mark.parametrize('name', MOBILE_NETS)
def test_eval_build_has_no_aux_head_and_runs(name):
    facts = zoo_facts.load(name)
    published = facts['is_training_false']
    with tf.Graph().as_default():
        images, logits, end_points = zoo_facts.build_as_published(name, is_training=False)
        assert len(slim.get_model_variables()) == published['num_model_variables']
        assert _parameter_count(tf.trainable_variables()) == published['trainable_params']
        assert 'AuxLogits' not in end_points
        assert not tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        predictions = end_points[facts['predictions_end_point']]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            feed = np.random.RandomState(0).uniform(-1, 1, facts['input_shape'])
            logits_value, predictions_value = session.run(
                [logits, predictions], {images: feed.astype(np.float32)})
    assert logits_value.shape == tuple(facts['logits_shape'])
    assert np.isfinite(logits_value).all()
    np.testing.assert_allclose(predictions_value.sum(axis=1), 1.0, rtol=1e-5)


def test_feature_mode_returns_the_pooled_features():
    published = zoo_facts.load('nasnet_mobile')['feature_mode']['num_classes=None']
    with tf.Graph().as_default():
        _, features, end_points = zoo_facts.build_as_published('nasnet_mobile',
                                                               num_classes=None)
        assert features.op.name == published['output_op']
        assert features.shape.as_list() == published['output_shape']
        assert len(slim.get_model_variables()) == published['num_model_variables']
        assert _parameter_count(slim.get_model_variables()) == published['model_params']
        last = [[n, t.shape.as_list()] for n, t in list(end_points.items())[-3:]]
        assert last == published['last_end_points']
        assert 'Logits' not in end_points and 'AuxLogits' not in end_points


def test_final_endpoint_stops_the_build_there():
    facts = zoo_facts.load('pnasnet_large')
    with tf.Graph().as_default():
        _, net, end_points = zoo_facts.build_as_published('pnasnet_large',
                                                          final_endpoint='Cell_0')
        assert list(end_points) == ['Stem', 'Cell_0']
        assert net is end_points['Cell_0']
        assert net.shape.as_list() == facts['end_points']['Cell_0']
        top_scopes = {v.op.name.split('/')[0] for v in slim.get_model_variables()}
        assert top_scopes == {'conv0', 'conv0_bn', 'cell_stem_0', 'cell_stem_1', 'cell_0'}
        # Drop path still creates its step in the first cell, as the full build does.
        assert _non_model_variables() == ['cell_stem_0/comb_iter_0/left/global_step']


def test_unknown_final_endpoint_is_refused_before_building():
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 224, 224, 3])
        with pytest.raises(ValueError, match=r"final_endpoint must be one of Stem, Cell_0, "
                                             r".*Reduction_Cell_0.*; got 'Mixed_7c'"):
            nasnet.build_nasnet_mobile(images, 10, final_endpoint='Mixed_7c')
        with pytest.raises(ValueError, match="final_endpoint must be one of .*; got 'Reduct"):
            pnasnet.build_pnasnet_mobile(images, 10, final_endpoint='Reduction_Cell_0')
        assert not tf.global_variables()


def test_unknown_data_format_is_refused():
    config = dataclasses.replace(pnasnet.mobile_imagenet_config(), data_format='NWHC')
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, 224, 224, 3])
        with pytest.raises(ValueError, match="data_format must be one of NHWC, NCHW; got 'NWHC'"):
            pnasnet.build_pnasnet_mobile(images, 10, config=config)


def test_eval_config_turns_drop_path_off():
    config = nasnet.large_imagenet_config()
    assert nasnet.config_for(config, is_training=True).drop_path_keep_prob == 0.7
    assert nasnet.config_for(config, is_training=False).drop_path_keep_prob == 1.0


def test_drop_path_schedule_falls_with_depth_and_time():
    schedule = nasnet_utils.DropPathSchedule(keep_prob=0.6, total_num_cells=10,
                                             total_training_steps=100)
    with tf.Graph().as_default():
        # Halfway down: 0.8; halfway through training, half of that drop: 0.9.
        halfway = schedule.keep_prob_for(4, current_step=tf.constant(50))
        finished = schedule.keep_prob_for(9, current_step=tf.constant(400))
        assert not tf.global_variables()
        with tf.variable_scope('cell'):
            from_global_step = schedule.keep_prob_for(9)
        assert [v.op.name for v in tf.global_variables()] == ['cell/global_step']
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            values = session.run([halfway, finished, from_global_step])
    np.testing.assert_allclose(values, [0.9, 0.6, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match='cell_num'):
        schedule.keep_prob_for(-1, current_step=0)


def test_drop_path_keeps_or_zeroes_whole_examples():
    with tf.Graph().as_default():
        net = tf.ones([64, 2, 2, 3])
        dropped = nasnet_utils.drop_path(net, 0.5)
        with slim.arg_scope([nasnet_utils.drop_path], is_training=False):
            assert nasnet_utils.drop_path(net, 0.5) is net
        with tf.Session() as session:
            value = session.run(dropped)
    per_example = value.reshape(64, -1)
    assert set(np.unique(per_example)) <= {0.0, 2.0}
    assert (per_example.min(axis=1) == per_example.max(axis=1)).all()
    assert 0 < per_example[:, 0].sum() < 128


def test_cell_matches_output_states_to_the_last_one():
    # State 1 (the input, 8 x 8 x 5) joins a 4 x 4 x 6 state in the output,
    # so the cell reduces it first.
    spec = nasnet_utils.CellSpec(
        combinations=(nasnet_utils.Combination(nasnet_utils.IDENTITY, 0,
                                               nasnet_utils.IDENTITY, 0),),
        output_states=(1, 2))
    cell = nasnet_utils.NasNetABaseCell(6, spec, drop_path_keep_prob=1.0, total_num_cells=1,
                                        total_training_steps=1)
    with tf.Graph().as_default():
        output = cell(tf.zeros([1, 8, 8, 5]), scope='cell', stride=2)
        names = [v.op.name for v in slim.get_model_variables()]
    assert output.shape.as_list() == [1, 4, 4, 12]
    assert 'cell/cell_output/reduction_1/path1_conv/weights' in names
    assert 'cell/comb_iter_0/left/1x1/weights' in names


def test_factorized_reduction_gives_the_odd_channel_to_the_second_path():
    with tf.Graph().as_default():
        net = nasnet_utils.factorized_reduction(tf.zeros([1, 7, 7, 4]), 5, stride=2)
        shapes = {v.op.name: v.shape.as_list() for v in slim.get_model_variables()}
    assert net.shape.as_list() == [1, 4, 4, 5]
    assert shapes['path1_conv/weights'] == [1, 1, 4, 2]
    assert shapes['path2_conv/weights'] == [1, 1, 4, 3]
