"""Random draws that a resume repeats exactly: `--seed=S --deterministic` (issue 16).

TensorFlow's stateful random ops (tf.random.uniform, tf.image.random_*, the
dropout of tf.layers) draw from a counter that lives in the op's kernel: a
process that resumes from a checkpoint starts every counter again from zero,
so its draws differ from those the uninterrupted run made at the same step.
In deterministic training every draw is a stateless op instead, seeded by
where it is made:

* preprocessing and augmentation of one example: (seed, STREAM_EXAMPLES,
  the example's position in the shuffled, repeated stream);
* mixup/CutMix of one batch: (seed, STREAM_BATCHES, the batch's position);
* balanced sampling: (seed, STREAM_BALANCE, the example's position);
* dropout in the net: (seed, STREAM_STEPS, global step);

each folded with the index of the draw within its function. The positions
are counters of the tf.data pipeline, whose state the trainer saves with
every checkpoint, and the global step is a variable, so a resumed run draws
what the uninterrupted one would have drawn.

The draw functions below (`uniform`, `gamma`, `random_crop`, ...) are those
of TensorFlow, with the same arguments. Outside a `stateless_draws` context
they call TensorFlow's stateful op itself, so training without
--deterministic builds exactly the graph it always built. `refuse_stateful_draws`
finds a stateful random op left in a deterministic training graph.
"""

import contextlib
import threading
from collections.abc import Iterable, Iterator

import tensorflow as tf2
import tensorflow.compat.v1 as tf
from tensorflow.python.framework import op_def_registry

# The independent random streams of deterministic training.
STREAM_EXAMPLES = 1
STREAM_BATCHES = 2
STREAM_BALANCE = 3
STREAM_STEPS = 4

# Words in the type of a stateful op that draws random numbers (RandomUniform,
# StatefulUniformInt, Multinomial, TruncatedNormal, SampleDistortedBoundingBoxV2, ...).
_RANDOM_OP_WORDS = ('Random', 'Stateful', 'Multinomial', 'TruncatedNormal',
                    'SampleDistortedBoundingBox')
# Ops named by those words that draw nothing themselves: datasets and seed generators,
# whose state tf.data saves with the iterator (Dataset.random, sample_from_datasets,
# shuffle), and calls of functions, whose own ops are searched.
_NOT_DRAWING_OP_SUFFIXES = ('Dataset', 'SeedGenerator', 'PartitionedCall')
_SHOWN_OPS = 3

_local = threading.local()


class StatelessDraws:
    """The seeds of the draws made in one function: one new seed per draw.

    The draws are counted when the function is built (traced), so each op of
    the function has its own seed, the same in every run.
    """

    def __init__(self, seed: tf.Tensor):
        self._seed = seed
        self._draws = 0

    def next_seed(self) -> tf.Tensor:
        """int64 [2]: the seed of the next stateless op."""
        seed = tf2.random.experimental.stateless_fold_in(self._seed, self._draws)
        self._draws += 1
        return seed


@contextlib.contextmanager
def stateless_draws(seed: int, stream: int, position: tf.Tensor) -> Iterator[StatelessDraws]:
    """Makes the draws of this module stateless, seeded by (seed, stream, position), in the block.

    Args:
      seed: the --seed of the run.
      stream: one of the STREAM_* constants.
      position: int scalar tensor, e.g. the example's position in the stream.
    """
    root = tf.constant([seed, stream], tf.int64)
    draws = StatelessDraws(tf2.random.experimental.stateless_fold_in(
        root, tf.cast(position, tf.int64)))
    stack = _stack()
    stack.append(draws)
    try:
        yield draws
    finally:
        stack.pop()


def active() -> StatelessDraws | None:
    """The innermost `stateless_draws` of this thread, or None outside any."""
    stack = _stack()
    return stack[-1] if stack else None


def _stack() -> list[StatelessDraws]:
    if not hasattr(_local, 'stack'):
        _local.stack = []
    return _local.stack


# The draws: TensorFlow's stateful op outside `stateless_draws`, a stateless one inside -----------

def uniform(shape, minval=0, maxval=None, dtype=tf.float32) -> tf.Tensor:
    """tf.random.uniform."""
    draws = active()
    if draws is None:
        return tf.random.uniform(shape, minval, maxval, dtype)
    return tf2.random.stateless_uniform(shape, draws.next_seed(), minval, maxval, dtype)


def gamma(shape, alpha) -> tf.Tensor:
    """tf.random.gamma (float32)."""
    draws = active()
    if draws is None:
        return tf.random.gamma(shape, alpha)
    return tf2.random.stateless_gamma(shape, draws.next_seed(), alpha)


def random_crop(value: tf.Tensor, size) -> tf.Tensor:
    """tf.image.random_crop."""
    draws = active()
    if draws is None:
        return tf.image.random_crop(value, size)
    return tf2.image.stateless_random_crop(value, size, draws.next_seed())


def random_flip_left_right(image: tf.Tensor) -> tf.Tensor:
    """tf.image.random_flip_left_right."""
    draws = active()
    if draws is None:
        return tf.image.random_flip_left_right(image)
    return tf2.image.stateless_random_flip_left_right(image, draws.next_seed())


