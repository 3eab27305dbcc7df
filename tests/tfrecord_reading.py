"""Reads converted TFRecords back with plain TensorFlow, for the conversion tests.

Deliberately independent of the converters: only `tf.data.TFRecordDataset`,
`tf.io.parse_single_example` and `tf.io.decode_image`.
"""

import glob
import os

import numpy as np
import tensorflow.compat.v1 as tf

_FEATURES = {
    'image/encoded': tf.io.FixedLenFeature([], tf.string),
    'image/format': tf.io.FixedLenFeature([], tf.string),
    'image/class/label': tf.io.FixedLenFeature([], tf.int64),
    'image/height': tf.io.FixedLenFeature([], tf.int64),
    'image/width': tf.io.FixedLenFeature([], tf.int64),
    'image/filename': tf.io.FixedLenFeature([], tf.string),
    'image/class/text': tf.io.FixedLenFeature([], tf.string),
}


def shard_paths(dataset_dir: str, name: str, split: str) -> list[str]:
    """Returns the shards of a split, found with the agreed file pattern."""
    return sorted(glob.glob(os.path.join(dataset_dir, '%s_%s_*.tfrecord' % (name, split))))


def read_records(paths: list[str], channels: int = 3) -> list[dict]:
    """Returns every record of `paths`, in order, with its decoded pixels.

    Args:
        paths: TFRecord files.
        channels: passed to `tf.io.decode_image`; 0 keeps the stored channels.

    Returns:
        Dicts with the keys encoded, format, label, height, width, filename,
        class_text (str/bytes/int values) and pixels (a uint8 array).
    """
    records = []
    with tf.Graph().as_default():
        dataset = tf.data.TFRecordDataset(paths).map(
            lambda serialized: tf.io.parse_single_example(serialized, _FEATURES))
        features = tf.data.make_one_shot_iterator(dataset).get_next()
        pixels = tf.io.decode_image(features['image/encoded'], channels=channels)
        with tf.Session() as session:
            while True:
                try:
                    values, image = session.run([features, pixels])
                except tf.errors.OutOfRangeError:
                    return records
                records.append({
                    'encoded': values['image/encoded'],
                    'format': values['image/format'].decode('ascii'),
                    'label': int(values['image/class/label']),
                    'height': int(values['image/height']),
                    'width': int(values['image/width']),
                    'filename': values['image/filename'].decode('utf-8'),
                    'class_text': values['image/class/text'].decode('utf-8'),
                    'pixels': np.asarray(image),
                })
