"""A profile by hand: the time spent in chosen functions while a benchmark runs.

    timer = CallTimer({'restore': (checkpoints.CheckpointRestorer, 'restore')})
    with timer:
        ...
    timer.take()['restore']  # Spent(seconds, cpu_seconds, calls) since the last take

The functions are wrapped in place for the duration of the `with` block only;
they run unchanged. Their wall-clock time and the process's CPU time (all its
threads) while they run are added up per label: on a machine shared with
other work, CPU time holds far steadier than wall-clock time.
"""

import dataclasses
import functools
import time
from collections.abc import Callable


@dataclasses.dataclass
class Spent:
    """The time spent in one label's calls."""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    calls: int = 0


class CallTimer:
    """Adds up the wall-clock seconds of calls to `targets`: label -> (owner, attribute name)."""

    def __init__(self, targets: dict[str, tuple[object, str]]):
        self._targets = targets
        self._originals: dict[str, Callable] = {}
        self._spent = {label: Spent() for label in targets}

    def __enter__(self) -> 'CallTimer':
        for label, (owner, name) in self._targets.items():
            self._originals[label] = getattr(owner, name)
            setattr(owner, name, self._timed(label, self._originals[label]))
        return self

    def __exit__(self, *exc_info) -> None:
        for label, (owner, name) in self._targets.items():
            setattr(owner, name, self._originals.pop(label))

    def _timed(self, label: str, function: Callable) -> Callable:
        @functools.wraps(function)
        def timed(*args, **kwargs):
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = self._spent[label]
                spent.seconds += time.perf_counter() - start
                spent.cpu_seconds += time.process_time() - cpu_start
                spent.calls += 1
        return timed

    def take(self) -> dict[str, Spent]:
        """The time spent by each label since the last take; starts counting afresh.

        A call nested in another's is counted in both labels.
        """
        taken = self._spent
        self._spent = {label: Spent() for label in self._targets}
        return taken
