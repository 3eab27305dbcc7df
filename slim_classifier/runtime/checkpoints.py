"""Checkpoints: finding them, and restoring a net from one only if it fits.

TensorFlow's own error for a checkpoint from another net or class count is a
long traceback naming one tensor. Here the whole checkpoint is compared with
the net first (`mismatch`), and every refusal, whether training resumes,
fine-tunes, evaluates, exports or classifies, names what does not match in
one style: `LeNet/fc4/biases is [10] in the checkpoint, [9] in the net`.
"""

import logging
import os
import re
import shutil

import tensorflow.compat.v1 as tf

from slim_classifier.compat import slim
from slim_classifier.errors import UserError
from slim_classifier.runtime import pretrained

AVERAGE_SUFFIX = '/ExponentialMovingAverage'
_SHOWN = 3  # variables named in an error message

log = logging.getLogger('checkpoints')


class CheckpointMismatch(UserError):
    """The checkpoint cannot initialise the net as asked; the message says how to fix it."""


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file prefix from a file prefix, a directory holding checkpoints, or an archive.

    A published archive (`resnet_v1_50_2016_08_28.tar.gz`) is extracted once
    beside itself and the checkpoint inside returned (see `pretrained`).

    Raises:
      CheckpointMismatch: if nothing there is a checkpoint.
    """
    if pretrained.is_archive(path):
        return pretrained.extracted_checkpoint(path)
    if tf.gfile.IsDirectory(path):
        latest = latest_intact(path)
        if latest is None:
            raise CheckpointMismatch('no checkpoint found in directory %r' % path)
        return latest
    for suffix in ('.index', '.meta'):
        if path.endswith(suffix) and tf.gfile.Exists(path):
            path = path[:-len(suffix)]
    if not (tf.gfile.Exists(path) or tf.gfile.Exists(path + '.index')):
        raise CheckpointMismatch('no checkpoint found at %r' % path)
    return path


_NUMBERED_INDEX = re.compile(r'(.+)-(\d+)\.index')


def checkpoints_in(directory: str) -> list[str]:
    """The numbered checkpoints (`<prefix>-<step>`) whose index is in `directory`, oldest first."""
    found = []
    for name in tf.io.gfile.listdir(directory):
        numbered = _NUMBERED_INDEX.fullmatch(name)
        if numbered:
            found.append((int(numbered.group(2)), os.path.join(directory, name[:-len('.index')])))
    return [prefix for _, prefix in sorted(found)]


# The temporaries of a save that did not complete (interrupted, or a full device):
# the data being written (`.tempstate<n>`), a sharded save's directory
# (`_temp...`), and the atomic writes of the meta graph and of the state file.
_SAVE_LEFTOVER = re.compile(r'model\.ckpt-\d+(_temp.*|\..+\.tempstate\d+|\.meta\.tmp[0-9a-f]+)'
                            r'|checkpoint\.tmp[0-9a-f]+')


def remove_save_leftovers(train_dir: str) -> None:
    """Removes what unfinished saves of the trainer left in `train_dir`, and nothing else."""
    for name in os.listdir(train_dir):
        if not _SAVE_LEFTOVER.fullmatch(name):
            continue
        leftover = os.path.join(train_dir, name)
        log.info('Removing %s, left by an unfinished save', leftover)
        if os.path.isdir(leftover):
            shutil.rmtree(leftover)
        else:
            os.remove(leftover)


def _intact(prefix: str) -> bool:
    """Whether the checkpoint's index reads and every data shard it names is there."""
    try:
        tf.train.NewCheckpointReader(prefix)
    except (tf.errors.OpError, ValueError, RuntimeError):
        return False
    shards = tf.io.gfile.glob(prefix + '.data-*-of-*')
    if not shards:
        return False
    expected = int(shards[0].rsplit('-of-', 1)[1])
    return len(shards) == expected


