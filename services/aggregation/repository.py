"""Where the aggregation service keeps its domain objects: the one module that converts between
the stored documents (`models`) and the domain's values (`projection`, `differential_privacy`).

Handlers and releases ask this module to load and save; neither touches a document class for
what is listed here. Every lookup on the event path is by a string `_id` (see `participant_key`),
the one kind of read every MongoDB-protocol server answers from an index. The batched writes
(`store_contributions`) are the same writes as one event at a time, grouped: an unordered
`insert_many` that skips duplicate keys, so a redelivered batch stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mongoengine.errors import NotUniqueError

from services.aggregation import projection, wording
from services.aggregation.differential_privacy import PrivacyBudget, privacy_budget_from_document
from services.aggregation.models import (
    ConsultationDocument,
    ContributionDocument,
    ParticipantContributions,
    PrivacyBudgetDocument,
    Quote,
    Release,
    StorageLayout,
    TombstoneDocument,
    participant_key,
)
from shared.mongo import insert_new

# ---- consultations -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsultationRecord:
    """What aggregation stored of a consultation beyond its `projection.ConsultationMeta`: who owns
    it, its title and wording for snapshots, and its privacy budget (None: no noisy releases)."""

    consultation_id: str
    organisation_id: str
    title: str | None
    min_cell_size: int | None
    epsilon_budget: float | None
    wording: Mapping[str, Any] = field(default_factory=dict)


def consultation_meta(consultation_id: str) -> projection.ConsultationMeta | None:
    """The consultation as the projection sees it, or None before consultation.published."""
    raw = (
        ConsultationDocument.objects(consultation_id=consultation_id)
        .only("survey_version", "min_cell_size", "purposes", "questions")
        .as_pymongo()
        .first()
    )
    if raw is None:
        return None
    return projection.consultation_meta_from_published({**raw, "consultation_id": raw["_id"]})


def consultation_record(consultation_id: str) -> ConsultationRecord | None:
    """Owner, title, k, privacy budget and wording of a consultation; None before it is published."""
    raw = (
        ConsultationDocument.objects(consultation_id=consultation_id)
        .only("organisation_id", "title", "min_cell_size", "epsilon_budget", "wording")
        .as_pymongo()
        .first()
    )
    if raw is None:
        return None
    budget = raw.get("epsilon_budget")
    return ConsultationRecord(
        consultation_id=raw["_id"],
        organisation_id=raw["organisation_id"],
        title=raw.get("title"),
        min_cell_size=raw.get("min_cell_size"),
        epsilon_budget=None if budget is None else float(budget),
        wording=raw.get("wording") or {},
    )


def save_consultation(meta: projection.ConsultationMeta, payload: Mapping[str, Any]) -> None:
    """Keep `meta` (and the owner, title, budget and wording of the consultation.published
    `payload`) unless a higher survey version is stored already (compare-and-set)."""
    budget = payload.get("epsilon_budget")  # absent from events published before the setting
    fields = {
        "set__organisation_id": payload["organisation_id"],
        "set__survey_version": meta.survey_version,
        "set__title": payload.get("title"),
        "set__min_cell_size": meta.min_cell_size,
        "set__epsilon_budget": None if budget is None else float(budget),
        "set__purposes": list(meta.purposes),
        "set__questions": [q.to_document() for q in meta.questions],
        "set__wording": wording.wording_from_published(payload),
    }
    # Only replace an equal or older version; a newer one already stored makes the filter miss and
    # the upsert collide with the existing id, which means "keep what is there".
    try:
        ConsultationDocument.objects(
            consultation_id=meta.consultation_id, survey_version__lte=meta.survey_version
        ).update_one(upsert=True, **fields)
    except NotUniqueError:
        pass


# ---- contributions and the participant's list of them ---------------------------------------


def _contribution_document(
    contribution: projection.Contribution, *, replayed: bool
) -> dict[str, Any]:
    return ContributionDocument(
        **contribution.to_document(), counted_at=datetime.now(UTC), replayed=replayed
    ).to_mongo()


def store_contributions(
    contributions: Sequence[projection.Contribution], *, replayed: bool
) -> set[str]:
    """Store the contributions and list each in its participant's `ParticipantContributions`, in
    one write for the contributions and one for the new lists (one more per list that existed).
    Returns the response ids stored now (the others were stored before: a redelivery).

    Idempotent: running it again on the same contributions changes nothing. A failure part-way
    leaves some of the writes done; running it again completes them.
    """
    if not contributions:
        return set()
    inserted = insert_new(
        ContributionDocument._get_collection(),
        [_contribution_document(c, replayed=replayed) for c in contributions],
    )
    # Listed for the participant after storing (also on a redelivery, in case the first delivery
    # stopped between the two writes); a withdrawal reads this list to find what to delete.
    listed: dict[str, dict[str, Any]] = {}
    for c in contributions:
        key = participant_key(c.consultation_id, c.pseudonym)
        entry = listed.setdefault(
            key,
            {
                "_id": key,
                "consultation_id": c.consultation_id,
                "pseudonym": c.pseudonym,
                "response_ids": [],
            },
        )
        if c.response_id not in entry["response_ids"]:
            entry["response_ids"].append(c.response_id)
    lists = ParticipantContributions._get_collection()
    # Most participants answer once: their list is new, and a plain insert is the cheapest write.
    new = insert_new(lists, list(listed.values()))
    # Participants answering again (rare in a consultation): one update each. Not one bulk write:
    # FerretDB 1.24 answered an update command of 50 statements with 40 modified and never
    # answered one of 200.
    for key, entry in listed.items():
        if key not in new:
            lists.update_one(
                {"_id": key}, {"$addToSet": {"response_ids": {"$each": entry["response_ids"]}}}
            )
    return inserted


def store_contribution(contribution: projection.Contribution, *, replayed: bool) -> bool:
    """`store_contributions` of one; returns whether it was stored now (False: a redelivery)."""
    return bool(store_contributions([contribution], replayed=replayed))


def contribution(response_id: str) -> projection.Contribution | None:
    raw = ContributionDocument.objects(response_id=response_id).as_pymongo().first()
    return None if raw is None else _contribution_from_raw(raw)


def _contribution_from_raw(raw: Mapping[str, Any]) -> projection.Contribution:
    return projection.contribution_from_document({**raw, "response_id": raw["_id"]})


def delete_contribution(response_id: str) -> None:
    ContributionDocument.objects(response_id=response_id).delete()


def contributions_of(consultation_id: str) -> Iterator[projection.Contribution]:
    """Every stored contribution of a consultation (a query on the whole collection)."""
    for raw in (
        ContributionDocument.objects(consultation_id=consultation_id)
        .exclude("counted_at", "replayed")
        .as_pymongo()
    ):
        yield _contribution_from_raw(raw)


def listed_response_ids(consultation_id: str, pseudonym: str) -> list[str]:
    """The response ids listed for one participant (some may have been deleted since)."""
    raw = (
        ParticipantContributions.objects(key=participant_key(consultation_id, pseudonym))
        .only("response_ids")
        .as_pymongo()
        .first()
    )
    return list(raw.get("response_ids") or ()) if raw else []


# ---- tombstones ----------------------------------------------------------------------------


def tombstone(consultation_id: str, pseudonym: str) -> projection.Tombstone | None:
    raw = (
        TombstoneDocument.objects(key=participant_key(consultation_id, pseudonym))
        .as_pymongo()
        .first()
    )
    return None if raw is None else projection.tombstone_from_document(raw)


def tombstones(
    participants: Iterable[tuple[str, str]],
) -> dict[tuple[str, str], projection.Tombstone]:
    """The tombstones of some (consultation, pseudonym) pairs, read one by one by key."""
    found = {}
    for pair in dict.fromkeys(participants):
        tomb = tombstone(*pair)
        if tomb is not None:
            found[pair] = tomb
    return found


def quotes_withdrawn(consultation_id: str, pseudonym: str) -> bool:
    """Whether the participant's quotes may no longer be kept (quote or all consent withdrawn)."""
    raw = (
        TombstoneDocument.objects(key=participant_key(consultation_id, pseudonym))
        .only("quotes_withdrawn", "whole_participant")
        .as_pymongo()
        .first()
    )
    return bool(raw and (raw.get("quotes_withdrawn") or raw.get("whole_participant")))


