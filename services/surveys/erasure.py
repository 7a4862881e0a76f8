"""Erasure: what a withdrawal or the end of the retention period removes, and the confirmation
back to the consent ledger (service layer: models, no Flask).

The cascade reaches contact details and quotes; they depend on `participants`, never on this
module, so the dependencies run one way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mongoengine import Q
from mongoengine.errors import NotUniqueError

from services.surveys import contact, quotes, tallies
from services.surveys.consultations import as_utc
from services.surveys.models import (
    Consultation,
    Erasure,
    Participant,
    Response,
    ResumeDraft,
    Withdrawal,
)
from services.surveys.participants import QUOTE_PURPOSE, REQUIRED_PURPOSE
from shared import outbox
from shared.events import Envelope, isoformat, utcnow


def erase_participant(
    pseudonym: str, consultation_id: str, reason: str, topic: str, trace_id: str
) -> int:
    """Shred a participant's key, erase their responses, quotes, saved progress and contact details; returns how many
    responses were erased.

    The key goes first, so every copy of their free text (database, old
    events, backups) is unreadable even if the rest is interrupted.
    Idempotent: each Erasure record (with its response.erased event and the
    quote.revoked events of the response's quotes) is written before its
    response is deleted, so a crash in between is finished by the
    redelivered event.
    """
    Participant.objects(pseudonym=pseudonym).update_one(set__wrapped_key=None)
    ResumeDraft.objects(pseudonym=pseudonym).delete()
    contact.forget(pseudonym)
    erased = 0
    for response in Response.objects(pseudonym=pseudonym, consultation_id=consultation_id):
        _erase_one(response, reason, topic, trace_id)
        erased += 1
    # A quote approved while its response was being erased has no response left to go with.
    quotes.revoke_participant_quotes(pseudonym, consultation_id, topic, trace_id)
    return erased


def _erase_one(response: Response, reason: str, topic: str, trace_id: str) -> None:
    erasure = Erasure(
        response_id=response.response_id,
        consultation_id=response.consultation_id,
        pseudonym=response.pseudonym,
        reason=reason,
    )
    erasure.stage(
        topic,
        Envelope(
            type="response.erased",
            key=response.consultation_id,
            producer="surveys",
            trace_id=trace_id,
            payload={
                "response_id": response.response_id,
                "consultation_id": response.consultation_id,
                "pseudonym": response.pseudonym,
                "reason": reason,
                "erased_at": isoformat(utcnow()),
            },
        ),
    )
    quotes.move_quotes_to_erasure(response.response_id, reason, erasure, topic, trace_id)
    try:
        erasure.save(force_insert=True)
    except NotUniqueError:
        pass  # recorded by an earlier attempt; its events are already staged
    quotes.delete_response_quotes(response.response_id)
    # Noted on the tally before the delete and taken off after it, once: a crash in between is
    # settled by the next view of the progress (tallies.py), since no retry finds the response.
    tallies.expect_erasure(response)
    response.delete()
    tallies.uncount_response(response)


def restrict(
    pseudonym: str, consultation_id: str, withdrawn: list[str], topic: str, trace_id: str
) -> None:
    """Drop withdrawn purposes from a stored response; without quote consent its free text is not quotable
    and its approved quotes are revoked. Without follow_up_contact their contact details are deleted."""
    if contact.CONTACT_PURPOSE in withdrawn:
        contact.forget(pseudonym)
    responses = Response.objects(pseudonym=pseudonym, consultation_id=consultation_id)
    responses.update(pull_all__purposes=withdrawn)
    if QUOTE_PURPOSE in withdrawn:
        responses.update(set__quotable=False)
        quotes.revoke_participant_quotes(pseudonym, consultation_id, topic, trace_id)


def confirm_withdrawal(
    confirmation_id: str, pseudonym: str, consultation_id: str, topic: str, trace_id: str
) -> bool:
    """Stage withdrawal.processed on the tombstone: what is erased now, once per `confirmation_id`.

    `confirmation_id` is the consent.withdrawn event's id (or names a late
    erasure); the conditional write makes a redelivery after a crash add no
    second event. `responses_erased` counts every response of the
    participant erased because of withdrawal, so a later confirmation
    supersedes an earlier one. Returns whether an event was staged.
    """
    participant = Participant.objects(pseudonym=pseudonym).first()
    erased = Erasure.objects(
        pseudonym=pseudonym, consultation_id=consultation_id, reason="withdrawal"
    ).count()
    event = Envelope(
        type="withdrawal.processed",
        key=consultation_id,
        producer="surveys",
        trace_id=trace_id,
        payload={
            "consultation_id": consultation_id,
            "pseudonym": pseudonym,
            "responses_erased": erased,
            # No participant record means no key was ever held here.
            "key_shredded": participant is None or participant.wrapped_key is None,
            "processed_at": isoformat(utcnow()),
        },
    )
    changed = Withdrawal.objects(pseudonym=pseudonym, confirmed__ne=confirmation_id).update_one(
        push__confirmed=confirmation_id,
        push__pending_events={"topic": topic, "envelope": event.to_dict()},
    )
    if changed:
        outbox.remember(Withdrawal, pseudonym)
    return bool(changed)


def apply_withdrawal(payload: dict[str, Any], topic: str, trace_id: str, event_id: str) -> None:
    """consent.withdrawn (event `event_id`): remember it (tombstone) and act on what is stored now.

    All purposes (or participate) -> erase, shred, revoke quotes and confirm
    with withdrawal.processed (also when nothing was stored). Some purposes
    -> they are dropped from the stored response; without quote_anonymised
    its free text stays encrypted but is no longer quotable and its quotes
    are revoked. Works whether the response arrived yet or not, and any
    number of times.
    """
    pseudonym, consultation_id = payload["pseudonym"], payload["consultation_id"]
    # The tombstone is written before responses are looked for (see intake._settle_late_withdrawal).
    Withdrawal.objects(pseudonym=pseudonym).update_one(
        upsert=True,
        set__consultation_id=consultation_id,
        add_to_set__purposes=list(payload["purposes"]),
    )
    everything = payload["all"] or REQUIRED_PURPOSE in payload["purposes"]
    if everything:
        Withdrawal.objects(pseudonym=pseudonym).update_one(set__all=True)
        erase_participant(pseudonym, consultation_id, "withdrawal", topic, trace_id)
        confirm_withdrawal(event_id, pseudonym, consultation_id, topic, trace_id)
    else:
        restrict(pseudonym, consultation_id, list(payload["purposes"]), topic, trace_id)


def ended_at(consultation: Consultation, now: datetime) -> datetime | None:
    """When the consultation stopped taking responses (closed, or past its closing time), or None."""
    closes_at = as_utc(consultation.closes_at)
    if consultation.status == "open":
        return closes_at if closes_at is not None and closes_at <= now else None
    if consultation.status in ("closed", "archived"):
        moments = [m for m in (as_utc(consultation.closed_at), closes_at) if m is not None]
        return min(moments) if moments else None
    return None  # a draft never took any


def erase_expired(topic: str, trace_id: str, now: datetime | None = None) -> dict[str, int]:
    """Erase raw responses of consultations that ended longer ago than their retention period.

    A consultation ends when it is closed or when its closing time passes,
    whichever comes first. Aggregates are kept (the response.erased reason is
    "retention", which downstream tells apart from a withdrawal).
    Participants' keys, saved progress and contact details go too, so nothing readable is
    left. Safe to run again at any time. Returns {consultation_id: responses
    erased} for consultations where something was erased.
    """
    now = now or utcnow()
    report: dict[str, int] = {}
    candidates = Consultation.objects(
        Q(status__in=["closed", "archived"]) | Q(status="open", closes_at__ne=None)
    )
    for consultation in candidates:
        ended = ended_at(consultation, now)
        if ended is None or ended + timedelta(days=consultation.retention_days) > now:
            continue
        cid = consultation.consultation_id
        Participant.objects(consultation_id=cid, wrapped_key__ne=None).update(set__wrapped_key=None)
        ResumeDraft.objects(consultation_id=cid).delete()
        contact.forget_consultation(cid)
        count = 0
        for response in Response.objects(consultation_id=cid):
            _erase_one(response, "retention", topic, trace_id)
            count += 1
        if count:
            report[cid] = count
    return report