def random_brightness(image: tf.Tensor, max_delta: float) -> tf.Tensor:
    """tf.image.random_brightness."""
    draws = active()
    if draws is None:
        return tf.image.random_brightness(image, max_delta=max_delta)
    return tf2.image.stateless_random_brightness(image, max_delta, draws.next_seed())


def random_contrast(image: tf.Tensor, lower: float, upper: float) -> tf.Tensor:
    """tf.image.random_contrast."""
    draws = active()
    if draws is None:
        return tf.image.random_contrast(image, lower, upper)
    return tf2.image.stateless_random_contrast(image, lower, upper, draws.next_seed())


def random_saturation(image: tf.Tensor, lower: float, upper: float) -> tf.Tensor:
    """tf.image.random_saturation."""
    draws = active()
    if draws is None:
        return tf.image.random_saturation(image, lower, upper)
    return tf2.image.stateless_random_saturation(image, lower, upper, draws.next_seed())


def random_hue(image: tf.Tensor, max_delta: float) -> tf.Tensor:
    """tf.image.random_hue."""
    draws = active()
    if draws is None:
        return tf.image.random_hue(image, max_delta=max_delta)
    return tf2.image.stateless_random_hue(image, max_delta, draws.next_seed())


def sample_distorted_bounding_box(image_size: tf.Tensor, bounding_boxes: tf.Tensor,
                                  min_object_covered: float,
                                  aspect_ratio_range: tuple[float, float],
                                  area_range: tuple[float, float], max_attempts: int
                                  ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """SampleDistortedBoundingBoxV2 seeded by the graph-level seed, as tf.image's v1 wrapper."""
    draws = active()
    if draws is None:
        # The raw op honours the graph-level seed like the deprecated v1
        # wrapper does, without its deprecation warning on every run.
        graph_seed, op_seed = tf.get_seed(None)
        return tf.raw_ops.SampleDistortedBoundingBoxV2(
            image_size=image_size, bounding_boxes=bounding_boxes,
            min_object_covered=min_object_covered, seed=graph_seed or 0, seed2=op_seed or 0,
            aspect_ratio_range=list(aspect_ratio_range), area_range=list(area_range),
            max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
    return tf2.image.stateless_sample_distorted_bounding_box(
        image_size, bounding_boxes, draws.next_seed(), min_object_covered=min_object_covered,
        aspect_ratio_range=list(aspect_ratio_range), area_range=list(area_range),
        max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)


def dropout(inputs: tf.Tensor, keep_prob, noise_shape=None) -> tf.Tensor:
    """Stateless dropout (for `slim.dropout` in training): call it inside `stateless_draws`."""
    draws = active()
    if draws is None:
        raise RuntimeError('determinism.dropout draws inside stateless_draws only')
    return tf2.nn.experimental.stateless_dropout(inputs, rate=1.0 - keep_prob,
                                                 seed=draws.next_seed(),
                                                 noise_shape=noise_shape)


# The guard ------------------------------------------------------------------------------------

class StatefulDrawError(ValueError):
    """A deterministic training graph holds a random op that a resume would not repeat."""


def refuse_stateful_draws(graph: tf.Graph, fetches: Iterable) -> None:
    """Raises StatefulDrawError naming any stateful random op run by `fetches` or tf.data.

    The ops that `fetches` (the train op) depend on are searched, and every
    function of the graph (the input pipeline's map and filter functions,
    the branches of conditionals); the variable initialisers, which run once
    before the first step, are not among them.
    """
    found = sorted({_describe(op.type, op.name) for op in _ancestors(fetches)
                    if _draws_statefully(op.type)}
                   | {_describe(node.op, '%s/%s' % (function.signature.name, node.name))
                      for function in graph.as_graph_def().library.function
                      for node in function.node_def if _draws_statefully(node.op)})
    if found:
        raise StatefulDrawError(
            '--deterministic cannot resume exactly with stateful random op(s) %s%s: they are '
            "not seeded by the step or the example's position; train without --deterministic"
            % (', '.join(found[:_SHOWN_OPS]),
               ' (%d in all)' % len(found) if len(found) > _SHOWN_OPS else ''))


def _ancestors(fetches: Iterable) -> Iterator[tf.Operation]:
    pending = [fetch if isinstance(fetch, tf.Operation) else fetch.op for fetch in fetches]
    seen = set()
    while pending:
        op = pending.pop()
        if op in seen:
            continue
        seen.add(op)
        yield op
        pending.extend(tensor.op for tensor in op.inputs)
        pending.extend(op.control_inputs)


def _draws_statefully(op_type: str) -> bool:
    if op_type.endswith(_NOT_DRAWING_OP_SUFFIXES):
        return False
    if not any(word in op_type for word in _RANDOM_OP_WORDS):
        return False
    op_def = op_def_registry.get(op_type)
    return op_def is not None and op_def.is_stateful


def _describe(op_type: str, name: str) -> str:
    return '%s (%s)' % (op_type, name)
