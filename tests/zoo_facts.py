"""The published facts of slim's model zoo (tests/zoo/*.json) and a check of a net against them.

Each JSON was recorded from the upstream TF-Slim definitions: the ordered model
variables with shapes (what the public checkpoint holds), the end points with
shapes at batch 1, parameter counts, and the logits and prediction op names.
`build_as_published` builds a net the way those facts were recorded (the
builder named in the facts, under its arg_scope with weight_decay 0, on a
[1, S, S, C] placeholder named `input`), so a net module can be checked
before it is registered, and `assert_matches_facts` compares what was built.
"""

import functools
import importlib
import inspect
import json
import os
import re

import numpy as np
import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim

ZOO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'zoo')


@functools.lru_cache(maxsize=None)
def load(name: str) -> dict:
    """The facts of net `name` (a nets_factory name)."""
    with open(os.path.join(ZOO_DIR, name + '.json')) as f:
        return json.load(f)


def names() -> list[str]:
    """Every net of the zoo, sorted."""
    return sorted(f[:-5] for f in os.listdir(ZOO_DIR) if f.endswith('.json'))


def _resolve(dotted: str):
    module_name, attribute = dotted.rsplit('.', 1)
    return getattr(importlib.import_module(module_name), attribute)


def _bound_value(value, builder_module: str):
    """'mobilenet_v3.V3_LARGE' -> nets.mobilenet.mobilenet_v3.V3_LARGE; other values as they are."""
    if isinstance(value, str) and re.fullmatch(r'[a-z_0-9]+\.[A-Z_0-9]+', value):
        package = builder_module.rsplit('.', 1)[0]
        return _resolve(package + '.' + value)
    return value


def published_builder(name: str):
    """The builder function the facts name, with the factory's bound arguments applied."""
    facts = load(name)
    dotted = facts['builder'].split(' ')[0]
    builder = _resolve(dotted)
    module = dotted.rsplit('.', 1)[0]
    bound = {key: _bound_value(value, module)
             for key, value in facts['builder_bound_by_factory_name'].items()}
    return functools.partial(builder, **bound) if bound else builder


def published_arg_scope(name: str):
    return _resolve(load(name)['arg_scope_fn'])


def build_as_published(name: str, is_training: bool = True, num_classes='facts', **kwargs):
    """Builds `name` in the default graph as the facts were recorded.

    Returns:
      (images placeholder, logits or features, end_points).
    """
    facts = load(name)
    if num_classes == 'facts':
        num_classes = facts['num_classes']
    images = tf.placeholder(tf.float32, facts['input_shape'], name='input')
    with slim.arg_scope(published_arg_scope(name)(weight_decay=0.0)):
        output, end_points = published_builder(name)(
            images, num_classes=num_classes, is_training=is_training, **kwargs)
    return images, output, end_points


def _count(variables) -> int:
    return sum(int(np.prod(v.shape.as_list())) for v in variables)


def assert_matches_facts(name: str, logits, end_points) -> None:
    """Compares the default graph (built by `build_as_published`, training) with the facts.

    Checks the ordered model variables and their shapes, every published end
    point and its shape, the parameter counts, and the logits and prediction op
    names.
    """
    facts = load(name)
    built = [[v.op.name, v.shape.as_list()] for v in slim.get_model_variables()]
    expected = facts['model_variables']
    if built != expected:
        built_names = {n for n, _ in built}
        expected_names = {n for n, _ in expected}
        raise AssertionError(
            '%s: model variables differ: missing %s, unexpected %s, first difference at %s'
            % (name, sorted(expected_names - built_names)[:5],
               sorted(built_names - expected_names)[:5],
               next(((b, e) for b, e in zip(built, expected) if b != e), None)))
    for end_point, shape in facts['end_points'].items():
        assert end_point in end_points, '%s lacks end point %s' % (name, end_point)
        assert end_points[end_point].shape.as_list() == shape, (name, end_point)
    assert set(end_points) == set(facts['end_points']), (
        name, sorted(set(end_points) ^ set(facts['end_points'])))
    counts = facts['counts']
    assert _count(tf.trainable_variables()) == counts['trainable_params'], name
    assert len(tf.trainable_variables()) == counts['num_trainable_variables'], name
    assert logits.op.name == facts['logits_op'], (name, logits.op.name)
    assert logits.shape.as_list() == facts['logits_shape'], name
    if facts['predictions_op']:
        predictions = end_points[facts['predictions_end_point']]
        assert predictions.op.name == facts['predictions_op'], (name, predictions.op.name)
    non_model = sorted(v.op.name for v in tf.global_variables()
                       if v not in slim.get_model_variables())
    assert non_model == sorted(n for n, _ in facts['global_variables_not_model']), (name, non_model)


def _value(variable_name, shape, random):
    """Random weights scaled to their fan-in, and batch-norm statistics that keep activations sane."""
    if variable_name.endswith(('moving_variance', 'gamma')):
        return np.ones(shape, np.float32)
    if variable_name.endswith(('moving_mean', 'beta', 'biases')):
        return np.zeros(shape, np.float32)
    fan_in = int(np.prod(shape[:-1])) or 1
    return random.normal(0.0, np.sqrt(1.0 / fan_in), shape).astype(np.float32)


def write_published_checkpoint(name: str, prefix: str) -> str:
    """Writes a checkpoint of the facts' model variables only, as a public one holds.

    The values are random weights scaled to their fan-in, with neutral batch-norm
    statistics; returns the checkpoint prefix.
    """
    random = np.random.RandomState(0)
    with tf.Graph().as_default():
        variables = [tf.Variable(_value(variable_name, shape, random), name=variable_name)
                     for variable_name, shape in load(name)['model_variables']]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return tf.train.Saver(variables).save(session, prefix)


def expected_signature(published: list) -> list[tuple]:
    """(name, default) pairs of a facts signature, its strings resolved to the objects they name.

    The facts write a required argument as '<required>' and callables by name
    ('nn.relu', 'tf_slim.softmax').
    """
    def resolve(value):
        if value == '<required>':
            return inspect.Parameter.empty
        if isinstance(value, str) and value.startswith('nn.'):
            return getattr(tf.nn, value[len('nn.'):])
        if isinstance(value, str) and value.startswith('tf_slim.'):
            return getattr(slim, value[len('tf_slim.'):])
        return value
    return [(name, resolve(default)) for name, default in published]


def signature(function) -> list[tuple]:
    """(name, default) pairs of a function's parameters, to compare with `expected_signature`."""
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]
