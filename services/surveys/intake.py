"""Response intake, erasure on withdrawal, and retention (service layer: models, no Flask)."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from mongoengine.errors import NotUniqueError

from shared.consent_tokens import verify_consent_token
from services.surveys import answers as answer_rules
from services.surveys import field_crypto
from services.surveys.consultations import SurveysKeys, get_consultation, participant_context
from services.surveys.models import Consultation, Erasure, Participant, Response, Withdrawal
from shared.errors import Conflict, Forbidden, Gone
from shared.events import Envelope, isoformat, utcnow


def _participant_key(participant: Participant, keys: SurveysKeys) -> bytes:
    if not participant.wrapped_key:
        raise Gone("This participant's data has been erased.")
    return field_crypto.unwrap_key(keys.key_wrapping_key, participant.wrapped_key,
                                   participant_context(participant.consultation_id))


def submit_response(token: str, body: dict[str, Any], keys: SurveysKeys, topic: str, trace_id: str) -> Response:
    """Store one response with its response.submitted event.

    Requires a consent token for this consultation with the participate
    purpose. Raises Unauthorized (token), Forbidden (consent withdrawn),
    Gone (consultation not open), Conflict (already submitted), ValidationFailed (answers).
    """
    claims = verify_consent_token(token, keys.consent_public_key_pem, required_purpose="participate")
    pseudonym, consultation_id = claims["sub"], claims["cid"]
    participant = Participant.objects(pseudonym=pseudonym, consultation_id=consultation_id).first()
    if participant is None:
        raise Forbidden("This consent token does not belong to a participant of this consultation.")
    withdrawal = Withdrawal.objects(pseudonym=pseudonym).first()
    if withdrawal is not None and withdrawal.all:
        raise Forbidden("Consent for this participant was withdrawn; nothing can be stored.")
    consultation = get_consultation(consultation_id)
    if consultation.status != "open":
        raise Gone("This consultation is not accepting responses.")
    version = _version(consultation, body.get("survey_version"))
    definition = version["definition"]
    structured = answer_rules.validate_answers(definition, body.get("answers") or {}, body.get("declined") or [])
    declined = answer_rules.declined_questions(definition, body.get("declined") or [])
    structured, free_text = answer_rules.split_free_text(definition, structured)
    key = _participant_key(participant, keys)
    response_id = f"r_{uuid.uuid4().hex}"
    encrypted = {qid: field_crypto.encrypt_field(key, text, f"{response_id}:{qid}".encode())
                 for qid, text in free_text.items()}
    purposes = list(claims["purposes"])
    quotable = "quote_anonymised" in purposes and not (withdrawal and "quote_anonymised" in withdrawal.purposes)
    now = utcnow()
    response = Response(response_id=response_id, consultation_id=consultation_id, pseudonym=pseudonym,
                        survey_version=version["number"], grant_id=claims["gid"], purposes=purposes,
                        answers=structured, declined=declined, free_text=encrypted, quotable=quotable,
                        submitted_at=now)
    response.stage(topic, Envelope(
        type="response.submitted", key=consultation_id, producer="surveys", trace_id=trace_id,
        payload={"response_id": response_id, "consultation_id": consultation_id,
                 "survey_version": version["number"], "pseudonym": pseudonym, "grant_id": claims["gid"],
                 "purposes": purposes, "submitted_at": isoformat(now), "answers": structured,
                 "declined": declined, "free_text_questions": sorted(free_text)}))
    try:
        response.save(force_insert=True)
    except NotUniqueError:
        raise Conflict("A response from this participant has already been received.") from None
    return response


def _version(consultation: Consultation, number: int | None) -> dict[str, Any]:
    if number is None:
        return consultation.current_version
    for version in consultation.versions:
        if version["number"] == number:
            return version
    raise Conflict(f"Survey version {number} does not exist for this consultation.")


def erase_participant(pseudonym: str, consultation_id: str, reason: str, topic: str, trace_id: str) -> int:
    """Erase a participant's responses and shred their key; returns how many responses were erased.

    Idempotent: the Erasure record (with its response.erased event) is written
    before the response is deleted, so a crash in between is finished by the
    redelivered event.
    """
    erased = 0
    for response in Response.objects(pseudonym=pseudonym, consultation_id=consultation_id):
        _erase_one(response, reason, topic, trace_id)
        erased += 1
    Participant.objects(pseudonym=pseudonym).update_one(set__wrapped_key=None)
    return erased


def _erase_one(response: Response, reason: str, topic: str, trace_id: str) -> None:
    erasure = Erasure(response_id=response.response_id, consultation_id=response.consultation_id,
                      pseudonym=response.pseudonym, reason=reason)
    erasure.stage(topic, Envelope(
        type="response.erased", key=response.consultation_id, producer="surveys", trace_id=trace_id,
        payload={"response_id": response.response_id, "consultation_id": response.consultation_id,
                 "pseudonym": response.pseudonym, "reason": reason, "erased_at": isoformat(utcnow())}))
    try:
        erasure.save(force_insert=True)
    except NotUniqueError:
        pass  # recorded by an earlier attempt; its event is already staged
    response.delete()


def apply_withdrawal(payload: dict[str, Any], topic: str, trace_id: str) -> None:
    """consent.withdrawn: remember it (tombstone) and act on what is stored now.

    All purposes -> erase and shred. quote_anonymised alone -> free text stays
    but is no longer quotable. Works whether the response arrived yet or not.
    """
    pseudonym, consultation_id = payload["pseudonym"], payload["consultation_id"]
    Withdrawal.objects(pseudonym=pseudonym).update_one(
        upsert=True, set__consultation_id=consultation_id, add_to_set__purposes=payload["purposes"])
    if payload["all"]:
        Withdrawal.objects(pseudonym=pseudonym).update_one(set__all=True)
    if payload["all"]:
        erase_participant(pseudonym, consultation_id, "withdrawal", topic, trace_id)
    elif "quote_anonymised" in payload["purposes"]:
        Response.objects(pseudonym=pseudonym).update(set__quotable=False)


def erase_expired(now=None, topic: str = "", trace_id: str = "") -> dict[str, int]:
    """Erase raw responses of consultations closed longer ago than their retention period.

    Aggregates are kept (the response.erased reason is "retention"). Returns
    {consultation_id: responses erased}.
    """
    now = now or utcnow()
    report: dict[str, int] = {}
    for consultation in Consultation.objects(status__in=["closed", "archived"], closed_at__ne=None):
        closed_at = consultation.closed_at
        if closed_at.tzinfo is None:
            closed_at = closed_at.replace(tzinfo=now.tzinfo)
        if closed_at + timedelta(days=consultation.retention_days) > now:
            continue
        count = 0
        for response in Response.objects(consultation_id=consultation.consultation_id):
            _erase_one(response, "retention", topic, trace_id)
            count += 1
        report[consultation.consultation_id] = count
    return report
