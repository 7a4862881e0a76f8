"""Handlers through the in-process app and bus: same state whatever the order, every event twice."""

from __future__ import annotations

import dataclasses
import random

import pytest

from services.aggregation import handlers, releases, repository
from services.aggregation.disclosure import protect_tables
from services.aggregation.models import (
    ContributionDocument,
    ParticipantContributions,
    Quote,
    StorageLayout,
    TombstoneDocument,
    participant_key,
)
from services.aggregation.snapshots import build_snapshot
from tests.unit.aggregation.conftest import (
    CID,
    answers_for,
    erased,
    published,
    quote_approved,
    quote_revoked,
    submitted,
    withdrawn,
)
from tests.unit.gateway.test_observability import metrics_token


def story() -> list:
    """A consultation's life: 30 responses, withdrawals of every kind, erasures, quotes."""
    events = [published(version=1), published(version=2)]
    events += [submitted(i, answers_for(i)) for i in range(30)]
    events.append(submitted(30, answers_for(30), purposes=("participate",)))  # no aggregate consent
    events.append(
        submitted(31, answers_for(31), pseudonym="p3", at="2025-02-02T10:00:00Z")
    )  # p3 answers again
    events += [
        withdrawn("p1", ["aggregate_reporting"]),
        withdrawn("p2", everything=True),
        withdrawn("p4", ["follow_up_contact"]),
        withdrawn("p5", ["quote_anonymised"]),
    ]
    events += [erased(6, "withdrawal"), erased(7, "retention")]
    events += [
        quote_approved("q1", "p5", "dropped: quote consent withdrawn"),
        quote_approved("q2", "p2", "dropped: everything withdrawn"),
        quote_approved("q3", "p8", "kept"),
        quote_approved("q4", "p9", "revoked"),
        quote_revoked("q4"),
        quote_approved("q5", "p6", "dropped: erased after withdrawal"),
    ]
    return events


def state_of(agg) -> dict:
    with agg.app.app_context():
        tables = releases.current_tables(CID)
        snap = build_snapshot(
            tables,
            protect_tables(tables, 5),
            consultation_id=CID,
            snapshot=1,
            created_at="2025-04-01T00:00:00Z",
        )
        return {
            "contributions": sorted(c.response_id for c in ContributionDocument.objects),
            "tombstones": sorted(
                (
                    t.pseudonym,
                    t.whole_participant,
                    t.quotes_withdrawn,
                    tuple(sorted(t.response_ids)),
                )
                for t in TombstoneDocument.objects
            ),
            "quotes": sorted((q.quote_id, q.text) for q in Quote.objects(revoked=False)),
            "counts": tables.counts,
            "digest": snap["digest"],
        }


def test_the_story_counts_what_the_rules_say(agg):
    agg.send(*story())
    s = state_of(agg)
    # Withdrawn (p1 aggregate, p2 all) and erased-after-withdrawal (p6) are gone; the retention
    # erasure (r7) stays; no aggregate consent (r30) was never stored; p4 and p5 withdrew something else.
    expected = {f"r{i}" for i in range(30)} - {"r1", "r2", "r6"} | {"r31"}
    assert set(s["contributions"]) == expected
    assert s["quotes"] == [("q3", "kept")]
    # p3 answered twice: one participant, one voice (the later answer counts).
    assert s["counts"][()] == len(expected) - 1


@pytest.mark.parametrize("seed", range(4))
def test_same_state_in_any_order_and_with_every_event_delivered_twice(make_aggregation, seed):
    events = story()
    reference = make_aggregation()
    reference.send(*events)
    expected = state_of(reference)

    rng = random.Random(seed)
    # Every event twice with the same id (dropped by the dispatcher) and once more under a new
    # id (a re-publication the dispatcher cannot recognise: the handler itself must be idempotent).
    again = [
        dataclasses.replace(e, id=f"00000000-0000-4000-8000-{i:012d}") for i, e in enumerate(events)
    ]
    shuffled = events + events + again
    rng.shuffle(shuffled)
    agg = make_aggregation()
    for e in shuffled:  # one at a time: each delivery sees the state the earlier ones left
        agg.send(e)
    assert state_of(agg) == expected


def test_a_withdrawal_before_the_response_keeps_it_out(agg):
    agg.send(published(), withdrawn("p1", ["aggregate_reporting"]), submitted(1, answers_for(1)))
    with agg.app.app_context():
        assert ContributionDocument.objects.count() == 0


def test_an_older_survey_version_does_not_replace_a_newer_one(agg):
    newer = [dict(q) for q in published().payload["questions"]] + [
        {
            "id": "extra",
            "type": "single_choice",
            "options": ["a", "b"],
            "dimension": False,
            "min": None,
            "max": None,
        }
    ]
    agg.send(published(version=2, questions=newer), published(version=1))
    with agg.app.app_context():
        meta = repository.consultation_meta(CID)
    assert meta.survey_version == 2 and meta.question("extra") is not None


