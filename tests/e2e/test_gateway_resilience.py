"""A service process dies: the gateway answers problem+json 503, never a stack trace, and recovers.

Runs its own stack with a short circuit cool-down, so the recovery is observed in seconds.
"""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import eventually, start_stack

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def stack(servers, tmp_path_factory):
    running = start_stack(
        servers, tmp_path_factory, VOICES_CIRCUIT_FAILURES="2", VOICES_CIRCUIT_COOLDOWN_S="1"
    )
    yield running
    running.stop()


def _assert_unavailable(response: requests.Response) -> dict:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["status"] == 503 and body["service"] == "consent"
    assert "Traceback" not in response.text and "Error" not in body["detail"]
    return body


def test_a_dead_service_gives_503_problems_until_it_is_back(stack):
    url = f"{stack.gateway_url}/api/v1/consent/public-key"
    assert requests.get(url, timeout=10).status_code == 200
    stack.kill("consent")
    try:
        # Unreachable (connection refused), then the open circuit answers at once: both 503 problems.
        for _ in range(4):
            _assert_unavailable(requests.get(url, timeout=10))
        withdrawal = requests.post(
            f"{stack.gateway_url}/api/v1/consent/withdrawals", json={}, timeout=10
        )
        _assert_unavailable(withdrawal)
        # Other services still answer.
        assert (
            requests.get(
                f"{stack.gateway_url}/api/v1/consultations",
                timeout=10,
                headers={"Authorization": f"Bearer {stack.admin_token}"},
            ).status_code
            == 200
        )
        health = requests.get(f"{stack.gateway_url}/readyz", timeout=10)
        assert health.status_code == 503 and health.json()["services"]["consent"]["ready"] is False
    finally:
        stack.start_process("consent")
        stack.wait_ready(60, names=("consent",))
    # After the cool-down a trial call goes through and closes the circuit again.
    assert eventually(lambda: requests.get(url, timeout=10).status_code == 200, timeout=20)
