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

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, Histogram

from services.aggregation import projection, repository
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


def record_consultation(event: Envelope, ctx: Any) -> None:
    """consultation.published: keep the metadata of the highest survey version (compare-and-set)."""
    repository.save_consultation(
        projection.consultation_meta_from_published(event.payload), event.payload
    )


def add_contribution(event: Envelope, ctx: Any) -> None:
    """response.submitted: store the contribution unless consent or a tombstone says otherwise."""
    add_contributions([event], ctx)


def add_contributions(events: Sequence[Envelope], ctx: Any) -> None:
    """response.submitted, several at once (a run of them from one poll): the same end state as
    `add_contribution` on each in turn, with one write for all their contributions and one for
    their participants' lists instead of two per event.

    Every payload is checked before anything is written, so a bad one (ValidationFailed) leaves
    the store as it was and the caller can hand the events over one at a time.
    """
    metas: dict[str, projection.ConsultationMeta | None] = {}
    contributions: dict[str, projection.Contribution] = {}
    for event in events:
        cid = event.payload.get("consultation_id")
        if isinstance(cid, str) and cid not in metas:
            metas[cid] = repository.consultation_meta(cid)
        contribution = projection.contribution_from_submitted(
            event.payload, metas.get(cid) if isinstance(cid, str) else None
        )
        if contribution is not None:  # None: no aggregate_reporting consent, not even stored
            # The first delivery of a response id wins, as one event at a time would keep it.
            contributions.setdefault(contribution.response_id, contribution)
    if not contributions:
        return
    replay = is_replay()
    # The tombstones are read once, after storing: a response whose participant had already
    # withdrawn is stored and deleted at once (rare), and every other response is spared a read
    # before the writes. Inserts, not upserts: the usual case is new, and a redelivery meets the
    # unique _id.
    stored = repository.store_contributions(list(contributions.values()), replayed=replay)
    # After both writes: a withdrawal handled concurrently writes its tombstone before it reads
    # the list, so either it finds these contributions or this read finds its tombstone.
    tombs = repository.tombstones((c.consultation_id, c.pseudonym) for c in contributions.values())
    for contribution in contributions.values():
        key = (contribution.consultation_id, contribution.pseudonym)
        if not projection.is_counted(contribution, tombs.get(key)):
            repository.delete_contribution(contribution.response_id)
        elif contribution.response_id in stored and not replay:
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
    """Merge `tomb` into the stored tombstone and delete what it cancels."""
    merged = repository.merge_tombstone(tomb, quotes=quotes_withdrawn)
    # Delete, not hide: aggregation keeps no answers it may no longer use.
    for response_id in repository.listed_response_ids(tomb.consultation_id, tomb.pseudonym):
        stored = repository.contribution(response_id)
        if stored is not None and not projection.is_counted(stored, merged):
            repository.delete_contribution(response_id)
    if quotes_withdrawn or tomb.whole_participant:
        repository.delete_quotes_of(tomb.consultation_id, tomb.pseudonym)


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
    if repository.quotes_withdrawn(p["consultation_id"], p["pseudonym"]):
        return
    repository.store_quote(p)
    if repository.quotes_withdrawn(p["consultation_id"], p["pseudonym"]):
        repository.delete_quote(p["quote_id"])  # a withdrawal raced us


def revoke_quote(event: Envelope, ctx: Any) -> None:
    """quote.revoked: sticky; a later (or redelivered) quote.approved finds the document and adds nothing."""
    repository.revoke_quote(event.payload["quote_id"], event.payload["consultation_id"])


# Handlers that take a run of consecutive events of their type at once (see `add_contributions`).
BATCH_HANDLERS = {"response.submitted": add_contributions}

HANDLERS = {
    "consultation.published": record_consultation,
    "response.submitted": add_contribution,
    "consent.withdrawn": subtract_withdrawn,
    "response.erased": subtract_erased,
    "quote.approved": store_quote,
    "quote.revoked": revoke_quote,
}
