"""Response intake through the API: consent token rules, every question type, skip logic, encryption."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.surveys import participants
from services.surveys.models import Consultation, Participant, Response
from shared.errors import NotFound
from shared.events import isoformat, utcnow
from tests.unit.surveys.conftest import ALL_PURPOSES, FULL_ANSWERS, SURVEY


@pytest.fixture
def open_cid(surveys):
    return surveys.open_consultation()


def test_every_question_type_is_stored_normalised(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    receipt = surveys.submit(surveys.token(pseudonym, open_cid), FULL_ANSWERS, declined=[])
    stored = Response.objects.get(response_id=receipt["response_id"])
    assert stored.answers == {
        "safe": "no",
        "needs": ["food", "health"],
        "support": 4,
        "age": 30,
        "left_on": "2024-02-29",
    }
    assert set(stored.free_text) == {"story", "health_detail"}
    assert stored.pseudonym == pseudonym and stored.survey_version == 1 and stored.quotable is True
    assert stored.grant_id == f"g_{pseudonym}" and stored.purposes == ALL_PURPOSES
    key = participants.participant_key(
        Participant.objects.get(pseudonym=pseudonym), surveys.runtime.context.keys
    )
    assert participants.decrypt_free_text(
        pseudonym, stored.response_id, stored.free_text, surveys.runtime.context.keys
    ) == {"story": "Someone who spoke my language.", "health_detail": "A dentist"}
    assert key  # the key exists until the participant withdraws


def test_free_text_never_leaves_in_clear(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    surveys.submit(surveys.token(pseudonym, open_cid), FULL_ANSWERS)
    [event] = surveys.events(surveys.settings.topics.responses)
    assert event.type == "response.submitted"
    assert event.payload["free_text_questions"] == ["health_detail", "story"]
    assert set(event.payload["answers"]) == {"safe", "needs", "support", "age", "left_on"}
    raw = b"".join(surveys.bus.topics[surveys.settings.topics.responses])
    stored = json.dumps(surveys.snapshot(), default=str)
    for text in ("Someone who spoke my language", "A dentist"):
        assert text.encode() not in raw
        assert text not in stored


def test_everything_may_be_skipped_or_declined(surveys, open_cid):
    skipped = surveys.submit(surveys.token(surveys.participant(open_cid), open_cid), {})
    assert Response.objects.get(response_id=skipped["response_id"]).answers == {}
    declined = surveys.submit(
        surveys.token(surveys.participant(open_cid), open_cid),
        {"safe": "", "needs": None},
        declined=["age", "safe", "age"],
    )
    stored = Response.objects.get(response_id=declined["response_id"])
    assert stored.answers == {} and stored.declined == ["safe", "age"]
    [_, event] = surveys.events(surveys.settings.topics.responses)
    assert event.payload["declined"] == ["safe", "age"]


@pytest.mark.parametrize(
    "question, value, message",
    [
        ("safe", "maybe", "must be one of: yes, no"),
        ("safe", ["yes"], "must be one of"),
        ("needs", "food", "non-empty list"),
        ("needs", ["food", "food"], "each option may be chosen once"),
        ("needs", ["food", "water"], "unknown options: water"),
        ("support", 6, "must be from 1 to 5"),
        ("support", 2.5, "whole number"),
        ("support", True, "whole number"),
        ("age", 15, "at least 16"),
        ("age", 101, "at most 100"),
        ("age", "thirty", "must be a number"),
        ("age", 30.5, "whole number"),
        ("left_on", "2023-02-29", "real date"),
        ("left_on", "29/02/2024", "real date"),
        ("story", "x" * 201, "at most 200 characters"),
        ("story", 12, "must be text"),
        ("nickname", "Sam", "unknown question 'nickname'"),
    ],
)
def test_an_answer_that_does_not_fit_is_refused_naming_the_question(
    surveys, unchanged, open_cid, question, value, message
):
    token = surveys.token(surveys.participant(open_cid), open_cid)
    answers = {"safe": "no", question: value} if question != "safe" else {"safe": value}
    with unchanged():
        problem = surveys.submit(token, answers, expect=422)
    assert list(problem["errors"]) == [question]
    assert message in " ".join(problem["errors"][question])
    assert surveys.events(surveys.settings.topics.responses) == []


def test_answering_a_question_that_skip_logic_hides_is_refused(surveys, unchanged, open_cid):
    token = surveys.token(surveys.participant(open_cid), open_cid)
    with unchanged():
        hidden_section = surveys.submit(
            token, {"safe": "yes", "story": "should not be here"}, expect=422
        )
        hidden_question = surveys.submit(
            token, {"safe": "no", "needs": ["food"], "health_detail": "x"}, expect=422
        )
        declined_hidden = surveys.submit(token, {"safe": "yes"}, declined=["story"], expect=422)
        both = surveys.submit(token, {"safe": "no"}, declined=["safe"], expect=422)
        unknown_decline = surveys.submit(token, {}, declined=["ghost"], expect=422)
    assert hidden_section["errors"] == {"story": ["question story is not shown for these answers"]}
    assert hidden_question["errors"] == {
        "health_detail": ["question health_detail is not shown for these answers"]
    }
    assert list(declined_hidden["errors"]) == ["story"]
    assert both["errors"] == {"safe": ["question safe is both answered and declined"]}
    assert list(unknown_decline["errors"]) == ["ghost"]
    # Shown once the answer it depends on is given.
    surveys.submit(token, {"safe": "no", "needs": ["health"], "health_detail": "x"})


@pytest.mark.parametrize(
    "body",
    [
        {"answers": {"safe": "no"}},  # no token
        {"consent_token": "x" * 20, "answers": ["safe"]},
        {"consent_token": "x" * 20, "declined": "safe"},
        {"consent_token": "x" * 20, "answers": {}, "extra": 1},
    ],
)
def test_malformed_requests_are_refused(surveys, unchanged, open_cid, body):
    with unchanged():
        surveys.call("POST", "/api/v1/responses", 422, json=body)


def other_private_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_a_consent_token_must_be_genuine_current_and_for_participation(
    surveys, unchanged, open_cid
):
    pseudonym = surveys.participant(open_cid)
    cases = {
        "signature": surveys.token(pseudonym, open_cid, private_key=other_private_key()),
        "expired": surveys.token(pseudonym, open_cid, ttl=60, now=utcnow() - timedelta(hours=1)),
        "participate": surveys.token(pseudonym, open_cid, purposes=["aggregate_reporting"]),
        "garbage": "not.a.token-at-all",
    }
    with unchanged():
        for reason, token in cases.items():
            problem = surveys.submit(token, {"safe": "no"}, expect=401)
            if reason in ("expired", "participate"):
                assert reason in problem["detail"]
        tampered = surveys.token(pseudonym, open_cid)
        head, claims, signature = tampered.split(".")
        surveys.submit(
            ".".join([head, claims[:-2] + ("AA" if claims[-2:] != "AA" else "BB"), signature]),
            {},
            expect=401,
        )


def test_a_token_is_bound_to_the_participant_and_their_consultation(surveys, unchanged, open_cid):
    other_cid = surveys.open_consultation()
    pseudonym = surveys.participant(open_cid)
    with unchanged():
        surveys.submit(
            surveys.token(pseudonym, other_cid), {"safe": "no"}, expect=403
        )  # wrong consultation
        surveys.submit(
            surveys.token("p_" + "A" * 22, open_cid), {"safe": "no"}, expect=403
        )  # never issued


def test_one_response_per_participant(surveys, unchanged, open_cid):
    token = surveys.token(surveys.participant(open_cid), open_cid)
    surveys.submit(token, {"safe": "yes"})
    with unchanged():
        surveys.submit(token, {"safe": "no"}, expect=409)


def test_an_unknown_survey_version_is_refused(surveys, unchanged, open_cid):
    token = surveys.token(surveys.participant(open_cid), open_cid)
    with unchanged():
        problem = surveys.submit(token, {"safe": "no"}, survey_version=3, expect=422)
    assert "survey_version" in problem["errors"]


def test_responses_only_while_the_consultation_takes_them(surveys, unchanged, open_cid):
    early, late, after_close = (surveys.participant(open_cid) for _ in range(3))
    tokens = {p: surveys.token(p, open_cid) for p in (early, late, after_close)}
    now = utcnow()
    surveys.organiser(
        "PATCH",
        f"/api/v1/consultations/{open_cid}",
        200,
        json={"opens_at": isoformat(now + timedelta(days=1))},
    )
    with unchanged():
        assert surveys.submit(tokens[early], {}, expect=409)["opens_at"]
    surveys.organiser(
        "PATCH",
        f"/api/v1/consultations/{open_cid}",
        200,
        json={
            "opens_at": isoformat(now - timedelta(days=2)),
            "closes_at": isoformat(now - timedelta(days=1)),
        },
    )
    with unchanged():
        assert surveys.submit(tokens[late], {}, expect=410)["closed_at"]
    surveys.organiser("PATCH", f"/api/v1/consultations/{open_cid}", 200, json={"closes_at": None})
    surveys.submit(tokens[late], {})
    surveys.organiser(
        "POST", f"/api/v1/consultations/{open_cid}/status", 200, json={"status": "closed"}
    )
    with unchanged():
        surveys.submit(tokens[after_close], {}, expect=410)
    assert Consultation.objects.get(consultation_id=open_cid).status == "closed"


def test_a_version_published_after_responses_is_the_one_answered(surveys, unchanged, open_cid):
    # The first response makes this process keep version 1; version 2 adds an option.
    surveys.submit(surveys.token(surveys.participant(open_cid), open_cid), {"safe": "yes"})
    edited = copy.deepcopy(SURVEY)
    edited["sections"][0]["questions"][0]["options"].append(
        {"code": "unsure", "label": {"en": "Not sure", "ar": "لست متأكدا"}}
    )
    surveys.organiser(
        "PUT", f"/api/v1/consultations/{open_cid}/survey", 200, json={"survey": edited}
    )
    surveys.organiser("POST", f"/api/v1/consultations/{open_cid}/publish", 200)
    token = surveys.token(surveys.participant(open_cid), open_cid)
    with unchanged():
        problem = surveys.submit(token, {"safe": "unsure"}, survey_version=1, expect=422)
    assert "safe" in problem["errors"]
    assert surveys.submit(token, {"safe": "unsure"})["survey_version"] == 2


def test_admission_reads_what_it_needs_and_keeps_published_versions_only(surveys, open_cid):
    with surveys.app.app_context():
        first = participants.admitting_consultation(open_cid)
        stored = Consultation.objects.get(consultation_id=open_cid)
        assert first.versions == stored.versions and first.status == "open"
        assert first.purposes == stored.purposes and first.current_version["number"] == 1
        Consultation.objects(consultation_id=open_cid).update_one(set__status="closed")
        assert participants.admitting_consultation(open_cid).status == "closed"
        assert participants.by_key(Participant, "p_nobody") is None
        with pytest.raises(NotFound):
            participants.admitting_consultation("c_nothing")


def test_published_versions_are_read_once_and_bounded():
    reads: list[str] = []
    kept = participants.PublishedVersions(max_versions=2)

    class Collection:
        def find_one(self, query, projection):
            reads.append(query["_id"])
            return {"versions": [{"number": n, "definition": {"n": n}} for n in (1, 2)]}

    original = Consultation._get_collection
    Consultation._get_collection = classmethod(lambda cls: Collection())  # type: ignore[method-assign]
    try:
        assert [v["number"] for v in kept.of("c1", [1, 2])] == [1, 2]
        assert [v["number"] for v in kept.of("c1", [1, 2])] == [1, 2]
        assert reads == ["c1"]  # the second admission read no version
        kept.of("c2", [1])  # c2's two versions push c1's out
        kept.of("c1", [2])
        assert reads == ["c1", "c2", "c1"]
    finally:
        Consultation._get_collection = original  # type: ignore[method-assign]
