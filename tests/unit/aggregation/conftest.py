"""The aggregation service in process: its Flask app, the in-process bus and mongomock."""

from __future__ import annotations

import random

import pytest

from services.aggregation.app import create_app
from shared.auth import Principal, encode_principal
from shared.errors import PROBLEM_MIME
from shared.events import Envelope
from shared.in_process_bus import InProcessBus
from shared.runtime import current_runtime
from tests.conftest import make_settings

CID = "c_agg"
ORG = "org_a"
QUESTIONS = [
    {
        "id": "region",
        "type": "single_choice",
        "options": ["north", "south"],
        "dimension": True,
        "min": None,
        "max": None,
    },
    {
        "id": "age",
        "type": "single_choice",
        "options": ["young", "older"],
        "dimension": True,
        "min": None,
        "max": None,
    },
    {
        "id": "needs",
        "type": "multiple_choice",
        "options": ["housing", "legal", "health"],
        "dimension": False,
        "min": None,
        "max": None,
    },
    {"id": "safety", "type": "rating", "options": [], "dimension": False, "min": 1, "max": 5},
    {
        "id": "story",
        "type": "free_text",
        "options": [],
        "dimension": False,
        "min": None,
        "max": None,
    },
]


def published(cid=CID, org=ORG, k=5, version=1, questions=QUESTIONS, epsilon_budget=None):
    return Envelope(
        type="consultation.published",
        key=cid,
        producer="surveys",
        payload={
            "consultation_id": cid,
            "organisation_id": org,
            "survey_version": version,
            "title": "After leaving",
            "languages": ["en"],
            "min_cell_size": k,
            "min_age": None,
            "purposes": ["participate", "aggregate_reporting", "quote_anonymised"],
            "questions": questions,
            "published_at": "2025-01-01T00:00:00Z",
            "epsilon_budget": epsilon_budget,
        },
    )


def submitted(
    i: int,
    answers: dict,
    cid=CID,
    purposes=("participate", "aggregate_reporting"),
    pseudonym=None,
    at="2025-02-01T10:00:00Z",
):
    pseudonym = pseudonym or f"p{i}"
    return Envelope(
        type="response.submitted",
        key=cid,
        producer="surveys",
        payload={
            "response_id": f"r{i}",
            "consultation_id": cid,
            "survey_version": 1,
            "pseudonym": pseudonym,
            "grant_id": f"g_{pseudonym}",
            "purposes": list(purposes),
            "submitted_at": at,
            "answers": answers,
            "declined": [],
            "free_text_questions": [],
        },
    )


def withdrawn(pseudonym: str, purposes=(), everything=False, cid=CID):
    return Envelope(
        type="consent.withdrawn",
        key=pseudonym,
        producer="consent",
        payload={
            "grant_id": f"g_{pseudonym}",
            "pseudonym": pseudonym,
            "consultation_id": cid,
            "purposes": list(purposes),
            "remaining": [],
            "all": everything,
            "withdrawn_at": "2025-03-01T00:00:00Z",
        },
    )


def erased(i: int, reason: str, cid=CID, pseudonym=None):
    return Envelope(
        type="response.erased",
        key=cid,
        producer="surveys",
        payload={
            "response_id": f"r{i}",
            "consultation_id": cid,
            "pseudonym": pseudonym or f"p{i}",
            "reason": reason,
            "erased_at": "2025-03-02T00:00:00Z",
        },
    )


def quote_approved(qid: str, pseudonym: str, text: str, cid=CID):
    return Envelope(
        type="quote.approved",
        key=cid,
        producer="surveys",
        payload={
            "quote_id": qid,
            "consultation_id": cid,
            "pseudonym": pseudonym,
            "question_id": "story",
            "text": text,
            "approved_by": "u_org",
            "approved_at": "2025-03-03T00:00:00Z",
        },
    )


def quote_revoked(qid: str, cid=CID):
    return Envelope(
        type="quote.revoked",
        key=cid,
        producer="surveys",
        payload={
            "quote_id": qid,
            "consultation_id": cid,
            "revoked_by": "u_org",
            "revoked_at": "2025-03-04T00:00:00Z",
        },
    )


def answers_for(i: int) -> dict:
    rng = random.Random(i)
    return {
        "region": rng.choice(["north", "north", "south"]),
        "age": rng.choice(["young", "older"]),
        "needs": rng.sample(["housing", "legal", "health"], rng.randint(0, 2)),
        "safety": rng.randint(1, 5),
        "story": "free text never counted",
    }


class Aggregation:
    """A driver for the aggregation app: events in, HTTP calls as staff of any role."""

    def __init__(self, app, bus: InProcessBus, secrets_env: dict) -> None:
        self.app = app
        self.bus = bus
        self.client = app.test_client()
        self.runtime = current_runtime(app)
        self.settings = self.runtime.settings
        self.secret = secrets_env["VOICES_INTERNAL_TOKEN"].encode()

    def topic_of(self, event: Envelope) -> str:
        t = self.settings.topics
        return {
            "consent.withdrawn": t.consent,
            "response.submitted": t.responses,
            "response.erased": t.responses,
        }.get(event.type, t.surveys)

    def send(self, *events: Envelope) -> None:
        for e in events:
            self.bus.publish(self.topic_of(e), e)
        self.bus.deliver()

    def staff(self, role="organiser", org=ORG, readable=(), subject="u_1") -> dict:
        return encode_principal(
            Principal(
                kind="staff",
                role=role,
                organisation_id=org,
                subject=subject,
                readable_organisations=tuple(readable),
            ),
            self.secret,
        )

    def call(self, method, path, expect, role="organiser", org=ORG, readable=(), **kwargs):
        r = self.client.open(path, method=method, headers=self.staff(role, org, readable), **kwargs)
        assert r.status_code == expect, (
            f"{method} {path}: {r.status_code} {r.get_data(as_text=True)[:500]}"
        )
        if expect >= 400:
            assert r.mimetype == PROBLEM_MIME
        return r.get_json() if r.mimetype.endswith("json") else r

    def release(self, cid=CID, expect=201, **body):
        return self.call("POST", "/api/v1/releases", expect, json={"consultation_id": cid, **body})

    def released_events(self):
        self.runtime.relay.relay_once()
        return [
            e
            for e in self.bus.events(self.settings.topics.releases)
            if e.type == "release.published"
        ]


@pytest.fixture
def make_aggregation(secrets_env):
    def make(**changes) -> Aggregation:
        bus = InProcessBus()
        app = create_app(make_settings("aggregation", secrets_env, **changes), bus=bus)
        return Aggregation(app, bus, secrets_env)

    return make


@pytest.fixture
def agg(make_aggregation):
    return make_aggregation()
