"""The surveys service in process: its Flask app, the in-process bus and mongomock, driven over its API."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from services.consent.tokens import issue_consent_token
from services.surveys.app import create_app
from shared.auth import Principal, encode_principal
from shared.events import Envelope, isoformat, utcnow
from shared.in_process_bus import InProcessBus
from shared.runtime import current_runtime
from tests.conftest import call_json, make_settings, store_unchanged


def t(en: str, ar: str) -> dict[str, str]:
    return {"en": en, "ar": ar}


YES_NO = [{"code": "yes", "label": t("Yes", "نعم")}, {"code": "no", "label": t("No", "لا")}]

# Every question type, a section with a content warning, and skip logic at section and question level.
SURVEY = {
    "languages": ["en", "ar"],
    "sections": [
        {
            "id": "about",
            "title": t("About you", "عنك"),
            "questions": [
                {
                    "id": "safe",
                    "type": "single_choice",
                    "label": t("Do you feel safe now?", "هل تشعر بالأمان الآن؟"),
                    "options": YES_NO,
                    "dimension": True,
                },
                {
                    "id": "needs",
                    "type": "multiple_choice",
                    "label": t("What do you need?", "ماذا تحتاج؟"),
                    "options": [
                        {"code": "food", "label": t("Food", "طعام")},
                        {"code": "shelter", "label": t("Shelter", "مأوى")},
                        {"code": "health", "label": t("Health care", "رعاية صحية")},
                    ],
                },
                {
                    "id": "support",
                    "type": "rating",
                    "label": t("How good was the support?", "ما مدى جودة الدعم؟"),
                    "min": 1,
                    "max": 5,
                },
                {
                    "id": "age",
                    "type": "number",
                    "label": t("How old are you?", "كم عمرك؟"),
                    "min": 16,
                    "max": 100,
                    "integer": True,
                },
                {"id": "left_on", "type": "date", "label": t("When did you leave?", "متى غادرت؟")},
            ],
        },
        {
            "id": "story_section",
            "title": t("Your story", "قصتك"),
            "content_warning": t(
                "These questions are about hard experiences.", "هذه الأسئلة عن تجارب صعبة."
            ),
            "relevant": {"question": "safe", "op": "equals", "value": "no"},
            "questions": [
                {
                    "id": "story",
                    "type": "free_text",
                    "label": t("What would have helped?", "ما الذي كان سيساعد؟"),
                    "max_length": 200,
                },
                {
                    "id": "health_detail",
                    "type": "free_text",
                    "label": t("Which care?", "أي رعاية؟"),
                    "relevant": {"question": "needs", "op": "includes", "value": "health"},
                },
            ],
        },
    ],
}

FULL_ANSWERS = {
    "safe": "no",
    "needs": ["health", "food"],
    "support": "4",
    "age": 30,
    "left_on": "2024-02-29",
    "story": "  Someone who spoke my language.  ",
    "health_detail": "A dentist",
}
ALL_PURPOSES = ["participate", "aggregate_reporting", "quote_anonymised"]


class Surveys:
    """A test driver for the surveys app: staff and participant calls, events, store snapshots."""

    def __init__(self, app, bus: InProcessBus, secrets_env: dict, private_pem: bytes) -> None:
        self.app = app
        self.bus = bus
        self.client = app.test_client()
        self.runtime = current_runtime(app)
        self.settings = self.runtime.settings
        self.secret = secrets_env["VOICES_INTERNAL_TOKEN"].encode()
        self.private_pem = private_pem

    # -- HTTP ----------------------------------------------------------------
    def staff(
        self, organisation_id: str = "org_a", role: str = "organiser", subject: str = "u_1"
    ) -> dict:
        return encode_principal(
            Principal(kind="staff", role=role, organisation_id=organisation_id, subject=subject),
            self.secret,
        )

    def call(self, method: str, path: str, expect: int, headers: dict | None = None, **kwargs):
        """The JSON body of a call that must answer `expect`; every error must be problem+json."""
        return call_json(self.client, method, path, expect, headers, **kwargs)

    def organiser(
        self, method: str, path: str, expect: int, organisation_id: str = "org_a", **kwargs
    ):
        return self.call(method, path, expect, headers=self.staff(organisation_id), **kwargs)

    # -- setting things up ---------------------------------------------------
    def create(
        self,
        survey: dict | None = SURVEY,
        expect: int = 201,
        consent_texts: bool = True,
        **settings,
    ) -> dict:
        """A new draft; with `consent_texts`, its consent texts are then published in each of its languages."""
        body = {
            "title": "After leaving",
            "languages": ["en", "ar"],
            "purposes": list(ALL_PURPOSES),
            **settings,
        }
        if survey is not None:
            body["survey"] = copy.deepcopy(survey)
        created = self.organiser("POST", "/api/v1/consultations", expect, json=body)
        if expect == 201 and consent_texts:
            self.consent_texts_published(created["consultation_id"], body["languages"])
        return created

    def open_consultation(self, survey: dict = SURVEY, **settings) -> str:
        cid = self.create(survey, **settings)["consultation_id"]
        self.organiser("POST", f"/api/v1/consultations/{cid}/publish", 200)
        return cid

    def invite(self, cid: str, kind: str = "link") -> str:
        return self.organiser(
            "POST", f"/api/v1/consultations/{cid}/invitations", 201, json={"kind": kind}
        )["code"]

    def participant(self, cid: str) -> str:
        """A fresh pseudonym from a new link invitation."""
        return self.call("POST", f"/api/v1/invitations/{self.invite(cid)}/open", 201)["pseudonym"]

    def token(
        self,
        pseudonym: str,
        cid: str,
        purposes=ALL_PURPOSES,
        grant_id: str | None = None,
        private_key=None,
        ttl=timedelta(hours=4),
        now=None,
    ) -> str:
        return issue_consent_token(
            pseudonym=pseudonym,
            consultation_id=cid,
            grant_id=grant_id or f"g_{pseudonym}",
            purposes=list(purposes),
            private_key=private_key or self.private_pem,
            ttl=ttl,
            now=now,
        )

    def submit(self, token: str, answers: dict, expect: int = 201, **extra):
        return self.call(
            "POST",
            "/api/v1/responses",
            expect,
            json={"consent_token": token, "answers": answers, **extra},
        )

    # -- events --------------------------------------------------------------
    def relay(self) -> int:
        return self.runtime.relay.relay_once()

    def events(self, topic: str, type_: str | None = None) -> list[Envelope]:
        self.relay()
        return [e for e in self.bus.events(topic) if type_ is None or e.type == type_]

    def consent_texts_published(self, cid: str, languages, organisation_id: str = "org_a") -> None:
        """Deliver consent_text.published events as the consent service publishes them."""
        for language in languages:
            self.bus.publish(
                self.settings.topics.consent,
                Envelope(
                    type="consent_text.published",
                    key=cid,
                    producer="consent",
                    payload={
                        "consultation_id": cid,
                        "organisation_id": organisation_id,
                        "text_version": 1,
                        "language": language,
                        "text_sha256": "0" * 64,
                        "published_at": isoformat(utcnow()),
                    },
                ),
            )
        self.bus.deliver()

    def withdraw(
        self, pseudonym: str, cid: str, purposes=None, everything: bool = True
    ) -> Envelope:
        """Deliver a consent.withdrawn event as the consent service would publish it."""
        purposes = list(purposes or ALL_PURPOSES)
        event = Envelope(
            type="consent.withdrawn",
            key=pseudonym,
            producer="consent",
            payload={
                "grant_id": f"g_{pseudonym}",
                "pseudonym": pseudonym,
                "consultation_id": cid,
                "purposes": purposes,
                "remaining": [] if everything else [p for p in ALL_PURPOSES if p not in purposes],
                "all": everything,
                "withdrawn_at": isoformat(utcnow()),
            },
        )
        self.bus.publish(self.settings.topics.consent, event)
        self.bus.deliver()
        return event

    # -- the store -----------------------------------------------------------
    def snapshot(self) -> dict[str, list]:
        """Every stored document, to show that a refused request changed nothing."""
        db = self.runtime.db
        # Empty collections are left out: a query may create one, which stores nothing.
        snapshot = {
            name: sorted(db[name].find(), key=lambda d: str(d["_id"]))
            for name in sorted(db.list_collection_names())
        }
        return {name: docs for name, docs in snapshot.items() if docs}


@pytest.fixture
def surveys(secrets_env, consent_keys) -> Surveys:
    bus = InProcessBus()
    app = create_app(make_settings("surveys", secrets_env), bus=bus)
    return Surveys(app, bus, secrets_env, consent_keys[0])


@pytest.fixture
def unchanged(surveys):
    """Use as `with unchanged(): <failing request>`: asserts the store is exactly as before."""
    return lambda: store_unchanged(surveys.snapshot)


def withdraw_during_intake(surveys, monkeypatch, pseudonym: str, cid: str) -> None:
    """Make the next submission meet a full withdrawal after intake checked for one and before the
    response is stored (the withdrawal lands while intake reads the participant's key)."""
    from services.surveys import participants

    real_key = participants.participant_key

    def key_then_withdrawal(participant, keys):
        key = real_key(participant, keys)
        surveys.withdraw(pseudonym, cid)
        return key

    monkeypatch.setattr(participants, "participant_key", key_then_withdrawal)
