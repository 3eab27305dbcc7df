"""Every registered network, checked against the published TF-Slim facts."""

import importlib
import inspect

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import nets_factory
from slim_classifier.compat import slim
from tests import zoo_facts
from tests.net_facts import NET_FACTS

ALL_NETS = nets_factory.list_networks()
NETS_WITH_FACTS = [name for name in ALL_NETS if name in NET_FACTS]


# The first ten nets, checked against the zoo facts here; the later zoo families have
# their own test files (test_resnet.py, test_mobilenet*.py, test_nasnet.py, ...).
ZOO_NETS = ['alexnet_v2', 'vgg_a', 'vgg_16', 'vgg_19', 'inception_v1', 'inception_v2',
            'inception_v3', 'inception_v4', 'lenet', 'cifarnet']


# The generic checks below build each net several times: the first ten, and one small
# net of the two largest later families, keep the suite within its time.
GENERIC_NETS = NETS_WITH_FACTS + ['mobilenet_v1_025', 'resnet_v1_50']

# How the zoo facts write the callable defaults they record.
_PUBLISHED_CALLABLES = {'tf_slim.softmax': slim.softmax, 'nn.relu': tf.nn.relu}


def _accepts(name, argument):
    return argument in inspect.signature(nets_factory.get_network_spec(name).builder).parameters


def _num_classes(name):
    return nets_factory.get_network_spec(name).default_num_classes


def _images(name, batch_size=2, size=None):
    spec = nets_factory.get_network_spec(name)
    size = size or spec.default_image_size
    return tf.random_uniform([batch_size, size, size, spec.num_channels], -1.0, 1.0, seed=1)


def _build(name, images, is_training=True, weight_decay=0.0, **kwargs):
    network_fn = nets_factory.get_network_fn(name, _num_classes(name), weight_decay=weight_decay,
                                             is_training=is_training)
    return network_fn(images, **kwargs)


def _count(variables):
    return sum(int(np.prod(v.shape.as_list())) for v in variables)


def test_every_published_net_is_registered():
    assert set(NET_FACTS) <= set(ALL_NETS)


def test_registry_defaults_match_published_facts():
    for name in NETS_WITH_FACTS:
        spec = nets_factory.get_network_spec(name)
        facts = NET_FACTS[name]
        assert (spec.default_image_size, spec.num_channels, spec.default_num_classes) == (
            facts['image_size'], facts['channels'], facts['num_classes']), name


@pytest.mark.parametrize('name', NETS_WITH_FACTS)
def test_end_points_shapes_and_parameter_counts(name):
    facts = NET_FACTS[name]
    with tf.Graph().as_default():
        logits, end_points = _build(name, _images(name))
        for end_point, shape in facts['end_points'].items():
            assert end_point in end_points, '%s lacks end point %s' % (name, end_point)
            assert end_points[end_point].shape.as_list() == shape, end_point
        assert logits.shape.as_list() == [2, facts['num_classes']]
        assert logits.op.name == facts['logits_op']
        assert _count(tf.trainable_variables()) == facts['trainable_params']
        assert len(slim.get_model_variables()) == facts['model_variables']


def _predictions(logits, end_points):
    """The net's Predictions end point; a softmax of the logits for the nets that,
    like TF-Slim's AlexNet and VGG, have none."""
    if 'Predictions' in end_points:
        return end_points['Predictions']
    return tf.nn.softmax(logits)


@pytest.mark.parametrize('name', GENERIC_NETS)
def test_forward_pass_is_finite(name):
    with tf.Graph().as_default():
        logits, end_points = _build(name, _images(name, batch_size=1), is_training=False)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            logits_value, predictions = sess.run([logits, _predictions(logits, end_points)])
    assert np.all(np.isfinite(logits_value))
    assert np.allclose(predictions.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize('name', GENERIC_NETS)
def test_every_trainable_variable_receives_a_gradient(name):
    with tf.Graph().as_default():
        logits, end_points = _build(name, _images(name))
        loss = tf.reduce_sum(logits)
        if 'AuxLogits' in end_points:
            loss += tf.reduce_sum(end_points['AuxLogits'])
        variables = tf.trainable_variables()
        gradients = tf.gradients(loss, variables)
    missing = [v.op.name for v, g in zip(variables, gradients) if g is None]
    assert not missing


def _source_variable(tensor):
    """The name of the variable a regularization loss was computed from."""
    pending = [tensor.op]
    while pending:
        op = pending.pop()
        if op.type in ('VarHandleOp', 'VariableV2'):
            return op.name
        pending.extend(inp.op for inp in op.inputs)
    raise AssertionError('%s reads no variable' % tensor.name)


# slim's CifarNet puts weight decay on its two hidden fully connected layers only.
PARTLY_REGULARIZED = {'cifarnet': ['CifarNet/fc3/weights', 'CifarNet/fc4/weights']}


@pytest.mark.parametrize('name', GENERIC_NETS)
def test_weight_decay_adds_one_regularization_loss_per_weight(name):
    with tf.Graph().as_default():
        _build(name, _images(name), weight_decay=0.01)
        weights = sorted(v.op.name for v in tf.trainable_variables()
                         if v.op.name.endswith('/weights'))
        losses = tf.losses.get_regularization_losses()
        regularized = sorted(_source_variable(loss) for loss in losses)
    assert regularized == PARTLY_REGULARIZED.get(name, weights)


@pytest.mark.parametrize('name', GENERIC_NETS)
def test_zero_weight_decay_adds_no_regularization_loss(name):
    with tf.Graph().as_default():
        _build(name, _images(name), weight_decay=0.0)
        assert tf.losses.get_regularization_losses() == []


@pytest.mark.parametrize('name', GENERIC_NETS)
def test_batch_norm_update_ops_in_training_mode(name):
    with tf.Graph().as_default():
        _build(name, _images(name), is_training=True)
        moving_means = [v for v in tf.global_variables() if v.op.name.endswith('/moving_mean')]
        update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        assert len(update_ops) == 2 * len(moving_means)
        if name.startswith('inception'):
            assert moving_means, 'Inception nets are batch-normalised'


@pytest.mark.parametrize('name', GENERIC_NETS)
def test_unknown_batch_size(name):
    spec = nets_factory.get_network_spec(name)
    size = spec.default_image_size
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [None, size, size, spec.num_channels])
        logits, _ = _build(name, images, is_training=False)
        assert logits.shape.as_list() == [None, _num_classes(name)]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            value = sess.run(logits, {images: np.zeros([3, size, size, spec.num_channels])})
    assert value.shape == (3, _num_classes(name))


