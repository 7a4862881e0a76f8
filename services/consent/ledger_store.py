"""The ledger in MongoDB: strictly linear appends, checkpoints, proofs, export (service layer).

Entries are written once and never changed (``append``); everything else
here reads them. The Merkle tree that checkpoints and proofs need is kept
in memory by a ``LedgerTree`` (one per process, held by the consent
context) and extended with the entries appended since the last request,
so the auditor API does not re-read and re-hash the whole ledger each time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mongoengine.errors import NotUniqueError
from pymongo.errors import DuplicateKeyError

from services.consent import erasures, ledger
from services.consent.models import Checkpoint, LedgerEntry, LedgerHead, ledger_key
from shared.errors import NotFound, ValidationFailed

APPEND_ATTEMPTS = 50
CHECKPOINT_ATTEMPTS = 20


class LedgerCorrupted(RuntimeError):
    """The stored entries do not form one hash chain: nothing may be signed over them."""


# Up to this many entries are read one by one by key; longer ranges in one query. A lookup by key
# costs the same at any ledger size on every MongoDB-protocol server, while a range query reads
# the whole ledger on some (FerretDB 1.x pushes no range down): the tree's catch-up and a proof
# read a few entries of a long ledger, an export reads it all anyway.
BY_KEY_MAX = 2_000


def _entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    # Raw pymongo documents: building mongoengine objects costs more than hashing them.
    return {
        "seq": raw["seq"],
        "kind": raw["kind"],
        "at": raw["at"],
        "data": dict(raw["data"]),
        "prev_hash": raw["prev_hash"],
        "hash": raw["hash"],
    }


def _raw_entries(
    start: int = 0,
    end: int | None = None,
    consultation_ids: frozenset[str] | None = None,
    kinds: frozenset[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Entries with start <= seq < end (end None: up to the head), in order; only those of
    `consultation_ids` and `kinds` when given."""
    if end is None:
        end = size()
    # A filtered read of more than one entry (an audit report, a partial export) keeps only some
    # of the entries in its range: one query reads them faster than a lookup per entry.
    by_key = BY_KEY_MAX if consultation_ids is None and kinds is None else 1
    if end - start <= by_key:
        return _entries_by_key(start, end, consultation_ids, kinds)
    query = LedgerEntry.objects(seq__gte=start, seq__lt=end)
    if consultation_ids is not None:
        # Every kind of entry names its consultation (ledger.make_entry checks it).
        query = query.filter(data__consultation_id__in=sorted(consultation_ids))
    if kinds is not None:
        query = query.filter(kind__in=sorted(kinds))
    return (_entry(raw) for raw in query.order_by("seq").as_pymongo())


def _entries_by_key(
    start: int,
    end: int,
    consultation_ids: frozenset[str] | None,
    kinds: frozenset[str] | None,
) -> Iterator[dict[str, Any]]:
    collection = LedgerEntry._get_collection()
    for seq in range(max(start, 0), end):
        raw = collection.find_one({"_id": ledger_key(seq)})
        if raw is None:
            continue  # a gap: callers that need a chain notice the seq that follows
        if consultation_ids is not None and raw["data"].get("consultation_id") not in (
            consultation_ids
        ):
            continue
        if kinds is not None and raw["kind"] not in kinds:
            continue
        yield _entry(raw)


HEAD = "head"
# How long a writer that lost a race waits for the winner to move the head before looking for the
# end itself (a read of the whole ledger on some servers), in steps.
_HEAD_WAITS_S = (0.005, 0.01, 0.02, 0.05, 0.1)


def _last_stored() -> dict[str, Any] | None:
    """The entry with the highest seq, found by sorting (the slow way: repairs and a missing head)."""
    raw = LedgerEntry.objects.order_by("-seq").as_pymongo().first()
    return None if raw is None else _entry(raw)


def _head() -> dict[str, Any] | None:
    raw = LedgerHead.objects(name=HEAD).as_pymongo().first()
    return None if raw is None else {"seq": raw["seq"], "hash": raw["hash"]}


def _move_head(head: dict[str, Any] | None, entry: Mapping[str, Any]) -> None:
    """Move the head from `head` (None: no head yet) to `entry`; a head that moved meanwhile stays."""
    if head is None:
        try:
            LedgerHead(name=HEAD, seq=entry["seq"], hash=entry["hash"]).save(force_insert=True)
        except NotUniqueError:
            pass  # another writer made it first
        return
    LedgerHead.objects(name=HEAD, seq=head["seq"]).update_one(
        set__seq=entry["seq"], set__hash=entry["hash"]
    )


