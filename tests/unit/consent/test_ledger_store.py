"""The ledger store: linear appends when writers race, checkpoints that only grow, the in-memory Merkle tree.

Races are staged deterministically (a writer is made to read a tail or a
checkpoint that another writer has just superseded), because mongomock is
not atomic across threads: what is tested is the compare-and-set logic that
real MongoDB's unique indexes make safe.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.consent import ledger, ledger_store, verify
from services.consent.models import Checkpoint, LedgerEntry, LedgerHead, ledger_key
from shared.errors import NotFound
from tests.unit.consent.conftest import BASE_TIME, ledger_data


@pytest.fixture
def store(consent):
    """An empty consent store (the app connects mongomock) and its process's tree."""
    return consent.context.ledger_tree


def add(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        kind, data = ledger_data(i, ledger.format_timestamp(BASE_TIME + timedelta(seconds=i)))
        ledger_store.append(kind, data, event_id=f"event-{i}", at=BASE_TIME + timedelta(seconds=i))


def chain_holds() -> bool:
    entries = ledger_store.entries()
    return [e["seq"] for e in entries] == list(range(len(entries))) and ledger.verify_chain(
        entries
    ) is None


def test_appends_chain_each_entry_to_the_one_before(store):
    add(10)
    entries = ledger_store.entries()
    assert [e["seq"] for e in entries] == list(range(10)) and chain_holds()
    assert ledger_store.size() == 10 and ledger_store.entries(3, 5) == entries[3:5]


def test_a_writer_that_lost_the_race_for_a_seq_appends_after_the_winner(store, monkeypatch):
    add(3)
    stale = ledger_store._tail()
    add(1, start=3)  # the other writer takes seq 3
    monkeypatch.setattr(
        ledger_store, "_tail", lambda: stale
    )  # read before the other writer's insert
    kind, data = ledger_data(4, ledger.format_timestamp(BASE_TIME))
    entry = ledger_store.append(kind, data, event_id="event-late")
    monkeypatch.undo()
    assert entry.seq == 4 and chain_holds() and ledger_store.size() == 5


def test_a_head_left_behind_by_a_crash_is_repaired_by_the_next_append(store):
    add(3)
    # A writer stored entry 3 and died before moving the head.
    kind, data = ledger_data(3, ledger.format_timestamp(BASE_TIME))
    LedgerEntry(
        event_id="event-3",
        **ledger.make_entry(ledger_store.entries(2, 3)[0], kind, data, BASE_TIME),
    ).save(force_insert=True)
    assert ledger_store.size() == 3  # the head does not know yet
    entry = ledger_store.append(
        *ledger_data(4, ledger.format_timestamp(BASE_TIME)), event_id="event-4"
    )
    assert entry.seq == 4 and chain_holds() and ledger_store.size() == 5


def test_the_usual_append_finds_the_end_without_sorting_the_ledger(store, monkeypatch):
    add(3)

    def no_sorting():
        raise AssertionError("the ledger was sorted to find its end")

    monkeypatch.setattr(ledger_store, "_last_stored", no_sorting)
    add(5, start=3)
    assert ledger_store.size() == 8 and chain_holds()


def test_a_repeated_event_is_appended_once_even_when_two_writers_race_with_it(store, monkeypatch):
    add(2)
    stale = ledger_store._tail()
    kind, data = ledger_data(2, ledger.format_timestamp(BASE_TIME))
    first = ledger_store.append(kind, data, event_id="event-x")
    assert (
        ledger_store.append(kind, data, event_id="event-x").seq == first.seq
    )  # a redelivery, much later
    add(2, start=3)
    assert ledger_store.append(kind, data, event_id="event-x").seq == first.seq
    # Two consumers handling the same event read the same tail; the one that loses returns the winner's entry.
    monkeypatch.setattr(ledger_store, "_tail", lambda: stale)
    assert ledger_store.append(kind, data, event_id="event-x").seq == first.seq
    monkeypatch.undo()
    assert ledger_store.size() == 5 and chain_holds()
    assert LedgerEntry.objects(event_id="event-x").count() == 1


def test_checkpoints_only_grow_in_size_and_time_when_signers_race(
    consent, store, signing_key, monkeypatch
):
    add(5)
    key = consent.context.signing_key
    first = ledger_store.checkpoint(key, store, at=BASE_TIME + timedelta(hours=2))
    assert first["tree_size"] == 5
    add(3, start=5)
    # This signer read "no checkpoint yet" before the other signer stored one at size 5.
    real_latest, calls = ledger_store._latest_checkpoint, []

    def latest_read_too_early():
        calls.append(1)
        return None if len(calls) == 1 else real_latest()

    monkeypatch.setattr(ledger_store, "_latest_checkpoint", latest_read_too_early)
    second = ledger_store.checkpoint(key, store, at=BASE_TIME)  # and its clock is behind, too
    assert len(calls) == 2  # refused (same predecessor), built again on the stored one
    assert second["tree_size"] == 8 and second["timestamp"] >= first["timestamp"]
    stored = list(Checkpoint.objects.order_by("tree_size"))
    assert [(c.previous_size, c.tree_size) for c in stored] == [(0, 5), (5, 8)]
    # An export of this ledger passes the verifier's "never shrink, never go back in time" rule.
    lines = list(ledger.export_lines(ledger_store.entries(), ledger_store.checkpoints()))
    report = verify.verify_export(
        lines, verify.load_public_keys(consent.public_key_pem().encode()), strict=True
    )
    assert report.ok, report.message()


def test_a_checkpoint_is_not_signed_again_for_the_same_size(consent, store):
    add(4)
    key = consent.context.signing_key
    assert ledger_store.checkpoint(key, store) == ledger_store.checkpoint(key, store)
    assert Checkpoint.objects.count() == 1


# ---------------------------------------------------------------- the tree kept in memory


def test_the_tree_is_extended_with_new_entries_and_agrees_with_one_built_from_scratch(
    store, monkeypatch
):
    add(20)
    assert store.covering().size == 20
    read = []
    real_raw = ledger_store._raw_entries

    def counting(start=0, end=None, *scope):
        for entry in real_raw(start, end, *scope):
            read.append(entry["seq"])
            yield entry

    monkeypatch.setattr(ledger_store, "_raw_entries", counting)
    add(13, start=20)
    tree = store.covering()
    assert read == list(range(19, 33))  # the last leaf it held (to check it) and the new ones only
    scratch = ledger.MerkleTree.from_entries(ledger_store.entries())
    assert all(tree.root(n) == scratch.root(n) for n in range(34))
    read.clear()
    assert store.covering(10) is tree and read == [
        32
    ]  # already covered: one read, to check the tail


def test_a_store_that_no_longer_holds_the_trees_entries_is_noticed(store):
    add(6)
    store.covering()
    # Restored from an older backup with a different history (the whole database: entries and head).
    LedgerEntry.objects.delete()
    LedgerHead.objects.delete()
    add(3, start=40)
    assert store.covering().size == 3
    assert store.covering().root() == ledger.MerkleTree.from_entries(ledger_store.entries()).root()


def test_a_broken_chain_is_never_signed(consent, store):
    add(5)
    LedgerEntry.objects(seq=3).update_one(set__prev_hash="f" * 64)
    with pytest.raises(ledger_store.LedgerCorrupted):
        ledger_store.checkpoint(consent.context.signing_key, store)
    assert Checkpoint.objects.count() == 0


def test_asking_for_more_entries_than_stored_is_404(store):
    from shared.errors import NotFound

    add(3)
    with pytest.raises(NotFound):
        store.covering(4)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 13, 64, 100])
