"""Hardening at the gateway: body limits, media types, uniform errors, headers, CORS, rate limits,
timeouts and the circuit breaker towards each service, trace ids."""

from __future__ import annotations

import contextlib
import io

import pytest

from gateway.proxy import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, CircuitOpen
from tests.unit.gateway.test_accounts import rate


@pytest.fixture(scope="module")
def organiser(platform):
    return platform.staff("organiser", platform.organisation())


def assert_problem(response, status: int):
    assert response.status_code == status, response.get_data(True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"]


def test_unknown_paths_and_methods_are_problems(platform, organiser):
    assert_problem(platform.call("GET", "/api/v1/nothing-here", organiser["token"]), 404)
    assert_problem(platform.call("GET", "/not-api"), 404)
    wrong_method = platform.call("DELETE", "/api/v1/consultations", organiser["token"])
    assert_problem(wrong_method, 405)
    assert "POST" in wrong_method.headers["Allow"]


def test_a_body_over_the_limit_is_413(platform, organiser):
    big = b'{"title": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    assert_problem(
        platform.call(
            "POST",
            "/api/v1/consultations",
            organiser["token"],
            data=big,
            content_type="application/json",
        ),
        413,
    )


def _chunked(size: int) -> dict:
    # As gunicorn hands a chunked body over: no length, and a stream the server ends itself.
    return {
        "input_stream": io.BytesIO(b'{"title": "' + b"x" * size + b'"}'),
        "content_type": "application/json",
        "headers": {"Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    }


def test_a_chunked_body_over_the_limit_is_413_not_cut_short(platform, organiser):
    assert_problem(
        platform.call(
            "POST", "/api/v1/consultations", organiser["token"], **_chunked(50 * 1024 * 1024)
        ),
        413,
    )
    small = platform.call("POST", "/api/v1/consultations", organiser["token"], **_chunked(10))
    assert_problem(
        small, 422
    )  # read whole and forwarded: the service names the fields still missing
    assert set(small.get_json()["errors"]) == {"languages"}


def test_only_json_is_taken_where_json_is_expected(platform, organiser):
    text = platform.call(
        "POST",
        "/api/v1/consultations",
        organiser["token"],
        data="title=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert_problem(text, 415)
    untyped = platform.call("POST", "/api/v1/consent/withdrawals", data=b"{}", content_type="")
    assert_problem(untyped, 415)
    upload = platform.call(
        "POST",
        "/api/v1/consultations",
        organiser["token"],
        data={"file": (io.BytesIO(b"PK"), "form.xlsx")},
    )
    assert_problem(upload, 415)
    # An empty POST (e.g. publish) needs no media type.
    assert (
        platform.call(
            "POST", "/api/v1/consultations/c_missing/publish", organiser["token"]
        ).status_code
        == 404
    )


def test_multipart_is_taken_by_the_xlsform_upload_only(platform, organiser):
    cid = platform.call(
        "POST",
        "/api/v1/consultations",
        organiser["token"],
        expect=201,
        json={
            "title": "Upload",
            "languages": ["en"],
            "purposes": ["participate"],
            "min_cell_size": 5,
        },
    ).get_json()
    response = platform.call(
        "POST",
        f"/api/v1/consultations/{cid['consultation_id']}/survey/xlsform",
        organiser["token"],
        data={"file": (io.BytesIO(b"not a workbook"), "form.xlsx")},
    )
    assert response.status_code not in (413, 415) and response.status_code < 500, response.get_data(
        True
    )


def test_every_response_carries_the_security_headers(platform, organiser):
    for response in (
        platform.call("GET", "/api/v1/me", organiser["token"]),
        platform.call("GET", "/healthz"),
        platform.call("GET", "/api/v1/nothing"),
    ):
        headers = response.headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert "http" not in csp  # no third-party origin anywhere
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in headers
        assert "Access-Control-Allow-Origin" not in headers


def test_hsts_only_behind_tls(platform):
    assert "Strict-Transport-Security" not in platform.call("GET", "/healthz").headers
    behind = platform.call("GET", "/healthz", base_url="https://localhost")
    assert behind.headers["Strict-Transport-Security"].startswith("max-age=")


def test_forwarded_proto_is_believed_only_from_a_configured_proxy(platform):
    from gateway.guards import behind_tls

    # The test client's peer is not a configured proxy: the header is anyone's word, and ignored.
    assert (
        "Strict-Transport-Security"
        not in platform.call("GET", "/healthz", headers={"X-Forwarded-Proto": "https"}).headers
    )
    settings = platform.gateway.extensions["voices_settings"]
    proxied = settings.with_(extra={**settings.extra, "TRUSTED_PROXIES": "10.0.0.7, 10.0.0.8"})
    for peer, believed in (("10.0.0.7", True), ("10.0.0.9", False)):
        with platform.gateway.test_request_context(
            "/healthz", headers={"X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": peer}
        ):
            assert behind_tls(proxied) is believed
            assert behind_tls(settings) is False


def test_health_answers_are_never_cached(platform):
    for path in ("/healthz", "/readyz"):
        assert platform.call("GET", path).headers["Cache-Control"] == "no-store"


def test_cors_is_off_by_default(platform):
    preflight = platform.call(
        "OPTIONS",
        "/api/v1/consultations",
        headers={"Origin": "https://partner.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 405 and "Access-Control-Allow-Origin" not in preflight.headers
    assert (
        "Access-Control-Allow-Origin"
        not in platform.call(
            "GET", "/api/v1/consent/public-key", headers={"Origin": "https://partner.example"}
        ).headers
    )


def test_each_token_has_its_own_rate_limit(platform, organiser):
    other = platform.staff("auditor", platform.organisation())
    with rate(platform, "staff", "3/3600"):
        for _ in range(3):
            platform.call("GET", "/api/v1/me", organiser["token"], expect=200)
        limited = platform.call("GET", "/api/v1/me", organiser["token"])
        assert_problem(limited, 429)
        assert int(limited.headers["Retry-After"]) >= 1
        platform.call("GET", "/api/v1/me", other["token"], expect=200)


def test_anonymous_calls_share_one_bucket_per_route(platform):
    with rate(platform, "anonymous", "2/3600"):
        statuses = [
            platform.call("GET", "/api/v1/consent/public-key").status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        # Another route has its own bucket.
        assert platform.call("POST", "/api/v1/consent/receipts/lookup", json={}).status_code == 422


@contextlib.contextmanager
def service_down(platform, name: str):
    platform.adapters[name].down = True
    try:
        yield platform.gateway.extensions["voices_clients"][name]
    finally:
        platform.adapters[name].down = False
        platform.gateway.extensions["voices_clients"][name].breaker.record_success()


def test_a_failing_service_opens_its_circuit_and_callers_get_503_with_retry_after(
    platform, organiser
):
    with service_down(platform, "consent") as client:
        for _ in range(client.breaker.failure_threshold):
            down = platform.call("POST", "/api/v1/consent/withdrawals", json={})
            assert_problem(down, 503)
        assert client.breaker.state == OPEN
        platform.adapters["consent"].down = False  # back, but the circuit waits out its cool-down
        paused = platform.call("POST", "/api/v1/consent/withdrawals", json={})
        assert_problem(paused, 503)
        assert int(paused.headers["Retry-After"]) >= 1 and paused.get_json()["service"] == "consent"
        # Other services are not affected.
        platform.call("GET", "/api/v1/consultations", organiser["token"], expect=200)


def test_reads_are_retried_once_and_writes_never(platform, organiser):
    client = platform.gateway.extensions["voices_clients"]["surveys"]
    calls = []
    adapter = platform.adapters["surveys"]
    real_send = adapter.send

    def flaky(request, **kwargs):
        calls.append(request.method)
        if len(calls) == 1:
            adapter.down = True
        try:
            return real_send(request, **kwargs)
        finally:
            adapter.down = False

    adapter.send = flaky
    try:
        platform.call("GET", "/api/v1/consultations", organiser["token"], expect=200)
        assert calls == ["GET", "GET"]
        calls.clear()
        assert_problem(
            platform.call("POST", "/api/v1/consultations", organiser["token"], json={}), 503
        )
        assert calls == ["POST"]
    finally:
        adapter.send = real_send
        client.breaker.record_success()


def test_the_circuit_half_opens_after_the_cool_down_for_one_trial():
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen) as opened:
        breaker.before_call()
    assert opened.value.retry_after_s == 10
    now[0] = 10.0
    breaker.before_call()  # the trial
    assert breaker.state == HALF_OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # only one trial at a time
    breaker.record_failure()
    assert breaker.state == OPEN
    now[0] = 20.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.failures == 0


def test_trace_ids_follow_a_request_into_the_service_and_its_events(platform, organiser):
    response = platform.call(
        "POST",
        "/api/v1/consultations",
        organiser["token"],
        expect=201,
        headers={"X-Trace-ID": "trace-follow-me-123"},
        json={
            "title": "Traced",
            "languages": ["en"],
            "purposes": ["participate"],
            "min_cell_size": 5,
        },
    )
    assert response.headers["X-Trace-ID"] == "trace-follow-me-123"
    platform.deliver()
    cid = response.get_json()["consultation_id"]
    created = [e for e in platform.bus.events("surveys.events") if e.key == cid]
    assert [e.trace_id for e in created] == ["trace-follow-me-123"]


def test_a_malformed_trace_id_is_replaced(platform):
    response = platform.call("GET", "/healthz", headers={"X-Trace-ID": "bad id <script>"})
    assert (
        response.headers["X-Trace-ID"] != "bad id <script>"
        and len(response.headers["X-Trace-ID"]) == 32
    )
