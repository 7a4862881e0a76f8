"""A published consultation of the module's organisation, and participants answering it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from deploy.demo import SURVEY
from tests.unit.gateway.conftest import Platform
from tests.unit.web.conftest import publish_consent_text
from tests.unit.web.staff.conftest import StaffBrowser

PURPOSES = ["participate", "aggregate_reporting", "quote_anonymised", "follow_up_contact"]


@dataclass
class Running:
    """A published consultation, its organiser's browser and a link invitation."""

    cid: str
    organiser: StaffBrowser
    code: str

    def page(self, name: str) -> str:
        return f"/staff/consultations/{self.cid}/{name}"


def draft_consultation(platform: Platform, organiser: StaffBrowser, **settings) -> str:
    """A consultation in draft, made by `organiser`; returns its id."""
    return platform.call(
        "POST",
        "/api/v1/consultations",
        organiser.token,
        expect=201,
        json={
            "title": "After leaving",
            "languages": list(SURVEY["languages"]),
            "purposes": PURPOSES,
            "survey": SURVEY,
            **settings,
        },
    ).get_json()["consultation_id"]


def open_consultation(platform: Platform, organiser: StaffBrowser, **settings) -> Running:
    token = organiser.token
    cid = draft_consultation(platform, organiser, **settings)
    platform.deliver()
    publish_consent_text(platform, cid, token, version=1, languages=SURVEY["languages"])
    platform.call("POST", f"/api/v1/consultations/{cid}/publish", token, expect=200)
    platform.deliver()
    code = platform.call(
        "POST", f"/api/v1/consultations/{cid}/invitations", token, expect=201, json={"kind": "link"}
    ).get_json()["code"]
    return Running(cid, organiser, code)


def answer(
    platform: Platform,
    running: Running,
    answers: dict,
    purposes: list[str] = PURPOSES,
    code: str | None = None,
) -> str:
    """One participant through the public API: open, consent, send. Returns the response id."""
    opened = platform.call(
        "POST", f"/api/v1/invitations/{code or running.code}/open", expect=201
    ).get_json()
    grant = platform.call(
        "POST",
        "/api/v1/consent/grants",
        opened["participant_session"],
        expect=201,
        json={
            "pseudonym": opened["pseudonym"],
            "consultation_id": running.cid,
            "purposes": purposes,
            "language": "en",
            "text_version": 1,
        },
    ).get_json()
    platform.deliver()
    sent = platform.call(
        "POST",
        "/api/v1/responses",
        expect=201,
        json={"consent_token": grant["consent_token"], "answers": answers},
    ).get_json()
    return sent["response_id"]


@pytest.fixture
def running(platform, staff_browser) -> Running:
    return open_consultation(platform, staff_browser("organiser"))
