"""Consent texts, grants, receipts and withdrawals in MongoDB (service layer: models, no Flask)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from mongoengine.errors import NotUniqueError

from services.consent import grants, receipts, tokens
from services.consent.models import ConsentText, ConsultationPolicy, Grant
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import Envelope, isoformat


def _now() -> datetime:
    return datetime.now(timezone.utc)


def known_consultation(consultation_id: str, organisation_id: str | None = None) -> ConsultationPolicy:
    """The consultation as consent knows it; another organisation's looks missing. Raises NotFound."""
    policy = ConsultationPolicy.objects(consultation_id=consultation_id).first()
    if policy is None or (organisation_id is not None and policy.organisation_id != organisation_id):
        raise NotFound("No such consultation.")
    return policy


# ---- texts --------------------------------------------------------------------

def save_text(policy: ConsultationPolicy, data: dict[str, Any]) -> ConsentText:
    """Create or replace the draft of one language of a text version. Published texts are immutable (Conflict)."""
    if data["language"] not in policy.languages:
        raise ValidationFailed("This consultation is not offered in that language.",
                               errors={"language": [f"offered: {', '.join(policy.languages)}"]})
    unknown = set(data["purposes"]) - set(policy.purposes)
    missing = set(policy.purposes) - set(data["purposes"])
    if unknown or missing:
        raise ValidationFailed("Explain exactly the purposes the consultation offers.",
                               errors={"purposes": [*(f"not offered: {p}" for p in sorted(unknown)),
                                                    *(f"missing explanation: {p}" for p in sorted(missing))]})
    latest_published = ConsentText.objects(consultation_id=policy.consultation_id,
                                           published_at__ne=None).order_by("-version").first()
    version = data.get("version") or ((latest_published.version + 1) if latest_published else 1)
    existing = ConsentText.objects(consultation_id=policy.consultation_id, version=version,
                                   language=data["language"]).first()
    if existing is not None and existing.published_at is not None:
        raise Conflict(f"Version {version} ({data['language']}) is published and cannot change; write version {version + 1}.")
    text = existing or ConsentText(consultation_id=policy.consultation_id, organisation_id=policy.organisation_id,
                                   version=version, language=data["language"])
    text.title, text.body, text.purposes = data["title"], data["body"], data["purposes"]
    text.policy_url, text.controller, text.jurisdiction = data.get("policy_url"), data.get("controller") or {}, data.get("jurisdiction")
    text.sha256 = grants.consent_text_sha256(text.body)
    text.save()
    return text


def publish_texts(policy: ConsultationPolicy, version: int, topic: str, trace_id: str) -> list[ConsentText]:
    """Publish every language of a text version at once; each gets a consent_text.published event.

    Raises ValidationFailed when a language of the consultation is missing, Conflict when already published.
    """
    texts = list(ConsentText.objects(consultation_id=policy.consultation_id, version=version))
    if not texts:
        raise NotFound(f"No consent text version {version}.")
    if all(t.published_at for t in texts):
        raise Conflict(f"Version {version} is already published.")
    missing = sorted(set(policy.languages) - {t.language for t in texts})
    if missing:
        raise ValidationFailed("Every language of the consultation needs the consent text before publishing.",
                               errors={"languages": [f"missing: {', '.join(missing)}"]})
    now = _now()
    for text in texts:
        text.published_at = now
        text.stage(topic, Envelope(
            type="consent_text.published", key=policy.consultation_id, producer="consent", trace_id=trace_id,
            payload={"consultation_id": policy.consultation_id, "organisation_id": policy.organisation_id,
                     "text_version": version, "language": text.language, "text_sha256": text.sha256,
                     "published_at": isoformat(now)}))
        text.save()
    return texts


def current_text(consultation_id: str, language: str) -> ConsentText:
    text = ConsentText.objects(consultation_id=consultation_id, language=language,
                               published_at__ne=None).order_by("-version").first()
    if text is None:
        raise NotFound("No published consent text in this language.")
    return text


# ---- grants -------------------------------------------------------------------

def record_grant(data: dict[str, Any], signing_key, pepper: bytes, token_ttl_s: int, topic: str,
                 trace_id: str) -> tuple[Grant, str, str]:
    """Validate and store a grant with its consent.granted event.

    Returns (grant, consent token, receipt code); the code is never stored,
    only its hash. Raises NotFound (unknown consultation or text),
    ValidationFailed (rules), Conflict (this pseudonym already consented).
    """
    policy = known_consultation(data["consultation_id"])
    if policy.status not in ("open",):
        raise Conflict("This consultation is not open for consent.")
    text = ConsentText.objects(consultation_id=policy.consultation_id, version=data["text_version"],
                               language=data["language"], published_at__ne=None).first()
    if text is None:
        raise NotFound("That consent text version is not published in this language.")
    decision = grants.grant_consent(
        consultation={"consultation_id": policy.consultation_id, "purposes": policy.purposes,
                      "min_age": policy.min_age, "languages": policy.languages},
        pseudonym=data["pseudonym"], purposes=data["purposes"],
        text={"version": text.version, "language": text.language, "body": text.body},
        granted_at=_now(), collection_method=data["collection_method"], age=data.get("age"),
        age_band=data.get("age_band"), guardian=data.get("guardian"),
        participant_assent=data.get("participant_assent"))
    payload = decision.payload
    code = grants.new_receipt_code()
    grant = Grant(grant_id=payload["grant_id"], receipt_hash=grants.receipt_code_hash(code, pepper),
                  pseudonym=payload["pseudonym"], consultation_id=policy.consultation_id,
                  organisation_id=policy.organisation_id, purposes=payload["purposes"],
                  text_version=text.version, language=text.language, text_sha256=payload["text_sha256"],
                  collection_method=payload["collection_method"], guardian=decision.guardian_attestation or {},
                  assent=(decision.guardian_attestation or {}).get("participant_assent"),
                  granted_at=datetime.fromisoformat(payload["granted_at"].replace("Z", "+00:00")))
    grant.stage(topic, Envelope(type="consent.granted", key=grant.pseudonym, producer="consent",
                                trace_id=trace_id, payload=payload))
    try:
        grant.save(force_insert=True)
    except NotUniqueError:
        raise Conflict("Consent was already given for this participant in this consultation.") from None
    token = tokens.issue_consent_token(pseudonym=grant.pseudonym, consultation_id=grant.consultation_id,
                                       grant_id=grant.grant_id, purposes=grant.purposes, private_key=signing_key,
                                       ttl=token_ttl_s)
    return grant, token, code