def latest_intact(directory: str) -> str | None:
    """The newest checkpoint in `directory` that is complete, found in the directory itself.

    The `checkpoint` state file is not trusted: it holds absolute paths (gone
    once the directory is moved or copied) and may name a save that never
    completed. When it names something else than what is found, the log says so.
    """
    stated = tf.train.latest_checkpoint(directory)
    for prefix in reversed(checkpoints_in(directory)):
        if _intact(prefix):
            if stated is None or os.path.basename(stated) != os.path.basename(prefix):
                log.warning('The checkpoint state file of %s names %s; the newest intact '
                            'checkpoint there is %s, which is used', directory,
                            stated or 'no checkpoint that exists', prefix)
            return prefix
        log.warning('Checkpoint %s is incomplete; looking for an older one', prefix)
    return None


def listed(items: list[str], separator: str = ', ') -> str:
    """The first few items, and how many there are in all when some are left out."""
    shown = separator.join(items[:_SHOWN])
    return shown + ('%s... (%d in all)' % (separator, len(items)) if len(items) > _SHOWN else '')


def mismatch(checkpoint: str, wanted: dict[str, list[int]]) -> str | None:
    """What keeps `checkpoint` from restoring the variables `wanted` ({name: shape}), or None.

    The answer is one line: the variables it lacks (and the scopes it does
    hold), then those of another shape.
    """
    shapes = tf.train.NewCheckpointReader(checkpoint).get_variable_to_shape_map()
    problems = []
    missing = sorted(name for name in wanted if name not in shapes)
    if missing:
        scopes = sorted({name.split('/')[0] for name in shapes if '/' in name})
        problems.append('it lacks %s; the checkpoint holds scopes %s'
                        % (listed(missing), ', '.join(scopes) or 'none'))
    reshaped = sorted('%s is %s in the checkpoint, %s in the net' % (name, shapes[name], shape)
                      for name, shape in wanted.items()
                      if name in shapes and shapes[name] != shape)
    if reshaped:
        problems.append(listed(reshaped, separator='; '))
    return '; '.join(problems) or None


def _top_scope(name: str) -> str:
    """'InceptionV3/Logits/Conv2d_1c_1x1/weights' -> 'InceptionV3/Logits'."""
    return '/'.join(name.split('/')[:2])


def _excluded(name: str, exclude_scopes: list[str]) -> bool:
    return any(name.startswith(scope) for scope in exclude_scopes)


class FineTuneRestore:
    """Restores the model variables outside `exclude_scopes` from a checkpoint, and
    initialises the other variables of the graph.

    Everything is checked when the object is made, in graph-building time, so a
    checkpoint that does not fit fails before the first training step.

    Raises:
      CheckpointMismatch: no checkpoint at `path`, variables whose shapes differ
        from the checkpoint's, or variables missing from it (unless
        `ignore_missing_vars`).
    """

    def __init__(self, path: str, exclude_scopes: list[str], ignore_missing_vars: bool):
        self.path = resolve_checkpoint(path)
        shapes = tf.train.NewCheckpointReader(self.path).get_variable_to_shape_map()
        wanted = [v for v in slim.get_model_variables()
                  if not _excluded(v.op.name, exclude_scopes)]
        reshaped = [v.op.name for v in wanted
                    if v.op.name in shapes and shapes[v.op.name] != v.shape.as_list()]
        missing = [v.op.name for v in wanted if v.op.name not in shapes]
        checked = {v.op.name: v.shape.as_list() for v in wanted
                   if v.op.name in shapes or not ignore_missing_vars}
        problem = mismatch(self.path, checked)
        if problem:
            advice = ('restore the rest with --checkpoint_exclude_scopes=%s' % ','.join(
                sorted(set(exclude_scopes) | {_top_scope(name) for name in reshaped}))
                if reshaped else 'is it from another net? Set --ignore_missing_vars to leave '
                'them initialised at random')
            raise CheckpointMismatch('checkpoint %s does not fit the net: %s; %s'
                                     % (self.path, problem, advice))
        restored = {v.op.name: v for v in wanted if v.op.name not in missing}
        self.num_restored = len(restored)
        self._saver = tf.train.Saver(restored) if restored else None
        # The restored variables skip their random initialisation (seconds for a large net).
        self._init_others = tf.group(
            *[v.initializer for v in tf.global_variables() if v.op.name not in restored],
            tf.local_variables_initializer(), name='init_all_but_restored')

    def initialize_and_restore(self, sess: tf.Session) -> None:
        """Initialises every variable of the graph: from the checkpoint, or as the graph says.

        Made after every variable of the graph, which it initialises.
        """
        sess.run(self._init_others)
        if self._saver is not None:
            self._saver.restore(sess, self.path)


