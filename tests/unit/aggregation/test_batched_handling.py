"""Runs of responses handled at once: the same end state as one event at a time, whatever fails."""

from __future__ import annotations

import dataclasses
import random

import pytest
from pymongo.errors import AutoReconnect

from services.aggregation import handlers, projection, repository
from services.aggregation.models import ContributionDocument, ParticipantContributions
from shared import mongo
from shared.bus import encode
from shared.delivery import Rejection, TransientFailure, handle_record, handle_records
from shared.errors import ValidationFailed
from shared.events import Envelope
from tests.unit.aggregation.conftest import answers_for, published, submitted, withdrawn
from tests.unit.aggregation.test_handlers import state_of, story


def full_state(agg) -> dict:
    """What the tables show, plus what is kept per participant and which events count as handled."""
    with agg.app.app_context():
        lists = {d.key: sorted(d.response_ids) for d in ParticipantContributions.objects}
        processed = sorted(d["_id"] for d in agg.runtime.db["processed_events"].find({}))
    return {**state_of(agg), "lists": lists, "processed": processed}


def one_at_a_time(agg, events: list[Envelope]) -> list:
    with agg.app.app_context():
        return [handle_record(encode(e), agg.runtime.dispatcher, attempts=2) for e in events]


def batched(agg, events: list[Envelope]) -> list:
    """The events as one poll of one partition; returns the outcomes in record order."""
    with agg.app.app_context():
        outcomes = handle_records([encode(e) for e in events], agg.runtime.dispatcher, attempts=2)
        ordered = sorted(outcomes, key=lambda pair: pair[0])
    assert [index for index, _ in ordered] == list(range(len(events)))
    return [outcome for _, outcome in ordered]


@pytest.fixture
def runs(monkeypatch) -> list[int]:
    """The size of every run the dispatcher took at once (request it before the app is made)."""
    sizes: list[int] = []
    real = handlers.add_contributions

    def counted(events, ctx):
        sizes.append(len(events))
        return real(events, ctx)

    monkeypatch.setitem(handlers.BATCH_HANDLERS, "response.submitted", counted)
    return sizes


@pytest.mark.parametrize("seed", range(3))
def test_a_run_ends_as_one_event_at_a_time_with_duplicates_and_every_kind_of_event(
    make_aggregation, runs, seed
):
    events = story()
    rng = random.Random(seed)
    # Duplicates by id (dropped by the dispatcher) and re-publications under a new id (the
    # handler itself must be idempotent), some next to their first delivery, inside one run.
    again = [
        dataclasses.replace(e, id=f"00000000-0000-4000-8000-{i:012d}") for i, e in enumerate(events)
    ]
    mixed = events + rng.sample(events, 12) + rng.sample(again, 12)
    rng.shuffle(mixed)
    mixed = [events[0], *mixed]  # the consultation first, so answers are filtered by its survey
    reference = make_aggregation()
    one_at_a_time(reference, mixed)
    agg = make_aggregation()
    batched(agg, mixed)
    assert runs and max(runs) > 1  # the batched path was taken
    assert full_state(agg) == full_state(reference)


def test_a_withdrawal_after_a_submission_in_the_same_poll_sees_it(runs, agg):
    events = [
        published(),
        submitted(1, answers_for(1)),
        submitted(2, answers_for(2)),
        withdrawn("p1", everything=True),
        submitted(3, answers_for(3)),
        submitted(4, answers_for(4), pseudonym="p1"),  # after the withdrawal: never counted
    ]
    batched(agg, events)
    assert runs == [2, 2]
    assert full_state(agg)["contributions"] == ["r2", "r3"]


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (ValidationFailed("refused", errors={"answers": ["bad"]}), "rejected"),
        (RuntimeError("a bug with this one record"), "handler_error"),
    ],
)
def test_a_failing_record_in_a_run_is_dead_lettered_alone(
    make_aggregation, monkeypatch, runs, failure, kind
):
    real = projection.contribution_from_submitted

    def fails_on_r5(payload, meta=None):
        if payload.get("response_id") == "r5":
            raise failure
        return real(payload, meta)

    monkeypatch.setattr(projection, "contribution_from_submitted", fails_on_r5)
    events = [published()] + [submitted(i, answers_for(i)) for i in range(10)]
    reference = make_aggregation()
    expected = one_at_a_time(reference, events)
    agg = make_aggregation()
    outcomes = batched(agg, events)
    rejected = [i for i, o in enumerate(outcomes) if isinstance(o, Rejection)]
    assert rejected == [6]  # r5, after the consultation
    assert outcomes[6].kind == kind == expected[6].kind
    assert runs[0] == 10  # tried as a run first, then one at a time
    state = full_state(agg)
    assert state == full_state(reference)
    assert "r5" not in state["contributions"] and len(state["contributions"]) == 9


def test_a_crash_between_the_writes_and_the_processed_ids_ends_the_same_on_redelivery(
    make_aggregation, monkeypatch
):
    events = [published()] + [submitted(i, answers_for(i)) for i in range(8)]
    events.append(submitted(8, answers_for(8), pseudonym="p2"))  # p2 answers again
    reference = make_aggregation()
    batched(reference, events)
    agg = make_aggregation()
    batched(agg, events[:1])

    def crash(collection, documents):
        raise SystemExit("the process stops here")  # not an Exception: nothing handles it

    monkeypatch.setattr(mongo, "insert_new", crash)
    with agg.app.app_context(), pytest.raises(SystemExit):
        agg.runtime.dispatcher.dispatch_run(events[1:])
    with agg.app.app_context():
        assert ContributionDocument.objects.count() == 9  # written, but not marked handled
    monkeypatch.undo()
    before = sum(b.get() for b in handlers.FRESHNESS._buckets)
    outcomes = batched(agg, events[1:])  # redelivered: nothing was recorded as handled
    assert not any(isinstance(o, Rejection) for o in outcomes)
    assert full_state(agg) == full_state(reference)
    # Stored by the first delivery: the redelivery counts no freshness twice.
    assert sum(b.get() for b in handlers.FRESHNESS._buckets) == before


def test_a_store_outage_in_a_run_leaves_the_record_to_deliver_again(agg, monkeypatch):
    """A transient failure goes through the one-at-a-time path: with no time to wait it raises,
    and nothing is recorded as handled, so the whole poll is delivered again."""
    batched(agg, [published()])
    calls = {"n": 0}

    def away(collection, documents):
        calls["n"] += 1
        raise AutoReconnect("store away")

    monkeypatch.setattr(repository, "insert_new", away)
    events = [submitted(i, answers_for(i)) for i in range(4)]
    with agg.app.app_context(), pytest.raises(TransientFailure):
        list(handle_records([encode(e) for e in events], agg.runtime.dispatcher, attempts=2))
    assert calls["n"] == 2  # the run, then its first record alone
    monkeypatch.undo()
    assert full_state(agg)["contributions"] == []
    batched(agg, events)
    assert full_state(agg)["contributions"] == ["r0", "r1", "r2", "r3"]
