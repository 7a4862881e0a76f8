"""Grant and withdrawal rules, receipt codes: the consent decisions, as pure functions.

The API view (POST a grant, POST a withdrawal) and any event handler call
these with plain data and store what comes back; nothing here touches
storage, so every rule is tested once, here.

Results carry the event payload exactly as the ``consent.granted`` /
``consent.withdrawn`` contracts define it (``shared.events``), ready for the
outbox and for ``ledger.make_entry``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.consent.ledger import format_timestamp
from shared.errors import ValidationFailed

REQUIRED_PURPOSE = "participate"
COLLECTION_METHODS = ("self", "guardian", "facilitator")
# Relationship only: the ledger and the grant never hold a guardian's name or contact.
GUARDIAN_RELATIONSHIPS = (
    "parent",
    "legal_guardian",
    "foster_carer",
    "kinship_carer",
    "social_worker",
    "support_worker",
    "other_accountable_adult",
)
MAX_AGE = 130

# Crockford base32: no I, L, O, U, so a code read aloud or copied by hand survives.
RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RECEIPT_SYMBOLS = 28  # 28 x 5 bits = 140 bits of entropy
RECEIPT_GROUP = 4
_RECEIPT_SYMBOL_SET = frozenset(RECEIPT_ALPHABET)
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-_.]+")
MIN_PEPPER_BYTES = 16


# ---- consent text ---------------------------------------------------------------


def consent_text_sha256(text: str) -> str:
    """SHA-256 (hex) of the exact consent text shown, as UTF-8, with no normalisation.

    The participant saw these characters; hashing anything else would make
    the record prove a different text.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("a consent text must be a non-empty string")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- grants ---------------------------------------------------------------------


@dataclass(frozen=True)
class GrantDecision:
    """What a valid grant produces.

    ``payload`` is the consent.granted event payload (also the ledger entry
    data); ``guardian_attestation`` is the record to keep with the grant
    when a guardian or accountable adult consented (None otherwise):
    {relationship, attested, participant_assent, under_min_age, min_age}.
    """

    payload: dict[str, Any]
    guardian_attestation: dict[str, Any] | None


def check_purposes(chosen: Sequence[str], offered: Sequence[str]) -> list[str]:
    """The chosen purposes, de-duplicated, in the consultation's order.

    Raises ValidationFailed (errors under "purposes") when a purpose is not
    offered by the consultation or ``participate`` is missing: without it
    nothing may be stored, so there is nothing to consent to.
    """
    if isinstance(chosen, str) or not isinstance(chosen, Sequence):
        raise ValidationFailed(
            "Purposes must be a list.", errors={"purposes": ["Must be a list of purposes."]}
        )
    messages = []
    unknown = [p for p in dict.fromkeys(chosen) if p not in offered]
    if unknown:
        messages.append(f"Not offered by this consultation: {', '.join(map(str, unknown))}.")
    if REQUIRED_PURPOSE not in chosen:
        messages.append(f"'{REQUIRED_PURPOSE}' is required: without it no answer can be kept.")
    if messages:
        raise ValidationFailed(
            "The chosen purposes cannot be accepted.", errors={"purposes": messages}
        )
    chosen_set = set(chosen)
    return [p for p in offered if p in chosen_set]


_BAND_RANGE = re.compile(r"^(\d{1,3})\s*(?:-|\u2013|to)\s*(\d{1,3})$")
_BAND_OPEN = re.compile(r"^(\d{1,3})\s*(\+|plus|and over|or over)$")
_BAND_UNDER = re.compile(r"^(?:under|<|below)\s*[-_ ]?\s*(\d{1,3})$")


def parse_age_band(band: str) -> tuple[int, int]:
    """(lowest, highest) age of a band such as "13-15", "18+", "under 13" or "<16".

    Raises ValidationFailed (errors under "age_band") for anything else.
    """
    text = band.strip().lower() if isinstance(band, str) else ""
    if m := _BAND_RANGE.match(text):
        low, high = int(m.group(1)), int(m.group(2))
        if low <= high <= MAX_AGE:
            return low, high
    elif m := _BAND_OPEN.match(text):
        return int(m.group(1)), MAX_AGE
    elif (m := _BAND_UNDER.match(text)) and int(m.group(1)) > 0:
        return 0, int(m.group(1)) - 1
    raise ValidationFailed(
        "The age band is not recognised.",
        errors={"age_band": ["Use a band like '13-15', '18+' or 'under 13'."]},
    )


