"""Event handlers of the consent service: consultation rules in, ledger entries out.

The ledger is written only here, by the consumer, from events that were
stored before they were published. That makes the consumer the single
writer in normal operation and means no fact can reach the ledger without
its event, or be lost between a request and the ledger.
"""

from __future__ import annotations

from typing import Any

from mongoengine.errors import NotUniqueError

from services.consent import consent_records, ledger_store
from services.consent.models import Checkpoint, ConsultationPolicy, SnapshotSignOff
from shared.errors import Conflict
from shared.events import Envelope


def learn_consultation(event: Envelope, ctx: Any) -> None:
    p = event.payload
    updates = {
        "set__organisation_id": p["organisation_id"],
        "set__purposes": p["purposes"],
        "set__min_age": p["min_age"],
        "set__languages": p["languages"],
    }
    if event.type == "consultation.published":
        updates["set__status"] = "open"
    ConsultationPolicy.objects(consultation_id=p["consultation_id"]).update_one(
        upsert=True, **updates
    )


def follow_status(event: Envelope, ctx: Any) -> None:
    p = event.payload
    ConsultationPolicy.objects(consultation_id=p["consultation_id"]).update_one(
        upsert=True, set__organisation_id=p["organisation_id"], set__status=p["status"]
    )


def _append(kind: str, data: dict, event: Envelope, ctx: Any) -> None:
    entry = ledger_store.append(kind, data, event_id=event.id)
    latest = Checkpoint.objects.order_by("-tree_size").first()
    # At least entry.seq + 1 entries exist now (more if another writer appended meanwhile).
    if entry.seq + 1 - (latest.tree_size if latest else 0) >= ctx.checkpoint_every:
        ledger_store.checkpoint(ctx.signing_key, ctx.ledger_tree)


def record_grant(event: Envelope, ctx: Any) -> None:
    _append("consent.granted", event.payload, event, ctx)


def record_withdrawal(event: Envelope, ctx: Any) -> None:
    _append("consent.withdrawn", event.payload, event, ctx)


def record_text(event: Envelope, ctx: Any) -> None:
    p = event.payload
    _append(
        "consent_text.published",
        {
            k: p[k]
            for k in (
                "consultation_id",
                "organisation_id",
                "text_version",
                "language",
                "text_sha256",
                "published_at",
            )
        },
        event,
        ctx,
    )


def claim_snapshot(payload: dict[str, Any], event_id: str) -> bool:
    """Claim the one sign-off of (consultation, snapshot) for this event; True when this event
    holds the claim (first time, or redelivered), False when the same digest was already signed
    off by another event (nothing more to record). Raises Conflict for another digest: a
    snapshot is signed off once, and a second, different one would make the ledger say two
    things about what was released."""
    key = f"{payload['consultation_id']}:{payload['snapshot']}"
    try:
        SnapshotSignOff(
            key=key, digest=payload["digest"], release_id=payload["release_id"], event_id=event_id
        ).save(force_insert=True)
        return True
    except NotUniqueError:
        held = SnapshotSignOff.objects(key=key).first()
    if held is None:  # cannot happen: claims are never deleted
        raise Conflict("the snapshot's sign-off claim vanished", snapshot=key)
    if held.event_id == event_id:
        return True  # this event claimed it before a crash: finish recording it
    if held.digest == payload["digest"]:
        return False
    raise Conflict(
        f"snapshot {payload['snapshot']} of {payload['consultation_id']} was already signed off "
        f"with digest {held.digest} (release {held.release_id}); refused a second sign-off with "
        f"digest {payload['digest']}",
        errors={"digest": ["a snapshot has one sign-off"]},
    )


def record_sign_off(event: Envelope, ctx: Any) -> None:
    """release.published: the ledger's sign-off entry, one per snapshot (see claim_snapshot)."""
    p = event.payload
    if not claim_snapshot(p, event.id):
        return
    _append(
        "release.signed_off",
        {
            "release_id": p["release_id"],
            "consultation_id": p["consultation_id"],
            "snapshot": p["snapshot"],
            "signed_off_by": p["signed_off_by"],
            "digest": p["digest"],
            "released_at": p["released_at"],
        },
        event,
        ctx,
    )


def record_erasure(event: Envelope, ctx: Any) -> None:
    _append("response.erased", event.payload, event, ctx)
    consent_records.note_erasure(event.payload)


def record_withdrawal_processed(event: Envelope, ctx: Any) -> None:
    """withdrawal.processed: the surveys service's confirmation of a full withdrawal (pseudonym and counts),
    as a ledger entry and on the participant's receipt."""
    p = event.payload
    _append(
        "withdrawal.processed",
        {
            k: p[k]
            for k in (
                "consultation_id",
                "pseudonym",
                "responses_erased",
                "key_shredded",
                "processed_at",
            )
        },
        event,
        ctx,
    )
    consent_records.note_withdrawal_processed(p, event.id)


def record_contacts_access(event: Envelope, ctx: Any) -> None:
    """contacts.accessed: an organiser read follow-up contact details; auditors see every such use."""
    p = event.payload
    _append(
        "contacts.accessed",
        {
            k: p[k]
            for k in ("consultation_id", "organisation_id", "accessed_by", "count", "accessed_at")
        },
        event,
        ctx,
    )


HANDLERS = {
    "consultation.created": learn_consultation,
    "consultation.settings_changed": learn_consultation,
    "consultation.published": learn_consultation,
    "consultation.status_changed": follow_status,
    "consent.granted": record_grant,
    "consent.withdrawn": record_withdrawal,
    "consent_text.published": record_text,
    "release.published": record_sign_off,
    "response.erased": record_erasure,
    "withdrawal.processed": record_withdrawal_processed,
    "contacts.accessed": record_contacts_access,
}
