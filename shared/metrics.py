"""Prometheus metrics, one registry per process (per app, so tests can build many apps side by side).

Every process serves `/metrics`: request counts and latencies per route pattern (never a
concrete URL), and whatever collectors its parts register (consumer lag per topic and outbox
backlog for services; circuit breakers and rate limits at the gateway).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.errors import NotFound

EXTENSION = "voices_metrics"
# Latency buckets in seconds: a consultation page should answer well under a second.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metrics of one process: a private registry plus the request series every app records."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "voices_http_requests",
            "HTTP requests by route pattern and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "voices_http_request_duration_seconds",
            "Time to answer, by route pattern",
            ["service", "method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.latency.labels(self.service, method, route).observe(seconds)

    def counter(self, name: str, documentation: str, labels: Iterable[str]) -> Counter:
        """A further counter in this process's registry (e.g. rate-limited requests)."""
        return Counter(name, documentation, list(labels), registry=self.registry)

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class GaugeCollector(Collector):
    """Gauges read at scrape time from `read()`, which yields (label values, value) pairs."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: list[str],
        read: Callable[[], Iterable[tuple[tuple[str, ...], float]]],
    ) -> None:
        self.name, self.documentation, self.labels, self.read = name, documentation, labels, read

    def collect(self):
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in self.read():
            family.add_metric(list(values), value)
        yield family

    def describe(self):
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labels)]


def install_metrics(app: Flask, service: str) -> Metrics:
    """Create the app's Metrics and serve them at /metrics.

    When the setting METRICS_TOKEN is set, /metrics wants `Authorization: Bearer <token>`
    and answers 404 otherwise (it is nothing a participant or staff member needs).
    """
    metrics = Metrics(service)
    app.extensions[EXTENSION] = metrics

    def serve_metrics():
        settings: Any = app.extensions.get("voices_settings")
        expected = settings.get("METRICS_TOKEN") if settings is not None else None
        if expected:
            sent = request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {expected}".encode()):
                raise NotFound("There is nothing at this path.")
        return Response(
            metrics.render(),
            mimetype=CONTENT_TYPE_LATEST.split(";")[0],
            headers={"Cache-Control": "no-store"},
        )

    app.add_url_rule("/metrics", "metrics", serve_metrics)
    return metrics


def metrics_of(app: Flask) -> Metrics | None:
    return app.extensions.get(EXTENSION)
