"""Shared pieces of the training, evaluation and export tests."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_command(script, *args, timeout=300, check=True, env=None):
    """Runs one of the repository's commands; returns the CompletedProcess.

    TensorFlow's own log is quiet (TF_CPP_MIN_LOG_LEVEL=2) unless `env`, which
    is added to the environment, says otherwise.
    """
    result = subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError('%s failed (%d):\n%s' % (script, result.returncode,
                                                      result.stderr[-3000:]))
    return result


def start_command(script, *args):
    return subprocess.Popen([sys.executable, os.path.join(REPO, script), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError('timed out waiting for ' + what)


def checkpoint_step(train_dir):
    latest = tf.train.latest_checkpoint(train_dir)
    return int(latest.rsplit('-', 1)[1]) if latest else None


def checkpoint_values(path):
    """Every tensor of a checkpoint by name, but the input pipeline's state (a variant)."""
    reader = tf.train.NewCheckpointReader(path)
    return {name: reader.get_tensor(name)
            for name, dtype in reader.get_variable_to_dtype_map().items() if dtype != tf.variant}


def interrupt(process, signum=signal.SIGTERM, timeout=60):
    process.send_signal(signum)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def digits_arrays():
    """scikit-learn's digits as 28x28 uint8 images with labels."""
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = [np.asarray(Image.fromarray((image * 255.0 / 16.0).astype(np.uint8))
                         .resize((28, 28), Image.BILINEAR)) for image in digits.images]
    return np.stack(images), digits.target


def lenet_config(train_dir, dataset_dir, **overrides):
    """A TrainConfig for LeNet on digits that converges in a few hundred steps."""
    from slim_classifier.training import trainer
    values = dict(train_dir=str(train_dir), dataset_dir=dataset_dir, dataset_name='digits',
                  model_name='lenet', batch_size=32, optimizer='momentum', learning_rate=0.01,
                  learning_rate_decay_type='fixed', weight_decay=0.0, num_readers=2,
                  num_preprocessing_threads=2, log_every_n_steps=50, save_interval_secs=3600,
                  save_summaries_secs=3600, seed=1)
    values.update(overrides)
    return trainer.TrainConfig(**values)


def lenet_on_digits_test_split(checkpoint, dataset_dir, per_example_fn,
                               moving_average_decay=None):
    """Mean of `per_example_fn(logits, labels)` over the digits test split, for a LeNet checkpoint.

    Computed here with the factories and a plain Saver, independently of the evaluation code;
    `moving_average_decay` restores the averaged weights instead of the raw ones.
    """
    from datasets import dataset_factory, input_pipeline
    from nets import nets_factory
    from preprocessing import preprocessing_factory
    with tf.Graph().as_default():
        dataset = dataset_factory.get_dataset('digits', 'test', dataset_dir)
        batches = input_pipeline.build_dataset(
            dataset, preprocessing_factory.get_preprocessing('lenet'), 28, 100,
            is_training=False)
        images, labels = input_pipeline.one_shot_batch(batches)
        logits, _ = nets_factory.get_network_fn('lenet', 10)(images)
        values = per_example_fn(logits, labels)
        variables = (tf.train.ExponentialMovingAverage(moving_average_decay)
                     .variables_to_restore() if moving_average_decay else tf.global_variables())
        with tf.Session() as sess:
            tf.train.Saver(variables).restore(sess, checkpoint)
            collected = []
            while True:
                try:
                    collected.extend(sess.run(values))
                except tf.errors.OutOfRangeError:
                    break
    assert len(collected) == dataset.num_samples
    return float(np.mean(collected))


def digits_test_accuracy(checkpoint, dataset_dir, moving_average_decay=None):
    """Top-1 accuracy of a LeNet checkpoint on the digits test split."""
    return lenet_on_digits_test_split(
        checkpoint, dataset_dir, lambda logits, labels: tf.equal(tf.argmax(logits, 1), labels),
        moving_average_decay)


def digits_test_loss(checkpoint, dataset_dir, moving_average_decay=None):
    """Mean cross-entropy of a LeNet checkpoint on the digits test split."""
    return lenet_on_digits_test_split(
        checkpoint, dataset_dir,
        lambda logits, labels: tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits),
        moving_average_decay)


def checkpoint_probabilities(checkpoint, model_name, num_classes, images):
    """The net's Predictions on preprocessed `images`, with the weights of `checkpoint`."""
    from nets import nets_factory
    with tf.Graph().as_default():
        inputs = tf.placeholder(tf.float32, images.shape)
        _, end_points = nets_factory.get_network_fn(model_name, num_classes)(inputs)
        with tf.Session() as session:
            tf.train.Saver().restore(session, checkpoint)
            return session.run(end_points['Predictions'], {inputs: images})
