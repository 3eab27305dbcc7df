"""The train_dir: checked before any step, its checkpoints kept across restarts, save leftovers gone."""

import glob
import json
import os
import shutil

import pytest
import tensorflow.compat.v1 as tf

from slim_classifier.runtime import checkpoints
from slim_classifier.training import trainer
from tests import training_helpers as helpers


def test_a_train_dir_that_is_a_file_is_refused_before_any_step(digits_dir, tmp_path):
    path = tmp_path / 'run'
    path.write_text('not a directory')
    with pytest.raises(trainer.TrainingError, match=r'--train_dir .*run is a file'):
        trainer.train(helpers.lenet_config(path, digits_dir, max_number_of_steps=1))
    assert path.read_text() == 'not a directory'


def test_an_unwritable_train_dir_is_refused_before_any_step(digits_dir):
    # /proc refuses new files to every user, root included.
    with pytest.raises(trainer.TrainingError,
                       match=r'^--train_dir /proc/self/run cannot be written \(.*\); choose'):
        trainer.train(helpers.lenet_config('/proc/self/run', digits_dir, max_number_of_steps=1))


def test_max_to_keep_holds_across_restarts(digits_dir, tmp_path):
    for steps in (1, 2, 3):
        trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=steps,
                                           max_to_keep=2))
    on_disk = sorted(os.path.basename(path)[:-len('.index')]
                     for path in glob.glob(str(tmp_path / 'model.ckpt-*.index')))
    assert on_disk == ['model.ckpt-2', 'model.ckpt-3']
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [os.path.basename(path) for path in state.all_model_checkpoint_paths] == on_disk


def test_the_leftovers_of_an_interrupted_save_are_removed(digits_dir, tmp_path):
    trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=1))
    leftover = tmp_path / 'model.ckpt-7_temp' / 'part-00000-of-00001.data-00000-of-00001'
    leftover.parent.mkdir()
    leftover.write_bytes(b'half a save')
    (tmp_path / 'notes_temp.txt').write_text('mine')
    # A run configuration whose atomic write was interrupted.
    (tmp_path / '.train_config.json.tmp-5e1f00aa').write_text('{"opt')
    trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=2))
    assert not leftover.parent.exists()
    assert not (tmp_path / '.train_config.json.tmp-5e1f00aa').exists()
    assert (tmp_path / 'notes_temp.txt').read_text() == 'mine'


def _logged_steps(train_dir):
    with open(os.path.join(train_dir, 'metrics.jsonl')) as metrics:
        return [json.loads(line)['step'] for line in metrics]


def test_a_moved_run_resumes_where_it_stopped(digits_dir, tmp_path):
    first, moved = tmp_path / 'first', tmp_path / 'moved'
    trainer.train(helpers.lenet_config(first, digits_dir, max_number_of_steps=2,
                                       log_every_n_steps=1))
    shutil.move(str(first), str(moved))  # the state file still names first/model.ckpt-2
    result = trainer.train(helpers.lenet_config(moved, digits_dir, max_number_of_steps=4,
                                                log_every_n_steps=1))
    assert result.global_step == 4
    assert _logged_steps(moved) == [1, 2, 3, 4]  # not started over


def test_an_incomplete_newest_checkpoint_resumes_from_the_one_before(digits_dir, tmp_path):
    for steps in (2, 4):
        trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=steps,
                                           log_every_n_steps=1))
    for data in glob.glob(str(tmp_path / 'model.ckpt-4.data-*')):
        os.remove(data)  # as if the disk lost the newest save
    assert checkpoints.resolve_checkpoint(str(tmp_path)).endswith('model.ckpt-2')
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=5,
                                                log_every_n_steps=1))
    assert result.global_step == 5
    assert _logged_steps(tmp_path) == [1, 2, 3, 4, 3, 4, 5]


def test_fine_tuning_initialises_only_what_it_does_not_restore(tmp_path):
    """A restored variable's own initialiser never runs (here it would fail if it did)."""
    from slim_classifier.compat import slim
    with tf.Graph().as_default():
        slim.model_variable('net/weights', initializer=tf.constant([1.0, 2.0]))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            prefix = tf.train.Saver().save(sess, str(tmp_path / 'model.ckpt'))
    with tf.Graph().as_default():
        unusable = tf.debugging.check_numerics(tf.constant([float('nan')] * 2),
                                               'the restored variable was initialised')
        weights = slim.model_variable('net/weights', initializer=unusable)
        logits = slim.model_variable('net/logits', initializer=tf.constant([3.0]))
        restore = checkpoints.FineTuneRestore(prefix, ['net/logits'], False)
        with tf.Session() as sess:
            restore.initialize_and_restore(sess)
            assert sess.run(weights).tolist() == [1.0, 2.0]
            assert sess.run(logits).tolist() == [3.0]
            with pytest.raises(tf.errors.InvalidArgumentError, match='was initialised'):
                sess.run(weights.initializer)
