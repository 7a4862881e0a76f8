"""Consent texts, grants, receipts and withdrawals in MongoDB (service layer: models, no Flask)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from mongoengine.errors import NotUniqueError

from services.consent import grants, ledger, receipts, tokens
from services.consent.models import ConsentText, ConsultationPolicy, Grant
from shared import outbox
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import Envelope, isoformat


def _now() -> datetime:
    return datetime.now(UTC)


def _now_ms() -> datetime:
    # MongoDB keeps datetimes to the millisecond: a grant time with microseconds would read back
    # different from the consent.granted event and ledger entry that carry it.
    now = _now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def known_consultation(
    consultation_id: str, organisation_id: str | None = None
) -> ConsultationPolicy:
    """The consultation as consent knows it; another organisation's looks missing. Raises NotFound."""
    policy = ConsultationPolicy.objects(consultation_id=consultation_id).first()
    if policy is None or (
        organisation_id is not None and policy.organisation_id != organisation_id
    ):
        raise NotFound("No such consultation.")
    return policy


def await_consultation(
    consultation_id: str, organisation_id: str, wait_s: float
) -> ConsultationPolicy:
    """Like `known_consultation`, but a consultation created a moment ago is waited for, up to `wait_s`
    seconds: consent learns of it from an event, typically within a second. Raises NotFound after
    the wait, the same wait for a missing consultation as for another organisation's."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return known_consultation(consultation_id, organisation_id)
        except NotFound:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def consultations_of(organisation_id: str | None) -> frozenset[str]:
    """Ids of the consultations consent knows for one organisation (none for no organisation)."""
    if not organisation_id:
        return frozenset()
    return frozenset(
        ConsultationPolicy.objects(organisation_id=organisation_id).scalar("consultation_id")
    )


# ---- texts --------------------------------------------------------------------


def save_text(policy: ConsultationPolicy, data: dict[str, Any]) -> ConsentText:
    """Create or replace the draft of one language of a text version.

    Without a version, the draft goes to the version after the latest
    published one. Raises ValidationFailed (language not offered, purposes
    not explained exactly), Conflict (the version is published, wholly or in
    another language: published versions never change, not even by a new
    language; or the text was published while this edit was saved).
    """
    if data["language"] not in policy.languages:
        raise ValidationFailed(
            "This consultation is not offered in that language.",
            errors={"language": [f"offered: {', '.join(policy.languages)}"]},
        )
    unknown = set(data["purposes"]) - set(policy.purposes)
    missing = set(policy.purposes) - set(data["purposes"])
    if unknown or missing:
        raise ValidationFailed(
            "Explain exactly the purposes the consultation offers.",
            errors={
                "purposes": [
                    *(f"not offered: {p}" for p in sorted(unknown)),
                    *(f"missing explanation: {p}" for p in sorted(missing)),
                ]
            },
        )
    latest_published = (
        ConsentText.objects(consultation_id=policy.consultation_id, published_at__ne=None)
        .order_by("-version")
        .first()
    )
    next_version = (latest_published.version + 1) if latest_published else 1
    version = data.get("version") or next_version
    if version < next_version:
        raise Conflict(
            f"Version {version} is published (or older than a published version) and cannot change; "
            f"write version {next_version}."
        )
    fields = {
        "title": data["title"],
        "body": data["body"],
        "purposes": data["purposes"],
        "policy_url": data.get("policy_url"),
        "controller": data.get("controller") or {},
        "jurisdiction": data.get("jurisdiction"),
        "sha256": grants.consent_text_sha256(data["body"]),
    }
    key = {
        "consultation_id": policy.consultation_id,
        "version": version,
        "language": data["language"],
    }
    existing = ConsentText.objects(**key).first()
    if existing is None:
        text = ConsentText(organisation_id=policy.organisation_id, **key, **fields)
        try:
            text.save(force_insert=True)
        except NotUniqueError:
            raise Conflict(
                "This text was saved by someone else at the same moment; reload it and try again."
            ) from None
        return text
    # Compare-and-set: a draft published between our read and this write stays as it was published.
    updated = ConsentText.objects(id=existing.id, published_at=None).update_one(
        **{f"set__{name}": value for name, value in fields.items()}
    )
    if not updated:
        raise Conflict(
            f"Version {version} ({data['language']}) was published meanwhile and cannot change; "
            f"write version {version + 1}."
        )
    return existing.reload()


def publish_texts(
    policy: ConsultationPolicy, version: int, topic: str, trace_id: str
) -> list[ConsentText]:
    """Publish every language of a text version at once; each gets a consent_text.published event.

    Raises NotFound (no such version), ValidationFailed when a language of
    the consultation is missing, Conflict when already published or when a
    draft changed while it was being published (publish again to finish).
    """
    texts = list(ConsentText.objects(consultation_id=policy.consultation_id, version=version))
    if not texts:
        raise NotFound(f"No consent text version {version}.")
    if all(t.published_at for t in texts):
        raise Conflict(f"Version {version} is already published.")
    missing = sorted(set(policy.languages) - {t.language for t in texts})
    if missing:
        raise ValidationFailed(
            "Every language of the consultation needs the consent text before publishing.",
            errors={"languages": [f"missing: {', '.join(missing)}"]},
        )
    now = _now()
    for text in texts:
        if text.published_at is not None:
            continue  # published by an earlier, interrupted call
        text.stage(
            topic,
            Envelope(
                type="consent_text.published",
                key=policy.consultation_id,
                producer="consent",
                trace_id=trace_id,
                payload={
                    "consultation_id": policy.consultation_id,
                    "organisation_id": policy.organisation_id,
                    "text_version": version,
                    "language": text.language,
                    "text_sha256": text.sha256,
                    "published_at": isoformat(now),
                },
            ),
        )
        # Compare-and-set on the hash: the event announces exactly the body that becomes immutable.
        updated = ConsentText.objects(id=text.id, published_at=None, sha256=text.sha256).update_one(
            set__published_at=now, push__pending_events=text.pending_events[-1]
        )
        if updated:
            outbox.remember(ConsentText, text.pk)
        else:
            raise Conflict(
                f"The {text.language} text of version {version} changed while it was being published; "
                "check it and publish again."
            )
    return list(
        ConsentText.objects(consultation_id=policy.consultation_id, version=version).order_by(
            "language"
        )
    )


def text_version(consultation_id: str, version: int, language: str) -> ConsentText:
    """One published text version in one language. Raises NotFound (drafts are not shown)."""
    text = ConsentText.objects(
        consultation_id=consultation_id, version=version, language=language, published_at__ne=None
    ).first()
    if text is None:
        raise NotFound("No published consent text of this version in this language.")
    return text


def all_texts(policy: ConsultationPolicy) -> list[ConsentText]:
    """Every text of the consultation, drafts included, by version then language."""
    return list(
        ConsentText.objects(consultation_id=policy.consultation_id).order_by("version", "language")
    )


def current_text(consultation_id: str, language: str) -> ConsentText:
    text = (
        ConsentText.objects(
            consultation_id=consultation_id, language=language, published_at__ne=None
        )
        .order_by("-version")
        .first()
    )
    if text is None:
        raise NotFound("No published consent text in this language.")
    return text


# ---- grants -------------------------------------------------------------------


def record_grant(
    data: dict[str, Any],
    signing_key: Ed25519PrivateKey,
    pepper: bytes,
    token_ttl_s: int,
    topic: str,
    trace_id: str,
) -> tuple[Grant, str, str]:
    """Validate and store a grant with its consent.granted event.

    Returns (grant, consent token, receipt code); the code is never stored,
    only its hash. Raises NotFound (unknown consultation or text),
    ValidationFailed (rules), Conflict (this pseudonym already consented).
    """
    policy = known_consultation(data["consultation_id"])
    if policy.status != "open":
        raise Conflict("This consultation is not open for consent.")
    text = ConsentText.objects(
        consultation_id=policy.consultation_id,
        version=data["text_version"],
        language=data["language"],
        published_at__ne=None,
    ).first()
    if text is None:
        raise NotFound("That consent text version is not published in this language.")
    decision = grants.grant_consent(
        consultation={
            "consultation_id": policy.consultation_id,
            "purposes": policy.purposes,
            "min_age": policy.min_age,
            "languages": policy.languages,
        },
        pseudonym=data["pseudonym"],
        purposes=data["purposes"],
        text={"version": text.version, "language": text.language, "body": text.body},
        granted_at=_now_ms(),
        collection_method=data["collection_method"],
        age=data.get("age"),
        age_band=data.get("age_band"),
        guardian=data.get("guardian"),
        participant_assent=data.get("participant_assent"),
    )
    payload = decision.payload
    # Informed consent: a purpose the text shown did not explain cannot have been agreed to
    # (possible only if the consultation's purposes changed after this text was published).
    unexplained = [p for p in payload["purposes"] if p not in (text.purposes or {})]
    if unexplained:
        raise ValidationFailed(
            "The consent text shown does not explain every chosen purpose.",
            errors={
                "purposes": [
                    f"not explained in text version {text.version}: {', '.join(unexplained)}"
                ]
            },
        )
    code = grants.new_receipt_code()
    grant = Grant(
        grant_id=payload["grant_id"],
        receipt_hash=grants.receipt_code_hash(code, pepper),
        pseudonym=payload["pseudonym"],
        consultation_id=policy.consultation_id,
        organisation_id=policy.organisation_id,
        purposes=payload["purposes"],
        text_version=text.version,
        language=text.language,
        text_sha256=payload["text_sha256"],
        collection_method=payload["collection_method"],
        guardian=decision.guardian_attestation or {},
        assent=(decision.guardian_attestation or {}).get("participant_assent"),
        granted_at=datetime.fromisoformat(payload["granted_at"]),
    )
    grant.stage(
        topic,
        Envelope(
            type="consent.granted",
            key=grant.pseudonym,
            producer="consent",
            trace_id=trace_id,
            payload=payload,
        ),
    )
    try:
        grant.save(force_insert=True)
    except NotUniqueError:
        raise Conflict(
            "Consent was already given for this participant in this consultation."
        ) from None
    token = tokens.issue_consent_token(
        pseudonym=grant.pseudonym,
        consultation_id=grant.consultation_id,
        grant_id=grant.grant_id,
        purposes=grant.purposes,
        private_key=signing_key,
        ttl=token_ttl_s,
    )
    return grant, token, code


def find_by_receipt(code: str, pepper: bytes, session_consultation: str | None = None) -> Grant:
    """The grant behind a receipt code, in `session_consultation` when given (a participant session's).
    Raises NotFound for anything else, saying nothing more: another consultation's code looks unknown."""
    try:
        code_hash = grants.receipt_code_hash(code, pepper)
    except ValidationFailed:
        raise NotFound("No consent matches this receipt code.") from None
    grant = Grant.objects(receipt_hash=code_hash).first()
    if grant is None or session_consultation not in (None, grant.consultation_id):
        raise NotFound("No consent matches this receipt code.")
    return grant


def reissue_token(
    code: str,
    signing_key: Ed25519PrivateKey,
    pepper: bytes,
    token_ttl_s: int,
    session_consultation: str | None = None,
) -> tuple[Grant, str, list[str]]:
    """A fresh consent token for the grant behind a receipt code: (grant, token, purposes still given).

    The token carries only the purposes not withdrawn, so it never says more than the grant and its
    withdrawals do now. A re-issue is deliberately not a ledger entry and emits no event: the
    ledger records consent given and withdrawn, and a token is only a signed, short-lived copy of
    what those entries already say; re-issuing grants nothing new. Nothing is stored.
    Raises NotFound for an unknown or malformed code (the same answer as the receipt lookup and a
    withdrawal), Conflict when consent to take part was withdrawn or the consultation is no longer
    open (when consent knows its status).
    """
    grant = find_by_receipt(code, pepper, session_consultation)
    purposes = grants.current_purposes(
        _grant_payload(grant), [e for e in grant.events if e["event"] == "withdrawn"]
    )
    if grants.REQUIRED_PURPOSE not in purposes:
        raise Conflict(
            "Consent to take part was withdrawn, so no consent token can be issued.",
            reason="consent_withdrawn",
        )
    policy = ConsultationPolicy.objects(consultation_id=grant.consultation_id).first()
    if policy is not None and policy.status != "open":
        raise Conflict(
            "This consultation is no longer open, so no consent token can be issued.",
            reason="consultation_not_open",
        )
    token = tokens.issue_consent_token(
        pseudonym=grant.pseudonym,
        consultation_id=grant.consultation_id,
        grant_id=grant.grant_id,
        purposes=purposes,
        private_key=signing_key,
        ttl=token_ttl_s,
    )
    return grant, token, purposes


def _grant_payload(grant: Grant) -> dict[str, Any]:
    return {
        "grant_id": grant.grant_id,
        "pseudonym": grant.pseudonym,
        "consultation_id": grant.consultation_id,
        "purposes": list(grant.purposes),
    }


WITHDRAW_ATTEMPTS = 20


def withdraw(
    code: str, purposes: list[str] | None, pepper: bytes, topic: str, trace_id: str
) -> tuple[Grant, Any]:
    """Withdraw some purposes or everything by receipt code; repeating it changes nothing.

    Returns (grant, decision); a repeat has ``decision.payload`` None and
    stores and publishes nothing. Raises NotFound (code), ValidationFailed
    (purposes), Conflict when the grant kept changing under us.
    """
    for _attempt in range(WITHDRAW_ATTEMPTS):
        grant = find_by_receipt(code, pepper)
        decision = grants.withdraw_consent(
            _grant_payload(grant),
            [e for e in grant.events if e["event"] == "withdrawn"],
            purposes,
            _now(),
        )
        if decision.payload is None:
            return grant, decision
        seen_events = len(grant.events)
        event = {"event": "withdrawn", **decision.payload}
        grant.stage(
            topic,
            Envelope(
                type="consent.withdrawn",
                key=grant.pseudonym,
                producer="consent",
                trace_id=trace_id,
                payload=decision.payload,
            ),
        )
        # Compare-and-set on the number of events: two simultaneous withdrawals cannot both apply.
        # Pushing (not replacing) the pending event leaves the relay's concurrent removals alone.
        updated = Grant.objects(grant_id=grant.grant_id, events__size=seen_events).update_one(
            push__events=event,
            set__withdrawn=decision.withdrawn,
            push__pending_events=grant.pending_events[-1],
        )
        if updated:
            outbox.remember(Grant, grant.pk)
            grant.events, grant.withdrawn = [*grant.events, event], decision.withdrawn
            return grant, decision
    raise Conflict("Your consent record is being changed right now; please try again.")


def receipt(grant: Grant) -> dict[str, Any]:
    """The participant's receipt for a grant, worded by the consent text version they were shown."""
    text = ConsentText.objects(
        consultation_id=grant.consultation_id, version=grant.text_version, language=grant.language
    ).first()
    return receipt_for(grant, text)


def receipt_for(
    grant: Grant, text: ConsentText | None, public_key: Ed25519PublicKey | None = None
) -> dict[str, Any]:
    """The participant's receipt: Kantara v1.1 fields plus the history of withdrawals, erasures and
    their confirmation."""
    controller = dict(text.controller or {}) if text else {}
    # Each purpose as the participant read it in this text, not a generic wording.
    catalogue = {
        purpose: {"purpose": explanation}
        for purpose, explanation in (text.purposes if text else {}).items()
    }
    withdrawals = [
        {k: v for k, v in e.items() if k != "event"}
        for e in grant.events
        if e["event"] == "withdrawn"
    ]
    erasures = [
        {k: v for k, v in e.items() if k != "event"} for e in grant.events if e["event"] == "erased"
    ]
    confirmations = [e for e in grant.events if e["event"] == "erasure_confirmed"]
    return receipts.build_receipt(
        grant_record(grant),
        withdrawals,
        erasures,
        confirmations,
        controller={
            "piiController": controller.get("name") or grant.organisation_id,
            "contact": controller.get("contact")
            or controller.get("email")
            or "via the organisation",
            "email": controller.get("email"),
            "address": controller.get("address"),
        },
        policy_url=(text.policy_url if text and text.policy_url else ""),
        jurisdiction=(text.jurisdiction if text and text.jurisdiction else ""),
        service=(text.title if text else grant.consultation_id),
        guardian_attestation=grant.guardian or None,
        public_key=public_key,
        purpose_catalogue=catalogue,
    )


def note_withdrawal_processed(payload: dict[str, Any], event_id: str) -> bool:
    """Store the surveys service's confirmation of a full withdrawal (event ``event_id``) on the grant.

    Once per event: a redelivery adds nothing. Only a grant whose consent was
    wholly withdrawn takes it, so a stray confirmation (unknown participant,
    only some purposes withdrawn) changes no receipt. Returns whether it was stored.
    """
    confirmation = {
        "event": "erasure_confirmed",
        "event_id": event_id,
        **{k: payload[k] for k in ("responses_erased", "key_shredded", "processed_at")},
    }
    # One conditional write: the check for a full withdrawal and for this event's absence cannot race a redelivery.
    stored = Grant.objects(
        __raw__={
            "consultation_id": payload["consultation_id"],
            "pseudonym": payload["pseudonym"],
            # Only "withdrawn" events carry "all"; $elemMatch on a sub-document is not on every server.
            "events.all": True,
            "events.event_id": {"$ne": event_id},
        }
    ).update_one(push__events=confirmation)
    return bool(stored)


def note_erasure(payload: dict[str, Any]) -> None:
    """Add a confirmed erasure to the participant's receipt history (once per response)."""
    grant = Grant.objects(
        consultation_id=payload["consultation_id"], pseudonym=payload["pseudonym"]
    ).first()
    if grant is None or any(
        e["event"] == "erased" and e["response_id"] == payload["response_id"] for e in grant.events
    ):
        return
    Grant.objects(grant_id=grant.grant_id).update_one(push__events={"event": "erased", **payload})


def grant_record(grant: Grant) -> dict[str, Any]:
    """The grant as its consent.granted payload (and ledger entry) carries it, spelled identically."""
    granted_at = (
        grant.granted_at if grant.granted_at.tzinfo else grant.granted_at.replace(tzinfo=UTC)
    )
    return {
        **_grant_payload(grant),
        "text_version": grant.text_version,
        "language": grant.language,
        "text_sha256": grant.text_sha256,
        "collection_method": grant.collection_method,
        "guardian": bool(grant.guardian),
        "granted_at": ledger.format_timestamp(granted_at),
    }