def _head_after(seq: int) -> dict[str, Any] | None:
    """The head once it has moved past `seq` (waiting a little for it), or None if it did not."""
    for wait in _HEAD_WAITS_S:
        time.sleep(wait)
        head = _head()
        if head is not None and head["seq"] > seq:
            return head
    return None


def repair_head() -> dict[str, Any] | None:
    """Set the head to the last stored entry (after a crash left it behind, or for a ledger written
    before the head existed); returns the tail."""
    for _attempt in range(CHECKPOINT_ATTEMPTS):
        head, last = _head(), _last_stored()
        if last is None or (head is not None and head["seq"] >= last["seq"]):
            return head or last
        _move_head(head, last)
    return _head()


def _tail() -> dict[str, Any] | None:
    head = _head()
    return head if head is not None else repair_head()


def append(
    kind: str, data: Mapping[str, Any], event_id: str | None = None, at: datetime | None = None
) -> LedgerEntry:
    """Append one entry after the current tail; returns it (or the existing one for a repeated event_id).

    Linear under concurrent writers: seq is the primary key (``_id``), so of
    two writers that read the same tail and build the same next seq exactly
    one insert succeeds; the other gets a duplicate-key error, waits for the
    head to move (or finds the end itself) and builds its entry again on top
    of the winner's. A seq is only ever computed as tail + 1 from a stored
    entry, so there is no gap; an entry is never updated, so the prev_hash a
    writer read is still the hash of seq - 1 when its insert succeeds: no
    fork. A repeated event (redelivery, two consumers) is stopped by the
    unique event_id index. The usual append costs one read by key, one
    insert and one conditional update of the head (LedgerHead), whatever the
    ledger's size. Raises ValueError for data the ledger may not hold,
    RuntimeError after APPEND_ATTEMPTS lost races in a row.
    """
    tail = _tail()
    for _attempt in range(APPEND_ATTEMPTS):
        # Stamped per attempt, so an entry that lost a race is not dated before the winner.
        entry = ledger.make_entry(tail, kind, data, at or datetime.now(UTC))
        document = LedgerEntry(event_id=event_id, **entry)
        try:
            document.save(force_insert=True)
        except NotUniqueError:
            lost_at = tail["seq"] if tail else -1
            tail = _head_after(lost_at)
            if tail is not None:
                continue  # the winner moved the head: build on it
            stored = _appended(event_id)
            if stored is not None:
                return stored  # the same event, appended by another writer
            tail = repair_head()  # the winner has not moved the head (yet, or ever): find the end
            continue
        _move_head(tail, entry)
        return document
    raise RuntimeError("could not append to the ledger after repeated contention")


def _appended(event_id: str | None) -> LedgerEntry | None:
    """The entry already appended for this event, if any."""
    return LedgerEntry.objects(event_id=event_id).first() if event_id else None


def size() -> int:
    """Number of entries stored now (as far as the head knows: see LedgerHead)."""
    tail = _tail()
    return 0 if tail is None else tail["seq"] + 1


def entries(
    start: int = 0, end: int | None = None, consultation_ids: frozenset[str] | None = None
) -> list[dict]:
    """Entries with start <= seq < end, in order; only those of `consultation_ids` when given."""
    return list(_raw_entries(start, end, consultation_ids))


# ---- stored keys ---------------------------------------------------------------------------


def needs_key_migration() -> bool:
    """Whether entries stored under their number (before `ledger_key`) are left to re-key."""
    collection = LedgerEntry._get_collection()
    return (
        collection.find_one({"seq": {"$exists": False}}, {"_id": 1}) is not None
        or collection.find_one({"migrated_event_id": {"$exists": True}}, {"_id": 1}) is not None
    )


def migrate_keys() -> int:
    """Re-key the entries stored with their number as `_id` (ledgers written before
    `ledger_key`): each gets a copy under its string key, then the old document goes. Returns
    how many entries moved.

    Every step can be repeated, so a migration interrupted at any point (or run by two workers
    at once) is finished by running it again. The copy carries its event id aside
    (`migrated_event_id`) until the original is deleted, because the event id is unique; then
    it takes it back. Run it before the service takes traffic: entries not moved yet are not
    found by key. Entries, hashes and proofs are unchanged (`seq` is what is hashed).
    """
    collection = LedgerEntry._get_collection()
    moved = 0
    for raw in list(collection.find({"seq": {"$exists": False}})):
        seq = raw["_id"]
        if isinstance(seq, bool) or not isinstance(seq, int):
            continue  # not an entry of the old layout; leave it for a person to look at
        copy = {k: v for k, v in raw.items() if k not in ("_id", "event_id")}
        copy.update({"_id": ledger_key(seq), "seq": seq})
        if raw.get("event_id") is not None:
            copy["migrated_event_id"] = raw["event_id"]
        try:
            collection.insert_one(copy)
        except DuplicateKeyError:
            pass  # copied by an earlier or a concurrent run
        collection.delete_one({"_id": seq})
        moved += 1
    for raw in list(collection.find({"migrated_event_id": {"$exists": True}})):
        collection.update_one(
            {"_id": raw["_id"]},
            {"$set": {"event_id": raw["migrated_event_id"]}, "$unset": {"migrated_event_id": ""}},
        )
    return moved


