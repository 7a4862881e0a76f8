"""The participant pages in-process: the gateway (with its web app) in front of the real services.

`build_platform` from the gateway tests joins them by WSGI and one in-process bus; here the demo
consultation (six languages, a content warning, a follow-up question) is opened on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import pytest

from deploy.demo import CONSENT_BODY, LANGS, PURPOSE_TEXT, SURVEY
from tests.unit.gateway.conftest import Platform, build_platform


@dataclass
class Consultation:
    consultation_id: str
    code: str
    organiser_token: str


def open_demo_consultation(
    platform: Platform, min_age: int | None = None, survey: dict = SURVEY, **settings
) -> Consultation:
    """The demo survey (or `survey`), published, with a published consent text in each of the survey's
    languages (the demo's six) and a link invitation; `settings` are more fields of the new consultation."""
    organiser = platform.staff("organiser", platform.organisation())["token"]
    cid = platform.call(
        "POST",
        "/api/v1/consultations",
        organiser,
        expect=201,
        json={
            "title": "After leaving",
            "languages": list(survey["languages"]),
            "purposes": [
                "participate",
                "aggregate_reporting",
                "quote_anonymised",
                "follow_up_contact",
            ],
            "min_age": min_age,
            "survey": survey,
            **settings,
        },
    ).get_json()["consultation_id"]
    platform.deliver()
    publish_consent_text(
        platform, cid, organiser, version=1, languages=survey["languages"]
    )  # publishing needs it
    platform.call("POST", f"/api/v1/consultations/{cid}/publish", organiser, expect=200)
    platform.deliver()
    code = platform.call(
        "POST",
        f"/api/v1/consultations/{cid}/invitations",
        organiser,
        expect=201,
        json={"kind": "link"},
    ).get_json()["code"]
    return Consultation(cid, code, organiser)


def publish_consent_text(
    platform: Platform, cid: str, organiser: str, version: int, note: str = "", languages=LANGS
) -> None:
    for lang in languages:
        platform.call(
            "POST",
            f"/api/v1/consent/consultations/{cid}/texts",
            organiser,
            expect=201,
            json={
                "version": version,
                "language": lang,
                "title": "Your consent",
                "body": CONSENT_BODY[lang] + note,
                "purposes": {purpose: text[lang] for purpose, text in PURPOSE_TEXT.items()},
            },
        )
    platform.call(
        "POST",
        f"/api/v1/consent/consultations/{cid}/texts/{version}/publish",
        organiser,
        expect=200,
    )
    platform.deliver()


@pytest.fixture(scope="module")
def platform(secrets_env) -> Platform:
    return build_platform(secrets_env, QUICK_EXIT_URL="https://neutral.example/weather")


@pytest.fixture(scope="module")
def demo(platform) -> Consultation:
    return open_demo_consultation(platform)


@pytest.fixture
def browser(platform):
    """A fresh cookie jar: one participant's browser."""
    return platform.gateway.test_client()


# Consent tokens live a day, saved answers three: a day and more later, a resumed token has expired.
A_DAY_AND_MORE = 26 * 3600


@pytest.fixture
def a_day_later(monkeypatch):
    """Call it to move the clocks that sign and check consent tokens, and the resume lookup's clock,
    26 hours forward (until the test ends); the consent service then signs new tokens at that moment
    too, as it would a day later."""
    import services.surveys.resume
    import shared.consent_tokens
    from shared.events import utcnow

    def move() -> None:
        monkeypatch.setattr(
            shared.consent_tokens,
            "time",
            SimpleNamespace(time=lambda: time.time() + A_DAY_AND_MORE),
        )
        monkeypatch.setattr(
            services.surveys.resume, "utcnow", lambda: utcnow() + timedelta(seconds=A_DAY_AND_MORE)
        )

    return move
