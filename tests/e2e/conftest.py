"""End-to-end fixtures: the whole platform as real processes, driven over HTTP only."""

from __future__ import annotations

import secrets
import time

import pytest
import requests

from deploy.stack import Stack

ONE_QUESTION_SURVEY = {
    "languages": ["en"],
    "sections": [
        {
            "id": "s1",
            "title": {"en": "Support"},
            "questions": [
                {
                    "id": "got_help",
                    "type": "single_choice",
                    "label": {"en": "Did you get help when you needed it?"},
                    "options": [
                        {"code": "yes", "label": {"en": "Yes"}},
                        {"code": "no", "label": {"en": "No"}},
                    ],
                },
            ],
        }
    ],
}


class Api:
    """A small HTTP client for the gateway that fails loudly on unexpected statuses."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.session = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        expect: int | tuple = (200, 201),
        **kwargs,
    ):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.session.request(
            method, self.base + path, headers=headers, timeout=20, **kwargs
        )
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None


def eventually(probe, timeout: float = 30.0, interval: float = 0.2):
    """Poll `probe` until it returns a truthy value; the value is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def start_stack(servers, tmp_path_factory, **extra_env) -> Stack:
    """A stack of its own (fresh namespace) on the run's Kafka and document store, with an admin token."""
    admin = "vt_admin_" + secrets.token_urlsafe(16)
    running = Stack(
        kafka_bootstrap=servers.kafka_bootstrap,
        mongodb_uri=servers.mongodb_uri,
        namespace=servers.namespace(),
        log_dir=tmp_path_factory.mktemp("logs"),
        extra_env={"VOICES_ADMIN_TOKEN": admin, **extra_env},
    )
    running.admin_token = admin
    running.start(timeout=90)
    return running


@pytest.fixture(scope="module")
def stack(servers, tmp_path_factory):
    running = start_stack(servers, tmp_path_factory)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(stack):
    return Api(stack.gateway_url)


def staff_token(api: Api, admin_token: str, role: str, organisation_id: str | None = None) -> dict:
    """A new staff account with `role` (in a new organisation unless one is given) and an API token for it."""
    if organisation_id is None:
        organisation_id = api.call(
            "POST",
            "/api/v1/organisations",
            admin_token,
            json={"name": f"Org {secrets.token_hex(3)}"},
        )["organisation_id"]
    account = api.call(
        "POST",
        "/api/v1/accounts",
        admin_token,
        json={
            "email": f"{role}-{secrets.token_hex(3)}@example.org",
            "role": role,
            "organisation_id": organisation_id,
        },
    )
    token = api.call(
        "POST", "/api/v1/tokens", admin_token, json={"account_id": account["account_id"]}
    )["token"]
    return {"token": token, "organisation_id": organisation_id}


@pytest.fixture(scope="module")
def organiser(api, stack):
    return staff_token(api, stack.admin_token, "organiser")


@pytest.fixture(scope="module")
def policy(api, stack, organiser) -> str:
    """A policy user of the organiser's organisation."""
    return staff_token(api, stack.admin_token, "policy", organiser["organisation_id"])["token"]


def publish_consent_text(api: Api, token: str, cid: str, languages, purposes) -> None:
    """Post and publish consent text version 1 in each language; returns once the surveys service knows.

    The consent service learns of a new consultation, and the surveys service of a published
    consent text, from events; each step waits for the event the next one needs."""
    headers = {"Authorization": f"Bearer {token}"}

    def text_saved(language: str) -> bool:
        response = api.session.post(
            f"{api.base}/api/v1/consent/consultations/{cid}/texts",
            headers=headers,
            timeout=10,
            json={
                "version": 1,
                "language": language,
                "title": "Your consent",
                "body": "We keep your answers safe. You may skip anything and withdraw later.",
                "purposes": {p: f"Explanation of {p}." for p in purposes},
            },
        )
        return response.status_code == 201

    for language in languages:
        eventually(lambda: text_saved(language))
    api.call("POST", f"/api/v1/consent/consultations/{cid}/texts/1/publish", token)
    eventually(
        lambda: (
            set(api.call("GET", f"/api/v1/consultations/{cid}", token)["consent_languages"])
            >= set(languages)
        )
    )


def publish_consent_then_consultation(api: Api, token: str, cid: str, languages, purposes) -> dict:
    """Consent text version 1 in each language, then the consultation published; returns the consultation."""
    publish_consent_text(api, token, cid, languages, purposes)
    return api.call("POST", f"/api/v1/consultations/{cid}/publish", token)


def open_consultation(
    api: Api,
    organiser_token: str,
    survey=ONE_QUESTION_SURVEY,
    purposes=("participate", "aggregate_reporting"),
    **settings,
) -> tuple[str, str]:
    """Create a consultation, publish its consent text and then the consultation; returns (consultation id,
    link code). `settings` are further fields of the new consultation (e.g. epsilon_budget)."""
    consultation = api.call(
        "POST",
        "/api/v1/consultations",
        organiser_token,
        json={
            "title": "Walking skeleton",
            "languages": survey["languages"],
            "purposes": list(purposes),
            "min_cell_size": 5,
            "survey": survey,
            **settings,
        },
    )
    cid = consultation["consultation_id"]
    publish_consent_then_consultation(api, organiser_token, cid, survey["languages"], purposes)
    link = api.call(
        "POST", f"/api/v1/consultations/{cid}/invitations", organiser_token, json={"kind": "link"}
    )
    return cid, link["code"]


def participate(
    api: Api, code: str, answers: dict, purposes=("participate", "aggregate_reporting")
) -> dict:
    """One participant's whole path: open the link, read the text, consent, answer."""
    opened = api.call("POST", f"/api/v1/invitations/{code}/open")
    cid = opened["consultation_id"]

    def consent_open():
        r = api.session.get(
            f"{api.base}/api/v1/consent/consultations/{cid}/texts",
            params={"language": "en"},
            timeout=10,
        )
        return r.json() if r.status_code == 200 else None

    text = eventually(consent_open)
    grant = eventually(lambda: _grant(api, opened, cid, text["version"], purposes))
    response = api.call(
        "POST",
        "/api/v1/responses",
        json={"consent_token": grant["consent_token"], "answers": answers},
    )
    return {
        "pseudonym": opened["pseudonym"],
        "grant": grant,
        "response": response,
        "consultation_id": cid,
    }


def _grant(api: Api, opened: dict, cid: str, version: int, purposes) -> dict | None:
    """Consent within the participant session that opening the invitation gave (`opened`)."""
    r = api.session.post(
        f"{api.base}/api/v1/consent/grants",
        timeout=10,
        headers={"Authorization": f"Bearer {opened['participant_session']}"},
        json={
            "pseudonym": opened["pseudonym"],
            "consultation_id": cid,
            "purposes": list(purposes),
            "language": "en",
            "text_version": version,
        },
    )
    if r.status_code == 409 and "not open" in r.text:
        return None  # consent has not yet seen the consultation open
    assert r.status_code == 201, r.text
    return r.json()
