"""One conversion at a time per dataset directory: an exclusive lock held for the whole run.

`locked(dataset_dir)` takes an `fcntl.flock` lock on `.conversion.lock` in the
directory and writes who holds it (pid, host, command line, start time) into
that file as JSON. A second conversion of the same directory fails at once
with a `DatasetLockedError` that says who holds it. The holder removes the
file when it is done. The kernel drops the lock when its holder exits, however
it exits, so a killed conversion never leaves the directory locked: its file
stays behind, names the killed process, and is reused by the next conversion.

The lock is re-entrant within a process (a library caller may hold it around
calls that take it again), and processes forked while it is held do not keep
it: a killed converter's surviving workers cannot lock others out.

No TensorFlow is imported here.
"""

import contextlib
import datetime
import fcntl
import json
import os
import shlex
import socket
import stat
import sys
from collections.abc import Iterator

from slim_classifier.errors import UserError

LOCK_FILENAME = '.conversion.lock'

# Holder descriptions longer than this are not ours; they are not parsed.
_MAX_HOLDER_BYTES = 1 << 16

# The real path of each lock file this process holds -> [descriptor, depth].
_held: dict[str, list[int]] = {}


class DatasetLockedError(UserError):
    """Another conversion holds the dataset directory's lock."""


@contextlib.contextmanager
def locked(dataset_dir: str) -> Iterator[None]:
    """Holds the conversion lock of `dataset_dir` (created if missing) for the block.

    Args:
        dataset_dir: the dataset directory.

    Raises:
        DatasetLockedError: if another process holds the lock.
        FileExistsError: if something else than a plain file has the lock's name.
    """
    os.makedirs(dataset_dir, exist_ok=True)
    path = os.path.join(os.path.realpath(dataset_dir), LOCK_FILENAME)
    if path in _held:
        _held[path][1] += 1
    else:
        _held[path] = [_acquire(path, dataset_dir), 1]
    try:
        yield
    finally:
        _release(path)


def _acquire(path: str, dataset_dir: str) -> int:
    """Locks the lock file and describes the holder in it; returns its descriptor."""
    while True:
        descriptor = _lock(path, dataset_dir)
        # A holder that was releasing may have removed the file this process
        # opened: a lock on it would exclude nobody, so lock the new one.
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        locked_file = os.fstat(descriptor)
        if current and (current.st_dev, current.st_ino) == (locked_file.st_dev,
                                                            locked_file.st_ino):
            _describe_holder(descriptor)
            return descriptor
        os.close(descriptor)


def _release(path: str) -> None:
    entry = _held.get(path)
    if entry is None:
        # A forked child leaving the block: the lock is its parent's.
        return
    entry[1] -= 1
    if entry[1]:
        return
    del _held[path]
    # Removed while still locked, so no other process can be locking this file.
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    os.close(entry[0])


def _lock(path: str, dataset_dir: str) -> int:
    """Opens and locks the lock file; returns its descriptor."""
    try:
        # O_NOFOLLOW: the description is written into this file, never through a link.
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError:
        if os.path.islink(path) or os.path.isdir(path):
            raise _not_a_plain_file(path, dataset_dir) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise _not_a_plain_file(path, dataset_dir)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetLockedError(_locked_message(dataset_dir,
                                                     _read_holder(descriptor))) from None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _not_a_plain_file(path: str, dataset_dir: str) -> FileExistsError:
    return FileExistsError('%s is not a plain file, but the conversion lock of --dataset_dir %r '
                           'needs that name; it is left as it is: move it away, then run again'
                           % (path, dataset_dir))


def _describe_holder(descriptor: int) -> None:
    description = json.dumps({
        'pid': os.getpid(),
        'host': socket.gethostname(),
        'command': shlex.join([os.path.basename(sys.executable)] + sys.argv),
        'started': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }) + '\n'
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, description.encode('utf-8'), 0)
    except OSError:
        # The description is a courtesy to whoever is refused the lock; a full
        # disk is reported by the conversion's own first write instead.
        pass


def _read_holder(descriptor: int) -> dict:
    try:
        holder = json.loads(os.pread(descriptor, _MAX_HOLDER_BYTES, 0))
    except (OSError, ValueError):
        # Empty (the holder has not described itself yet) or not ours.
        return {}
    return holder if isinstance(holder, dict) else {}


def _locked_message(dataset_dir: str, holder: dict) -> str:
    if 'pid' in holder:
        who = 'process %s on %s (since %s: %s)' % (holder.get('pid'), holder.get('host', '?'),
                                                   holder.get('started', '?'),
                                                   holder.get('command', '?'))
    else:
        who = 'another process'
    return ('--dataset_dir %r is being converted by %s; wait for that conversion to end, or '
            'stop it, then run again (or choose another --dataset_dir)' % (dataset_dir, who))


def _forget_in_child() -> None:
    # A forked child shares the parent's lock: closing its copies (never
    # unlocking them) lets the kernel drop the lock when the parent exits.
    for descriptor, _ in _held.values():
        os.close(descriptor)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
