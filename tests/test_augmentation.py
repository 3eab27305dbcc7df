"""RandAugment, random erasing, mixup and CutMix (preprocessing/augmentation.py) and their flags.

RandAugment's photometric operations are checked against PIL, whose ImageOps
and ImageEnhance define them.
"""

import json
import math

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image, ImageEnhance, ImageOps

from datasets import dataset_factory, input_pipeline
from preprocessing import augmentation, preprocessing_factory
from preprocessing.augmentation import RAND_AUGMENT_OPS, Augmentation
from slim_classifier.runtime import batches
from slim_classifier.training import trainer
from tests import training_helpers as helpers


def _run(tensors):
    with tf.Session() as session:
        return session.run(tensors)


def _photo(seed=0, size=(24, 20)):
    """A smooth uint8 RGB image with a varied histogram."""
    rows, columns = np.mgrid[0:size[0], 0:size[1]]
    noise = np.random.RandomState(seed).randint(0, 40, size + (3,))
    image = np.stack([rows * 7, columns * 9, (rows + columns) * 4], -1) + noise
    return np.clip(image + 20, 0, 255).astype(np.uint8)


def _apply(name, image, level, sign=1.0):
    with tf.Graph().as_default():
        return _run(RAND_AUGMENT_OPS[name](tf.constant(image), level, tf.constant(sign)))


def test_with_the_flags_off_the_batches_are_the_preprocessings_own(digits_dir):
    # cifarnet's training preprocessing is random (crop, flip, brightness, contrast).
    dataset = dataset_factory.get_dataset('digits', 'train', digits_dir)
    options = dict(seed=5, deterministic=True, num_parallel_calls=2)

    def first_batches(make_batches):
        with tf.Graph().as_default():
            images, labels = input_pipeline.one_shot_batch(make_batches())
            with tf.Session() as session:
                return [session.run([images, labels]) for _ in range(3)]

    ours = first_batches(lambda: batches.training_batches(
        dataset, 'cifarnet', 28, 16, augmentation=Augmentation(), balance_counts=None,
        **options))
    original = first_batches(lambda: input_pipeline.build_dataset(
        dataset, preprocessing_factory.get_preprocessing('cifarnet', is_training=True), 28, 16,
        is_training=True, **options))
    for (our_images, our_labels), (images, labels) in zip(ours, original):
        np.testing.assert_array_equal(our_images, images)
        np.testing.assert_array_equal(our_labels, labels)
    preprocess_fn = preprocessing_factory.get_preprocessing('cifarnet', is_training=True)
    assert augmentation.augmented_preprocessing(preprocess_fn, Augmentation()) is preprocess_fn


