"""Handlers through the in-process app and bus: same state whatever the order, every event twice."""

from __future__ import annotations

import dataclasses
import random

import pytest

from services.aggregation import handlers, releases
from services.aggregation.disclosure import protect_tables
from services.aggregation.models import Contribution, Quote, Tombstone
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
            "contributions": sorted(c.response_id for c in Contribution.objects),
            "tombstones": sorted(
                (
                    t.pseudonym,
                    t.whole_participant,
                    t.quotes_withdrawn,
                    tuple(sorted(t.response_ids)),
                )
                for t in Tombstone.objects
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
        assert Contribution.objects.count() == 0


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
        meta = handlers.stored_meta(CID)
    assert meta.survey_version == 2 and meta.question("extra") is not None


def test_a_race_between_storing_and_burying_ends_buried(agg, monkeypatch):
    """A withdrawal stored between the response's tombstone check and its write still wins."""
    agg.send(published())
    real = handlers.stored_tombstone
    calls = {"n": 0}

    def late_tombstone(cid, pseudonym):
        calls["n"] += 1
        if calls["n"] == 2:  # the re-check after writing: the withdrawal landed in between
            handlers.subtract_withdrawn(withdrawn("p1", everything=True), None)
        return real(cid, pseudonym)

    monkeypatch.setattr(handlers, "stored_tombstone", late_tombstone)
    agg.send(submitted(1, answers_for(1)))
    with agg.app.app_context():
        assert Contribution.objects.count() == 0


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
