"""Housekeeping that need not run on every request: at most once per interval in a process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class AtMostEvery:
    """`due()` is true at most once per `interval_s` seconds of `clock`, across threads.

    For clean-ups whose absence in between changes nothing a caller can see (reads check
    expiry themselves): deleting expired documents on every save scans the collection and
    takes a write turn each time, for nothing most of the time.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        """True (and the interval starts again) when the last run is `interval_s` ago or more."""
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.interval_s:
                return False
            self._last = now
            return True