def is_under_min_age(
    min_age: int | None, age: int | None = None, age_band: str | None = None
) -> bool | None:
    """Whether the participant may be under ``min_age``: True, False, or None when undeclared.

    A band that straddles the minimum (e.g. "16-19" for 18) counts as under:
    when in doubt, the safeguard applies. Raises ValidationFailed for an
    impossible age or an unreadable band.
    """
    # A declared age or band is checked even without a minimum: bad input is refused, never ignored.
    if age is not None:
        if not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= MAX_AGE:
            raise ValidationFailed(
                "The age is not valid.", errors={"age": [f"Must be a whole number 0-{MAX_AGE}."]}
            )
        return min_age is not None and age < min_age
    if age_band is not None:
        low, _high = parse_age_band(age_band)
        return min_age is not None and low < min_age
    return False if min_age is None else None


def _check_guardian_record(guardian: Any, errors: dict[str, list[str]]) -> str | None:
    if not isinstance(guardian, Mapping):
        errors.setdefault("guardian", []).append(
            "A guardian or accountable adult must confirm: give their relationship and 'attested': true."
        )
        return None
    extra = set(guardian) - {"relationship", "attested"}
    if extra:
        # A name or contact here would become permanent consent evidence.
        errors.setdefault("guardian", []).append(
            f"Only the relationship is recorded, never a name or contact details (remove: {', '.join(sorted(extra))})."
        )
    relationship = guardian.get("relationship")
    if relationship not in GUARDIAN_RELATIONSHIPS:
        errors.setdefault("guardian.relationship", []).append(
            f"Must be one of: {', '.join(GUARDIAN_RELATIONSHIPS)}."
        )
    if guardian.get("attested") is not True:
        errors.setdefault("guardian.attested", []).append(
            "The guardian or accountable adult must confirm they give consent."
        )
    return relationship if relationship in GUARDIAN_RELATIONSHIPS else None