def test_a_race_between_storing_and_burying_ends_buried(agg, monkeypatch):
    """A withdrawal stored between the response's writes and its tombstone check still wins."""
    agg.send(published())
    real = repository.tombstone
    calls = {"n": 0}

    def late_tombstone(cid, pseudonym):
        calls["n"] += 1
        if calls["n"] == 1:  # the check after writing: the withdrawal landed in between
            handlers.subtract_withdrawn(withdrawn("p1", everything=True), None)
        return real(cid, pseudonym)

    monkeypatch.setattr(repository, "tombstone", late_tombstone)
    agg.send(submitted(1, answers_for(1)))
    with agg.app.app_context():
        assert ContributionDocument.objects.count() == 0
    monkeypatch.undo()
    # A response that arrives after its participant withdrew is not kept either.
    agg.send(withdrawn("p2", everything=True), submitted(2, answers_for(2)))
    with agg.app.app_context():
        assert ContributionDocument.objects.count() == 0


def test_freshness_is_observed_once_per_counted_response(agg):
    before = handlers.FRESHNESS._sum.get(), sum(b.get() for b in handlers.FRESHNESS._buckets)
    agg.send(published(), submitted(1, answers_for(1)))
    agg.send(
        dataclasses.replace(submitted(1, answers_for(1)), id="00000000-0000-4000-8000-000000000001")
    )
    after = sum(b.get() for b in handlers.FRESHNESS._buckets)
    assert after - before[1] == 1
    with metrics_token(agg.app) as headers:
        assert (
            b"voices_aggregation_freshness_seconds_count"
            in agg.client.get("/metrics", headers=headers).data
        )


# ---- per-participant keys ---------------------------------------------------------------


def test_what_is_kept_per_participant_is_stored_under_their_key(agg):
    agg.send(published(version=1), submitted(1, answers_for(1)), submitted(2, answers_for(2)))
    agg.send(withdrawn("p2", everything=True))
    assert [t.key for t in TombstoneDocument.objects] == [participant_key(CID, "p2")]
    listed = {d.key: d.response_ids for d in ParticipantContributions.objects}
    assert listed == {participant_key(CID, "p1"): ["r1"], participant_key(CID, "p2"): ["r2"]}
    assert [c.response_id for c in ContributionDocument.objects] == ["r1"]
    # Keys cannot collide across consultations and pseudonyms that share characters.
    assert participant_key("a:b", "c") != participant_key("a", "b:c")


def _to_old_layout() -> None:
    """The projection as stored before per-participant keys: tombstones under generated ids with
    a unique index on (consultation_id, pseudonym), no participant lists, no layout marker."""
    tombstones = TombstoneDocument._get_collection()
    old = list(tombstones.find({}))
    tombstones.drop()
    for raw in old:
        raw.pop("_id")
        tombstones.insert_one(raw)
    tombstones.create_index([("consultation_id", 1), ("pseudonym", 1)], unique=True)
    ParticipantContributions.objects.delete()
    StorageLayout.objects.delete()


def test_a_projection_stored_before_the_keys_is_migrated_and_behaves_the_same(make_aggregation):
    events = story()
    reference = make_aggregation()
    reference.send(*events)
    expected = state_of(reference)
    with reference.app.app_context():
        _to_old_layout()
        assert all(
            not isinstance(t["_id"], str) for t in TombstoneDocument._get_collection().find({})
        )
        assert repository.migrate_to_keys() is True
        assert repository.migrate_to_keys() is False  # the marker says it is done
        assert all(
            t.key == participant_key(t.consultation_id, t.pseudonym)
            for t in TombstoneDocument.objects
        )
    assert state_of(reference) == expected
    # A withdrawal after the migration finds the contributions stored before it.
    reference.send(withdrawn("p9", everything=True))
    assert "r9" not in state_of(reference)["contributions"]
    # Redelivered events after the migration leave the state as it was.
    reference.send(*[dataclasses.replace(e) for e in events])
    assert state_of(reference)["contributions"] == sorted(set(expected["contributions"]) - {"r9"})


def test_an_interrupted_migration_is_finished_by_the_next_start(make_aggregation, monkeypatch):
    agg = make_aggregation()
    agg.send(*story())
    expected = state_of(agg)
    with agg.app.app_context():
        _to_old_layout()
        tombstones = TombstoneDocument._get_collection()
        real_delete = type(tombstones).delete_one
        calls = []

        def crash_on_the_second(self, *args, **kwargs):
            calls.append(args)
            if len(calls) == 2:
                raise RuntimeError("killed")
            return real_delete(self, *args, **kwargs)

        monkeypatch.setattr(type(tombstones), "delete_one", crash_on_the_second)
        with pytest.raises(RuntimeError):
            repository.migrate_to_keys()
        monkeypatch.undo()
        assert StorageLayout.objects(name=repository.PARTICIPANT_KEYS).first() is None
        assert repository.migrate_to_keys() is True  # what the app does at its next start
        assert StorageLayout.objects(name=repository.PARTICIPANT_KEYS).first() is not None
    assert state_of(agg) == expected
