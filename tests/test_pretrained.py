"""Published checkpoint archives as users get them: extracted once, safely, and fine-tuned from."""

import io
import json
import os
import tarfile

import numpy as np
import pytest

from slim_classifier.runtime import checkpoints, pretrained
from tests import training_helpers as helpers
from tests import zoo_facts

ARCHIVE = 'mobilenet_v1_0.25_224.tgz'  # the published name, so the zoo table knows it


@pytest.fixture(scope='module')
def archive(tmp_path_factory):
    """mobilenet_v1_025's published variables (random values) packed as the published archive."""
    root = tmp_path_factory.mktemp('published')
    prefix = zoo_facts.write_published_checkpoint('mobilenet_v1_025',
                                                  str(root / 'mobilenet_v1_0.25_224.ckpt'))
    path = root / ARCHIVE
    with tarfile.open(path, 'w:gz') as packed:
        for suffix in ('.index', '.data-00000-of-00001'):
            packed.add(prefix + suffix, arcname='./' + os.path.basename(prefix) + suffix)
    return str(path)


def test_an_archive_is_extracted_once_beside_itself(archive):
    checkpoint = checkpoints.resolve_checkpoint(archive)
    assert checkpoint == os.path.join(archive + '.extracted', 'mobilenet_v1_0.25_224.ckpt')
    first = os.stat(checkpoint + '.index').st_mtime_ns
    assert checkpoints.resolve_checkpoint(archive) == checkpoint
    assert os.stat(checkpoint + '.index').st_mtime_ns == first


def test_an_unsafe_archive_extracts_nothing(tmp_path):
    path = tmp_path / 'evil.tar.gz'
    with tarfile.open(path, 'w:gz') as packed:
        data = b'x'
        member = tarfile.TarInfo('../escaped.ckpt')
        member.size = len(data)
        packed.addfile(member, io.BytesIO(data))
    with pytest.raises(Exception, match='evil.tar.gz'):
        checkpoints.resolve_checkpoint(str(path))
    assert sorted(os.listdir(tmp_path)) == ['evil.tar.gz']


def test_known_archives_give_their_net_and_head(archive):
    assert pretrained.known_archive(archive)[0] == 'mobilenet_v1_025'
    values = pretrained.archive_defaults(
        archive, ['model_name', 'preprocessing_name', 'train_image_size', 'labels_offset',
                  'checkpoint_exclude_scopes'], explicit={'train_image_size'},
        dataset_num_classes=10)
    assert values == {'model_name': 'mobilenet_v1_025', 'preprocessing_name': 'inception',
                      'checkpoint_exclude_scopes': ['MobilenetV1/Logits']}
    # 1000-class checkpoints on 1001-class ImageNet records take labels offset 1.
    assert pretrained.archive_defaults(
        'resnet_v1_50_2016_08_28.tar.gz', ['labels_offset'], set(), 1001) == {}  # not a file
    assert pretrained.known_archive('/nowhere/resnet_v1_50_2016_08_28.tar.gz') is None


def test_fine_tuning_from_the_archive_onto_digits_trains_and_evaluates(archive, digits_dir,
                                                                       tmp_path):
    run = str(tmp_path / 'run')
    result = helpers.run_command(
        'train_image_classifier.py', '--checkpoint_path=' + archive, '--dataset_name=digits',
        '--dataset_dir=' + digits_dir, '--train_dir=' + run, '--train_image_size=64',
        '--batch_size=4', '--max_number_of_steps=3', '--optimizer=sgd',
        '--learning_rate_decay_type=fixed', '--num_readers=1',
        '--num_preprocessing_threads=1')
    assert ('From the pretrained checkpoint %s: --model_name=mobilenet_v1_025, '
            '--preprocessing_name=inception, --checkpoint_exclude_scopes=MobilenetV1/Logits'
            % ARCHIVE) in result.stderr
    assert 'Fine-tuning from %s' % os.path.join(archive + '.extracted',
                                                'mobilenet_v1_0.25_224.ckpt') in result.stderr
    options = json.load(open(os.path.join(run, 'train_config.json')))['options']
    assert (options['model_name'], options['train_image_size']) == ('mobilenet_v1_025', 64)
    eval_dir = tmp_path / 'eval'
    helpers.run_command('eval_image_classifier.py', '--checkpoint_path=' + run,
                        '--eval_dir=%s' % eval_dir, '--max_num_batches=1', '--batch_size=8')
    metrics = json.loads((eval_dir / 'metrics.json').read_text())
    assert metrics['model_name'] == 'mobilenet_v1_025' and metrics['num_examples'] == 8


def _head_only_checkpoint(directory, num_classes):
    """A checkpoint holding only mobilenet_v1's logits biases, for `num_classes` outputs."""
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default():
        biases = tf.Variable(np.zeros(num_classes, np.float32),
                             name='MobilenetV1/Logits/Conv2d_1c_1x1/biases')
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            return tf.train.Saver([biases]).save(session, os.path.join(directory, 'model.ckpt'),
                                                global_step=5)


@pytest.mark.parametrize('logits_classes, dataset_name, expected', [
    (1000, 'imagenet', {'labels_offset': 1}),
    (1001, 'imagenet', {}),
    (1001, 'digits', {'checkpoint_exclude_scopes': ['MobilenetV1/Logits']}),
])
def test_the_labels_offset_follows_the_checkpoints_logits(tmp_path, logits_classes,
                                                          dataset_name, expected):
    checkpoint = _head_only_checkpoint(str(tmp_path), logits_classes)
    assert pretrained.checkpoint_num_classes(checkpoint, 'mobilenet_v1') == logits_classes
    given = {'model_name': 'mobilenet_v1', 'dataset_name': dataset_name, 'dataset_dir': None,
             'labels_offset': 0, 'checkpoint_exclude_scopes': None}
    assert pretrained.checkpoint_defaults(checkpoint, given, set()) == expected
    # A directory stands for its newest checkpoint; explicit options win.
    assert pretrained.checkpoint_num_classes(str(tmp_path), 'mobilenet_v1') == logits_classes
    assert pretrained.checkpoint_defaults(checkpoint, given, set(expected)) == {}


def test_a_checkpoint_without_the_nets_head_gives_nothing(tmp_path):
    checkpoint = _head_only_checkpoint(str(tmp_path), 1000)
    assert pretrained.checkpoint_num_classes(checkpoint, 'resnet_v1_50') is None
    assert pretrained.checkpoint_defaults(
        checkpoint, {'model_name': 'resnet_v1_50', 'dataset_name': 'imagenet',
                     'dataset_dir': None, 'labels_offset': 0}, set()) == {}