@pytest.mark.parametrize('name, level, pil_fn, tolerance', [
    ('equalize', 0.3, ImageOps.equalize, 0),
    ('autocontrast', 0.3, ImageOps.autocontrast, 1),
    # Solarize inverts from 256 * (1 - level) up, posterize keeps 8 - int(4 * level) bits.
    ('solarize', 0.5, lambda image: ImageOps.solarize(image, 128), 0),
    ('posterize', 0.75, lambda image: ImageOps.posterize(image, 5), 0),
    # The colour factors are 1 + 0.9 * level (with sign +1).
    ('brightness', 0.5, lambda image: ImageEnhance.Brightness(image).enhance(1.45), 1),
    ('color', 0.5, lambda image: ImageEnhance.Color(image).enhance(1.45), 2),
    ('contrast', 0.5, lambda image: ImageEnhance.Contrast(image).enhance(1.45), 2),
    ('sharpness', 0.5, lambda image: ImageEnhance.Sharpness(image).enhance(1.45), 1),
])
def test_photometric_operations_match_pil(name, level, pil_fn, tolerance):
    image = _photo()
    if name == 'autocontrast':
        image = (image // 2 + 40).astype(np.uint8)  # values 50..167: stretched to 0..255
    ours = _apply(name, image, level).astype(int)
    expected = np.asarray(pil_fn(Image.fromarray(image))).astype(int)
    assert np.abs(ours - expected).max() <= tolerance
    assert not np.array_equal(ours, image)


@pytest.mark.parametrize('name', ['rotate', 'shear_x', 'shear_y', 'translate_x', 'translate_y',
                                  'solarize', 'posterize', 'color', 'contrast', 'brightness',
                                  'sharpness'])
def test_magnitude_zero_changes_nothing(name):
    image = _photo()
    np.testing.assert_array_equal(_apply(name, image, 0.0), image)


def test_translation_at_magnitude_30_moves_45_percent_and_fills_grey():
    image = _photo(size=(20, 20))
    moved = _apply('translate_x', image, 1.0, sign=1.0)
    np.testing.assert_array_equal(moved[:, 9:], image[:, :11])  # 0.45 * 20 = 9 pixels
    assert (moved[:, :9] == 128).all()
    moved = _apply('translate_y', image, 1.0, sign=-1.0)
    np.testing.assert_array_equal(moved[:11], image[9:])


def test_rotation_at_magnitude_30_turns_30_degrees_about_the_centre():
    image = np.zeros((41, 41, 3), np.uint8)
    image[20, 35] = 255  # 15 pixels right of the centre (20, 20)
    rotated = _apply('rotate', image, 1.0).astype(int).sum(-1)
    rows, columns = np.mgrid[0:41, 0:41]
    rotated[np.hypot(rows - 20, columns - 20) > 19] = 0  # the corners are filled grey
    row, column = np.unravel_index(np.argmax(rotated), rotated.shape)
    angle = math.degrees(math.atan2(row - 20, column - 20))
    assert math.hypot(row - 20, column - 20) == pytest.approx(15, abs=1)
    assert abs(angle) == pytest.approx(30, abs=4)


def test_rand_augment_draws_operations_and_keeps_the_image_format():
    image = _photo()
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        distorted = augmentation.rand_augment(tf.constant(image), 2, 9)
        untouched = augmentation.rand_augment(tf.constant(image), 0, 9)
        with tf.Session() as session:
            draws = [session.run(distorted) for _ in range(20)]
            assert np.array_equal(session.run(untouched), image)
    assert all(draw.dtype == np.uint8 and draw.shape == image.shape for draw in draws)
    changed = [not np.array_equal(draw, image) for draw in draws]
    assert sum(changed) >= 15  # only identity twice (1/196) or no-op draws leave it
    assert len({draw.tobytes() for draw in draws}) >= 10


def test_random_erasing_replaces_one_rectangle_with_noise_in_the_value_range():
    image = np.random.RandomState(0).uniform(-1, 1, (32, 32, 3)).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(2)
        erased = augmentation.random_erasing(tf.constant(image), 1.0)
        kept = augmentation.random_erasing(tf.constant(image), 0.0)
        with tf.Session() as session:
            draws = [session.run(erased) for _ in range(10)]
            np.testing.assert_array_equal(session.run(kept), image)
    for draw in draws:
        changed = (draw != image).any(-1)
        rows, columns = np.nonzero(changed)
        box = changed[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
        assert box.mean() > 0.95  # one rectangle (a noise value may equal the original)
        assert 0.015 <= changed.mean() <= 0.36
        assert draw.min() >= image.min() and draw.max() <= image.max()


def _mixed(mixup_alpha, cutmix_alpha, seed):
    # Example i is filled with the value i + 1 and has label i.
    images = np.ones((4, 8, 8, 1), np.float32) * np.arange(1, 5, dtype=np.float32)[:, None,
                                                                                    None, None]
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        mixed = augmentation.mix_batch(tf.constant(images), tf.constant([0, 1, 2, 3]), 4,
                                       mixup_alpha, cutmix_alpha)
        return _run(mixed)


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_mixup_blends_images_and_labels_alike(seed):
    images, labels = _mixed(0.4, 0.0, seed)
    np.testing.assert_allclose(labels.sum(1), 1.0, rtol=1e-6)
    kept = labels[0, 0]
    assert labels[0, 3] == pytest.approx(1 - kept)  # mixed with the mirrored example
    np.testing.assert_allclose(images[0], kept * 1 + (1 - kept) * 4, rtol=1e-5)


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_cutmix_labels_are_the_shares_of_the_pixels(seed):
    images, labels = _mixed(0.0, 1.0, seed)
    np.testing.assert_allclose(labels.sum(1), 1.0, rtol=1e-6)
    assert set(np.unique(images[0])) <= {1.0, 4.0}
    assert np.mean(images[0] == 4.0) == pytest.approx(labels[0, 3], abs=1e-6)
    assert np.mean(images[1] == 3.0) == pytest.approx(labels[1, 2], abs=1e-6)


def test_mixup_of_multi_hot_labels_gives_each_label_the_share_of_its_images():
    images = np.ones((4, 8, 8, 1), np.float32) * np.arange(1, 5, dtype=np.float32)[:, None,
                                                                                    None, None]
    multi_hot = np.array([[1, 1, 0], [0, 0, 0], [0, 1, 1], [1, 0, 0]], np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        mixed, labels = _run(augmentation.mix_batch(tf.constant(images), tf.constant(multi_hot),
                                                    3, 0.4, 0.0))
    kept = (mixed[:, 0, 0, 0] - images[::-1, 0, 0, 0]) / (images[:, 0, 0, 0]
                                                          - images[::-1, 0, 0, 0])
    np.testing.assert_allclose(labels, kept[:, None] * multi_hot
                               + (1 - kept[:, None]) * multi_hot[::-1], rtol=1e-5)


def test_mixing_batches_makes_soft_labels_and_still_checks_the_labels(digits_dir):
    dataset = dataset_factory.get_dataset('digits', 'train', digits_dir)
    mixing = Augmentation(mixup_alpha=0.2, cutmix_alpha=1.0)
    with tf.Graph().as_default():
        images, labels = input_pipeline.one_shot_batch(batches.training_batches(
            dataset, 'lenet', 28, 16, augmentation=mixing, seed=1))
        assert labels.shape.as_list() == [16, 10] and labels.dtype == tf.float32
        soft = _run(labels)
        np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-5)
        assert (soft.max(1) < 1).any()
    with tf.Graph().as_default():  # labels_offset=1 turns digit 0 into label -1
        _, labels = input_pipeline.one_shot_batch(batches.training_batches(
            dataset, 'lenet', 28, 64, augmentation=mixing, seed=1, labels_offset=1))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r'label outside \[0, '):
            _run(labels)


def test_training_with_soft_labels_reports_no_hard_label_accuracy(digits_dir, tmp_path):
    result = trainer.train(helpers.lenet_config(
        tmp_path, digits_dir, max_number_of_steps=20, log_every_n_steps=10, mixup_alpha=0.2,
        cutmix_alpha=1.0, rand_augment='2,9', random_erasing_prob=0.5))
    assert result.global_step == 20
    with open(tmp_path / 'metrics.jsonl') as metrics:
        records = [json.loads(line) for line in metrics]
    assert [record['step'] for record in records] == [10, 20]
    assert all(math.isfinite(record['loss']) for record in records)
    assert not any('accuracy' in key for record in records for key in record)


def test_every_new_flag_trains_from_the_command_line(digits_dir, tmp_path):
    result = helpers.run_command(
        'train_image_classifier.py', '--dataset_name=digits', '--dataset_dir=' + digits_dir,
        '--model_name=lenet', '--train_dir=%s' % tmp_path, '--max_number_of_steps=4',
        '--batch_size=20', '--log_every_n_steps=2', '--rand_augment=2,9',
        '--random_erasing_prob=0.25', '--mixup_alpha=0.2', '--cutmix_alpha=1.0',
        '--class_weights=auto', '--balanced_sampling')
    assert helpers.checkpoint_step(str(tmp_path)) == 4
    assert 'Class weights (--class_weights=auto): ' in result.stderr
    with open(tmp_path / 'train_config.json') as saved:
        options = json.load(saved)['options']
    assert options['rand_augment'] == '2,9' and options['balanced_sampling'] is True
    assert options['mixup_alpha'] == 0.2 and options['cutmix_alpha'] == 1.0
    assert options['random_erasing_prob'] == 0.25 and options['class_weights'] == 'auto'


BAD_VALUES = [
    ('--rand_augment=-1,5', '--rand_augment must be N,M: N >= 0 operations per image and a '
     "magnitude M in [0, 30]; got '-1,5'"),
    ('--rand_augment=2,31', "--rand_augment must be N,M: N >= 0 operations per image and a "
     "magnitude M in [0, 30]; got '2,31'"),
    ('--rand_augment=2', "--rand_augment must be N,M: N >= 0 operations per image and a "
     "magnitude M in [0, 30]; got '2'"),
    ('--mixup_alpha=-0.5', '--mixup_alpha must be >= 0 and finite; got -0.5'),
    ('--cutmix_alpha=-1', '--cutmix_alpha must be >= 0 and finite; got -1.0'),
    ('--random_erasing_prob=1.5', '--random_erasing_prob must be in [0, 1]; got 1.5'),
    ('--random_erasing_prob=-0.1', '--random_erasing_prob must be in [0, 1]; got -0.1'),
]


@pytest.mark.parametrize('flag, message', BAD_VALUES)
def test_bad_values_are_one_line_naming_the_flag(digits_dir, tmp_path, flag, message):
    name, value = flag[2:].split('=')
    parsed = {'rand_augment': str}.get(name, float)(value)
    with pytest.raises(ValueError) as error:
        helpers.lenet_config(tmp_path, digits_dir, **{name: parsed})
    assert str(error.value) == message


def test_a_bad_value_on_the_command_line_is_one_line(digits_dir, tmp_path):
    flag, message = BAD_VALUES[1]
    result = helpers.run_command(
        'train_image_classifier.py', '--dataset_name=digits', '--dataset_dir=' + digits_dir,
        '--model_name=lenet', '--train_dir=%s' % tmp_path, flag, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == 'error: ' + message
