"""Event handlers of the aggregation service: thin callers of `projection`, idempotent and order-independent.

Each handler reads what it needs, asks the domain (`projection`) what the
event means, and stores the answer with updates that only ever grow
(tombstones) or are keyed by a natural id (contributions, quotes), so any
order and any number of redeliveries end in the same state. Where two
consumers could race (a response and its withdrawal handled at the same
time), the handler re-checks after writing, and releases filter once more
with `projection.counted_contributions`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mongoengine.errors import NotUniqueError
from prometheus_client import REGISTRY, Histogram

from services.aggregation import projection, wording
from services.aggregation.models import (
    ConsultationMeta,
    Contribution,
    ParticipantContributions,
    Quote,
    StorageLayout,
    Tombstone,
    participant_key,
)
from shared.delivery import is_replay
from shared.events import Envelope

QUOTE_PURPOSE = "quote_anonymised"

# From a participant pressing "submit" to their answer being in the counts, for events handled
# as they arrive (a replay is reported as its progress instead: `voices_replay_remaining`).
# Default registry, also registered in each app's /metrics registry by create_app.
FRESHNESS = Histogram(
    "voices_aggregation_freshness_seconds",
    "Time from response submitted_at to counted by aggregation",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
    registry=REGISTRY,
)


def stored_meta(consultation_id: str) -> projection.ConsultationMeta | None:
    """The consultation metadata as the domain sees it, or None before consultation.published."""
    doc = ConsultationMeta.objects(consultation_id=consultation_id).first()
    if doc is None:
        return None
    return projection.consultation_meta_from_published(
        {
            "consultation_id": doc.consultation_id,
            "survey_version": doc.survey_version,
            "min_cell_size": doc.min_cell_size,
            "purposes": doc.purposes,
            "questions": doc.questions,
        }
    )


def stored_tombstone(consultation_id: str, pseudonym: str) -> projection.Tombstone | None:
    doc = Tombstone.objects(key=participant_key(consultation_id, pseudonym)).as_pymongo().first()
    if doc is None:
        return None
    return projection.tombstone_from_document(doc)


def record_consultation(event: Envelope, ctx: Any) -> None:
    """consultation.published: keep the metadata of the highest survey version (compare-and-set)."""
    p = event.payload
    meta = projection.consultation_meta_from_published(p)
    budget = p.get("epsilon_budget")  # absent from events published before the setting existed
    fields = {
        "set__organisation_id": p["organisation_id"],
        "set__survey_version": meta.survey_version,
        "set__title": p.get("title"),
        "set__min_cell_size": meta.min_cell_size,
        "set__epsilon_budget": None if budget is None else float(budget),
        "set__purposes": list(meta.purposes),
        "set__questions": [q.to_document() for q in meta.questions],
        "set__wording": wording.wording_from_published(p),
    }
    # Only replace an equal or older version; a newer one already stored makes the filter miss and
    # the upsert collide with the existing id, which means "keep what is there".
    try:
        ConsultationMeta.objects(
            consultation_id=meta.consultation_id, survey_version__lte=meta.survey_version
        ).update_one(upsert=True, **fields)
    except NotUniqueError:
        pass


def add_contribution(event: Envelope, ctx: Any) -> None:
    """response.submitted: store the contribution unless consent or a tombstone says otherwise."""
    meta = stored_meta(event.payload["consultation_id"])
    contribution = projection.contribution_from_submitted(event.payload, meta)
    if contribution is None:  # no aggregate_reporting consent: not even stored
        return
    key = (contribution.consultation_id, contribution.pseudonym)
    # The tombstone is read once, after storing: a response whose participant had already
    # withdrawn is stored and deleted at once (rare), and every other response is spared a read,
    # which the consumer needs to keep pace with intake. Inserts, not upserts: the usual case is
    # new, and an insert is one write where an upsert is a lookup and a write on some servers; a
    # redelivery meets the unique _id.
    try:
        Contribution(
            **contribution.to_document(), counted_at=datetime.now(UTC), replayed=is_replay()
        ).save(force_insert=True)
        inserted = True
    except NotUniqueError:
        inserted = False
    # Listed for the participant before the tombstone is looked at (also on a redelivery, in case
    # the first delivery stopped between the two writes).
    listed = participant_key(*key)
    try:
        ParticipantContributions(
            key=listed,
            consultation_id=contribution.consultation_id,
            pseudonym=contribution.pseudonym,
            response_ids=[contribution.response_id],
        ).save(force_insert=True)
    except NotUniqueError:  # the participant's list exists: add to it
        ParticipantContributions.objects(key=listed).update_one(
            add_to_set__response_ids=contribution.response_id
        )
    # After both writes: a withdrawal handled concurrently writes its tombstone before it reads
    # the list, so either it finds this contribution or this read finds its tombstone.
    if not projection.is_counted(contribution, stored_tombstone(*key)):
        Contribution.objects(response_id=contribution.response_id).delete()
        return
    if inserted and not is_replay():
        observe_freshness(contribution.submitted_at)


def observe_freshness(submitted_at: str) -> None:
    try:
        submitted = datetime.fromisoformat(submitted_at)
    except ValueError:
        return
    if submitted.tzinfo is None:
        submitted = submitted.replace(tzinfo=UTC)
    FRESHNESS.observe(max(0.0, (datetime.now(UTC) - submitted).total_seconds()))


def _bury(tomb: projection.Tombstone, *, quotes_withdrawn: bool = False) -> None:
    """Merge `tomb` into the stored tombstone (set-union, atomic) and delete what it cancels."""
    update: dict[str, Any] = {
        "add_to_set__response_ids": sorted(tomb.response_ids),
        "add_to_set__reasons": sorted(tomb.reasons),
    }
    if tomb.whole_participant:
        update["set__whole_participant"] = True
    if quotes_withdrawn or tomb.whole_participant:
        update["set__quotes_withdrawn"] = True
    for attempt in range(2):
        try:
            Tombstone.objects(key=participant_key(tomb.consultation_id, tomb.pseudonym)).update_one(
                upsert=True,
                set_on_insert__consultation_id=tomb.consultation_id,
                set_on_insert__pseudonym=tomb.pseudonym,
                set_on_insert__at=datetime.now(UTC),
                **update,
            )
            break
        except NotUniqueError:
            if attempt:  # two upserts raced; the second try updates the winner's document
                raise
    merged = stored_tombstone(tomb.consultation_id, tomb.pseudonym)
    # Delete, not hide: aggregation keeps no answers it may no longer use.
    listed = ParticipantContributions.objects(
        key=participant_key(tomb.consultation_id, tomb.pseudonym)
    ).first()
    for response_id in listed.response_ids if listed else ():
        doc = Contribution.objects(response_id=response_id).first()
        if doc is not None and not projection.is_counted(
            projection.contribution_from_document(
                doc.to_mongo().to_dict() | {"response_id": doc.response_id}
            ),
            merged,
        ):
            doc.delete()
    if quotes_withdrawn or tomb.whole_participant:
        Quote.objects(consultation_id=tomb.consultation_id, pseudonym=tomb.pseudonym).delete()


def subtract_withdrawn(event: Envelope, ctx: Any) -> None:
    """consent.withdrawn: aggregate_reporting or all -> subtract; quote_anonymised -> drop quotes."""
    p = event.payload
    tomb = projection.tombstone_from_withdrawn(p)
    quotes = bool(p.get("all")) or QUOTE_PURPOSE in (p.get("purposes") or ())
    if tomb is None and quotes:
        tomb = projection.Tombstone(
            consultation_id=p["consultation_id"],
            pseudonym=p["pseudonym"],
            reasons=frozenset({"quote_withdrawn"}),
        )
    if tomb is not None:
        _bury(tomb, quotes_withdrawn=quotes)


def subtract_erased(event: Envelope, ctx: Any) -> None:
    """response.erased: a withdrawal erasure subtracts; a retention erasure keeps the contribution."""
    tomb = projection.tombstone_from_erased(event.payload)
    if tomb is not None:
        _bury(tomb)


def store_quote(event: Envelope, ctx: Any) -> None:
    """quote.approved: keep the quote unless revoked or its author withdrew quote or all consent."""
    p = event.payload
    tomb = Tombstone.objects(key=participant_key(p["consultation_id"], p["pseudonym"])).first()
    if tomb is not None and (tomb.quotes_withdrawn or tomb.whole_participant):
        return
    Quote.objects(quote_id=p["quote_id"]).update_one(
        upsert=True,
        set_on_insert__consultation_id=p["consultation_id"],
        set_on_insert__pseudonym=p["pseudonym"],
        set_on_insert__question_id=p["question_id"],
        set_on_insert__text=p["text"],
        set_on_insert__approved_by=p["approved_by"],
        set_on_insert__approved_at=p["approved_at"],
        set_on_insert__revoked=False,
    )
    tomb = Tombstone.objects(key=participant_key(p["consultation_id"], p["pseudonym"])).first()
    if tomb is not None and (tomb.quotes_withdrawn or tomb.whole_participant):
        Quote.objects(quote_id=p["quote_id"]).delete()  # a withdrawal raced us


def revoke_quote(event: Envelope, ctx: Any) -> None:
    """quote.revoked: sticky; a later (or redelivered) quote.approved finds the document and adds nothing."""
    p = event.payload
    Quote.objects(quote_id=p["quote_id"]).update_one(
        upsert=True,
        set__revoked=True,
        unset__text=True,
        unset__pseudonym=True,
        set_on_insert__consultation_id=p["consultation_id"],
    )


PARTICIPANT_KEYS = "participant_keys"


def migrate_to_keys() -> bool:
    """Bring a projection stored before `participant_key` to it; returns whether anything was to do.

    Tombstones stored under generated ids are merged into the document under their key (a
    set union, as every tombstone update) and then deleted; every stored contribution is listed
    in its participant's `ParticipantContributions`. Each step can be repeated, so an interrupted
    run is finished by the next; the `StorageLayout` marker is written last. Run before the
    consumer starts (the app does, at start). Rebuilding the projection from the topics
    (`flask rebuild`) gives the same result.
    """
    if StorageLayout.objects(name=PARTICIPANT_KEYS).first() is not None:
        return False
    tombstones = Tombstone._get_collection()
    # The old layout's unique index on (consultation_id, pseudonym) would refuse the re-keyed copy.
    for name, spec in tombstones.index_information().items():
        if spec.get("unique") and [field for field, _ in spec["key"]] == [
            "consultation_id",
            "pseudonym",
        ]:
            tombstones.drop_index(name)
    for raw in list(tombstones.find({})):
        if isinstance(raw["_id"], str):
            continue
        update: dict[str, Any] = {
            "$setOnInsert": {
                "consultation_id": raw["consultation_id"],
                "pseudonym": raw["pseudonym"],
                "at": raw.get("at") or datetime.now(UTC),
            },
            "$addToSet": {
                "response_ids": {"$each": list(raw.get("response_ids") or [])},
                "reasons": {"$each": list(raw.get("reasons") or [])},
            },
        }
        flags = {f: True for f in ("whole_participant", "quotes_withdrawn") if raw.get(f)}
        if flags:
            update["$set"] = flags
        tombstones.update_one(
            {"_id": participant_key(raw["consultation_id"], raw["pseudonym"])}, update, upsert=True
        )
        tombstones.delete_one({"_id": raw["_id"]})
    for raw in list(
        Contribution._get_collection().find({}, {"consultation_id": 1, "pseudonym": 1})
    ):
        ParticipantContributions.objects(
            key=participant_key(raw["consultation_id"], raw["pseudonym"])
        ).update_one(
            upsert=True,
            set_on_insert__consultation_id=raw["consultation_id"],
            set_on_insert__pseudonym=raw["pseudonym"],
            add_to_set__response_ids=raw["_id"],
        )
    try:
        StorageLayout(name=PARTICIPANT_KEYS).save(force_insert=True)
    except NotUniqueError:
        pass  # another worker finished the same migration
    return True


HANDLERS = {
    "consultation.published": record_consultation,
    "response.submitted": add_contribution,
    "consent.withdrawn": subtract_withdrawn,
    "response.erased": subtract_erased,
    "quote.approved": store_quote,
    "quote.revoked": revoke_quote,
}
