"""Oversight pages in-process: the demo consultation answered by enough people to release, and
browsers signed in as policy analyst, auditor and admin."""

from __future__ import annotations

import random

import pytest

from tests.unit.gateway.conftest import Platform, build_platform
from tests.unit.web.conftest import Consultation, open_demo_consultation
from tests.unit.web.staff.conftest import new_browser, staff_browser  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def platform(secrets_env) -> Platform:
    return build_platform(secrets_env, RATE_SIGN_IN="1000/60")


def answer(platform, demo: Consultation, answers: dict) -> None:
    opened = platform.call("POST", f"/api/v1/invitations/{demo.code}/open", expect=201).get_json()
    grant = platform.call(
        "POST",
        "/api/v1/consent/grants",
        opened["participant_session"],
        expect=201,
        json={
            "pseudonym": opened["pseudonym"],
            "consultation_id": demo.consultation_id,
            "purposes": ["participate", "aggregate_reporting"],
            "language": "en",
            "text_version": 1,
        },
    ).get_json()
    platform.call(
        "POST",
        "/api/v1/responses",
        expect=201,
        json={"consent_token": grant["consent_token"], "answers": answers},
    )


@pytest.fixture(scope="module")
def demo(platform) -> Consultation:
    return open_demo_consultation(platform)


@pytest.fixture(scope="module")
def organisation(platform, demo) -> str:
    """The demo's organisation: the staff browsers of these tests belong to it."""
    return platform.call(
        "GET", f"/api/v1/consultations/{demo.consultation_id}", demo.organiser_token, expect=200
    ).get_json()["organisation_id"]


@pytest.fixture(scope="module")
def released(platform, demo) -> Consultation:
    """The demo answered by 40 people (drawn with a seed), then released."""
    rng = random.Random(12)
    for _ in range(40):
        answers = {
            "region": rng.choice(["north", "north", "capital", "south"]),
            "age_band": rng.choice(["18-24", "25-39", "40_plus"]),
            "got_help": rng.choice(["yes", "yes", "no"]),
        }
        answer(platform, demo, answers)
    platform.deliver()
    platform.call(
        "POST",
        "/api/v1/releases",
        demo.organiser_token,
        expect=201,
        json={"consultation_id": demo.consultation_id},
    )
    platform.deliver()
    return demo
