"""Progress reporting for long downloads and conversions.

Library functions take a `ProgressFn` and call it as work advances; they
never print. The command line passes a `ProgressPrinter`.
"""

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

# progress(task, done, total, unit): `done` of `total` (None when unknown)
# `unit`s of `task` are finished. Unit 'bytes' is shown in MiB.
ProgressFn = Callable[[str, int, int | None, str], None]

_MIB = float(1 << 20)
_MIN_RATE_SECONDS = 1.0


def ignore_progress(task: str, done: int, total: int | None, unit: str) -> None:
    """A `ProgressFn` that reports nothing."""
    del task, done, total, unit


class ProgressPrinter:
    """A `ProgressFn` that prints a line with the rate at most every `interval` s.

    The first and the final update of each task are always printed.
    """

    def __init__(self, stream: TextIO | None = None, interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # Resolved now rather than at import, so redirected stderr is honoured.
        self._stream = sys.stderr if stream is None else stream
        self._interval = interval
        self._clock = clock
        self._task = None
        self._started = 0.0
        self._last_printed = -math.inf

    def __call__(self, task: str, done: int, total: int | None, unit: str) -> None:
        now = self._clock()
        if task != self._task:
            self._task, self._started, self._last_printed = task, now, -math.inf
        finished = total is not None and done >= total
        if not finished and now - self._last_printed < self._interval:
            return
        self._last_printed = now
        elapsed = now - self._started
        # A rate over a fraction of a second (the first update) would be noise.
        rate = (' (%s/s)' % _amount(done / elapsed, unit)
                if done and elapsed >= _MIN_RATE_SECONDS else '')
        self._stream.write('%s: %s%s\n' % (task, _amounts(done, total, unit), rate))
        self._stream.flush()


def _amounts(done: int, total: int | None, unit: str) -> str:
    if total is None:
        return _amount(done, unit)
    if unit == 'bytes':
        return '%.1f of %.1f MiB' % (done / _MIB, total / _MIB)
    return '%d of %d %s' % (done, total, unit)


def _amount(value: float, unit: str) -> str:
    if unit == 'bytes':
        return '%.1f MiB' % (value / _MIB)
    return '%.1f %s' % (value, unit)
