"""Fine-tuning: restoring part of a net from someone else's checkpoint, safely."""

import tensorflow.compat.v1 as tf

from slim_compat import slim

_SHOWN = 4  # mismatched variables named in an error message


class CheckpointMismatch(Exception):
    """The checkpoint cannot initialise the net as asked; the message says how to fix it."""


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file prefix from a file prefix or a directory holding checkpoints.

    Raises:
      CheckpointMismatch: if nothing there is a checkpoint.
    """
    if tf.gfile.IsDirectory(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise CheckpointMismatch('no checkpoint found in directory %r' % path)
        return latest
    for suffix in ('.index', '.meta'):
        if path.endswith(suffix) and tf.gfile.Exists(path):
            path = path[:-len(suffix)]
    if not (tf.gfile.Exists(path) or tf.gfile.Exists(path + '.index')):
        raise CheckpointMismatch('no checkpoint found at %r' % path)
    return path


def _top_scope(name: str) -> str:
    """'InceptionV3/Logits/Conv2d_1c_1x1/weights' -> 'InceptionV3/Logits'."""
    return '/'.join(name.split('/')[:2])


def _excluded(name: str, exclude_scopes: list[str]) -> bool:
    return any(name.startswith(scope) for scope in exclude_scopes)


class FineTuneRestore:
    """Restores the model variables outside `exclude_scopes` from a checkpoint.

    Everything is checked when the object is made, in graph-building time, so a
    checkpoint that does not fit fails before the first training step.

    Raises:
      CheckpointMismatch: no checkpoint at `path`, variables whose shapes differ
        from the checkpoint's, or variables missing from it (unless
        `ignore_missing_vars`).
    """

    def __init__(self, path: str, exclude_scopes: list[str], ignore_missing_vars: bool):
        self.path = resolve_checkpoint(path)
        reader = tf.train.NewCheckpointReader(self.path)
        shapes = reader.get_variable_to_shape_map()
        wanted = [v for v in slim.get_model_variables()
                  if not _excluded(v.op.name, exclude_scopes)]
        mismatched = [(v.op.name, shapes[v.op.name], v.shape.as_list()) for v in wanted
                      if v.op.name in shapes and shapes[v.op.name] != v.shape.as_list()]
        missing = [v.op.name for v in wanted if v.op.name not in shapes]
        if mismatched:
            raise CheckpointMismatch(self._mismatch_message(mismatched, exclude_scopes))
        if missing and not ignore_missing_vars:
            raise CheckpointMismatch(
                'checkpoint %s lacks %d variables of the net (%s%s); is it from another '
                'net? Set --ignore_missing_vars to leave them initialised at random'
                % (self.path, len(missing), ', '.join(missing[:_SHOWN]),
                   ', ...' if len(missing) > _SHOWN else ''))
        restored = {v.op.name: v for v in wanted if v.op.name in shapes}
        self.num_restored = len(restored)
        self._saver = tf.train.Saver(restored) if restored else None

    def _mismatch_message(self, mismatched, exclude_scopes):
        shown = ', '.join('%s: checkpoint %s, net %s' % item for item in mismatched[:_SHOWN])
        scopes = sorted(set(exclude_scopes) | {_top_scope(name) for name, _, _ in mismatched})
        return ('checkpoint %s does not fit the net: %d variables differ in shape (%s%s); '
                'restore the rest with --checkpoint_exclude_scopes=%s'
                % (self.path, len(mismatched), shown, ', ...' if len(mismatched) > _SHOWN else '',
                   ','.join(scopes)))

    def restore(self, sess: tf.Session) -> None:
        if self._saver is not None:
            self._saver.restore(sess, self.path)
