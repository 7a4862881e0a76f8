"""Anonymised quotes: organisers choose excerpts of consented free text; approvals and revocations are events.

Only answers of participants who granted quote_anonymised (and did not
withdraw it) can be quoted. An organiser removes identifying details by
shortening an answer, never by rewriting it: the approved excerpt must be a
contiguous part of the answer once runs of whitespace are made single
spaces. The approval is stored with its quote.approved event in one write
(outbox); the excerpt is kept encrypted under the participant's key, so
shredding that key makes it unreadable here as everywhere else.

quote.approved carries the excerpt in plain text: it is text approved for
publication and the aggregation service has to show it. A revocation (by an
organiser, or by the participant withdrawing quote consent or everything)
emits quote.revoked, which removes it from every store; how long the
approval event itself remains is bounded by the topic's retention.

Service layer: models, no Flask.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from mongoengine.errors import NotUniqueError

from services.surveys import field_crypto, participants
from services.surveys.consultations import SurveysKeys, as_utc
from services.surveys.models import ApprovedQuote, Consultation, Response, Withdrawal
from shared import outbox
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import Envelope, isoformat, utcnow
from shared.questionnaire.definition import questions_by_id

# Who revoked a quote when no organiser did (QuoteRevoked.revoked_by).
REVOKED_BY_PARTICIPANT = "participant"
REVOKED_BY_RETENTION = "retention"
_QUOTE_ID_CONTEXT = b"voices quote id v1\x00"


def normalise_whitespace(text: str) -> str:
    """Every run of whitespace (any Unicode space, tab or line break) as one space, none at the ends."""
    return " ".join(text.split())


def checked_excerpt(answer: str, excerpt: str) -> str:
    """The excerpt, whitespace-normalised, if it is a contiguous part of `answer`.

    Raises ValidationFailed (422) when it is empty or is not found word for
    word in the answer (after whitespace normalisation on both sides).
    """
    wanted = normalise_whitespace(excerpt)
    if not wanted:
        raise ValidationFailed(
            "The excerpt is empty.", errors={"excerpt": ["choose a part of the answer"]}
        )
    if wanted not in normalise_whitespace(answer):
        raise ValidationFailed(
            "The excerpt must be a contiguous part of the participant's answer. Remove identifying details by "
            "shortening the answer (cutting words from its start or end), never by changing or joining words.",
            errors={
                "excerpt": [
                    "not found word for word in the answer (whitespace differences are ignored)"
                ]
            },
        )
    return wanted


def quote_id_for(secret: bytes, response_id: str, question_id: str, excerpt: str) -> str:
    """A stable id for (response, question, normalised excerpt), so approving again finds the same quote.

    Keyed with a server secret: the id that outlives a revocation elsewhere
    (aggregation keeps revoked ids) says nothing about the words.
    """
    message = "\x00".join((response_id, question_id, excerpt)).encode()
    return "q_" + hmac.new(secret, _QUOTE_ID_CONTEXT + message, hashlib.sha256).hexdigest()[:32]


def _excerpt_aad(quote_id: str) -> bytes:
    return f"quote:{quote_id}".encode()


def _quote_consent_withdrawn(pseudonym: str) -> bool:
    withdrawal = Withdrawal.objects(pseudonym=pseudonym).first()
    return withdrawal is not None and (
        withdrawal.all
        or participants.REQUIRED_PURPOSE in withdrawal.purposes
        or participants.QUOTE_PURPOSE in withdrawal.purposes
    )


def _question_order(consultation: Consultation, survey_version: int) -> list[str]:
    for version in consultation.versions:
        if version["number"] == survey_version:
            return list(questions_by_id(version["definition"]))
    return []


# ---- what may be quoted ------------------------------------------------------


def quotable_answers(
    consultation: Consultation, keys: SurveysKeys, page: int, per_page: int
) -> dict[str, Any]:
    """One page of responses whose free text may be quoted, oldest first, with the text of each answer.

    Returns {page, per_page, total, items: [{response_id, survey_version,
    submitted_at, answers: [{question_id, text}]}]}; `total` counts matching
    responses. A response whose key was shredded meanwhile (being erased)
    is left out of its page.
    """
    matching = Response.objects(
        consultation_id=consultation.consultation_id,
        quotable=True,
        purposes=participants.QUOTE_PURPOSE,
        __raw__={"free_text": {"$nin": [{}, None]}},
    )
    total = matching.count()
    items = []
    for response in (
        matching.order_by("submitted_at", "response_id").skip((page - 1) * per_page).limit(per_page)
    ):
        try:
            texts = participants.decrypt_free_text(
                response.pseudonym, response.response_id, response.free_text, keys
            )
        except field_crypto.KeyShredded:
            continue
        order = _question_order(consultation, response.survey_version)
        question_ids = sorted(
            texts, key=lambda qid: (order.index(qid) if qid in order else len(order), qid)
        )
        items.append(
            {
                "response_id": response.response_id,
                "survey_version": response.survey_version,
                "submitted_at": as_utc(response.submitted_at),
                "answers": [{"question_id": qid, "text": texts[qid]} for qid in question_ids],
            }
        )
    return {"page": page, "per_page": per_page, "total": total, "items": items}


# ---- approving -----------------------------------------------------------------


def approve_quote(
    consultation: Consultation,
    response_id: str,
    question_id: str,
    excerpt: str,
    approved_by: str,
    keys: SurveysKeys,
    topic: str,
    trace_id: str,
) -> tuple[ApprovedQuote, bool]:
    """Approve an excerpt of one free-text answer; returns (quote, created).

    The same response, question and excerpt give the same quote (created
    False, nothing emitted again). Raises NotFound (no such response in this
    consultation), Conflict (the participant did not grant quote consent or
    withdrew it; or this quote was revoked, which is final), ValidationFailed
    (the response has no free-text answer to that question; the excerpt is
    not a contiguous part of the answer), Gone (the participant's data was
    erased).
    """
    response = Response.objects(
        response_id=response_id, consultation_id=consultation.consultation_id
    ).first()
    if response is None:
        raise NotFound("No such response in this consultation.")
    if (
        not response.quotable
        or participants.QUOTE_PURPOSE not in response.purposes
        or _quote_consent_withdrawn(response.pseudonym)
    ):
        raise Conflict(
            "This participant has not consented to anonymised quotes, or has withdrawn that consent."
        )
    if question_id not in response.free_text:
        raise ValidationFailed(
            "This response has no free-text answer to that question.",
            errors={
                "question_id": [f"free-text answers of this response: {sorted(response.free_text)}"]
            },
        )
    answer = participants.decrypt_free_text(
        response.pseudonym, response_id, {question_id: response.free_text[question_id]}, keys
    )[question_id]
    text = checked_excerpt(answer, excerpt)
    quote_id = quote_id_for(keys.code_pepper, response_id, question_id, text)
    existing = ApprovedQuote.objects(quote_id=quote_id).first()
    if existing is not None:
        return _same_quote(existing), False

    key = participants.key_of(response.pseudonym, keys)
    now = utcnow()
    quote = ApprovedQuote(
        quote_id=quote_id,
        consultation_id=consultation.consultation_id,
        response_id=response_id,
        pseudonym=response.pseudonym,
        question_id=question_id,
        excerpt=field_crypto.encrypt_field(key, text, _excerpt_aad(quote_id)),
        approved_by=approved_by,
        approved_at=now,
    )
    quote.stage(
        topic,
        Envelope(
            type="quote.approved",
            key=consultation.consultation_id,
            producer="surveys",
            trace_id=trace_id,
            payload={
                "quote_id": quote_id,
                "consultation_id": consultation.consultation_id,
                "pseudonym": response.pseudonym,
                "question_id": question_id,
                "text": text,
                "approved_by": approved_by,
                "approved_at": isoformat(now),
            },
        ),
    )
    try:
        quote.save(force_insert=True)
    except NotUniqueError:  # the same approval, sent twice at once
        return _same_quote(ApprovedQuote.objects.get(quote_id=quote_id)), False
    # A withdrawal handled between our check and our insert did not see this quote: revoke it here
    # (the withdrawal handler writes its tombstone before it looks for quotes).
    if _quote_consent_withdrawn(response.pseudonym):
        revoke(quote, REVOKED_BY_PARTICIPANT, topic, trace_id)
        raise Conflict(
            "This participant has just withdrawn consent to quotes; the approval was revoked."
        )
    return quote, True


def _same_quote(quote: ApprovedQuote) -> ApprovedQuote:
    if quote.revoked:
        raise Conflict(
            "This quote was revoked, and a revocation is final. Choose a different excerpt to "
            "approve a new quote.",
            quote_id=quote.quote_id,
        )
    return quote


# ---- revoking ------------------------------------------------------------------


def revocation_event(
    quote: ApprovedQuote, revoked_by: str, now: datetime, trace_id: str
) -> Envelope:
    return Envelope(
        type="quote.revoked",
        key=quote.consultation_id,
        producer="surveys",
        trace_id=trace_id,
        payload={
            "quote_id": quote.quote_id,
            "consultation_id": quote.consultation_id,
            "revoked_by": revoked_by,
            "revoked_at": isoformat(now),
        },
    )


def revoke(quote: ApprovedQuote, revoked_by: str, topic: str, trace_id: str) -> bool:
    """Revoke one quote: its excerpt is removed and quote.revoked staged, in one conditional write.

    Returns False when it was already revoked (nothing emitted again), so
    concurrent or repeated revocations give exactly one event.
    """
    now = utcnow()
    event = revocation_event(quote, revoked_by, now, trace_id)
    changed = ApprovedQuote.objects(quote_id=quote.quote_id, revoked=False).update_one(
        set__revoked=True,
        set__revoked_by=revoked_by,
        set__revoked_at=now,
        set__excerpt=None,
        push__pending_events={"topic": topic, "envelope": event.to_dict()},
    )
    if changed:
        outbox.remember(ApprovedQuote, quote.pk)
    return bool(changed)


def revoke_quote(
    consultation: Consultation, quote_id: str, revoked_by: str, topic: str, trace_id: str
) -> ApprovedQuote:
    """An organiser revokes a quote of their consultation; revoking again changes nothing. Raises NotFound."""
    quote = ApprovedQuote.objects(
        quote_id=quote_id, consultation_id=consultation.consultation_id
    ).first()
    if quote is None:
        raise NotFound("No such quote in this consultation.")
    revoke(quote, revoked_by, topic, trace_id)
    return ApprovedQuote.objects.get(quote_id=quote_id)


def revoke_participant_quotes(
    pseudonym: str, consultation_id: str, topic: str, trace_id: str
) -> int:
    """The participant withdrew quote consent: revoke each of their live quotes. Returns how many."""
    return sum(
        revoke(quote, REVOKED_BY_PARTICIPANT, topic, trace_id)
        for quote in ApprovedQuote.objects(
            pseudonym=pseudonym, consultation_id=consultation_id, revoked=False
        )
    )


def move_quotes_to_erasure(
    response_id: str, reason: str, erasure: Any, topic: str, trace_id: str
) -> None:
    """Before a response is erased: stage on its Erasure record what its quotes still have to say.

    Live quotes get a quote.revoked; events a quote record has not relayed
    yet go along too, in order, since the record itself is deleted with the
    response (`delete_response_quotes`). At worst an event is published
    twice, which consumers drop by event id.
    """
    revoked_by = REVOKED_BY_PARTICIPANT if reason == "withdrawal" else REVOKED_BY_RETENTION
    now = utcnow()
    for quote in ApprovedQuote.objects(response_id=response_id).order_by("approved_at"):
        erasure.pending_events.extend(quote.pending_events)
        if not quote.revoked:
            erasure.stage(topic, revocation_event(quote, revoked_by, now, trace_id))


def delete_response_quotes(response_id: str) -> None:
    ApprovedQuote.objects(response_id=response_id).delete()


# ---- reading ------------------------------------------------------------------


def _excerpt_text(quote: ApprovedQuote, keys: SurveysKeys) -> str | None:
    """The live excerpt in plain text; None once revoked or once the participant's key was shredded."""
    if quote.excerpt is None:
        return None
    try:
        key = participants.key_of(quote.pseudonym, keys)
    except field_crypto.KeyShredded:
        return None
    return field_crypto.decrypt_field(key, quote.excerpt, _excerpt_aad(quote.quote_id))


def quote_view(quote: ApprovedQuote, keys: SurveysKeys) -> dict[str, Any]:
    """A quote as the organiser API shows it (text None when revoked or erased)."""
    return {
        "quote_id": quote.quote_id,
        "consultation_id": quote.consultation_id,
        "response_id": quote.response_id,
        "question_id": quote.question_id,
        "text": _excerpt_text(quote, keys),
        "approved_by": quote.approved_by,
        "approved_at": as_utc(quote.approved_at),
        "revoked": quote.revoked,
        "revoked_by": quote.revoked_by,
        "revoked_at": as_utc(quote.revoked_at),
    }


def list_quotes(consultation: Consultation, keys: SurveysKeys) -> list[dict[str, Any]]:
    """Every quote of the consultation, revoked ones included (without text), oldest approval first."""
    return [
        quote_view(quote, keys)
        for quote in ApprovedQuote.objects(consultation_id=consultation.consultation_id).order_by(
            "approved_at", "quote_id"
        )
    ]
