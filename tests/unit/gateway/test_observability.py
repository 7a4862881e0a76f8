"""Metrics per process and logs that keep no client address, user agent, code or token."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time

import pytest

from shared.log import JsonFormatter, RedactingFilter, redact

METRICS_TOKEN = "m" * 20


@contextlib.contextmanager
def metrics_token(app):
    """Within it, `app` serves /metrics to `Authorization: Bearer <METRICS_TOKEN>` (the headers it yields)."""
    settings = app.extensions["voices_settings"]
    app.extensions["voices_settings"] = settings.with_(
        extra={**settings.extra, "METRICS_TOKEN": METRICS_TOKEN}
    )
    try:
        yield {"Authorization": f"Bearer {METRICS_TOKEN}"}
    finally:
        app.extensions["voices_settings"] = settings


def test_gateway_metrics_name_route_patterns_never_urls(platform):
    organiser = platform.staff("organiser", platform.organisation())
    platform.call("POST", "/api/v1/invitations/SECRET-CODE-123/open")
    platform.call("GET", "/api/v1/me", organiser["token"], expect=200)
    with metrics_token(platform.gateway) as headers:
        text = platform.call("GET", "/metrics", expect=200, headers=headers).get_data(True)
    assert 'route="/api/v1/invitations/<code>/open"' in text
    assert 'route="/api/v1/me"' in text and 'status="200"' in text
    assert "SECRET-CODE-123" not in text
    assert (
        "voices_gateway_circuit_state" in text
        and "voices_http_request_duration_seconds_bucket" in text
    )


def test_service_metrics_report_backlog_lag_per_partition_and_dead_letters(platform):
    runtime = platform.services["aggregation"].extensions["voices_runtime"]
    # What the lag monitor last read from the broker: log end minus the group's committed offset.
    measured = {("surveys.events", 0): 2, ("surveys.events", 1): 3, ("responses.events", 0): 1}
    runtime.lag._lag, runtime.lag._measured_at = measured, time.monotonic()
    try:
        with metrics_token(platform.services["aggregation"]) as headers:
            text = (
                platform.services["aggregation"]
                .test_client()
                .get("/metrics", headers=headers)
                .get_data(True)
            )
    finally:
        runtime.lag._lag, runtime.lag._measured_at = {}, None
    assert (
        'voices_consumer_lag{partition="1",service="aggregation",topic="surveys.events"} 3.0'
        in text
    )
    assert (
        'voices_consumer_lag{partition="0",service="aggregation",topic="responses.events"} 1.0'
        in text
    )
    assert 'voices_outbox_backlog{service="aggregation"}' in text
    assert 'voices_dead_letters{service="aggregation"} 0.0' in text
    assert 'voices_outbox_oldest_age_seconds{service="aggregation"} 0.0' in text


@pytest.mark.parametrize("process", ["gateway", "surveys"])
def test_metrics_answer_only_to_the_configured_token(platform, process):
    app = platform.gateway if process == "gateway" else platform.services[process]
    client = app.test_client()
    assert client.get("/metrics").status_code == 404  # no token set: closed to everyone
    with metrics_token(app) as headers:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": "Bearer not-it"}).status_code == 404
        assert client.get("/metrics", headers=headers).status_code == 200


def test_redaction_removes_client_addresses_and_concrete_paths():
    assert (
        redact("Invalid request from ip=203.0.113.9: bad") == "Invalid request from ip=[addr]: bad"
    )
    assert redact("peer ('127.0.0.1', 50512) gone") == "peer ('[addr]', 50512) gone"
    assert redact("client 2001:db8::1 x") == "client [addr] x"
    assert (
        redact("Error handling request /api/v1/invitations/AB12-CD34/open")
        == "Error handling request [path]"
    )
    assert redact("GET /i/AB12CD34?x=1 HTTP/1.1") == "GET [path] HTTP/1.1"
    # Our own listeners, with their ports, and plain times stay readable.
    assert redact("Listening at: http://127.0.0.1:8080") == "Listening at: http://127.0.0.1:8080"
    assert redact("at 12:59:53") == "at 12:59:53"


def _line(logger_name: str, message: str, *args) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    handler.addFilter(RedactingFilter())
    record = logging.LogRecord(logger_name, logging.WARNING, __file__, 1, message, args, None)
    handler.handle(record)
    return json.loads(stream.getvalue())


def test_third_party_log_lines_lose_addresses_and_urls_ours_keep_route_patterns():
    gunicorn = _line(
        "gunicorn.error", "Error handling request %s", "/api/v1/invitations/AB12-CD34/open"
    )
    assert gunicorn["msg"] == "Error handling request [path]"
    ours = _line("voices.access", "%s %s %s", "POST", "/api/v1/invitations/<code>/open", 201)
    assert ours["msg"] == "POST /api/v1/invitations/<code>/open 201"
    assert (
        _line("gunicorn.error", "Invalid request from ip={ip}".format(ip="198.51.100.7"))["msg"]
        == "Invalid request from ip=[addr]"
    )
