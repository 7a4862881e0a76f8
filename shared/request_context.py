"""The request context every process installs: request and trace ids, the route pattern, and one
log line and metrics per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, request

from shared.errors import NotFound
from shared.log import trace_id_var
from shared.metrics import install_metrics

# Ids we accept from a caller: they end up in logs and headers, so nothing but a short token.
_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _id_from(header: str) -> str | None:
    value = request.headers.get(header)
    return value if value and _ID.match(value) else None


def route_pattern() -> str:
    """The route pattern of this request (`g.route_pattern` when a forwarder knows better), never the URL."""
    override = g.get("route_pattern")
    if override:
        return override
    return request.url_rule.rule if request.url_rule else "unmatched"


def install_request_context(app: Flask, service: str) -> None:
    """Request and trace ids on every request and response; one log line and metrics per request.

    The log line names the route pattern, never the concrete URL (codes live in
    URLs), and never the client address or user agent. Installs /metrics, which answers only
    when VOICES_METRICS_TOKEN is set (and sent): closed unless an operator configures it.
    """
    access = logging.getLogger("voices.access")
    metrics = install_metrics(app, service)

    @app.before_request
    def _metrics_closed_unless_configured():
        settings = app.extensions.get("voices_settings")
        if request.path == "/metrics" and not (
            settings is not None and settings.get("METRICS_TOKEN")
        ):
            raise NotFound("There is nothing at this path.")

    @app.before_request
    def _ids():
        g.request_id = _id_from("X-Request-ID") or uuid.uuid4().hex
        g.trace_id = _id_from("X-Trace-ID") or g.request_id
        g.trace_token = trace_id_var.set(g.trace_id)
        g.started = time.perf_counter()

    @app.after_request
    def _headers(response):
        response.headers["X-Request-ID"] = getattr(g, "request_id", "")
        response.headers["X-Trace-ID"] = getattr(g, "trace_id", "")
        rule = route_pattern()
        if rule not in ("/healthz", "/readyz", "/readyz/requests", "/livez", "/metrics"):
            seconds = time.perf_counter() - g.get("started", time.perf_counter())
            metrics.observe_request(request.method, rule, response.status_code, seconds)
            access.info(
                "%s %s %s",
                request.method,
                rule,
                response.status_code,
                extra={
                    "route": rule,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
        return response

    @app.teardown_request
    def _reset(_exc):
        token = g.pop("trace_token", None)
        if token is not None:
            trace_id_var.reset(token)


def current_trace_id() -> str:
    return trace_id_var.get() or uuid.uuid4().hex
