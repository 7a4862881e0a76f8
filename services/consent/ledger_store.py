"""The ledger in MongoDB: strictly linear appends, checkpoints, proofs (service layer)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from mongoengine.errors import NotUniqueError

from services.consent import ledger
from services.consent.models import Checkpoint, LedgerEntry
from shared.errors import NotFound, ValidationFailed

APPEND_ATTEMPTS = 50


def _tail() -> LedgerEntry | None:
    return LedgerEntry.objects.order_by("-seq").first()


def append(kind: str, data: Mapping[str, Any], event_id: str | None = None,
           at: datetime | None = None) -> LedgerEntry:
    """Append one entry after the current tail; returns it (or the existing one for a repeated event_id).

    Linear under concurrent writers on real MongoDB: seq is the primary key,
    so two writers racing for the same seq cannot both insert; the loser
    reloads the tail and tries again.
    """
    if event_id:
        existing = LedgerEntry.objects(event_id=event_id).first()
        if existing is not None:
            return existing
    at = at or datetime.now(timezone.utc)
    for _attempt in range(APPEND_ATTEMPTS):
        tail = _tail()
        entry = ledger.make_entry(tail.as_entry() if tail else None, kind, data, at)
        document = LedgerEntry(event_id=event_id, **entry)
        try:
            document.save(force_insert=True)
            return document
        except NotUniqueError:
            if event_id and LedgerEntry.objects(event_id=event_id).first() is not None:
                return LedgerEntry.objects(event_id=event_id).first()
            continue  # another writer took this seq
    raise RuntimeError("could not append to the ledger after repeated contention")


def size() -> int:
    tail = _tail()
    return 0 if tail is None else tail.seq + 1


def entries(start: int = 0, end: int | None = None) -> list[dict]:
    """Entries with start <= seq < end, in order."""
    query = LedgerEntry.objects(seq__gte=start)
    if end is not None:
        query = query.filter(seq__lt=end)
    return [doc.as_entry() for doc in query.order_by("seq")]


def checkpoint(private_key, at: datetime | None = None) -> Checkpoint:
    """Sign a checkpoint over the whole ledger as it is now (or return the existing one for this size)."""
    current = entries()
    if not current:
        raise ValidationFailed("The ledger is empty; there is nothing to checkpoint.", errors={})
    existing = Checkpoint.objects(tree_size=len(current)).first()
    if existing is not None:
        return existing
    signed = ledger.sign_checkpoint(current, private_key, at or datetime.now(timezone.utc))
    document = Checkpoint(**signed)
    try:
        document.save(force_insert=True)
    except NotUniqueError:
        return Checkpoint.objects(tree_size=len(current)).first()
    return document


def checkpoints() -> list[dict]:
    return [doc.as_checkpoint() for doc in Checkpoint.objects.order_by("tree_size")]


def inclusion(seq: int, tree_size: int | None = None) -> dict:
    """Audit path for entry `seq` in the tree of `tree_size` entries (default: the latest checkpoint)."""
    tree_size = tree_size or _latest_checkpoint_size()
    if not 0 <= seq < tree_size:
        raise NotFound(f"Entry {seq} is not in a tree of size {tree_size}.")
    leaves = entries(0, tree_size)
    if len(leaves) < tree_size:
        raise NotFound(f"The ledger has only {len(leaves)} entries.")
    return {"seq": seq, "tree_size": tree_size, "leaf_hash": ledger.leaf_hash(leaves[seq]),
            "root_hash": ledger.merkle_root(leaves), "entry": leaves[seq],
            "audit_path": ledger.inclusion_proof(leaves, seq)}


def consistency(first: int, second: int) -> dict:
    if not 0 < first <= second:
        raise ValidationFailed("Need 0 < first <= second.", errors={"first": ["must be positive and <= second"]})
    leaves = entries(0, second)
    if len(leaves) < second:
        raise NotFound(f"The ledger has only {len(leaves)} entries.")
    return {"first": first, "second": second, "first_root": ledger.merkle_root(leaves[:first]),
            "second_root": ledger.merkle_root(leaves), "proof": ledger.consistency_proof(leaves, first, second)}


def _latest_checkpoint_size() -> int:
    latest = Checkpoint.objects.order_by("-tree_size").first()
    if latest is None:
        raise NotFound("No checkpoint has been signed yet.")
    return latest.tree_size