def test_merkle_tree_extend_matches_building_at_once(n):
    leaves = [bytes([i % 251]) * 3 for i in range(n)]
    grown = ledger.MerkleTree([])
    for i in range(0, n, 3):  # in uneven steps
        grown.extend(ledger._leaf(x) for x in leaves[i : i + 3])
    whole = ledger.MerkleTree.from_entries(leaves)
    assert grown.size == whole.size == n
    for size in range(n + 1):
        assert grown.root(size) == whole.root(size)
    for index in range(n):
        assert grown.inclusion_proof(index) == whole.inclusion_proof(index)
    for first in range(n + 1):
        assert grown.consistency_proof(first) == whole.consistency_proof(first)


def test_timestamps_in_checkpoints_parse_back(consent, store):
    add(2)
    cp = ledger_store.checkpoint(
        consent.context.signing_key,
        store,
        at=datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
    )
    assert cp["timestamp"] == "2030-01-01T12:00:00.123456Z"
    assert ledger_store._parse(cp["timestamp"]) == datetime(
        2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC
    )


# ---- string keys --------------------------------------------------------------------------


def test_entries_are_stored_under_their_number_as_a_sortable_string(store):
    add(12)
    stored = list(LedgerEntry._get_collection().find({}, {"seq": 1}))
    assert sorted(d["_id"] for d in stored) == [ledger_key(i) for i in range(12)]
    assert all(d["_id"] == ledger_key(d["seq"]) for d in stored)
    assert ledger_key(7) == "000000000007" and ledger_key(10) > ledger_key(9)
    with pytest.raises(ValueError):
        ledger_key(-1)


