"""A consultation of the demo organisation for the operations pages, set up through the API, and
participants answering it through the public API (the participant pages have tests of their own)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from deploy.demo import LANGS, SURVEY, DemoLoader

PURPOSES = ["participate", "aggregate_reporting", "quote_anonymised", "follow_up_contact"]


@dataclass
class Running:
    origin: str
    cid: str
    code: str
    organiser_token: str

    def url(self, name: str, lang: str = "en") -> str:
        return f"{self.origin}/staff/consultations/{self.cid}/{name}?lang={lang}"

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = requests.request(
            method, f"{self.origin}{path}", headers=headers, timeout=30, **kwargs
        )
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:300]}"
        return response.json() if response.content else {}

    def answer(self, answers: dict, purposes: list[str] = PURPOSES) -> str:
        """One participant: open the link, consent, send. Returns the response id."""
        opened = self.api("POST", f"/api/v1/invitations/{self.code}/open")
        loader = DemoLoader(self.origin, "")
        grants: list[dict] = []
        # The consent service learns of the published consultation from an event: wait for it.
        loader.retrying(
            lambda: grants.append(
                loader.call(
                    "POST",
                    "/api/v1/consent/grants",
                    opened["participant_session"],
                    json={
                        "pseudonym": opened["pseudonym"],
                        "consultation_id": self.cid,
                        "purposes": purposes,
                        "language": "en",
                        "text_version": 1,
                    },
                )
            ),
            "-> 4",
        )
        grant = grants[-1]
        return self.api(
            "POST",
            "/api/v1/responses",
            json={"consent_token": grant["consent_token"], "answers": answers},
        )["response_id"]


@pytest.fixture(scope="package")
def running(web_stack) -> Running:
    """A published consultation of the demo organisation (no privacy budget, k = 5)."""
    admin = web_stack.stack.extra_env["VOICES_ADMIN_TOKEN"]
    loader = DemoLoader(web_stack.origin, admin)
    organiser = web_stack.demo["organiser_token"]
    cid = loader.call(
        "POST",
        "/api/v1/consultations",
        organiser,
        json={
            "title": "Housing after leaving",
            "titles": {lang: f"Housing after leaving ({lang})" for lang in LANGS},
            "languages": list(LANGS),
            "purposes": PURPOSES,
            "min_cell_size": 5,
            "survey": copy.deepcopy(SURVEY),
        },
    )["consultation_id"]
    loader.publish_consent_text(cid, organiser)
    loader.retrying(
        lambda: loader.call("POST", f"/api/v1/consultations/{cid}/publish", organiser),
        "consent_text_missing",
    )
    code = loader.call(
        "POST",
        f"/api/v1/consultations/{cid}/invitations",
        organiser,
        json={"kind": "link", "label": "browser tests"},
    )["code"]
    return Running(web_stack.origin, cid, code, organiser)


@pytest.fixture
def organiser_page(staff_page) -> Callable:
    """A signed-in organiser page at one of the consultation's operations pages."""

    def make(running: Running, name: str, lang: str = "en", viewport: dict | None = None):
        page = staff_page("organiser", lang, viewport)
        page.goto(running.url(name, lang))
        return page

    return make
