"""Shared pieces of the Inception tests: published end points, builds, parameter counts."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import inception, inception_utils
from slim_classifier.compat import slim
from tests.net_facts import NET_FACTS


def published_base_end_points(name):
    """The published base end points of an Inception net, in build order, with their shapes."""
    final_endpoint = NET_FACTS[name]['base'][0]
    names = list(NET_FACTS[name]['end_points'])
    return {n: NET_FACTS[name]['end_points'][n] for n in names[:names.index(final_endpoint) + 1]}


def build_base(name, use_batch_norm=True, **kwargs):
    """Builds `<name>_base` on a batch of 2 images of the net's default size.

    Shape-only tests pass use_batch_norm=False: batch norm changes no shape
    and is most of the build time.
    """
    size = NET_FACTS[name]['image_size']
    images = tf.placeholder(tf.float32, [2, size, size, 3])
    with slim.arg_scope(inception_utils.inception_arg_scope(use_batch_norm=use_batch_norm)):
        return getattr(inception, name + '_base')(images, **kwargs)


def build_net(name, images, use_batch_norm=True, **kwargs):
    """Builds the whole net `name` on `images` under the Inception arg_scope."""
    with slim.arg_scope(inception_utils.inception_arg_scope(use_batch_norm=use_batch_norm)):
        return getattr(inception, name)(images, **kwargs)


def count_parameters(variables):
    """The number of scalars in `variables`."""
    return sum(int(np.prod(v.shape.as_list())) for v in variables)


def variable_shapes():
    """{variable name: shape} of the default graph's global variables."""
    return {v.op.name: v.shape.as_list() for v in tf.global_variables()}


def refused_base_message(name, **kwargs):
    """Builds `<name>_base` with arguments it must refuse; returns the ValueError's message.

    Raises:
      AssertionError: if the refused build left variables behind (it must check
        its arguments before it builds anything).
    """
    with tf.Graph().as_default():
        with pytest.raises(ValueError) as error:
            build_base(name, **kwargs)
        if tf.global_variables():
            raise AssertionError('the refused build of %s left %d variables behind'
                                 % (name, len(tf.global_variables())))
    return str(error.value)