def test_short_ranges_and_proofs_read_entries_by_key_only(consent, store, monkeypatch):
    add(30)
    ledger_store.checkpoint(consent.context.signing_key, store)
    add(5, start=30)
    filters = []
    collection = LedgerEntry._get_collection()
    real_find_one = type(collection).find_one

    def find_one(self, query=None, *args, **kwargs):
        if self.name == "ledger":
            filters.append(query)
        return real_find_one(self, query, *args, **kwargs)

    monkeypatch.setattr(type(collection), "find_one", find_one)
    monkeypatch.setattr(LedgerEntry, "objects", None)  # any query by a field other than _id fails
    proof = ledger_store.inclusion(store, 12, consultation_ids=frozenset({"c-5", "c-2"}))
    assert proof["seq"] == 12 and proof["entry"]["seq"] == 12
    with pytest.raises(NotFound):  # entry 12 is of c-5
        ledger_store.inclusion(store, 12, consultation_ids=frozenset({"c-1"}))
    assert store.covering().size == 35
    assert [e["seq"] for e in ledger_store.entries(28, 35)] == list(range(28, 35))
    assert filters and all(set(f) == {"_id"} and isinstance(f["_id"], str) for f in filters)


def test_a_long_range_and_a_filtered_one_read_the_same_entries_as_lookups_by_key(
    store, monkeypatch
):
    add(40)
    by_key = ledger_store.entries(0, 40)
    monkeypatch.setattr(ledger_store, "BY_KEY_MAX", 5)  # 40 entries now count as a long range
    assert ledger_store.entries(0, 40) == by_key
    mine = frozenset({by_key[3]["data"]["consultation_id"]})
    assert ledger_store.entries(0, 40, mine) == [
        e for e in by_key if e["data"]["consultation_id"] in mine
    ]


def _store_old_layout(n: int) -> list[dict]:
    """The ledger as written before string keys: `_id` is the entry's number, no `seq` field."""
    add(n)
    entries = ledger_store.entries()
    collection = LedgerEntry._get_collection()
    old = []
    for raw in list(collection.find({})):
        collection.delete_one({"_id": raw["_id"]})
        doc = {k: v for k, v in raw.items() if k not in ("_id", "seq")}
        old.append({"_id": raw["seq"], **doc})
    for doc in old:
        collection.insert_one(doc)
    return entries


def test_a_ledger_keyed_by_number_is_rekeyed_with_every_entry_and_event_id_kept(consent, store):
    entries = _store_old_layout(15)
    assert ledger_store.needs_key_migration()
    assert ledger_store.migrate_keys() == 15
    assert not ledger_store.needs_key_migration() and ledger_store.migrate_keys() == 0
    assert ledger_store.entries() == entries and chain_holds()
    assert LedgerEntry.objects(event_id="event-7").first().seq == 7
    # Appends go on after the re-keyed end, and a repeated event is still recognised.
    add(1, start=15)
    kind, data = ledger_data(3, ledger.format_timestamp(BASE_TIME))
    assert ledger_store.append(kind, data, event_id="event-3").seq == 3
    assert ledger_store.size() == 16 and chain_holds()


def test_an_interrupted_rekeying_is_finished_by_running_it_again(consent, store, monkeypatch):
    entries = _store_old_layout(6)
    collection = LedgerEntry._get_collection()
    real_delete = type(collection).delete_one
    calls = []

    def crash_on_the_third(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real_delete(self, *args, **kwargs)

    monkeypatch.setattr(type(collection), "delete_one", crash_on_the_third)
    with pytest.raises(RuntimeError):
        ledger_store.migrate_keys()
    monkeypatch.undo()
    assert ledger_store.needs_key_migration()
    ledger_store.migrate_keys()
    assert not ledger_store.needs_key_migration()
    assert ledger_store.entries() == entries and chain_holds()
    assert sorted(d["event_id"] for d in collection.find({})) == sorted(
        f"event-{i}" for i in range(6)
    )
