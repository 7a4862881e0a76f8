"""Rate limits per credential: per API token, per staff session, per participant session.

Never per IP address: no addresses are kept. Calls that carry no credential share one bucket
per route, so a flood of anonymous calls slows only anonymous callers of that route.

`RateLimiter` is the interface the gateway uses; `TokenBuckets` keeps buckets in this process.
The gateway runs two gunicorn workers by default, each with its own buckets, so a caller whose
requests are spread over both gets up to twice a limit; a shared store behind the same
interface would make the limits exact across workers and replicas.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol


@dataclass(frozen=True)
class Rate:
    """`capacity` requests at once, refilled at capacity/period_s per second."""

    capacity: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> "Rate":
        """'120/60' means a burst of 120 and 120 more every 60 seconds. Raises ValueError."""
        count, _, seconds = text.partition("/")
        rate = cls(int(count), float(seconds or 60))
        if rate.capacity < 1 or rate.period_s <= 0:
            raise ValueError(f"not a rate: {text!r}")
        return rate


class RateLimiter(Protocol):
    def take(self, key: str, rate: Rate) -> float:
        """Spend one request for `key`: 0 when allowed, else seconds until one is allowed again."""


class TokenBuckets:
    """In-process token buckets; the least recently used keys are forgotten beyond `max_keys`."""

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._clock = clock

    def take(self, key: str, rate: Rate) -> float:
        refill = rate.capacity / rate.period_s
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(key, (float(rate.capacity), now))
            tokens = min(float(rate.capacity), tokens + (now - at) * refill)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / refill
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
            return wait


def retry_after(wait_s: float) -> int:
    """The Retry-After value (whole seconds, at least 1) for a wait."""
    return max(1, math.ceil(wait_s))


class Limits:
    """The gateway's rates by kind of caller, read from settings, over one RateLimiter.

    VOICES_RATE_STAFF (per API token or staff session), VOICES_RATE_PARTICIPANT (per participant
    session), VOICES_RATE_ANONYMOUS (per route, shared by every caller without credentials),
    VOICES_RATE_SIGN_IN (per email address tried), each as 'burst/seconds'.
    """

    DEFAULTS = {"staff": "600/60", "participant": "120/60", "anonymous": "1200/60", "sign_in": "10/300"}

    def __init__(self, rates: dict[str, Rate], limiter: RateLimiter | None = None) -> None:
        self.rates = rates
        self.limiter: RateLimiter = limiter or TokenBuckets()

    @classmethod
    def from_settings(cls, settings, limiter: RateLimiter | None = None) -> "Limits":
        rates = {kind: Rate.parse(settings.get(f"RATE_{kind.upper()}") or default)
                 for kind, default in cls.DEFAULTS.items()}
        return cls(rates, limiter)

    def spend(self, kind: str, key: str) -> float:
        """0 when allowed, else seconds to wait."""
        return self.limiter.take(f"{kind}:{key}", self.rates[kind])