def entries_of_kind(
    kind: str, start: int, limit: int, consultation_ids: frozenset[str] | None = None
) -> list[dict]:
    """The first `limit` entries of `kind` with seq >= start, in order (in scope when given)."""
    query = LedgerEntry.objects(seq__gte=start, kind=kind)
    if consultation_ids is not None:
        # Every kind of entry names its consultation (ledger.make_entry checks it).
        query = query.filter(data__consultation_id__in=sorted(consultation_ids))
    return [_entry(raw) for raw in query.order_by("seq").limit(limit).as_pymongo()]


class LedgerTree:
    """The RFC 6962 tree over the stored ledger, kept in memory and extended as the ledger grows.

    Entries never change once written, so a leaf read once stays valid and
    each call reads only the entries appended since (plus the last one it
    holds, to notice a store that no longer has it, e.g. a restore from
    backup: then the tree is rebuilt from the first entry). Safe to share
    between threads; the tree it hands out only grows, so a proof for a size
    it covers is unaffected by later appends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tree = ledger.MerkleTree([])
        self._tail_hash: str | None = None

    def covering(self, tree_size: int | None = None) -> ledger.MerkleTree:
        """A tree over at least the first ``tree_size`` entries (default: every entry stored now).

        Raises NotFound when the ledger holds fewer than ``tree_size``
        entries, LedgerCorrupted when the stored entries do not chain.
        """
        with self._lock:
            if not self._catch_up(tree_size):
                self._tree, self._tail_hash = ledger.MerkleTree([]), None
                self._catch_up(tree_size)
            if tree_size is not None and self._tree.size < tree_size:
                raise NotFound(f"The ledger has only {self._tree.size} entries.")
            return self._tree

    def _catch_up(self, tree_size: int | None) -> bool:
        """Read entries from the last one held up to ``tree_size`` (or the end); False if the store changed."""
        held = self._tree.size
        start = max(held - 1, 0)
        end = None if tree_size is None else max(tree_size, held)
        new = _raw_entries(start, end)
        prev_hash = ledger.GENESIS_PREV_HASH
        if held:
            last = next(new, None)
            if last is None or last["seq"] != held - 1 or last["hash"] != self._tail_hash:
                return False
            prev_hash = last["hash"]
        leaves: list[bytes] = []
        for entry in new:
            if entry["seq"] != held + len(leaves) or entry["prev_hash"] != prev_hash:
                raise LedgerCorrupted(
                    f"ledger entry {entry['seq']} does not follow entry "
                    f"{held + len(leaves) - 1} (gap or broken hash chain)"
                )
            leaves.append(bytes.fromhex(ledger.leaf_hash(entry)))
            prev_hash = entry["hash"]
        self._tree.extend(leaves)
        if leaves:
            self._tail_hash = prev_hash
        return True


# ---- checkpoints ------------------------------------------------------------------


def _latest_checkpoint() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-tree_size").first()


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def checkpoint(
    private_key: Ed25519PrivateKey, tree: LedgerTree, at: datetime | None = None
) -> dict[str, Any]:
    """A signed checkpoint covering every entry stored now: a new one, or the latest if it already does.

    Checkpoints only grow in size and time even with several signers at
    once (the consumer every N entries, an auditor's request, an export):
    a new checkpoint names the size of the latest one as its predecessor,
    that name is unique, so of two signers building on the same predecessor
    one stores and the other starts again on top of it; its timestamp is
    never earlier than its predecessor's. Raises ValidationFailed when the
    ledger is empty.
    """
    for _attempt in range(CHECKPOINT_ATTEMPTS):
        latest = _latest_checkpoint()
        merkle = tree.covering()
        tree_size = merkle.size  # the shared tree may grow while we sign; sign this size
        if tree_size == 0:
            raise ValidationFailed(
                "The ledger is empty; there is nothing to checkpoint.", errors={}
            )
        if latest is not None and latest.tree_size >= tree_size:
            return latest.as_checkpoint()
        moment = at or datetime.now(UTC)
        if latest is not None:
            moment = max(moment, _parse(latest.timestamp))
        signed = ledger.sign_checkpoint(merkle, private_key, moment, tree_size=tree_size)
        try:
            Checkpoint(previous_size=latest.tree_size if latest else 0, **signed).save(
                force_insert=True
            )
            return signed
        except NotUniqueError:
            continue  # another signer stored a checkpoint first: build on it
    raise RuntimeError("could not store a checkpoint after repeated contention")


def checkpoints(up_to: int | None = None) -> list[dict]:
    """Every checkpoint (with tree_size <= ``up_to`` when given), smallest first."""
    query = Checkpoint.objects.order_by("tree_size")
    if up_to is not None:
        query = query.filter(tree_size__lte=up_to)
    return [doc.as_checkpoint() for doc in query]


def _latest_checkpoint_size() -> int:
    latest = _latest_checkpoint()
    if latest is None:
        raise NotFound("No checkpoint has been signed yet.")
    return latest.tree_size


# ---- proofs -------------------------------------------------------------------------


def inclusion(
    tree: LedgerTree,
    seq: int,
    tree_size: int | None = None,
    consultation_ids: frozenset[str] | None = None,
) -> dict:
    """Audit path for entry ``seq`` in the tree of ``tree_size`` entries (default: the latest checkpoint).

    Raises NotFound when seq is outside that tree, the ledger is smaller, or the entry is not one of
    ``consultation_ids`` (when given): the same answer, so a caller learns nothing of others' entries.
    """
    tree_size = tree_size or _latest_checkpoint_size()
    found = entries(seq, seq + 1, consultation_ids) if 0 <= seq < tree_size else []
    if not found:
        raise NotFound(f"No entry {seq} that you may read in the tree of size {tree_size}.")
    merkle = tree.covering(tree_size)
    [entry] = found
    return {
        "seq": seq,
        "tree_size": tree_size,
        "leaf_hash": ledger.leaf_hash(entry),
        "root_hash": merkle.root(tree_size).hex(),
        "entry": entry,
        "audit_path": [h.hex() for h in merkle.inclusion_proof(seq, tree_size)],
    }


def consistency(tree: LedgerTree, first: int, second: int) -> dict:
    """RFC 6962 consistency proof between the trees of ``first`` and ``second`` entries.

    Raises ValidationFailed unless 0 < first <= second, NotFound when the ledger is smaller than ``second``.
    """
    if not 0 < first <= second:
        raise ValidationFailed(
            "Need 0 < first <= second.", errors={"first": ["must be positive and <= second"]}
        )
    merkle = tree.covering(second)
    return {
        "first": first,
        "second": second,
        "first_root": merkle.root(first).hex(),
        "second_root": merkle.root(second).hex(),
        "proof": [h.hex() for h in merkle.consistency_proof(first, second)],
    }


# ---- export and reports -------------------------------------------------------------


def export(
    private_key: Ed25519PrivateKey,
    tree: LedgerTree,
    consultation_ids: frozenset[str] | None = None,
) -> Iterator[str]:
    """The auditor export (JSON lines) of the whole ledger, its tail covered by a signed checkpoint;
    with ``consultation_ids``, the partial export of those consultations' entries instead, each with
    its inclusion proof under that checkpoint (ledger.partial_export_lines).

    Signs a checkpoint over every entry stored now unless the latest one
    already covers them, then exports the entries up to that checkpoint and
    the checkpoints up to it: entries appended meanwhile wait for the next
    export, so the verifier never meets an entry no signature covers, or a
    checkpoint beyond the entries. An empty ledger exports nothing.
    """
    if size() == 0:
        return iter(())
    head = checkpoint(private_key, tree)
    covered = head["tree_size"]
    if consultation_ids is not None:
        merkle = tree.covering(covered)
        return ledger.partial_export_lines(
            head,
            (
                (entry, merkle.inclusion_proof(entry["seq"], covered))
                for entry in _raw_entries(0, covered, consultation_ids)
            ),
        )
    return ledger.export_lines(_raw_entries(0, covered), checkpoints(up_to=covered))


def erasure_report(
    consultation_id: str | None = None,
    tree_size: int | None = None,
    status: str | None = None,
    consultation_ids: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Which full withdrawals in the first ``tree_size`` entries (default: all) an erasure confirmed.

    ``status`` "confirmed" or "unconfirmed" lists only those (the counts
    stay totals); ``consultation_ids`` (when given) limits it to those consultations.
    Raises NotFound when the ledger is smaller than ``tree_size``.
    """
    stored = size()
    tree_size = stored if tree_size is None else tree_size
    if tree_size > stored:
        raise NotFound(f"The ledger has only {stored} entries.")
    report = erasures.erasure_report(
        _raw_entries(0, tree_size, consultation_ids, frozenset(erasures.KINDS)),
        consultation_id,
    )
    if status is not None:
        report["withdrawals"] = [
            w for w in report["withdrawals"] if w["confirmed"] == (status == "confirmed")
        ]
    return {"tree_size": tree_size, **report}
