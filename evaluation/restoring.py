"""Restores a net's weights from a checkpoint, refusing one that does not fit.

TensorFlow's own error for a checkpoint from another net or class count is a
long traceback naming one tensor. `CheckpointRestorer` compares the whole
checkpoint with the net first and names what does not match, e.g.
`checkpoint /t/model.ckpt-300 does not match inception_v1 with 10 classes:
...; the checkpoint holds scopes LeNet`.
"""

import re

import tensorflow.compat.v1 as tf

from slim_compat import slim
from training.checkpoints import CheckpointMismatch, resolve_checkpoint

AVERAGE_SUFFIX = '/ExponentialMovingAverage'
_SHOWN = 3  # variables named in an error message


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


def _listed(items: list[str], separator: str = ', ') -> str:
    shown = separator.join(items[:_SHOWN])
    return shown + ('%s... (%d in all)' % (separator, len(items)) if len(items) > _SHOWN else '')


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
        problems = []
        missing = sorted(name for name in self._variables if name not in shapes)
        if missing:
            scopes = sorted({name.split('/')[0] for name in shapes if '/' in name})
            problems.append('it lacks %s; the checkpoint holds scopes %s'
                            % (_listed(missing), ', '.join(scopes) or 'none'))
        mismatched = sorted(
            '%s is %s in the checkpoint, %s in the net' % (name, shapes[name],
                                                           variable.shape.as_list())
            for name, variable in self._variables.items()
            if name in shapes and shapes[name] != variable.shape.as_list())
        if mismatched:
            problems.append(_listed(mismatched, separator='; '))
        if problems:
            raise CheckpointMismatch('checkpoint %s does not match %s: %s'
                                     % (checkpoint, self._description, '; '.join(problems)))

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