def grant_consent(
    *,
    consultation: Mapping[str, Any],
    pseudonym: str,
    purposes: Sequence[str],
    text: Mapping[str, Any],
    granted_at: datetime | str,
    collection_method: str = "self",
    age: int | None = None,
    age_band: str | None = None,
    guardian: Mapping[str, Any] | None = None,
    participant_assent: bool | None = None,
    grant_id: str | None = None,
) -> GrantDecision:
    """Decide a grant: validate it and return the consent.granted payload (and guardian record).

    ``consultation``: {consultation_id, purposes (offered), min_age (int or
    None), languages (optional)} as carried by consultation.published.
    ``text``: {version, language, body} — the consent text exactly as shown.
    Guardian rule: when the consultation has a ``min_age`` the participant
    declares ``age`` or ``age_band``; if that may be under the minimum (or
    nothing is declared and no guardian consents), the grant must be made
    with collection_method "guardian", a ``guardian`` record
    {relationship, attested: true} (no name) and ``participant_assent``
    True. Every guardian grant records the participant's assent.

    Raises ValidationFailed with ``errors`` keyed by field for every broken rule at once.
    """
    errors: dict[str, list[str]] = {}
    consultation_id = consultation.get("consultation_id")
    if not isinstance(consultation_id, str) or not consultation_id:
        raise ValueError("consultation needs a consultation_id")
    if not isinstance(pseudonym, str) or not pseudonym:
        raise ValueError("a grant needs a pseudonym")

    offered = list(consultation.get("purposes") or ())
    chosen: list[str] = []
    try:
        chosen = check_purposes(purposes, offered)
    except ValidationFailed as exc:
        errors.update(exc.extra["errors"])

    version, language, body = text.get("version"), text.get("language"), text.get("body")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        errors.setdefault("text_version", []).append(
            "The consent text version must be a positive integer."
        )
    languages = consultation.get("languages")
    if not isinstance(language, str) or not language:
        errors.setdefault("language", []).append("The consent text has no language.")
    elif languages and language not in languages:
        errors.setdefault("language", []).append(
            f"This consultation is offered in {', '.join(languages)}."
        )
    if not isinstance(body, str) or not body:
        errors.setdefault("text", []).append("The consent text shown is missing.")

    if collection_method not in COLLECTION_METHODS:
        errors.setdefault("collection_method", []).append(
            f"Must be one of: {', '.join(COLLECTION_METHODS)}."
        )

    min_age = consultation.get("min_age")
    under: bool | None = False
    try:
        under = is_under_min_age(min_age, age, age_band)
    except ValidationFailed as exc:
        errors.update(exc.extra["errors"])

    attestation = None
    if under and collection_method != "guardian":
        errors.setdefault("collection_method", []).append(
            f"This consultation is for people aged {min_age} and over. Under that age, a parent, guardian "
            "or accountable adult must also give consent (collection_method 'guardian')."
        )
    elif under is None and collection_method != "guardian":
        errors.setdefault("age", []).append(
            f"This consultation has a minimum age of {min_age}: please give your age or age band."
        )
    if collection_method == "guardian":
        relationship = _check_guardian_record(guardian, errors)
        if participant_assent is not True:
            errors.setdefault("participant_assent", []).append(
                "The young person's own agreement must be recorded as well as the guardian's."
            )
        attestation = {
            "relationship": relationship,
            "attested": True,
            "participant_assent": True,
            "under_min_age": bool(under) if under is not None else None,
            "min_age": min_age,
        }
    elif guardian is not None:
        errors.setdefault("guardian", []).append(
            "A guardian record only goes with collection_method 'guardian'."
        )

    if errors:
        raise ValidationFailed("The consent could not be recorded.", errors=errors)

    payload = {
        "grant_id": grant_id or str(uuid.uuid4()),
        "pseudonym": pseudonym,
        "consultation_id": consultation_id,
        "purposes": chosen,
        "text_version": version,
        "language": language,
        "text_sha256": consent_text_sha256(str(body)),  # a non-empty str: checked above
        "collection_method": collection_method,
        "guardian": collection_method == "guardian",
        "granted_at": format_timestamp(granted_at),
    }
    return GrantDecision(payload=payload, guardian_attestation=attestation)


# ---- withdrawals ----------------------------------------------------------------


@dataclass(frozen=True)
class WithdrawalDecision:
    """What a withdrawal request produces.

    ``payload`` is the consent.withdrawn event payload, or None when
    everything asked for was already withdrawn (idempotent repeat: store and
    publish nothing). ``withdrawn`` is every purpose withdrawn so far,
    ``remaining`` what is still granted, ``all`` whether participate is gone.
    """

    payload: dict[str, Any] | None
    withdrawn: list[str]
    remaining: list[str]
    all: bool


