"""AtMostEvery: housekeeping at most once per interval."""

from __future__ import annotations

from shared.throttle import AtMostEvery


def test_due_once_per_interval_of_its_clock():
    now = [100.0]
    every = AtMostEvery(60.0, clock=lambda: now[0])
    assert every.due()  # the first call always runs
    assert not every.due()
    now[0] += 59.9
    assert not every.due()
    now[0] += 0.1
    assert every.due()  # 60 s after the last run
    assert not every.due()
