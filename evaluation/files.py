"""Writes that leave either the old file or the complete new one, never half a file."""

import os
import shutil
import uuid

import tensorflow.compat.v1 as tf


def _temporary_sibling(path: str) -> str:
    """A unique name in the directory of `path`, so that the final rename stays atomic."""
    directory, name = os.path.split(path)
    return os.path.join(directory, '.%s.tmp-%s' % (name, uuid.uuid4().hex[:8]))


def write_atomically(path: str, contents: bytes | str) -> None:
    """Writes `contents` to `path` through a temporary file and a rename.

    The parent directory is created if needed.
    """
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temporary = _temporary_sibling(path)
    mode = 'wb' if isinstance(contents, bytes) else 'w'
    try:
        with tf.io.gfile.GFile(temporary, mode) as temporary_file:
            temporary_file.write(contents)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise


class AtomicDirectory:
    """A directory filled under a temporary name and renamed into place on success.

    Use as a context manager: `with AtomicDirectory(path) as temporary: ...`
    writes into `temporary`; leaving the block normally replaces `path` (any
    earlier export there is removed), leaving it by an exception removes the
    temporary directory and keeps `path` as it was. Local paths only.
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._temporary = _temporary_sibling(self.path)

    def __enter__(self) -> str:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return self._temporary

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            return
        previous = None
        if os.path.exists(self.path):
            previous = _temporary_sibling(self.path)
            os.rename(self.path, previous)
        os.rename(self._temporary, self.path)
        if previous is None:
            return
        if os.path.isdir(previous):
            shutil.rmtree(previous)
        else:
            os.remove(previous)
