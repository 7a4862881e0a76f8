"""Withdrawal handling: erasure, key shredding, tombstones, in any order and any number of times."""

from __future__ import annotations

import json

import pytest

from services.surveys import erasure, field_crypto, participants
from services.surveys.handlers import HANDLERS
from services.surveys.models import Erasure, Participant, Response, ResumeDraft, Withdrawal
from tests.unit.surveys.conftest import FULL_ANSWERS, withdraw_during_intake

STORY = "Someone who spoke my language."


@pytest.fixture
def open_cid(surveys):
    return surveys.open_consultation()


def keys(surveys):
    return surveys.runtime.context.keys


def erased_events(surveys):
    return surveys.events(surveys.settings.topics.responses, "response.erased")


def test_the_handler_table_listens_for_withdrawals_and_published_consent_texts():
    assert set(HANDLERS) == {"consent.withdrawn", "consent_text.published"}


def test_withdrawal_after_submission_erases_the_response_and_shreds_the_key(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    receipt = surveys.submit(surveys.token(pseudonym, open_cid), FULL_ANSWERS)
    stored = Response.objects.get(response_id=receipt["response_id"])
    saved_copy = dict(stored.free_text)  # e.g. in a backup
    assert (
        participants.decrypt_free_text(pseudonym, stored.response_id, saved_copy, keys(surveys))[
            "story"
        ]
        == STORY
    )
    [submitted] = surveys.events(surveys.settings.topics.responses, "response.submitted")

    surveys.withdraw(pseudonym, open_cid)

    assert Response.objects.count() == 0
    assert Participant.objects.get(pseudonym=pseudonym).wrapped_key is None
    with pytest.raises(field_crypto.KeyShredded):
        participants.decrypt_free_text(pseudonym, stored.response_id, saved_copy, keys(surveys))
    [erasure] = Erasure.objects
    assert (erasure.response_id, erasure.reason) == (receipt["response_id"], "withdrawal")
    [erased] = erased_events(surveys)
    assert (
        erased.payload["response_id"] == receipt["response_id"]
        and erased.payload["reason"] == "withdrawal"
    )
    assert erased.key == open_cid
    # What went out before the withdrawal never held the words.
    assert STORY not in json.dumps(submitted.to_dict()) and "A dentist" not in json.dumps(
        submitted.to_dict()
    )


def test_withdrawal_before_submission_leaves_nothing_to_store(surveys, unchanged, open_cid):
    pseudonym = surveys.participant(open_cid)
    token = surveys.token(pseudonym, open_cid)
    code = surveys.call(
        "POST",
        "/api/v1/resume",
        201,
        json={"consent_token": token, "answers": {"safe": "no", "story": STORY}},
    )["resume_code"]
    draft = ResumeDraft.objects.get(pseudonym=pseudonym)
    saved_copy = draft.ciphertext  # progress saved before withdrawing
    participant = Participant.objects.get(pseudonym=pseudonym)
    aad = f"resume:{open_cid}:{pseudonym}".encode()
    assert STORY in field_crypto.decrypt_field(
        participants.participant_key(participant, keys(surveys)), saved_copy, aad
    )

    surveys.withdraw(pseudonym, open_cid)  # arrives before the response

    with unchanged():
        surveys.submit(token, {"safe": "no", "story": STORY}, expect=403)
        surveys.call("POST", "/api/v1/resume/lookup", 404, json={"resume_code": code})
    assert Response.objects.count() == 0 and ResumeDraft.objects.count() == 0
    with pytest.raises(field_crypto.KeyShredded):
        participants.participant_key(Participant.objects.get(pseudonym=pseudonym), keys(surveys))
    assert Withdrawal.objects.get(pseudonym=pseudonym).all is True
    assert erased_events(surveys) == []  # nothing was stored, so nothing was erased
    assert surveys.events(surveys.settings.topics.responses, "response.submitted") == []


def test_a_withdrawal_handled_while_a_response_is_on_its_way_still_wins(
    surveys, open_cid, monkeypatch
):
    """The withdrawal lands after intake checked for it and before the response is inserted."""
    pseudonym = surveys.participant(open_cid)
    token = surveys.token(pseudonym, open_cid)
    withdraw_during_intake(surveys, monkeypatch, pseudonym, open_cid)
    surveys.submit(token, FULL_ANSWERS, expect=403)
    assert Response.objects.count() == 0
    assert Participant.objects.get(pseudonym=pseudonym).wrapped_key is None
    assert [e.payload["reason"] for e in erased_events(surveys)] == ["withdrawal"]
    assert surveys.events(surveys.settings.topics.responses, "response.submitted") == []


def test_the_same_withdrawal_twice_changes_nothing_more(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    surveys.submit(surveys.token(pseudonym, open_cid), FULL_ANSWERS)
    first = surveys.withdraw(pseudonym, open_cid)
    surveys.relay()
    after_first = surveys.snapshot()
    # Redelivered as a new event (the dispatcher drops a repeat of the same id on its own).
    surveys.withdraw(pseudonym, open_cid)
    surveys.bus.publish(surveys.settings.topics.consent, first)
    surveys.bus.deliver()
    surveys.relay()
    after = surveys.snapshot()
    for snapshot in (after_first, after):
        snapshot.pop("processed_events")
        # The tombstone remembers which withdrawal events it confirmed (checked below).
        [tombstone] = snapshot["withdrawals"]
        tombstone.pop("confirmed")
    assert after == after_first
    assert len(erased_events(surveys)) == 1
    # Each withdrawal event is confirmed once; the erasure is not repeated, its count stays.
    processed = surveys.events(surveys.settings.topics.responses, "withdrawal.processed")
    assert [p.payload["responses_erased"] for p in processed] == [1, 1]


def test_an_interrupted_erasure_is_finished_by_the_redelivered_event(
    surveys, open_cid, monkeypatch
):
    pseudonym = surveys.participant(open_cid)
    surveys.submit(surveys.token(pseudonym, open_cid), FULL_ANSWERS)

    def crash(self, *args, **kwargs):
        raise RuntimeError("process killed")

    with monkeypatch.context() as patch:
        patch.setattr(Response, "delete", crash)
        with pytest.raises(RuntimeError):
            erasure.apply_withdrawal(
                {
                    "pseudonym": pseudonym,
                    "consultation_id": open_cid,
                    "purposes": ["participate"],
                    "all": True,
                },
                "responses.events",
                "t1",
                "e-interrupted",
            )
    assert (
        Response.objects.count() == 1 and Erasure.objects.count() == 1
    )  # erasure recorded, response not yet gone
    assert (
        Participant.objects.get(pseudonym=pseudonym).wrapped_key is None
    )  # but already unreadable
    surveys.withdraw(pseudonym, open_cid)
    assert Response.objects.count() == 0 and Erasure.objects.count() == 1
    assert len(erased_events(surveys)) == 1


def test_withdrawing_quote_consent_only_keeps_the_response_but_not_as_a_quote(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    receipt = surveys.submit(surveys.token(pseudonym, open_cid), FULL_ANSWERS)
    surveys.withdraw(pseudonym, open_cid, purposes=["quote_anonymised"], everything=False)
    stored = Response.objects.get(response_id=receipt["response_id"])
    assert stored.quotable is False
    assert stored.purposes == ["participate", "aggregate_reporting"]
    assert (
        participants.decrypt_free_text(
            pseudonym, stored.response_id, stored.free_text, keys(surveys)
        )["story"]
        == STORY
    )
    assert Erasure.objects.count() == 0 and erased_events(surveys) == []


def test_a_partial_withdrawal_seen_before_the_response_narrows_what_it_may_be_used_for(
    surveys, open_cid
):
    pseudonym = surveys.participant(open_cid)
    surveys.withdraw(
        pseudonym, open_cid, purposes=["aggregate_reporting", "quote_anonymised"], everything=False
    )
    receipt = surveys.submit(
        surveys.token(pseudonym, open_cid), FULL_ANSWERS
    )  # the token predates the withdrawal
    stored = Response.objects.get(response_id=receipt["response_id"])
    assert stored.purposes == ["participate"] and stored.quotable is False
    [submitted] = surveys.events(surveys.settings.topics.responses, "response.submitted")
    assert submitted.payload["purposes"] == ["participate"]


def test_withdrawing_participate_alone_withdraws_everything(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    surveys.submit(surveys.token(pseudonym, open_cid), {"safe": "yes"})
    surveys.withdraw(pseudonym, open_cid, purposes=["participate"], everything=False)
    assert Response.objects.count() == 0
    assert Participant.objects.get(pseudonym=pseudonym).wrapped_key is None


def test_one_participants_withdrawal_touches_no_one_else(surveys, open_cid):
    leaving, staying = surveys.participant(open_cid), surveys.participant(open_cid)
    for pseudonym in (leaving, staying):
        surveys.submit(surveys.token(pseudonym, open_cid), FULL_ANSWERS)
    surveys.withdraw(leaving, open_cid)
    [kept] = Response.objects
    assert kept.pseudonym == staying and kept.quotable is True
    assert (
        participants.decrypt_free_text(staying, kept.response_id, kept.free_text, keys(surveys))[
            "story"
        ]
        == STORY
    )
