"""Forwarding to the owning service over HTTP: timeouts, a retry for idempotent reads, a circuit breaker.

A service that fails `failure_threshold` times in a row (unreachable, timed out, or answering
502/504 or a 503 that is not its own problem+json) is not called for `cooldown_s`: callers get 503
problem+json with Retry-After at once instead of waiting for timeouts. After the cool-down one
trial call is let through (half-open); its success closes the circuit, its failure opens it again.

A service that answers with its own problem+json, even 503 because a dependency of its own is
unready, is up: that answer is relayed and never opens the circuit, which would refuse the calls
the service can still answer. Health and OpenAPI reads use a connection pool of their own, so a
slow readiness probe never holds or spoils a connection that forwarded calls reuse.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests
from flask import Response, g, request

from shared.errors import ServiceUnavailable

log = logging.getLogger("voices.gateway.proxy")

# Hop-by-hop headers (RFC 9110 section 7.6.1) and what the gateway sets itself.
_DROP_RESPONSE = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-encoding",
    "content-length",
    "server",
    "date",
}
_FORWARD_REQUEST = ("Content-Type", "Accept", "Accept-Language", "If-Match", "If-None-Match")
_FAILING_STATUSES = {502, 503, 504}
_PROBLEM_MIME = "application/problem+json"
_IDEMPOTENT = {"GET", "HEAD"}

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def service_failed(response: requests.Response) -> bool:
    """Whether an answer means the service itself is failing: 502/504 (a hop in between could not
    reach it) or a 503 that is not the service's own problem+json (a dying worker, a proxy)."""
    if response.status_code not in _FAILING_STATUSES:
        return False
    own_problem = response.headers.get("Content-Type", "").startswith(_PROBLEM_MIME)
    return not (response.status_code == 503 and own_problem)


class CircuitOpen(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"circuit open for {retry_after_s:.1f}s more")
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """Consecutive-failure circuit breaker, safe to share between threads."""

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self.state = CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    def before_call(self) -> None:
        """Raises CircuitOpen when the call must not be made now."""
        with self._lock:
            if self.state == CLOSED:
                return
            waited = self._clock() - self._opened_at
            if self.state == OPEN and waited >= self.cooldown_s:
                self.state, self._trial_in_flight = HALF_OPEN, False
            if self.state == HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True  # exactly one trial call at a time
                return
            raise CircuitOpen(
                max(self.cooldown_s - waited, 0.0) if self.state == OPEN else self.cooldown_s
            )

    def record_success(self) -> None:
        with self._lock:
            self.state, self.failures, self._trial_in_flight = CLOSED, 0, False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            self._trial_in_flight = False
            if self.state == HALF_OPEN or self.failures >= self.failure_threshold:
                if self.state != OPEN:
                    log.warning("circuit opened after %d consecutive failures", self.failures)
                self.state, self._opened_at = OPEN, self._clock()


def _internal_session() -> requests.Session:
    """A pooled session for calls to the services, which are on the internal network: no proxy
    settings, .netrc or CA bundle from the environment (requests reads them on every call)."""
    session = requests.Session()
    session.trust_env = False
    return session


@dataclass
class ServiceClient:
    """A pooled HTTP client towards one service, behind its own circuit breaker."""

    name: str
    base_url: str
    connect_timeout: float = 2.0
    read_timeout: float = 15.0
    read_retries: int = 1  # extra attempts for GET after a connection failure or 502/503/504
    retry_backoff_s: float = 0.1
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    session: requests.Session = field(default_factory=_internal_session)
    probe_session: requests.Session = field(default_factory=_internal_session)
    on_outcome: Callable[[str, str], None] | None = None  # (service, outcome) for metrics

    def forward(
        self, path: str, extra_headers: Mapping[str, str], body: bytes | None = None
    ) -> Response:
        """Send the current request to the service and relay its answer.
        Raises ServiceUnavailable (with retry_after) when the service is down or its circuit is open."""
        headers = {h: request.headers[h] for h in _FORWARD_REQUEST if h in request.headers}
        headers.update(extra_headers)
        headers["X-Request-ID"] = g.request_id
        headers["X-Trace-ID"] = g.trace_id
        method = request.method
        data = request.get_data() if body is None else body
        attempts = 1 + (self.read_retries if method in _IDEMPOTENT else 0)
        upstream = None
        for attempt in range(attempts):
            self._admit()
            try:
                upstream = self.session.request(
                    method,
                    f"{self.base_url}{path}",
                    params=request.query_string or None,
                    data=data,
                    headers=headers,
                    timeout=(self.connect_timeout, self.read_timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                self._failed(type(exc).__name__)
                if attempt + 1 < attempts and not isinstance(exc, requests.ReadTimeout):
                    time.sleep(self.retry_backoff_s)
                    continue
                raise ServiceUnavailable(
                    f"The {self.name} service is not reachable right now. Please try again shortly.",
                    service=self.name,
                    retry_after=1,
                ) from exc
            if service_failed(upstream):
                self._failed(f"status {upstream.status_code}")
                if attempt + 1 < attempts:
                    time.sleep(self.retry_backoff_s)
                    continue
            else:
                self.breaker.record_success()
                self._outcome("ok")
            break
        assert upstream is not None  # noqa: S101 for mypy: attempts >= 1, so the loop answered or raised
        response = Response(upstream.content, status=upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in _DROP_RESPONSE:
                response.headers[name] = value
        return response

    def _admit(self) -> None:
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            self._outcome("rejected")
            raise ServiceUnavailable(
                f"The {self.name} service is failing; calls are paused. Please try again shortly.",
                service=self.name,
                retry_after=max(1, math.ceil(exc.retry_after_s)),
            ) from None

    def _failed(self, why: str) -> None:
        log.warning("service %s call failed: %s", self.name, why)
        self.breaker.record_failure()
        self._outcome("failed")

    def _outcome(self, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(self.name, outcome)

    def get_json(self, path: str, timeout: float = 2.0) -> tuple[int, dict]:
        """A direct GET (health, OpenAPI), outside the circuit breaker and on its own connection
        pool: (status, JSON body or an error dict)."""
        try:
            r = self.probe_session.get(f"{self.base_url}{path}", timeout=timeout)
            return r.status_code, r.json()
        except (requests.RequestException, ValueError) as exc:
            return 503, {"status": "unreachable", "error": type(exc).__name__}