def tombstones_of(consultation_id: str) -> list[projection.Tombstone]:
    """Every tombstone of a consultation (a query on the whole collection)."""
    return [
        projection.tombstone_from_document(raw)
        for raw in TombstoneDocument.objects(consultation_id=consultation_id).as_pymongo()
    ]


def merge_tombstone(tomb: projection.Tombstone, *, quotes: bool) -> projection.Tombstone:
    """Merge `tomb` into the stored tombstone (a set union, atomic) and return the merged one.
    `quotes`: the participant's quotes may no longer be kept either."""
    update: dict[str, Any] = {
        "add_to_set__response_ids": sorted(tomb.response_ids),
        "add_to_set__reasons": sorted(tomb.reasons),
    }
    if tomb.whole_participant:
        update["set__whole_participant"] = True
    if quotes or tomb.whole_participant:
        update["set__quotes_withdrawn"] = True
    for attempt in range(2):
        try:
            TombstoneDocument.objects(
                key=participant_key(tomb.consultation_id, tomb.pseudonym)
            ).update_one(
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
    merged = tombstone(tomb.consultation_id, tomb.pseudonym)
    return tomb if merged is None else merged


# ---- quotes --------------------------------------------------------------------------------


def store_quote(payload: Mapping[str, Any]) -> None:
    """Keep an approved quote unless its id is stored already (a revocation is sticky)."""
    Quote.objects(quote_id=payload["quote_id"]).update_one(
        upsert=True,
        set_on_insert__consultation_id=payload["consultation_id"],
        set_on_insert__pseudonym=payload["pseudonym"],
        set_on_insert__question_id=payload["question_id"],
        set_on_insert__text=payload["text"],
        set_on_insert__approved_by=payload["approved_by"],
        set_on_insert__approved_at=payload["approved_at"],
        set_on_insert__revoked=False,
    )


def delete_quote(quote_id: str) -> None:
    Quote.objects(quote_id=quote_id).delete()


def delete_quotes_of(consultation_id: str, pseudonym: str) -> None:
    Quote.objects(consultation_id=consultation_id, pseudonym=pseudonym).delete()


def revoke_quote(quote_id: str, consultation_id: str) -> None:
    """Mark the quote revoked and drop its text, whether or not its approval arrived yet."""
    Quote.objects(quote_id=quote_id).update_one(
        upsert=True,
        set__revoked=True,
        unset__text=True,
        unset__pseudonym=True,
        set_on_insert__consultation_id=consultation_id,
    )


# ---- the privacy budget and released snapshots ------------------------------------------------


def budget_entries(consultation_id: str) -> list[dict[str, Any]]:
    """Every spend and refund of the consultation's budget, oldest first ({snapshot, epsilon, at})."""
    raw = (
        PrivacyBudgetDocument.objects(consultation_id=consultation_id)
        .only("spent")
        .as_pymongo()
        .first()
    )
    return list(raw.get("spent") or ()) if raw else []


def privacy_budget(consultation_id: str, total: float) -> tuple[PrivacyBudget, int]:
    """The budget `total` with every spend and refund so far, and its stored revision (created
    empty at revision 0 when the consultation has none yet)."""
    raw = PrivacyBudgetDocument.objects(consultation_id=consultation_id).as_pymongo().first()
    if raw is None:
        try:
            PrivacyBudgetDocument(consultation_id=consultation_id, spent=[], revision=0).save(
                force_insert=True
            )
        except NotUniqueError:
            pass  # created concurrently
        raw = PrivacyBudgetDocument.objects(consultation_id=consultation_id).as_pymongo().first()
    budget = privacy_budget_from_document(
        {"consultation_id": consultation_id, "epsilon_total": total, "spent": raw.get("spent")}
    )
    return budget, int(raw.get("revision") or 0)


def append_budget_entry(consultation_id: str, revision: int, entry: Mapping[str, Any]) -> bool:
    """Append `entry` if the budget is still at `revision` (compare-and-set); False when another
    release wrote first. `$push` keeps the earlier entries as stored."""
    return bool(
        PrivacyBudgetDocument.objects(
            consultation_id=consultation_id, revision=revision
        ).update_one(push__spent=dict(entry), inc__revision=1)
    )


def last_snapshot(consultation_id: str) -> int:
    """The number of the consultation's latest stored snapshot (0 before the first release)."""
    last = (
        Release.objects(consultation_id=consultation_id)
        .order_by("-snapshot")
        .only("snapshot")
        .first()
    )
    return 0 if last is None else last.snapshot


def snapshot_contents(consultation_id: str) -> list[dict[str, Any]]:
    """The published content of every stored snapshot of the consultation, oldest first."""
    return [
        r.content
        for r in Release.objects(consultation_id=consultation_id)
        .order_by("snapshot")
        .only("content")
    ]


# ---- one-off changes to how the projection is stored --------------------------------------


PARTICIPANT_KEYS = "participant_keys"


def migrate_to_keys() -> bool:
    """Bring a projection stored before `participant_key` to it; returns whether anything was to do.

    Tombstones stored under generated ids are merged into the document under their key (a
    set union, as every tombstone update) and then deleted; every stored contribution is listed
    in its participant's `ParticipantContributions`. Each step can be repeated, so an interrupted
    run is finished by the next; the `StorageLayout` marker is written last. Run before the
    consumer starts (the app does, at start). Rebuilding the projection from the topics
    (`aggregation rebuild`) gives the same result.
    """
    if StorageLayout.objects(name=PARTICIPANT_KEYS).first() is not None:
        return False
    tombstones = TombstoneDocument._get_collection()
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
        ContributionDocument._get_collection().find({}, {"consultation_id": 1, "pseudonym": 1})
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
