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
from services.consent.models import Checkpoint, LedgerEntry, LedgerHead
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

    def counting(start=0, end=None, **filters):
        for entry in real_raw(start, end, **filters):
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
