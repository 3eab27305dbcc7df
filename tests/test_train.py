"""train_image_classifier end to end on the embedded digits dataset."""

import os
import signal

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from slim_classifier.training import trainer
from tests import training_helpers as helpers


def test_lenet_reaches_95_percent_on_digits(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=600))
    assert result.global_step == 600
    assert result.stopped_by == 'max_number_of_steps'
    assert helpers.digits_test_accuracy(result.checkpoint, digits_dir) >= 0.95


def test_tensorboard_events_hold_loss_and_learning_rate(digits_dir, tmp_path):
    trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=6,
                                       save_summaries_secs=1, learning_rate_decay_type='exponential',
                                       num_epochs_per_decay=0.05, learning_rate_decay_factor=0.5,
                                       log_every_n_steps=1))
    series = {}
    for path in tf.gfile.Glob(str(tmp_path / 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            for value in event.summary.value:
                series.setdefault(value.tag, []).append((event.step, value.simple_value))
    assert 'total_loss' in series and 'learning_rate' in series
    assert all(np.isfinite(v) for _, v in series['total_loss'])
    assert 'images_per_sec' in series


def test_moving_averages_are_saved_and_restorable(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=300,
                                                moving_average_decay=0.9))
    values = helpers.checkpoint_values(result.checkpoint)
    averaged = [name for name in values if name.endswith('/ExponentialMovingAverage')]
    assert 'LeNet/fc4/weights/ExponentialMovingAverage' in averaged
    assert len(averaged) == 8
    assert not np.array_equal(values['LeNet/fc4/weights'],
                              values['LeNet/fc4/weights/ExponentialMovingAverage'])
    assert helpers.digits_test_accuracy(result.checkpoint, digits_dir, moving_average_decay=0.9) > 0.8


def test_resume_continues_the_global_step(digits_dir, tmp_path):
    trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=5))
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=8,
                                                checkpoint_path='/nonexistent/ignored'))
    assert result.global_step == 8
    assert helpers.checkpoint_step(str(tmp_path)) == 8


def test_resuming_with_another_optimizer_is_one_clear_error(digits_dir, tmp_path):
    trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=2))
    with pytest.raises(trainer.TrainingError, match=r'cannot resume from .*model.ckpt-2: it does '
                       r'not match this run \(.*RMSProp.*\); resume with the options of '
                       r'train_config.json \(--optimizer=rmsprop \(was momentum\) differ\)'):
        trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=4,
                                           optimizer='rmsprop'))


def _fewer_classes_dataset(tmp_path, classes=(3, 5, 8)):
    """A 3-class image folder of digits, converted by the folder converter."""
    from PIL import Image
    images, labels = helpers.digits_arrays()
    image_dir = tmp_path / 'images'
    for label in classes:
        (image_dir / str(label)).mkdir(parents=True)
        for index in np.flatnonzero(labels == label)[:40]:
            Image.fromarray(images[index]).save(image_dir / str(label) / ('%d.png' % index))
    dataset_dir = tmp_path / 'three'
    helpers.run_command('download_and_convert_data.py', '--dataset_name=three',
                        '--image_dir=%s' % image_dir, '--dataset_dir=%s' % dataset_dir)
    return str(dataset_dir)


def test_fine_tuning_changes_only_the_trainable_scopes(digits_dir, tmp_path):
    first = trainer.train(helpers.lenet_config(tmp_path / 'base', digits_dir,
                                               max_number_of_steps=20))
    three_dir = _fewer_classes_dataset(tmp_path)
    overrides = dict(dataset_name='three', max_number_of_steps=10,
                     checkpoint_path=str(tmp_path / 'base'))
    with pytest.raises(trainer.TrainingError) as error:
        trainer.train(helpers.lenet_config(tmp_path / 'bad', three_dir, **overrides))
    assert 'LeNet/fc4/weights is [1024, 10] in the checkpoint, [1024, 3] in the net' in str(
        error.value)
    assert '--checkpoint_exclude_scopes=LeNet/fc4' in str(error.value)

    tuned = trainer.train(helpers.lenet_config(
        tmp_path / 'tuned', three_dir, checkpoint_exclude_scopes=['LeNet/fc4'],
        trainable_scopes=['LeNet/fc4'], **overrides))
    before = helpers.checkpoint_values(first.checkpoint)
    after = helpers.checkpoint_values(tuned.checkpoint)
    assert after['LeNet/fc4/weights'].shape == (1024, 3)
    for name in ('LeNet/conv1/weights', 'LeNet/conv2/biases', 'LeNet/fc3/weights'):
        np.testing.assert_array_equal(before[name], after[name])
    initial = trainer.train  # the fc4 layer trained: its biases moved from their zero start
    assert initial and np.any(after['LeNet/fc4/biases'] != 0.0)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(digits_dir, tmp_path):
    good = trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=3))
    with pytest.raises(trainer.TrainingError, match=r'loss is (nan|inf) at step \d+'):
        trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=50,
                                           optimizer='sgd', learning_rate=1e38))
    assert tf.train.latest_checkpoint(str(tmp_path)) == good.checkpoint


