"""The one atomic writer: a file or directory appears complete or not at all.

Everything the project writes for users (converted datasets' info and labels,
metrics, run configurations, exports) goes through here:

* the data goes to a temporary name in the same directory, is flushed and
  fsync'ed, then renamed over the destination, so readers see the old file or
  the complete new one;
* the temporary name is created exclusively (O_CREAT | O_EXCL | O_NOFOLLOW),
  so a symlink planted at it is never followed and nothing there is clobbered;
* on failure the temporary is removed, and nothing else: the destination and
  whatever else is in the directory stay as they were;
* a directory (or, with `check_replaceable`, a file) is replaced only when it is
  recognisably something this project wrote;
* a full device (or quota) is a `DiskFullError` naming the destination, not
  an OSError without a file name or TensorFlow's message about a temporary.

No TensorFlow is imported here. Local paths only.
"""

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator

from slim_classifier.errors import DiskFullError

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# TensorFlow's C++ writers report a full device as a status whose message holds
# the system's text, in whichever error class the file system's call maps to.
_FULL_TEXTS = tuple(os.strerror(number) for number in _FULL_ERRNOS)


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` says that a device or a quota is full (OSError or TensorFlow's text)."""
    if isinstance(error, DiskFullError):
        return True
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return True
    return any(text in str(error) for text in _FULL_TEXTS)


@contextlib.contextmanager
def disk_full_named(path: str, advice: str) -> Iterator[None]:
    """Turns a full device met in the block into a one-line DiskFullError naming `path`.

    Args:
      path: what the block writes.
      advice: what the user can do, e.g. 'free space there or choose another --eval_dir'.
    """
    try:
        yield
    except Exception as error:  # OSError, or any of TensorFlow's error classes
        if not is_disk_full(error):
            raise
        raise DiskFullError('no space left on the device to write %s; %s'
                            % (path, advice)) from None


def _temporary_sibling(path: str) -> str:
    """A unique name in the directory of `path`, so that the final rename stays atomic."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, '.%s.tmp-%s' % (name, uuid.uuid4().hex[:8]))


def remove_stale_temporaries(directory: str, names: Iterable[str]) -> list[str]:
    """Removes what an interrupted `write_atomically` of each of `names` left in `directory`.

    Only our own temporary names (`.<name>.tmp-<8 hex digits>`) are removed,
    never a file through a link. Returns the paths removed.
    """
    removed = []
    for name in names:
        pattern = re.compile(r'\.%s\.tmp-[0-9a-f]{8}' % re.escape(name))
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry)
            if pattern.fullmatch(entry) and not os.path.isdir(path):
                os.remove(path)
                removed.append(path)
    return removed


def fsync_directory(directory: str) -> None:
    """Makes a rename in `directory` durable."""
    descriptor = os.open(directory or '.', os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: str, contents: bytes | str) -> None:
    """Writes `contents` to `path` through an exclusive temporary file and a rename.

    The parent directory is created if needed. Text is written as UTF-8.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    data = contents.encode('utf-8') if isinstance(contents, str) else contents
    temporary = _temporary_sibling(path)
    with disk_full_named(path, 'free space there or write elsewhere'):
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o644)
        try:
            with os.fdopen(descriptor, 'wb') as output:
                output.write(data)
                output.flush()
                os.fsync(output.fileno())
            os.replace(temporary, path)
        except BaseException:
            if os.path.lexists(temporary):
                os.remove(temporary)
            raise
    fsync_directory(directory)


def check_replaceable(path: str, ours: Callable[[str], bool], what: str) -> None:
    """Raises FileExistsError unless `path` is absent or `ours(path)` says we wrote it.

    Args:
      path: what is about to be replaced.
      ours: recognises what this project wrote there (e.g. by its metadata).
      what: how to name what we write, for the message ('an export').
    """
    if os.path.lexists(path) and not ours(path):
        raise FileExistsError('%s exists and is not %s written by this project; it is left as '
                              'it is: choose another path, or remove it yourself' % (path, what))


class AtomicDirectory:
    """A directory filled under a temporary name and renamed into place on success.

    Use as a context manager: `with AtomicDirectory(path, ours, what) as temporary:
    ...` writes into `temporary`; leaving the block normally replaces `path`,
    leaving it by an exception removes the temporary directory and keeps `path`
    as it was; a full device met in the block is a DiskFullError naming `path`.
    An existing `path` is replaced only if `ours(path)` recognises it
    as something this project wrote (see `check_replaceable`), checked before
    anything is written.
    """

    def __init__(self, path: str, ours: Callable[[str], bool], what: str):
        self.path = os.path.abspath(path)
        self._temporary = _temporary_sibling(self.path)
        check_replaceable(self.path, ours, what)

    def __enter__(self) -> str:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return self._temporary

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            if isinstance(error, Exception) and is_disk_full(error):
                raise DiskFullError('no space left on the device to write %s; free space there '
                                    'or write elsewhere' % self.path) from None
            return
        previous = None
        if os.path.exists(self.path):
            previous = _temporary_sibling(self.path)
            os.rename(self.path, previous)
        os.rename(self._temporary, self.path)
        fsync_directory(os.path.dirname(self.path))
        if previous is None:
            return
        if os.path.isdir(previous):
            shutil.rmtree(previous)
        else:
            os.remove(previous)
