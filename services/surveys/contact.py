"""Follow-up contact details: left by participants who consented to be contacted, kept only while they do.

The details are sealed under the participant's key (field_crypto), so
erasing the key (withdrawal, retention) makes every copy unreadable, and
the record itself is deleted as well. No event ever carries them. Each
organiser read is recorded as a ContactAccess with a contacts.accessed
event (reader, count, time; never the details), which the consent service
appends to its ledger for auditors.

Service layer: models, no Flask.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from services.surveys import field_crypto, participants
from services.surveys.consultations import SurveysKeys, as_utc
from services.surveys.models import (
    Consultation,
    ContactAccess,
    FollowUpContact,
    Participant,
    Withdrawal,
)
from shared.consent_tokens import verify_consent_token
from shared.errors import Forbidden
from shared.events import Envelope, isoformat, utcnow

CONTACT_PURPOSE = "follow_up_contact"
_DETAILS = ("method", "value", "best_time", "safe_to_leave_message")


def _aad(pseudonym: str) -> bytes:
    return f"contact:{pseudonym}".encode()


def contact_withdrawn(withdrawal: Withdrawal | None) -> bool:
    """Whether this tombstone takes away consent to be contacted (directly, or by withdrawing everything)."""
    return withdrawal is not None and (
        withdrawal.all
        or participants.REQUIRED_PURPOSE in withdrawal.purposes
        or CONTACT_PURPOSE in withdrawal.purposes
    )


def save_contact(
    token: str, details: dict[str, Any], keys: SurveysKeys, session_consultation: str | None = None
) -> FollowUpContact:
    """Store (or replace) the participant's contact details, sealed under their key.

    Raises what `participants.admit` raises (token, withdrawn participant,
    consultation not taking part), Forbidden when the token lacks
    follow_up_contact or it was withdrawn, Gone when the key was erased.
    """
    admission = participants.admit(token, keys, session_consultation=session_consultation)
    if (
        CONTACT_PURPOSE not in admission.purposes
        or CONTACT_PURPOSE not in admission.consultation.purposes
    ):
        raise Forbidden(
            "Leaving contact details needs consent to be contacted again (follow_up_contact)."
        )
    pseudonym = admission.pseudonym
    key = participants.participant_key(admission.participant, keys)
    sealed = field_crypto.encrypt_field(
        key, json.dumps({k: details.get(k) for k in _DETAILS}), _aad(pseudonym)
    )
    now = utcnow()
    FollowUpContact.objects(pseudonym=pseudonym).update_one(
        upsert=True,
        set__consultation_id=admission.consultation_id,
        set__ciphertext=sealed,
        set__given_at=now,
    )
    # A withdrawal handled between our check and our write did not see this record (its tombstone is
    # written before it deletes), so look again now.
    if contact_withdrawn(Withdrawal.objects(pseudonym=pseudonym).first()):
        forget(pseudonym)
        raise Forbidden("Consent to be contacted was withdrawn; the contact details were not kept.")
    return FollowUpContact.objects.get(pseudonym=pseudonym)


def delete_contact(token: str, keys: SurveysKeys, session_consultation: str | None = None) -> None:
    """The participant removes their contact details; idempotent, also after a withdrawal or once closed.

    Raises Unauthorized for a bad token, Forbidden when the token's
    pseudonym is not a participant of its consultation.
    """
    claims = verify_consent_token(
        token,
        keys.consent_public_key_pem,
        consultation_id=session_consultation,
        required_purpose=participants.REQUIRED_PURPOSE,
    )
    if Participant.objects(pseudonym=claims["sub"], consultation_id=claims["cid"]).first() is None:
        raise Forbidden("This consent token does not belong to a participant of this consultation.")
    forget(claims["sub"])


def forget(pseudonym: str) -> None:
    """Delete a participant's contact details (withdrawal, erasure); nothing to delete is fine."""
    FollowUpContact.objects(pseudonym=pseudonym).delete()


def forget_consultation(consultation_id: str) -> int:
    """Delete every contact record of a consultation (retention); returns how many."""
    return FollowUpContact.objects(consultation_id=consultation_id).delete()


def _opened(record: FollowUpContact, keys: SurveysKeys) -> dict[str, Any] | None:
    try:
        key = participants.key_of(record.pseudonym, keys)
    except field_crypto.KeyShredded:
        return None  # being erased
    details = json.loads(field_crypto.decrypt_field(key, record.ciphertext, _aad(record.pseudonym)))
    return {"pseudonym": record.pseudonym, **details, "given_at": as_utc(record.given_at)}


def read_contacts(
    consultation: Consultation,
    reader: str,
    keys: SurveysKeys,
    page: int,
    per_page: int,
    topic: str,
    trace_id: str,
) -> dict[str, Any]:
    """One page of decrypted contact details, oldest first, and a ContactAccess with its contacts.accessed.

    Returns {page, per_page, total, items}. The access is recorded (with
    how many were shown) before the details are returned, also when the
    page is empty, so every read is on the ledger.
    """
    matching = FollowUpContact.objects(consultation_id=consultation.consultation_id)
    total = matching.count()
    items = [
        item
        for item in (
            _opened(record, keys)
            for record in matching.order_by("given_at", "pseudonym")
            .skip((page - 1) * per_page)
            .limit(per_page)
        )
        if item is not None
    ]
    now = utcnow()
    access = ContactAccess(
        access_id=f"ca_{uuid.uuid4().hex}",
        consultation_id=consultation.consultation_id,
        organisation_id=consultation.organisation_id,
        accessed_by=reader,
        count=len(items),
        accessed_at=now,
    )
    access.stage(
        topic,
        Envelope(
            type="contacts.accessed",
            key=consultation.consultation_id,
            producer="surveys",
            trace_id=trace_id,
            payload={
                "consultation_id": consultation.consultation_id,
                "organisation_id": consultation.organisation_id,
                "accessed_by": reader,
                "count": len(items),
                "accessed_at": isoformat(now),
            },
        ),
    )
    access.save(force_insert=True)
    return {"page": page, "per_page": per_page, "total": total, "items": items}
