"""Participants as the surveys service knows them: admission by consent token, purposes still
granted, and the data key that encrypts their free text (service layer: models, no Flask).

Intake, contact details, quotes and erasure all build on this module; it imports none of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import mongoengine

from services.surveys import field_crypto
from services.surveys.consultations import (
    SurveysKeys,
    ensure_accepting,
    participant_context,
)
from services.surveys.models import Consultation, Participant, Withdrawal
from shared.consent_tokens import verify_consent_token
from shared.errors import Forbidden, NotFound

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


StoredDocument = TypeVar("StoredDocument", bound=mongoengine.Document)


def by_key(model: type[StoredDocument], key: str) -> StoredDocument | None:
    """The document stored under primary key `key`, or None: one lookup by `_id`, without the
    query set that `Model.objects(...).first()` builds (a cost paid on every request here)."""
    raw = model._get_collection().find_one({"_id": key})
    return None if raw is None else model._from_son(raw)


# What admission and intake read of a consultation; the published versions come separately.
_ADMITTING_FIELDS = {
    "status": 1,
    "opens_at": 1,
    "closes_at": 1,
    "purposes": 1,
    "organisation_id": 1,
    "versions.number": 1,
}


class PublishedVersions:
    """Published survey versions kept by this process, by consultation and number.

    A published version is an immutable copy (`consultations.publish_version` appends, nothing
    edits one), so a copy read once stays right; which versions exist, and the consultation's
    status and times, are still read on every admission. Bounded: the least recently used
    consultations' versions are read again when needed.
    """

    def __init__(self, max_versions: int = 256) -> None:
        self.max_versions = max_versions
        self._versions: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, consultation_id: str, numbers: list[int]) -> list[dict[str, Any]]:
        """The published versions `numbers` of the consultation, in that order."""
        with self._lock:
            kept = [self._versions.get((consultation_id, n)) for n in numbers]
            for number in numbers:
                if (consultation_id, number) in self._versions:
                    self._versions.move_to_end((consultation_id, number))
        if all(version is not None for version in kept):
            return kept  # type: ignore[return-value]
        raw = Consultation._get_collection().find_one({"_id": consultation_id}, {"versions": 1})
        stored = {v["number"]: v for v in (raw or {}).get("versions") or []}
        with self._lock:
            for number, version in stored.items():
                self._versions[(consultation_id, number)] = version
                self._versions.move_to_end((consultation_id, number))
            while len(self._versions) > self.max_versions:
                self._versions.popitem(last=False)
        return [stored[n] for n in numbers if n in stored]


published_versions = PublishedVersions()


def admitting_consultation(consultation_id: str) -> Consultation:
    """The consultation as admission and intake need it: status, opening and closing times,
    purposes and the published versions (read in full once per process). Not for saving: the
    other fields are left out. Raises NotFound."""
    raw = Consultation._get_collection().find_one({"_id": consultation_id}, _ADMITTING_FIELDS)
    if raw is None:
        raise NotFound("No such consultation.")
    numbers = [v["number"] for v in raw.pop("versions", None) or [] if "number" in v]
    consultation = Consultation._from_son(raw)
    # Assigned after loading: the versions are plain stored dicts, as loading them would give.
    consultation._data["versions"] = published_versions.of(consultation_id, numbers)
    return consultation


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
    participant = by_key(Participant, pseudonym)
    if participant is None or participant.consultation_id != consultation_id:
        raise Forbidden("This consent token does not belong to a participant of this consultation.")
    withdrawal = by_key(Withdrawal, pseudonym)
    if fully_withdrawn(withdrawal):
        raise Forbidden("Consent for this participant was withdrawn; nothing can be stored.")
    consultation = admitting_consultation(consultation_id)
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
