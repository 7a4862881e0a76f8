"""Quotes: only consented free text is offered, excerpts are cut never rewritten, approvals and revocations
are events, withdrawals revoke, erasure deletes, other organisations see nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from services.surveys import erasure, quotes
from services.surveys.models import ApprovedQuote, Consultation, Response
from shared.events import Envelope, utcnow
from tests.unit.surveys.conftest import FULL_ANSWERS

STORY = "Someone who spoke my language."
NO_QUOTES = ["participate", "aggregate_reporting"]


@pytest.fixture
def cid(surveys):
    return surveys.open_consultation()


def answer(surveys, cid, answers=FULL_ANSWERS, purposes=None) -> str:
    """A participant answers; returns their response id."""
    pseudonym = surveys.participant(cid)
    token = surveys.token(pseudonym, cid, **({} if purposes is None else {"purposes": purposes}))
    return surveys.submit(token, answers)["response_id"]


def pseudonym_of(response_id: str) -> str:
    return Response.objects.get(response_id=response_id).pseudonym


def approve(
    surveys, cid, response_id, excerpt, question_id="story", expect=201, organisation_id="org_a"
):
    return surveys.organiser(
        "POST",
        f"/api/v1/consultations/{cid}/quotes",
        expect,
        organisation_id,
        json={"response_id": response_id, "question_id": question_id, "excerpt": excerpt},
    )


def revoke(surveys, cid, quote_id, expect=200, organisation_id="org_a"):
    return surveys.organiser(
        "POST",
        f"/api/v1/consultations/{cid}/quotes/revocations",
        expect,
        organisation_id,
        json={"quote_id": quote_id},
    )


def quote_events(surveys, type_=None):
    events = surveys.events(surveys.settings.topics.responses)
    return [e for e in events if e.type.startswith("quote.") and (type_ is None or e.type == type_)]


def quotable(surveys, cid, query="", expect=200, organisation_id="org_a"):
    return surveys.organiser(
        "GET", f"/api/v1/consultations/{cid}/quotable-answers{query}", expect, organisation_id
    )


# ---------------------------------------------------------------- what is offered


def test_only_free_text_of_participants_with_quote_consent_is_offered(surveys, cid):
    consented = answer(surveys, cid)
    answer(surveys, cid, purposes=NO_QUOTES)  # never granted quotes
    withdrawn = answer(surveys, cid)
    surveys.withdraw(pseudonym_of(withdrawn), cid, purposes=["quote_anonymised"], everything=False)
    answer(surveys, cid, answers={"safe": "yes"})  # consented, but wrote no free text
    erased = answer(surveys, cid)
    surveys.withdraw(pseudonym_of(erased), cid)

    page = quotable(surveys, cid)
    assert (page["total"], page["page"], page["per_page"]) == (1, 1, 20)
    [item] = page["items"]
    assert item["response_id"] == consented and item["survey_version"] == 1
    # In the survey's order, with the words as the participant wrote them (trimmed at intake).
    assert item["answers"] == [
        {"question_id": "story", "text": STORY},
        {"question_id": "health_detail", "text": "A dentist"},
    ]


def test_quotable_answers_come_in_pages(surveys, cid):
    ids = [answer(surveys, cid) for _ in range(3)]
    first = quotable(surveys, cid, "?per_page=2")
    second = quotable(surveys, cid, "?per_page=2&page=2")
    assert (first["total"], second["total"]) == (3, 3)
    assert [i["response_id"] for i in first["items"] + second["items"]] == ids
    assert quotable(surveys, cid, "?per_page=2&page=3")["items"] == []
    quotable(surveys, cid, "?per_page=0", expect=422)
    quotable(surveys, cid, "?page=0", expect=422)
    quotable(surveys, cid, "?per_page=101", expect=422)


# ---------------------------------------------------------------- approving


def test_an_approval_stores_the_quote_and_emits_quote_approved_with_the_excerpt(surveys, cid):
    response_id = answer(surveys, cid)
    quote = approve(surveys, cid, response_id, "spoke my language")
    assert quote["text"] == "spoke my language" and quote["question_id"] == "story"
    assert quote["revoked"] is False and quote["approved_by"] == "u_1"
    [event] = quote_events(surveys)
    assert (event.type, event.key, event.producer) == ("quote.approved", cid, "surveys")
    assert event.payload == {
        "quote_id": quote["quote_id"],
        "consultation_id": cid,
        "pseudonym": pseudonym_of(response_id),
        "question_id": "story",
        "text": "spoke my language",
        "approved_by": "u_1",
        "approved_at": event.payload["approved_at"],
    }
    assert Envelope.parse(event.to_dict()) == event  # it honours the shared contract
    # Stored encrypted, like the answer it comes from.
    assert "spoke my language" not in json.dumps(surveys.snapshot(), default=str)
    listed = surveys.organiser("GET", f"/api/v1/consultations/{cid}/quotes", 200)
    assert [(q["quote_id"], q["text"]) for q in listed] == [
        (quote["quote_id"], "spoke my language")
    ]


def test_the_excerpt_must_be_a_contiguous_part_of_the_answer(surveys, cid, unchanged):
    response_id = answer(surveys, cid)
    with unchanged():
        rewritten = approve(
            surveys, cid, response_id, "Someone who spoke our language.", expect=422
        )
        assert "shorten" in rewritten["detail"] and "excerpt" in rewritten["errors"]
        approve(
            surveys, cid, response_id, "Someone spoke my language.", expect=422
        )  # words taken out inside
        approve(surveys, cid, response_id, "   \n ", expect=422)
        approve(surveys, cid, response_id, "dentist", expect=422)  # in another answer, not this one
        wrong_question = approve(surveys, cid, response_id, "no", question_id="safe", expect=422)
        assert "question_id" in wrong_question["errors"]
        approve(surveys, cid, "r_missing", "spoke", expect=404)
        surveys.organiser(
            "POST",
            f"/api/v1/consultations/{cid}/quotes",
            422,
            json={
                "response_id": response_id,
                "question_id": "story",
                "excerpt": "x",
                "author": "someone",
            },
        )
        surveys.organiser("POST", f"/api/v1/consultations/{cid}/quotes", 422, json={})
    # Whitespace differences do not count; the quote keeps single spaces.
    quote = approve(surveys, cid, response_id, "  who spoke\n   my\tlanguage ")
    assert quote["text"] == "who spoke my language"


def test_no_quote_without_quote_consent(surveys, cid, unchanged):
    never = answer(surveys, cid, purposes=NO_QUOTES)
    withdrew = answer(surveys, cid)
    surveys.withdraw(pseudonym_of(withdrew), cid, purposes=["quote_anonymised"], everything=False)
    with unchanged():
        assert "consent" in approve(surveys, cid, never, "spoke", expect=409)["detail"]
        approve(surveys, cid, withdrew, "spoke", expect=409)
    assert quote_events(surveys) == []


def test_approving_the_same_excerpt_again_gives_the_same_quote(surveys, cid):
    response_id = answer(surveys, cid)
    first = approve(surveys, cid, response_id, "spoke my language")
    again = approve(surveys, cid, response_id, "spoke  my language", expect=200)
    assert again["quote_id"] == first["quote_id"]
    other = approve(
        surveys, cid, response_id, "my language"
    )  # a different cut is a different quote
    assert other["quote_id"] != first["quote_id"]
    assert [e.payload["quote_id"] for e in quote_events(surveys)] == [
        first["quote_id"],
        other["quote_id"],
    ]
    assert ApprovedQuote.objects.count() == 2


# ---------------------------------------------------------------- revoking


def test_revoking_removes_the_text_and_emits_quote_revoked_once(surveys, cid):
    response_id = answer(surveys, cid)
    quote = approve(surveys, cid, response_id, "spoke my language")
    revoked = revoke(surveys, cid, quote["quote_id"])
    assert (revoked["revoked"], revoked["text"], revoked["revoked_by"]) == (True, None, "u_1")
    assert ApprovedQuote.objects.get(quote_id=quote["quote_id"]).excerpt is None
    again = revoke(surveys, cid, quote["quote_id"])
    assert again["revoked_at"] == revoked["revoked_at"]
    [_approved, withdrawn] = quote_events(surveys)
    assert withdrawn.type == "quote.revoked" and withdrawn.key == cid
    assert withdrawn.payload == {
        "quote_id": quote["quote_id"],
        "consultation_id": cid,
        "revoked_by": "u_1",
        "revoked_at": withdrawn.payload["revoked_at"],
    }
    assert Envelope.parse(withdrawn.to_dict()) == withdrawn
    # A revocation is final: the same excerpt cannot come back under the same id.
    assert (
        approve(surveys, cid, response_id, "spoke my language", expect=409)["quote_id"]
        == quote["quote_id"]
    )
    revoke(surveys, cid, "q_missing", expect=404)
    listed = surveys.organiser("GET", f"/api/v1/consultations/{cid}/quotes", 200)
    assert [(q["revoked"], q["text"]) for q in listed] == [(True, None)]


def test_withdrawing_quote_consent_revokes_the_participants_quotes(surveys, cid):
    leaving, staying = answer(surveys, cid), answer(surveys, cid)
    theirs = [
        approve(surveys, cid, leaving, "spoke my language"),
        approve(surveys, cid, leaving, "dentist", question_id="health_detail"),
    ]
    kept = approve(surveys, cid, staying, "my language")

    surveys.withdraw(pseudonym_of(leaving), cid, purposes=["quote_anonymised"], everything=False)

    revocations = quote_events(surveys, "quote.revoked")
    assert sorted(e.payload["quote_id"] for e in revocations) == sorted(
        q["quote_id"] for q in theirs
    )
    assert {e.payload["revoked_by"] for e in revocations} == {"participant"}
    listed = {
        q["quote_id"]: q
        for q in surveys.organiser("GET", f"/api/v1/consultations/{cid}/quotes", 200)
    }
    assert [listed[q["quote_id"]]["revoked"] for q in theirs] == [True, True]
    assert (
        listed[kept["quote_id"]]["text"] == "my language"
        and not listed[kept["quote_id"]]["revoked"]
    )
    assert [i["response_id"] for i in quotable(surveys, cid)["items"]] == [staying]
    # The same withdrawal again: nothing more to revoke.
    surveys.withdraw(pseudonym_of(leaving), cid, purposes=["quote_anonymised"], everything=False)
    assert len(quote_events(surveys, "quote.revoked")) == 2


def test_withdrawing_everything_revokes_and_then_deletes_the_quotes(surveys, cid):
    response_id = answer(surveys, cid)
    pseudonym = pseudonym_of(response_id)
    live = approve(surveys, cid, response_id, "spoke my language")
    earlier = approve(surveys, cid, response_id, "A dentist", question_id="health_detail")
    revoke(surveys, cid, earlier["quote_id"])
    quote_events(surveys)  # relayed so far

    surveys.withdraw(pseudonym, cid)

    assert ApprovedQuote.objects.count() == 0
    assert surveys.organiser("GET", f"/api/v1/consultations/{cid}/quotes", 200) == []
    revocations = quote_events(surveys, "quote.revoked")
    assert [(e.payload["quote_id"], e.payload["revoked_by"]) for e in revocations] == [
        (earlier["quote_id"], "u_1"),
        (live["quote_id"], "participant"),
    ]


def test_a_revocation_not_yet_relayed_still_goes_out_when_the_quote_is_erased(surveys, cid):
    response_id = answer(surveys, cid)
    quote = approve(surveys, cid, response_id, "spoke my language")
    revoke(surveys, cid, quote["quote_id"])  # both events still in the outbox
    surveys.withdraw(pseudonym_of(response_id), cid)
    assert ApprovedQuote.objects.count() == 0
    assert [(e.type, e.payload["quote_id"]) for e in quote_events(surveys)] == [
        ("quote.approved", quote["quote_id"]),
        ("quote.revoked", quote["quote_id"]),
    ]


def test_retention_erasure_revokes_and_deletes_quotes(surveys, cid):
    response_id = answer(surveys, cid)
    quote = approve(surveys, cid, response_id, "spoke my language")
    surveys.organiser("POST", f"/api/v1/consultations/{cid}/status", 200, json={"status": "closed"})
    Consultation.objects(consultation_id=cid).update_one(
        set__closed_at=utcnow() - timedelta(days=400)
    )
    assert erasure.erase_expired(surveys.settings.topics.responses, "trace-retention") == {cid: 1}
    assert ApprovedQuote.objects.count() == 0
    [revoked] = quote_events(surveys, "quote.revoked")
    assert (revoked.payload["quote_id"], revoked.payload["revoked_by"]) == (
        quote["quote_id"],
        "retention",
    )


def test_a_withdrawal_handled_during_an_approval_revokes_it(surveys, cid, monkeypatch):
    """The withdrawal lands after the approval checked consent and before the quote is inserted."""
    response_id = answer(surveys, cid)
    real_id = quotes.quote_id_for

    def id_then_withdrawal(*args):
        surveys.withdraw(
            pseudonym_of(response_id), cid, purposes=["quote_anonymised"], everything=False
        )
        return real_id(*args)

    monkeypatch.setattr(quotes, "quote_id_for", id_then_withdrawal)
    approve(surveys, cid, response_id, "spoke my language", expect=409)
    [quote] = ApprovedQuote.objects
    assert quote.revoked and quote.excerpt is None
    assert [e.type for e in quote_events(surveys)] == ["quote.approved", "quote.revoked"]


# ---------------------------------------------------------------- who may


def test_another_organisation_sees_none_of_it(surveys, cid, unchanged):
    response_id = answer(surveys, cid)
    quote = approve(surveys, cid, response_id, "spoke my language")
    with unchanged():
        quotable(surveys, cid, expect=404, organisation_id="org_b")
        surveys.organiser("GET", f"/api/v1/consultations/{cid}/quotes", 404, "org_b")
        approve(surveys, cid, response_id, "my language", expect=404, organisation_id="org_b")
        revoke(surveys, cid, quote["quote_id"], expect=404, organisation_id="org_b")
    # A quote of one consultation cannot be revoked through another of the same organisation.
    other = surveys.open_consultation()
    revoke(surveys, other, quote["quote_id"], expect=404)
    approve(surveys, other, response_id, "my language", expect=404)


@pytest.mark.parametrize("role", ["admin", "policy", "auditor"])
def test_only_organisers_read_answers_and_approve_quotes(surveys, cid, role):
    response_id = answer(surveys, cid)
    headers = surveys.staff(role=role, organisation_id=None if role == "admin" else "org_a")
    surveys.call("GET", f"/api/v1/consultations/{cid}/quotable-answers", 403, headers=headers)
    surveys.call("GET", f"/api/v1/consultations/{cid}/quotes", 403, headers=headers)
    surveys.call(
        "POST",
        f"/api/v1/consultations/{cid}/quotes",
        403,
        headers=headers,
        json={"response_id": response_id, "question_id": "story", "excerpt": "spoke"},
    )
    surveys.call("GET", f"/api/v1/consultations/{cid}/quotable-answers", 401)
