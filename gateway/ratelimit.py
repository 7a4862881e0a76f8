"""Rate limits per credential: per API token, per staff session, per participant session.

Never per IP address: no addresses are kept. Calls that carry no credential share one bucket
per route, so a flood of anonymous calls slows only anonymous callers of that route; except where
the caller sends a code (a receipt or resume code): there each code has its own bucket. The
holder of a code then always gets through, however many other codes a flood tries, and no one
can try one code more than the code rate allows. Trying many different codes is bounded by
their size (135 random bits or more), not by a bucket every survivor would share.

`RateLimiter` is the interface the gateway uses; `TokenBuckets` keeps buckets in this process.
The gateway runs two gunicorn workers by default, each with its own buckets, so a caller whose
requests are spread over both gets up to twice a limit; a shared store behind the same
interface would make the limits exact across workers and replicas.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.settings import Settings


@dataclass(frozen=True)
class Rate:
    """`capacity` requests at once, refilled at capacity/period_s per second."""

    capacity: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
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

    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
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


_NOT_CODE_SYMBOLS = re.compile(r"[^A-Z0-9]")
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def code_key(code: str) -> str:
    """The bucket key of a typed code: the same for every way of writing it (case, separators,
    look-alike letters, other scripts' digits), and not the code itself (only a digest is kept)."""
    folded = "".join(
        str(d) if (d := unicodedata.decimal(ch, None)) is not None else ch
        for ch in unicodedata.normalize("NFKC", code)
    )
    canonical = _NOT_CODE_SYMBOLS.sub("", folded.upper()).translate(_LOOKALIKES)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def retry_after(wait_s: float) -> int:
    """The Retry-After value (whole seconds, at least 1) for a wait."""
    return max(1, math.ceil(wait_s))


class Limits:
    """The gateway's rates by kind of caller, read from settings, over one RateLimiter.

    VOICES_RATE_STAFF (per API token or staff session), VOICES_RATE_PARTICIPANT (per participant
    session), VOICES_RATE_ANONYMOUS (per route, shared by every caller without credentials),
    VOICES_RATE_CODE (per receipt or resume code, for callers without credentials),
    VOICES_RATE_INVITATION (per invitation code or link opened by callers without credentials),
    VOICES_RATE_SIGN_IN (per email address tried), each as 'burst/seconds'.
    """

    # An invitation link may be shared with a whole community, so its rate is a crowd's, not a person's.
    DEFAULTS = {
        "staff": "600/60",
        "participant": "120/60",
        "anonymous": "1200/60",
        "code": "20/300",
        "invitation": "600/60",
        "sign_in": "10/300",
    }

    def __init__(self, rates: dict[str, Rate], limiter: RateLimiter | None = None) -> None:
        self.rates = rates
        self.limiter: RateLimiter = limiter or TokenBuckets()

    @classmethod
    def from_settings(cls, settings: Settings, limiter: RateLimiter | None = None) -> Limits:
        rates = {
            kind: Rate.parse(settings.get(f"RATE_{kind.upper()}") or default)
            for kind, default in cls.DEFAULTS.items()
        }
        return cls(rates, limiter)

    def spend(self, kind: str, key: str) -> float:
        """0 when allowed, else seconds to wait."""
        return self.limiter.take(f"{kind}:{key}", self.rates[kind])
