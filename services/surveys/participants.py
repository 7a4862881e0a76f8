"""Participants as the surveys service knows them: admission by consent token, purposes still
granted, and the data key that encrypts their free text (service layer: models, no Flask).

Intake, contact details, quotes and erasure all build on this module; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.surveys import field_crypto
from services.surveys.consultations import (
    SurveysKeys,
    ensure_accepting,
    get_consultation,
    participant_context,
)
from services.surveys.models import Consultation, Participant, Withdrawal
from shared.consent_tokens import verify_consent_token
from shared.errors import Forbidden

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


def fully_withdrawn(withdrawal: Withdrawal | None) -> bool:
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
    # By primary key alone: a lookup that any MongoDB-protocol server answers from its _id index.
    participant = Participant.objects(pseudonym=pseudonym).first()
    if participant is None or participant.consultation_id != consultation_id:
        raise Forbidden("This consent token does not belong to a participant of this consultation.")
    withdrawal = Withdrawal.objects(pseudonym=pseudonym).first()
    if fully_withdrawn(withdrawal):
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


def free_text_aad(response_id: str, question_id: str) -> bytes:
    return f"{response_id}:{question_id}".encode()


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
        qid: field_crypto.decrypt_field(key, token, free_text_aad(response_id, qid))
        for qid, token in ciphertexts.items()
    }
