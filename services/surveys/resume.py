"""Save and resume: an in-progress response kept on the server under a resume code.

Nothing sensitive has to stay on the participant's device: the partial
answers, their position and their consent token are sealed with the
participant's key and stored under the HMAC of a resume code that is shown
once. The draft expires after a set time and is gone once the response is
submitted or the participant withdraws (their key is shredded then too).
(Service layer: models, no Flask.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mongoengine.errors import NotUniqueError

from services.surveys import codes, field_crypto
from services.surveys.consultations import (
    SurveysKeys,
    as_utc,
    ensure_accepting,
    get_consultation,
)
from services.surveys.intake import find_version
from services.surveys.invitations import spend_invitation
from services.surveys.models import Participant, ResumeDraft, Withdrawal
from services.surveys.participants import admit, participant_key
from shared.consent_tokens import verify_consent_token
from shared.errors import Conflict, Gone, NotFound, Unauthorized, ValidationFailed
from shared.events import isoformat, utcnow
from shared.questionnaire import answers as answer_rules
from shared.throttle import AtMostEvery

DEFAULT_TTL = timedelta(hours=72)
# Saves delete the drafts that expired, once a minute per process: reads check expiry anyway.
expired_drafts_purge = AtMostEvery(60.0)


@dataclass(frozen=True)
class SavedProgress:
    resume_code: str  # shown once; only its hash is stored
    expires_at: datetime


def _aad(consultation_id: str, pseudonym: str) -> bytes:
    return f"resume:{consultation_id}:{pseudonym}".encode()


def save_progress(
    token: str,
    body: dict[str, Any],
    keys: SurveysKeys,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
    session_consultation: str | None = None,
) -> SavedProgress:
    """Keep a participant's partial answers on the server; returns a new resume code and its expiry.

    The answers are checked like a submission (anything may be left out),
    except that answers to questions now hidden by skip logic are dropped.
    Saving again replaces the draft and issues a new code; the old one stops
    working. Raises what `intake.admit` raises, and ValidationFailed for
    answers that do not fit, an unknown survey version or section.
    """
    now = now or utcnow()
    admission = admit(token, keys, now, session_consultation)
    version = find_version(admission.consultation, body.get("survey_version"))
    definition = version["definition"]
    answers, declined = body.get("answers") or {}, body.get("declined") or []
    if isinstance(answers, dict) and isinstance(declined, list):
        # Answers that an earlier change made irrelevant are forgotten, not refused: this is work in progress.
        answers, declined = answer_rules.drop_hidden(definition, answers, declined)
    answer_rules.validate_answers(definition, answers, declined)
    section = body.get("section_id")
    if section is not None and section not in {s["id"] for s in definition["sections"]}:
        raise ValidationFailed(
            "The survey has no such section.",
            errors={"section_id": [f"unknown section {section!r}"]},
        )
    spend_invitation(admission.participant)
    key = participant_key(admission.participant, keys)
    sealed = field_crypto.encrypt_field(
        key,
        json.dumps(
            {
                "survey_version": version["number"],
                "answers": answers,
                "declined": answer_rules.declined_questions(definition, declined),
                "section_id": section,
                "consent_token": token,
                "receipt_code": body.get("receipt_code"),
            },
            ensure_ascii=False,
        ),
        _aad(admission.consultation_id, admission.pseudonym),
    )
    code = codes.new_resume_code()
    expires_at = now + ttl
    fields = {
        "set__code_hash": codes.hash_code(codes.CodeKind.RESUME, code, keys.code_pepper),
        "set__consultation_id": admission.consultation_id,
        "set__ciphertext": sealed,
        "set__saved_at": now,
        "set__expires_at": expires_at,
    }
    if expired_drafts_purge.due():
        ResumeDraft.objects(expires_at__lte=now).delete()
    if admission.participant.has_draft is not True:
        # Before the draft: a flag without a draft costs a look at submission, the reverse would
        # leave a draft behind it.
        Participant.objects(pseudonym=admission.pseudonym).update_one(set__has_draft=True)
    # One draft per participant, replaced in a single atomic upsert (keyed by pseudonym).
    try:
        ResumeDraft.objects(pseudonym=admission.pseudonym).update_one(upsert=True, **fields)
    except NotUniqueError:  # a concurrent first save of the same participant won the insert
        if not ResumeDraft.objects(pseudonym=admission.pseudonym).update_one(**fields):
            raise Conflict(
                "Your progress was being saved twice at once; please save again."
            ) from None
    return SavedProgress(code, expires_at)


def resume_progress(
    code: str,
    keys: SurveysKeys,
    now: datetime | None = None,
    session_consultation: str | None = None,
) -> dict[str, Any]:
    """What a participant needs to continue: consultation, pseudonym, version, answers so far, consent.

    `consent_token` is returned while it is still valid; after it expired it
    is None (`consent_token_valid` False) and a fresh token for the same
    pseudonym is needed before submitting. Raises ValidationFailed for something that
    is not a code (a typo), NotFound for an unknown code, Gone when the draft
    expired, the participant's data was erased, or the consultation no longer
    takes responses.
    """
    now = now or utcnow()
    digest = codes.hash_code(codes.CodeKind.RESUME, code, keys.code_pepper)
    draft = ResumeDraft.objects(code_hash=digest).first()
    # Another consultation's code answers like an unknown one: a session cannot probe codes elsewhere.
    if draft is None or session_consultation not in (None, draft.consultation_id):
        raise NotFound(
            "This resume code is not valid. Codes stop working when progress is saved again."
        )
    expires_at = as_utc(draft.expires_at)  # required: a stored draft always has one
    if expires_at is None or expires_at <= now:
        # The TTL index removes it soon anyway; do not wait for it.
        ResumeDraft.objects(code_hash=digest).delete()
        raise Gone("This saved progress has expired; please start again.")
    consultation = get_consultation(draft.consultation_id)
    ensure_accepting(consultation, now)
    participant = Participant.objects(pseudonym=draft.pseudonym).first()
    if participant is None:
        raise field_crypto.KeyShredded()
    key = participant_key(participant, keys)
    saved = json.loads(
        field_crypto.decrypt_field(
            key, draft.ciphertext, _aad(draft.consultation_id, draft.pseudonym)
        )
    )
    token = saved.pop("consent_token")
    try:
        claims = verify_consent_token(
            token, keys.consent_public_key_pem, required_purpose="participate", now=now.timestamp()
        )
    except Unauthorized:
        claims, token = None, None
    withdrawal = Withdrawal.objects(pseudonym=draft.pseudonym).first()
    withdrawn = set(withdrawal.purposes) if withdrawal else set()
    version = find_version(consultation, saved["survey_version"])
    return {
        **saved,
        "consultation_id": draft.consultation_id,
        "pseudonym": draft.pseudonym,
        "title": consultation.title,
        "titles": consultation.titles,
        "descriptions": consultation.descriptions,
        "languages": list(consultation.languages),
        "purposes": list(consultation.purposes),
        "min_age": consultation.min_age,
        "survey": version["definition"],
        "consent_token": token,
        "consent_token_valid": token is not None,
        "consent_expires_at": isoformat(datetime.fromtimestamp(claims["exp"], tz=UTC))
        if claims
        else None,
        "granted_purposes": [p for p in claims["purposes"] if p not in withdrawn]
        if claims
        else None,
        "expires_at": isoformat(expires_at),
    }
