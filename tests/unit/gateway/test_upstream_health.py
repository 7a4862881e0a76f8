"""The gateway's circuit to a service opens only when the service itself is failing.

A service that answers with its own problem+json, even a 503 because a dependency of its own
(the broker, the store) is unready, is up: the calls it can answer must keep reaching it. Health
reads go on a connection pool of their own and wait longer than the services' own broker bound.
"""

from __future__ import annotations

import io
import json

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from gateway.app import readiness_probe_timeout
from gateway.proxy import CLOSED, OPEN
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def organiser(platform):
    return platform.staff("organiser", platform.organisation())


def _answer(request, status: int, content_type: str, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict({"Content-Type": content_type})
    response.raw = io.BytesIO(body)
    response.url = request.url
    response.request = request
    return response


class Answering:
    """Makes one service's adapter answer `status` with `content_type` for calls whose path
    starts with `prefix`; every other call reaches the service."""

    def __init__(self, platform, service: str, prefix: str, status: int, content_type: str):
        self.adapter = platform.adapters[service]
        self.client = platform.gateway.extensions["voices_clients"][service]
        self.prefix, self.status, self.content_type = prefix, status, content_type
        self.timeouts: list = []

    def __enter__(self) -> Answering:
        real_send = self.adapter.send

        def send(request, **kwargs):
            self.timeouts.append(kwargs.get("timeout"))
            if requests.utils.urlparse(request.url).path.startswith(self.prefix):
                body = json.dumps(
                    {"type": "about:blank", "title": "Service unavailable", "status": self.status}
                ).encode()
                return _answer(request, self.status, self.content_type, body)
            return real_send(request, **kwargs)

        self.real_send = real_send
        self.adapter.send = send
        return self

    def __exit__(self, *exc) -> None:
        self.adapter.send = self.real_send
        self.client.breaker.record_success()


def test_a_services_own_503_problem_is_relayed_and_never_opens_its_circuit(platform, organiser):
    with Answering(
        platform, "surveys", "/api/v1/consultations", 503, "application/problem+json"
    ) as surveys:
        for _ in range(surveys.client.breaker.failure_threshold + 2):
            answer = platform.call("POST", "/api/v1/consultations", organiser["token"], json={})
            assert answer.status_code == 503 and answer.mimetype == "application/problem+json"
            assert answer.get_json()["title"] == "Service unavailable"
        assert surveys.client.breaker.state == CLOSED
    # What the service can answer still reaches it.
    platform.call("GET", "/api/v1/consultations", organiser["token"], expect=200)


def test_a_503_that_is_not_the_services_own_problem_still_opens_the_circuit(platform, organiser):
    with Answering(platform, "surveys", "/api/v1/consultations", 503, "text/html") as surveys:
        for _ in range(surveys.client.breaker.failure_threshold):
            platform.call("POST", "/api/v1/consultations", organiser["token"], json={}, expect=503)
        assert surveys.client.breaker.state == OPEN
        paused = platform.call("GET", "/api/v1/consultations", organiser["token"], expect=503)
        assert paused.get_json()["service"] == "surveys" and int(paused.headers["Retry-After"])


def test_health_reads_of_an_unready_service_leave_its_circuit_closed(platform, organiser):
    with Answering(platform, "surveys", "/readyz", 503, "application/json") as surveys:
        for _ in range(surveys.client.breaker.failure_threshold + 2):
            health = platform.call("GET", "/healthz", expect=503)
            assert health.get_json()["services"]["surveys"]["ready"] is False
            assert health.get_json()["services"]["consent"]["ready"] is True
        assert surveys.client.breaker.state == CLOSED
        platform.call("GET", "/api/v1/consultations", organiser["token"], expect=200)
    # The probe waits longer than the service's own bound for a silent broker.
    settings = platform.gateway.extensions["voices_settings"]
    assert set(surveys.timeouts[:1]) == {readiness_probe_timeout(settings)}


def test_the_probe_outwaits_the_services_broker_bound(secrets_env):
    def settings(bound: str, brokers: str):
        base = make_settings("gateway", secrets_env)
        extra = {**base.extra, "BROKER_ACK_TIMEOUT_S": bound}
        return base.with_(extra=extra, kafka=base.kafka.__class__(bootstrap_servers=brokers))

    # A silent broker costs a service its connect and its answer bound, per bootstrap server.
    assert readiness_probe_timeout(settings("2", "k1:9092")) > 2 * 2
    assert readiness_probe_timeout(settings("5", "k1:9092,k2:9092")) > 2 * 2 * 5


def test_the_gateways_liveness_asks_no_service(platform):
    for adapter in platform.adapters.values():
        adapter.down = True
    try:
        alive = platform.call("GET", "/livez", expect=200)
        assert alive.get_json() == {"status": "ok", "service": "gateway"}
        assert alive.headers["Cache-Control"] == "no-store"
        assert platform.call("GET", "/healthz", expect=503).get_json()["status"] == "degraded"
    finally:
        for adapter in platform.adapters.values():
            adapter.down = False