def variables_to_restore(moving_average_decay: float | None = None
                         ) -> dict[str, tf.Variable]:
    """Checkpoint name -> variable, for every variable of the current graph.

    Args:
      moving_average_decay: if set, the model variables are read from their
        moving averages (`<name>/ExponentialMovingAverage`), as the trainer
        saves them.

    Returns:
      The mapping a `tf.train.Saver` takes.
    """
    if moving_average_decay:
        averages = tf.train.ExponentialMovingAverage(moving_average_decay)
        return averages.variables_to_restore(slim.get_model_variables())
    return {variable.op.name: variable for variable in tf.global_variables()}


def checkpoint_global_step(checkpoint: str) -> int | None:
    """The global step saved in a checkpoint, else the N of its `-N` suffix, else None."""
    reader = tf.train.NewCheckpointReader(checkpoint)
    if reader.has_tensor('global_step'):
        return int(reader.get_tensor('global_step'))
    suffix = re.search(r'-(\d+)$', checkpoint)
    return int(suffix.group(1)) if suffix else None


class CheckpointRestorer:
    """Restores the variables of the current graph from checkpoints that fit them.

    Make it after building the net, in the same graph.

    Args:
      model_name: the net's name, for error messages.
      num_classes: the net's class count, for error messages.
      moving_average_decay: restore the moving averages of the model variables.
    """

    def __init__(self, model_name: str, num_classes: int,
                 moving_average_decay: float | None = None):
        self._description = '%s with %d classes' % (model_name, num_classes)
        self._averaged = bool(moving_average_decay)
        self._variables = variables_to_restore(moving_average_decay)
        self._saver = tf.train.Saver(self._variables)

    def check(self, checkpoint: str) -> None:
        """Raises CheckpointMismatch unless `checkpoint` holds every variable in its shape."""
        shapes = tf.train.NewCheckpointReader(checkpoint).get_variable_to_shape_map()
        if self._averaged and not any(name.endswith(AVERAGE_SUFFIX) for name in shapes):
            raise CheckpointMismatch(
                'checkpoint %s holds no moving averages (no *%s variables): it was trained '
                'without --moving_average_decay, so leave that flag unset'
                % (checkpoint, AVERAGE_SUFFIX))
        problem = mismatch(checkpoint, {name: variable.shape.as_list()
                                        for name, variable in self._variables.items()})
        if problem:
            raise CheckpointMismatch('checkpoint %s does not match %s: %s'
                                     % (checkpoint, self._description, problem))

    def restore(self, session: tf.Session, checkpoint_path: str) -> str:
        """Checks and restores a checkpoint file or the latest in a directory.

        Returns:
          The checkpoint file prefix that was restored.

        Raises:
          CheckpointMismatch: if there is no checkpoint or it does not fit the net.
        """
        checkpoint = resolve_checkpoint(checkpoint_path)
        self.check(checkpoint)
        # The saver's restore ops must be built in the session's graph, not eagerly.
        with session.graph.as_default():
            self._saver.restore(session, checkpoint)
        return checkpoint