def current_purposes(
    grant: Mapping[str, Any], withdrawals: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Purposes of ``grant`` (a consent.granted payload) still in force after ``withdrawals``."""
    gone: set[str] = set()
    for withdrawal in withdrawals:
        if withdrawal.get("grant_id") not in (None, grant["grant_id"]):
            raise ValueError("a withdrawal of another grant was passed in")
        gone.update(withdrawal["purposes"])
        if withdrawal.get("all"):
            gone.update(grant["purposes"])
    if REQUIRED_PURPOSE in gone:
        return []
    return [p for p in grant["purposes"] if p not in gone]


def withdraw_consent(
    grant: Mapping[str, Any],
    withdrawals: Sequence[Mapping[str, Any]],
    purposes: Sequence[str] | None,
    withdrawn_at: datetime | str,
) -> WithdrawalDecision:
    """Decide a withdrawal of some purposes (``purposes``) or of everything (None).

    Withdrawing ``participate`` withdraws everything. Asking again for what
    is already withdrawn is not an error: the decision has no payload and
    reports the current state. Raises ValidationFailed (errors under
    "purposes") for an empty list or a purpose this grant never included.
    """
    granted = list(grant["purposes"])
    still = current_purposes(grant, withdrawals)
    if purposes is None:
        requested = set(granted)
    else:
        if isinstance(purposes, str) or not isinstance(purposes, Sequence) or not purposes:
            raise ValidationFailed(
                "Say which purposes to withdraw, or withdraw everything.",
                errors={"purposes": ["Must be a non-empty list, or omitted to withdraw all."]},
            )
        foreign = [p for p in dict.fromkeys(purposes) if p not in granted]
        if foreign:
            raise ValidationFailed(
                "Only purposes given in this grant can be withdrawn.",
                errors={"purposes": [f"Not part of this grant: {', '.join(map(str, foreign))}."]},
            )
        requested = set(purposes)
        if REQUIRED_PURPOSE in requested:
            requested = set(granted)

    now_withdrawn = [p for p in still if p in requested]
    remaining = [p for p in still if p not in requested]
    if REQUIRED_PURPOSE in now_withdrawn:  # defensive: participate gone means nothing remains
        now_withdrawn, remaining = still, []
    withdrawn_total = [p for p in granted if p not in remaining]
    everything = not remaining
    if not now_withdrawn:
        return WithdrawalDecision(
            payload=None, withdrawn=withdrawn_total, remaining=remaining, all=everything
        )
    payload = {
        "grant_id": grant["grant_id"],
        "pseudonym": grant["pseudonym"],
        "consultation_id": grant["consultation_id"],
        "purposes": now_withdrawn,
        "remaining": remaining,
        "all": everything,
        "withdrawn_at": format_timestamp(withdrawn_at),
    }
    return WithdrawalDecision(
        payload=payload, withdrawn=withdrawn_total, remaining=remaining, all=everything
    )


# ---- receipt codes ----------------------------------------------------------------


def new_receipt_code() -> str:
    """A fresh receipt code, 140 random bits from ``secrets``, like "K7QF-9MZX-....".

    Show it to the participant once; store only ``receipt_code_hash(code, pepper)``.
    """
    symbols = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(RECEIPT_SYMBOLS))
    return _group(symbols)


def _group(symbols: str) -> str:
    return "-".join(symbols[i : i + RECEIPT_GROUP] for i in range(0, len(symbols), RECEIPT_GROUP))


def normalise_receipt_code(raw: str) -> str:
    """The canonical grouped form of a typed code: case, spaces and dashes ignored, O->0, I/L->1.

    Raises ValidationFailed (errors under "receipt_code") when it cannot be a receipt code.
    """
    if not isinstance(raw, str):
        raise ValidationFailed(
            "The receipt code is not valid.", errors={"receipt_code": ["Must be text."]}
        )
    symbols = _SEPARATORS.sub("", raw.upper()).translate(_LOOKALIKES)
    if len(symbols) != RECEIPT_SYMBOLS or not set(symbols) <= _RECEIPT_SYMBOL_SET:
        raise ValidationFailed(
            "That does not look like a receipt code; please check it and try again.",
            errors={"receipt_code": [f"A receipt code has {RECEIPT_SYMBOLS} letters and digits."]},
        )
    return _group(symbols)


def _pepper_bytes(pepper: bytes | str) -> bytes:
    key = pepper.encode("utf-8") if isinstance(pepper, str) else bytes(pepper)
    if len(key) < MIN_PEPPER_BYTES:
        raise ValueError(f"the receipt pepper must be at least {MIN_PEPPER_BYTES} bytes")
    return key


def receipt_code_hash(code: str, pepper: bytes | str) -> str:
    """HMAC-SHA256 (hex) of the normalised code under the server-side pepper: the stored lookup key.

    Raises ValidationFailed for a malformed code, ValueError for a short pepper.
    """
    symbols = normalise_receipt_code(code).replace("-", "")
    return hmac.new(_pepper_bytes(pepper), symbols.encode("ascii"), hashlib.sha256).hexdigest()


def receipt_code_matches(code: str, stored_hash: str, pepper: bytes | str) -> bool:
    """Constant-time check of a typed code against a stored hash; False for a malformed code."""
    try:
        candidate = receipt_code_hash(code, pepper)
    except ValidationFailed:
        return False
    return hmac.compare_digest(candidate, stored_hash)