def test_labels_outside_the_classes_are_caught(digits_dir, tmp_path):
    with pytest.raises(trainer.TrainingError, match=r'label is outside \[0, num_classes\)'):
        trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=5,
                                           labels_offset=1))


def test_two_cpu_clones_train(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(tmp_path, digits_dir, max_number_of_steps=40,
                                                num_clones=2, clone_on_cpu=True, batch_size=16))
    values = helpers.checkpoint_values(result.checkpoint)
    assert result.global_step == 40
    assert not any(name.startswith('clone_') for name in values)
    assert helpers.digits_test_accuracy(result.checkpoint, digits_dir) > 0.5


@pytest.mark.parametrize('optimizer', ['adadelta', 'adagrad', 'ftrl', 'momentum', 'rmsprop'])
def test_each_optimizer_trains_from_the_command_line(digits_dir, tmp_path, optimizer):
    result = helpers.run_command(
        'train_image_classifier.py', '--dataset_name=digits', '--dataset_dir=' + digits_dir,
        '--model_name=lenet', '--train_dir=%s' % tmp_path, '--optimizer=' + optimizer,
        '--learning_rate_decay_type=cosine', '--warmup_epochs=0.02', '--max_number_of_steps=4',
        '--batch_size=8', '--log_every_n_steps=2', '--clip_gradient_norm=5')
    assert helpers.checkpoint_step(str(tmp_path)) == 4
    assert 'images/sec' in result.stderr


def test_invalid_flag_names_the_flag_and_the_choices(tmp_path):
    result = helpers.run_command('train_image_classifier.py', '--optimizer=lamb',
                                 '--dataset_dir=%s' % tmp_path, check=False)
    assert result.returncode != 0
    assert 'optimizer' in result.stderr and 'rmsprop' in result.stderr and 'lamb' in result.stderr


def test_unknown_dataset_is_one_line(tmp_path):
    result = helpers.run_command('train_image_classifier.py', '--dataset_name=nope',
                                 '--dataset_dir=%s' % tmp_path, '--train_dir=%s' % tmp_path,
                                 check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown dataset 'nope'")


def _train_in_background(digits_dir, train_dir, *extra):
    return helpers.start_command(
        'train_image_classifier.py', '--dataset_name=digits', '--dataset_dir=' + digits_dir,
        '--model_name=lenet', '--train_dir=%s' % train_dir, '--optimizer=adam',
        '--learning_rate=0.001', '--batch_size=8', '--log_every_n_steps=1',
        '--max_number_of_steps=100000', *extra)


def test_sigterm_saves_a_checkpoint_and_exits_zero(digits_dir, tmp_path):
    process = _train_in_background(digits_dir, tmp_path, '--save_interval_secs=3600')
    log_file = []

    def stepped():
        line = process.stdout.readline()
        log_file.append(line)
        return 'step ' in line and 'images/sec' in line
    helpers.wait_for(stepped, 120, 'the first training steps')
    returncode, output = helpers.interrupt(process, signal.SIGTERM)
    assert returncode == 0, output
    assert 'SIGTERM received: saving a checkpoint' in output
    assert helpers.checkpoint_step(str(tmp_path)) >= 1


def test_resume_after_sigkill(digits_dir, tmp_path):
    process = _train_in_background(digits_dir, tmp_path, '--save_interval_secs=1')
    helpers.wait_for(lambda: helpers.checkpoint_step(str(tmp_path)), 120, 'a checkpoint')
    process.kill()
    process.communicate(timeout=30)
    saved = helpers.checkpoint_step(str(tmp_path))
    result = helpers.run_command(
        'train_image_classifier.py', '--dataset_name=digits', '--dataset_dir=' + digits_dir,
        '--model_name=lenet', '--train_dir=%s' % tmp_path, '--batch_size=8', '--optimizer=adam',
        '--max_number_of_steps=%d' % (saved + 3), '--checkpoint_path=/elsewhere')
    assert 'Resuming from' in result.stderr and 'at step %d' % saved in result.stderr
    assert 'Ignoring --checkpoint_path=/elsewhere' in result.stderr
    assert helpers.checkpoint_step(str(tmp_path)) == saved + 3
    assert os.path.exists(os.path.join(tmp_path, 'checkpoint'))
