"""A checkpoint holding exactly the published variables restores into our net, with nothing left over."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from nets import nets_factory
from slim_classifier.runtime import checkpoints
from tests import zoo_facts

# Small members of the families, so that the test stays seconds long.
NETS = ['mobilenet_v1_025', 'mobilenet_v2_035', 'resnet_v1_50', 'inception_v1']


@pytest.mark.parametrize('name', NETS)
def test_published_variables_restore_exactly_and_run(name, tmp_path):
    checkpoint = zoo_facts.write_published_checkpoint(name, str(tmp_path / 'model.ckpt'))
    facts = zoo_facts.load(name)
    size = {'inception_v1': 224, 'resnet_v1_50': 128}.get(name, 96)
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn(name, facts['num_classes'])
        logits, _ = network_fn(tf.random_uniform([1, size, size, 3], -1.0, 1.0, seed=1))
        model_variables = {v.op.name for v in tf.model_variables()}
        restorer = checkpoints.CheckpointRestorer(name, facts['num_classes'])
        with tf.Session() as session:
            restored = restorer.restore(session, checkpoint)
            values = session.run(logits)
    saved = {variable for variable, _ in tf.train.list_variables(restored)}
    assert model_variables == saved  # nothing missing, nothing unexpected
    assert values.shape == (1, facts['num_classes'])
    assert np.all(np.isfinite(values))