@pytest.mark.parametrize('name', [n for n in GENERIC_NETS if _accepts(n, 'global_pool')])
def test_global_pool_with_unknown_spatial_size(name):
    spec = nets_factory.get_network_spec(name)
    size = spec.default_image_size + 32
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [None, None, None, spec.num_channels])
        logits, _ = _build(name, images, is_training=False, global_pool=True)
        assert logits.shape.as_list()[-1] == _num_classes(name)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            value = sess.run(logits, {images: np.zeros([1, size, size, spec.num_channels])})
    assert value.shape == (1, _num_classes(name))


@pytest.mark.parametrize('name', GENERIC_NETS)
def test_pre_logits_features_without_num_classes(name):
    """num_classes=0 stops before the logits layer: its input is what comes back."""
    with tf.Graph().as_default():
        _build(name, _images(name))
        with_logits = {v.op.name: v.shape.as_list() for v in tf.trainable_variables()}
    with tf.Graph().as_default():
        features, _ = nets_factory.get_network_fn(name, num_classes=0)(_images(name))
        without_logits = {v.op.name for v in tf.trainable_variables()}
    dropped = set(with_logits) - without_logits
    assert without_logits < set(with_logits)
    logits_weights = [n for n in dropped if n.endswith('/weights') and 'Aux' not in n
                      and with_logits[n][-1] == _num_classes(name)]
    assert len(logits_weights) == 1, dropped
    assert features.shape[0] == 2
    assert features.shape[-1] == with_logits[logits_weights[0]][-2]


@pytest.mark.parametrize('name', GENERIC_NETS)
def test_train_and_eval_graphs_share_variables(name):
    with tf.Graph().as_default():
        _build(name, _images(name), is_training=True)
        count = len(tf.global_variables())
        if _accepts(name, 'reuse'):
            _build(name, _images(name), is_training=False, reuse=True)
        else:
            # As in TF-Slim, AlexNet reuses through the enclosing scope only.
            with tf.variable_scope(tf.get_variable_scope(), reuse=True):
                _build(name, _images(name), is_training=False)
        assert len(tf.global_variables()) == count


def test_network_fn_carries_default_image_size():
    for name in ALL_NETS:
        network_fn = nets_factory.get_network_fn(name, 10)
        assert network_fn.default_image_size == nets_factory.get_network_spec(name).default_image_size


def test_unknown_network_name_lists_valid_names():
    with pytest.raises(ValueError) as error:
        nets_factory.get_network_fn('inception_v5', 10)
    message = str(error.value)
    assert "unknown network 'inception_v5'" in message
    assert all(name in message for name in ALL_NETS)


@pytest.mark.parametrize('name', ['inception_v2', 'inception_v3'])
@pytest.mark.parametrize('depth_multiplier', [0.0, -1.0])
def test_depth_multiplier_must_be_positive(name, depth_multiplier):
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='depth_multiplier'):
            _build(name, _images(name), depth_multiplier=depth_multiplier)


@pytest.mark.parametrize('name', ZOO_NETS)
def test_graph_matches_published_zoo_facts(name):
    """Model variables in order, the exact end point set, counts and op names."""
    with tf.Graph().as_default():
        _, logits, end_points = zoo_facts.build_as_published(name)
        zoo_facts.assert_matches_facts(name, logits, end_points)


@pytest.mark.parametrize('name', ZOO_NETS)
def test_features_without_num_classes_match_published_zoo_facts(name):
    published = zoo_facts.load(name)['feature_mode']['num_classes=None']
    with tf.Graph().as_default():
        _, features, _ = zoo_facts.build_as_published(name, num_classes=None)
        assert features.op.name == published['output_op']
        assert features.shape.as_list() == published['output_shape']
        assert len(slim.get_model_variables()) == published['num_model_variables']


def _function(dotted_name):
    module_name, attribute = dotted_name.rsplit('.', 1)
    return getattr(importlib.import_module(module_name), attribute)


def _signature(function):
    """[[argument, default]] in order, '<required>' for an argument without a default."""
    return [[name, '<required>' if parameter.default is inspect.Parameter.empty
             else parameter.default]
            for name, parameter in inspect.signature(function).parameters.items()]


def _published_signature(recorded):
    return [[name, _PUBLISHED_CALLABLES.get(default, default) if isinstance(default, str)
             else default]
            for name, default in recorded]


@pytest.mark.parametrize('name', ZOO_NETS)
def test_builder_base_and_arg_scope_signatures_match_published(name):
    """Same arguments, order and defaults as TF-Slim's, so positional calls carry over."""
    facts = zoo_facts.load(name)
    published = {facts['builder'].split(' ')[0]: facts['builder_signature'],
                 facts['arg_scope_fn']: facts['arg_scope_signature'],
                 **(facts.get('related_signatures') or {})}
    for dotted_name, recorded in published.items():
        assert _signature(_function(dotted_name)) == _published_signature(recorded), dotted_name
