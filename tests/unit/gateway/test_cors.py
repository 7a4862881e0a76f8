"""CORS, when an installation lists the origins it trusts (it is off by default: test_hardening)."""

from __future__ import annotations

import pytest

from tests.unit.gateway.conftest import build_platform

PARTNER = "https://partner.example"


@pytest.fixture(scope="module")
def platform(secrets_env):
    return build_platform(secrets_env, CORS_ORIGINS=f"{PARTNER}, https://other.example")


def test_a_listed_origin_gets_preflights_and_allow_headers(platform):
    allowed = platform.call(
        "OPTIONS",
        "/api/v1/consultations",
        headers={"Origin": PARTNER, "Access-Control-Request-Method": "POST"},
    )
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == PARTNER
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    read = platform.call("GET", "/api/v1/consent/public-key", headers={"Origin": PARTNER})
    assert (
        read.headers["Access-Control-Allow-Origin"] == PARTNER and "Origin" in read.headers["Vary"]
    )


def test_an_unlisted_origin_gets_nothing(platform):
    other = platform.call(
        "OPTIONS",
        "/api/v1/consultations",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.status_code == 405 and "Access-Control-Allow-Origin" not in other.headers
