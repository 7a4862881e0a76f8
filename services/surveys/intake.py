"""Response intake, erasure on withdrawal, and retention (service layer: models, no Flask)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mongoengine import Q
from mongoengine.errors import NotUniqueError

from services.surveys import answers as answer_rules
from services.surveys import contact, field_crypto, quotes, tallies
from services.surveys.consultations import (
    SurveysKeys,
    as_utc,
    ensure_accepting,
    get_consultation,
    participant_context,
    spend_invitation,
)
from services.surveys.models import (
    Consultation,
    Erasure,
    Participant,
    Response,
    ResumeDraft,
    Withdrawal,
)
from shared import outbox
from shared.consent_tokens import verify_consent_token
from shared.errors import Conflict, Forbidden, ValidationFailed
from shared.events import Envelope, isoformat, utcnow

REQUIRED_PURPOSE = "participate"
QUOTE_PURPOSE = "quote_anonymised"


@dataclass(frozen=True)
class Admission:
    """A participant let in by a valid consent token: who, where, and what they still consent to."""

    claims: dict[str, Any]
    participant: Participant
    consultation: Consultation
    purposes: list[str]  # the token's purposes minus any withdrawal already seen

    @property
    def pseudonym(self) -> str:
        return self.participant.pseudonym

    @property
    def consultation_id(self) -> str:
        return self.consultation.consultation_id


def _fully_withdrawn(withdrawal: Withdrawal | None) -> bool:
    return withdrawal is not None and (withdrawal.all or REQUIRED_PURPOSE in withdrawal.purposes)


def admit(
    token: str,
    keys: SurveysKeys,
    now: datetime | None = None,
    session_consultation: str | None = None,
) -> Admission:
    """Check a consent token and the participant behind it, before anything is read or stored.

    With `session_consultation` (the caller's participant session), the token must be for that
    consultation (Unauthorized otherwise).

    Raises Unauthorized (bad signature, expired, not for surveys, no
    participate purpose), Forbidden (not a participant of the token's
    consultation, or consent withdrawn), Gone/Conflict (consultation not
    taking responses, see `ensure_accepting`).
    """
    claims = verify_consent_token(
        token,
        keys.consent_public_key_pem,
        consultation_id=session_consultation,
        required_purpose=REQUIRED_PURPOSE,
    )
    pseudonym, consultation_id = claims["sub"], claims["cid"]
    participant = Participant.objects(pseudonym=pseudonym, consultation_id=consultation_id).first()
    if participant is None:
        raise Forbidden("This consent token does not belong to a participant of this consultation.")
    withdrawal = Withdrawal.objects(pseudonym=pseudonym).first()
    if _fully_withdrawn(withdrawal):
        raise Forbidden("Consent for this participant was withdrawn; nothing can be stored.")
    consultation = get_consultation(consultation_id)
    ensure_accepting(consultation, now)
    withdrawn = set(withdrawal.purposes) if withdrawal else set()
    purposes = [p for p in claims["purposes"] if p not in withdrawn]
    return Admission(claims, participant, consultation, purposes)


def participant_key(participant: Participant, keys: SurveysKeys) -> bytes:
    """The participant's data key. Raises field_crypto.KeyShredded once it was erased."""
    return field_crypto.unwrap_key(
        keys.key_wrapping_key,
        participant.wrapped_key,
        participant_context(participant.consultation_id),
    )


def key_of(pseudonym: str, keys: SurveysKeys) -> bytes:
    """The data key of the participant behind `pseudonym`. Raises field_crypto.KeyShredded once it
    was erased, also when the participant record itself is gone."""
    participant = Participant.objects(pseudonym=pseudonym).first()
    if participant is None:
        raise field_crypto.KeyShredded()
    return participant_key(participant, keys)


def find_version(consultation: Consultation, number: int | None) -> dict[str, Any]:
    """The published version `number`, or the latest for None. Raises ValidationFailed for an unknown number."""
    if number is None:
        return consultation.current_version
    for version in consultation.versions:
        if version["number"] == number:
            return version
    raise ValidationFailed(
        f"Survey version {number} does not exist for this consultation.",
        errors={
            "survey_version": [
                f"published versions: {[v['number'] for v in consultation.versions]}"
            ]
        },
    )


def _free_text_aad(response_id: str, question_id: str) -> bytes:
    return f"{response_id}:{question_id}".encode()


def submit_response(
    token: str,
    body: dict[str, Any],
    keys: SurveysKeys,
    topic: str,
    trace_id: str,
    session_consultation: str | None = None,
) -> Response:
    """Store one response with its response.submitted event.

    Requires a consent token for this consultation with the participate
    purpose. Free text is stored only encrypted with the participant's key
    and never enters the event. Raises Unauthorized (token), Forbidden
    (consent withdrawn), Gone (consultation not open or past its closing
    time, or the participant's data erased), Conflict (already submitted,
    or before the opening time), ValidationFailed (answers, survey version).
    """
    admission = admit(token, keys, session_consultation=session_consultation)
    pseudonym, consultation_id = admission.pseudonym, admission.consultation_id
    version = find_version(admission.consultation, body.get("survey_version"))
    definition = version["definition"]
    structured = answer_rules.validate_answers(
        definition, body.get("answers") or {}, body.get("declined") or []
    )
    declined = answer_rules.declined_questions(definition, body.get("declined") or [])
    structured, free_text = answer_rules.split_free_text(definition, structured)
    spend_invitation(admission.participant)
    key = participant_key(admission.participant, keys)
    response_id = f"r_{uuid.uuid4().hex}"
    encrypted = {
        qid: field_crypto.encrypt_field(key, text, _free_text_aad(response_id, qid))
        for qid, text in free_text.items()
    }
    purposes = admission.purposes
    now = utcnow()
    response = Response(
        response_id=response_id,
        consultation_id=consultation_id,
        pseudonym=pseudonym,
        survey_version=version["number"],
        grant_id=admission.claims["gid"],
        purposes=purposes,
        answers=structured,
        declined=declined,
        free_text=encrypted,
        quotable=QUOTE_PURPOSE in purposes,
        submitted_at=now,
    )
    response.stage(
        topic,
        Envelope(
            type="response.submitted",
            key=consultation_id,
            producer="surveys",
            trace_id=trace_id,
            payload={
                "response_id": response_id,
                "consultation_id": consultation_id,
                "survey_version": version["number"],
                "pseudonym": pseudonym,
                "grant_id": admission.claims["gid"],
                "purposes": purposes,
                "submitted_at": isoformat(now),
                "answers": structured,
                "declined": declined,
                "free_text_questions": sorted(free_text),
            },
        ),
    )
    try:
        response.save(force_insert=True)
    except NotUniqueError:
        raise Conflict("A response from this participant has already been received.") from None
    tallies.count_response(admission.consultation, response)
    _settle_late_withdrawal(response, topic, trace_id)
    # Submitted: the in-progress copy has done its job.
    ResumeDraft.objects(pseudonym=pseudonym).delete()
    return response


def _settle_late_withdrawal(response: Response, topic: str, trace_id: str) -> None:
    """A withdrawal handled between our check and our insert found no response to act on.

    The handler writes its tombstone before looking for responses and we
    look for tombstones after inserting, so one of the two always sees the
    other; here we finish what the handler could not.
    """
    withdrawal = Withdrawal.objects(pseudonym=response.pseudonym).first()
    if withdrawal is None:
        return
    if _fully_withdrawn(withdrawal):
        erase_participant(
            response.pseudonym, response.consultation_id, "withdrawal", topic, trace_id
        )
        # The withdrawal was confirmed with nothing erased; say again what was erased in the end.
        confirm_withdrawal(
            f"late-response:{response.response_id}",
            response.pseudonym,
            response.consultation_id,
            topic,
            trace_id,
        )
        raise Forbidden("Consent for this participant was withdrawn; nothing was stored.")
    _restrict(
        response.pseudonym, response.consultation_id, list(withdrawal.purposes), topic, trace_id
    )


def decrypt_free_text(
    pseudonym: str, response_id: str, ciphertexts: dict[str, str], keys: SurveysKeys
) -> dict[str, str]:
    """The plaintext of a response's free-text answers (for quotes), {question id: text}.

    `ciphertexts` is Response.free_text, or any saved copy of it. Raises
    field_crypto.KeyShredded once the participant's key was erased (also when
    the participant record is gone), FieldIntegrityError for a tampered value.
    """
    key = key_of(pseudonym, keys)
    return {
        qid: field_crypto.decrypt_field(key, token, _free_text_aad(response_id, qid))
        for qid, token in ciphertexts.items()
    }


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
    response.delete()
    # After the delete: a retry of an interrupted erasure finds the response still there and
    # takes it off the tally then; once deleted, no retry finds it to take it off twice.
    tallies.uncount_response(response)


def _restrict(
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
    # The tombstone is written before responses are looked for (see _settle_late_withdrawal).
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
        _restrict(pseudonym, consultation_id, list(payload["purposes"]), topic, trace_id)


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