def find_by_receipt(code: str, pepper: bytes) -> Grant:
    """The grant behind a receipt code. Raises NotFound for anything else, saying nothing more."""
    try:
        code_hash = grants.receipt_code_hash(code, pepper)
    except ValidationFailed:
        raise NotFound("No consent matches this receipt code.") from None
    grant = Grant.objects(receipt_hash=code_hash).first()
    if grant is None:
        raise NotFound("No consent matches this receipt code.")
    return grant


def _grant_payload(grant: Grant) -> dict[str, Any]:
    return {"grant_id": grant.grant_id, "pseudonym": grant.pseudonym, "consultation_id": grant.consultation_id,
            "purposes": list(grant.purposes)}


def withdraw(code: str, purposes: list[str] | None, pepper: bytes, topic: str, trace_id: str) -> tuple[Grant, Any]:
    """Withdraw some purposes or everything by receipt code; repeating it changes nothing.

    Returns (grant, decision). Raises NotFound (code), ValidationFailed (purposes).
    """
    grant = find_by_receipt(code, pepper)
    decision = grants.withdraw_consent(_grant_payload(grant), [e for e in grant.events if e["event"] == "withdrawn"],
                                       purposes, _now())
    if decision.payload is None:
        return grant, decision
    seen_events = len(grant.events)
    grant.events = [*grant.events, {"event": "withdrawn", **decision.payload}]
    grant.withdrawn = decision.withdrawn
    grant.stage(topic, Envelope(type="consent.withdrawn", key=grant.pseudonym, producer="consent",
                                trace_id=trace_id, payload=decision.payload))
    # Compare-and-set on the number of events: two simultaneous withdrawals cannot both apply.
    updated = Grant.objects(grant_id=grant.grant_id, events__size=seen_events).update_one(
        set__events=grant.events, set__withdrawn=grant.withdrawn, set__pending_events=grant.pending_events)
    if not updated:
        return withdraw(code, purposes, pepper, topic, trace_id)
    return grant, decision


def receipt_for(grant: Grant, text: ConsentText | None, public_key=None) -> dict[str, Any]:
    """The participant's receipt: Kantara v1.1 fields plus the history of withdrawals and erasures."""
    controller = dict(text.controller or {}) if text else {}
    withdrawals = [{k: v for k, v in e.items() if k != "event"} for e in grant.events if e["event"] == "withdrawn"]
    erasures = [{k: v for k, v in e.items() if k != "event"} for e in grant.events if e["event"] == "erased"]
    return receipts.build_receipt(
        grant_record(grant), withdrawals, erasures,
        controller={"piiController": controller.get("name") or grant.organisation_id,
                    "contact": controller.get("contact") or controller.get("email") or "via the organisation",
                    "email": controller.get("email"), "address": controller.get("address")},
        policy_url=(text.policy_url if text and text.policy_url else ""),
        jurisdiction=(text.jurisdiction if text and text.jurisdiction else ""),
        service=(text.title if text else grant.consultation_id),
        guardian_attestation=grant.guardian or None, public_key=public_key)


def note_erasure(payload: dict[str, Any]) -> None:
    """Add a confirmed erasure to the participant's receipt history (once per response)."""
    grant = Grant.objects(consultation_id=payload["consultation_id"], pseudonym=payload["pseudonym"]).first()
    if grant is None or any(e["event"] == "erased" and e["response_id"] == payload["response_id"] for e in grant.events):
        return
    Grant.objects(grant_id=grant.grant_id).update_one(push__events={"event": "erased", **payload})


def grant_record(grant: Grant) -> dict[str, Any]:
    return {**_grant_payload(grant), "text_version": grant.text_version, "language": grant.language,
            "text_sha256": grant.text_sha256, "collection_method": grant.collection_method,
            "guardian": bool(grant.guardian), "granted_at": isoformat(grant.granted_at.replace(tzinfo=timezone.utc)
                                                                       if grant.granted_at.tzinfo is None else grant.granted_at)}


def text_record(text: ConsentText | None) -> dict[str, Any] | None:
    if text is None:
        return None
    return {"version": text.version, "language": text.language, "title": text.title, "purposes": dict(text.purposes),
            "policy_url": text.policy_url, "controller": dict(text.controller or {}), "jurisdiction": text.jurisdiction,
            "sha256": text.sha256}
