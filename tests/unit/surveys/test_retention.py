"""Retention: raw responses of long-closed consultations are erased; the CLI command runs it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.surveys import erasure, field_crypto, participants
from services.surveys.models import Consultation, Erasure, Participant, Response, ResumeDraft
from shared.events import utcnow
from tests.unit.surveys.conftest import FULL_ANSWERS


def consultation_with_responses(
    surveys, count: int, retention_days: int, closed_days_ago: float | None
) -> str:
    cid = surveys.open_consultation(retention_days=retention_days)
    for _ in range(count):
        pseudonym = surveys.participant(cid)
        surveys.submit(surveys.token(pseudonym, cid), FULL_ANSWERS)
    if closed_days_ago is not None:
        surveys.organiser(
            "POST", f"/api/v1/consultations/{cid}/status", 200, json={"status": "closed"}
        )
        Consultation.objects(consultation_id=cid).update_one(
            set__closed_at=utcnow() - timedelta(days=closed_days_ago)
        )
    return cid


def test_responses_are_erased_once_the_retention_period_after_closing_has_passed(surveys):
    expired = consultation_with_responses(surveys, 2, retention_days=30, closed_days_ago=31)
    recent = consultation_with_responses(surveys, 1, retention_days=30, closed_days_ago=29)
    still_open = consultation_with_responses(surveys, 1, retention_days=1, closed_days_ago=None)
    old = Response.objects(consultation_id=expired).first()
    saved_copy, pseudonym = dict(old.free_text), old.pseudonym

    report = erasure.erase_expired(surveys.settings.topics.responses, "trace-retention")

    assert report == {expired: 2}
    assert Response.objects(consultation_id=expired).count() == 0
    assert Response.objects(consultation_id=recent).count() == 1
    assert Response.objects(consultation_id=still_open).count() == 1
    assert {e.reason for e in Erasure.objects} == {"retention"}
    assert Participant.objects(consultation_id=expired, wrapped_key__ne=None).count() == 0
    assert Participant.objects(consultation_id=recent, wrapped_key=None).count() == 0
    with pytest.raises(field_crypto.KeyShredded):
        participants.decrypt_free_text(
            pseudonym, old.response_id, saved_copy, surveys.runtime.context.keys
        )
    erased = surveys.events(surveys.settings.topics.responses, "response.erased")
    assert len(erased) == 2 and {e.payload["reason"] for e in erased} == {"retention"}
    assert {e.trace_id for e in erased} == {"trace-retention"} and {e.key for e in erased} == {
        expired
    }
    # The consultation itself (and what was published from it) stays.
    assert Consultation.objects.get(consultation_id=expired).versions

    assert erasure.erase_expired(surveys.settings.topics.responses, "again") == {}  # nothing twice
    assert len(surveys.events(surveys.settings.topics.responses, "response.erased")) == 2


def test_an_archived_consultation_is_erased_too_and_the_clock_counts_from_closing(surveys):
    cid = consultation_with_responses(surveys, 1, retention_days=10, closed_days_ago=5)
    surveys.organiser(
        "POST", f"/api/v1/consultations/{cid}/status", 200, json={"status": "archived"}
    )
    topic = surveys.settings.topics.responses
    assert erasure.erase_expired(topic, "t", now=utcnow() + timedelta(days=4)) == {}
    assert erasure.erase_expired(topic, "t", now=utcnow() + timedelta(days=6)) == {cid: 1}


def test_saved_progress_of_an_expired_consultation_goes_too(surveys):
    cid = surveys.open_consultation(retention_days=1)
    pseudonym = surveys.participant(cid)
    surveys.call(
        "POST",
        "/api/v1/resume",
        201,
        json={"consent_token": surveys.token(pseudonym, cid), "answers": {"safe": "no"}},
    )
    surveys.organiser("POST", f"/api/v1/consultations/{cid}/status", 200, json={"status": "closed"})
    erasure.erase_expired(surveys.settings.topics.responses, "t", now=utcnow() + timedelta(days=2))
    assert ResumeDraft.objects.count() == 0


def test_the_cli_command_erases_and_reports(surveys):
    expired = consultation_with_responses(surveys, 3, retention_days=7, closed_days_ago=8)
    runner = surveys.app.test_cli_runner()
    result = runner.invoke(args=["erase-expired"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{expired}: 3 responses erased"
    assert Response.objects.count() == 0
    erased = surveys.events(surveys.settings.topics.responses, "response.erased")
    assert len(erased) == 3 and len({e.trace_id for e in erased}) == 1
    again = runner.invoke(args=["erase-expired"])
    assert again.exit_code == 0 and again.output.strip() == "Nothing to erase."


def test_a_consultation_past_its_closing_time_counts_as_closed(surveys):
    cid = consultation_with_responses(surveys, 1, retention_days=3, closed_days_ago=None)
    closes = utcnow() + timedelta(days=1)
    surveys.organiser(
        "PATCH", f"/api/v1/consultations/{cid}", 200, json={"closes_at": closes.isoformat()}
    )
    topic = surveys.settings.topics.responses
    assert erasure.erase_expired(topic, "t", now=closes + timedelta(days=2)) == {}
    assert erasure.erase_expired(topic, "t", now=closes + timedelta(days=3, seconds=1)) == {cid: 1}
