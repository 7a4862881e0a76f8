"""What becomes of an event a handler cannot take: dead-lettered and passed, or retried and kept."""

from __future__ import annotations

import json

import mongomock
import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError

from shared.dead_letters import MongoDeadLetters
from shared.delivery import DeadLetter, Rejection, TransientFailure, handle_record, is_transient
from shared.errors import Conflict, ValidationFailed
from shared.events import Envelope
from shared.in_process_bus import InProcessBus
from tests.unit.shared.envelopes import erased

TOPIC, CONSENT = "responses.events", "consent.events"


@pytest.fixture
def store() -> MongoDeadLetters:
    return MongoDeadLetters(mongomock.MongoClient()["voices_test"], CONSENT)


def subscribed(store, handler) -> InProcessBus:
    bus = InProcessBus()
    bus.subscribe([TOPIC], handler, store)
    return bus


def test_a_declared_rejection_is_dead_lettered_with_its_reason_and_the_next_event_handled(store):
    seen = []

    def handler(event: Envelope) -> None:
        if event.payload["response_id"] == "r2":
            raise ValidationFailed("not for this consultation", errors={"consultation_id": ["x"]})
        seen.append(event.payload["response_id"])

    bus = subscribed(store, handler)
    for i in range(1, 4):
        bus.publish(TOPIC, erased(i))
    assert bus.deliver() == 2
    assert seen == ["r1", "r3"]
    assert len(bus.topics[f"{TOPIC}.dlq"]) == 1
    headers = dict(bus.headers[f"{TOPIC}.dlq"][0])
    assert headers["kind"] == b"rejected"
    assert headers["error"].startswith(b"not for this consultation")
    assert json.loads(bus.topics[f"{TOPIC}.dlq"][0])["payload"]["response_id"] == "r2"
    (letter,) = store.letters()
    assert letter["event_type"] == "response.erased" and letter["consultation_id"] == "c_1"
    assert letter["blocks_releases"] is True  # an erasure: it may take someone out of the counts


def test_a_transient_failure_is_raised_and_the_event_kept_for_the_next_delivery(store):
    attempts = {"left": 1}
    seen = []

    def handler(event: Envelope) -> None:
        if attempts["left"]:
            attempts["left"] -= 1
            raise AutoReconnect("store away")
        seen.append(event.payload["response_id"])

    bus = subscribed(store, handler)
    bus.publish(TOPIC, erased(1))
    with pytest.raises(TransientFailure):
        bus.deliver()
    assert bus.deliver() == 1 and seen == ["r1"]
    assert store.letters() == [] and not bus.topics[f"{TOPIC}.dlq"]


def test_transient_failures_are_retried_without_end_until_told_to_stop():
    calls = {"n": 0}

    def handler(event: Envelope) -> None:
        calls["n"] += 1
        if calls["n"] < 6:
            raise AutoReconnect("still away")

    waits = []
    outcome = handle_record(
        json.dumps(erased(1).to_dict()).encode(),
        handler,
        attempts=2,  # bounds errors that are not outages, never outages
        wait=lambda delay: waits.append(delay) and False,
    )
    assert isinstance(outcome, Envelope) and calls["n"] == 6
    assert waits == sorted(waits) and max(waits) <= 5.0  # backoff, capped
    with pytest.raises(TransientFailure):
        handle_record(
            json.dumps(erased(1).to_dict()).encode(),
            lambda e: (_ for _ in ()).throw(AutoReconnect("away")),
            attempts=2,
            wait=lambda delay: True,  # stopping
        )


def test_an_error_that_is_no_outage_gets_its_attempts_then_is_dead_lettered():
    calls = {"n": 0}

    def buggy(event: Envelope) -> None:
        calls["n"] += 1
        raise KeyError("missing")

    outcome = handle_record(
        json.dumps(erased(1).to_dict()).encode(), buggy, attempts=3, wait=lambda d: False
    )
    assert isinstance(outcome, Rejection) and outcome.kind == "handler_error"
    assert calls["n"] == 3 and "KeyError" in outcome.reason


def test_outages_are_told_from_bugs():
    assert is_transient(AutoReconnect("x")) and is_transient(ConnectionRefusedError())
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = AutoReconnect("x")
    assert is_transient(wrapped)
    assert not is_transient(DuplicateKeyError("dup")) and not is_transient(KeyError("k"))


def test_a_dead_letter_is_one_per_event_and_unreadable_consent_records_block_every_release(store):
    rejection = Rejection("rejected", "no")
    event = erased(1, "c_9")
    value = json.dumps(event.to_dict()).encode()
    for offset in (4, 9):  # the same event delivered twice
        store.record(DeadLetter.of(TOPIC, 0, offset, "c_9", value, rejection))
    store.record(DeadLetter.of(CONSENT, 1, 3, None, b"\xff garbage", Rejection("contract", "x")))
    store.record(DeadLetter.of(TOPIC, 2, 5, None, b"not json either", Rejection("contract", "x")))
    letters = store.letters()
    assert len(letters) == 3
    assert {d["_id"]: d["deliveries"] for d in letters}[event.id] == 2
    summary = store.summary()
    assert summary["open"] == 3 and summary["blocking_releases"] == 2 and summary["oldest"]
    assert sorted(store.blocking("c_9")) == sorted([event.id, f"{CONSENT}/1/3"])
    assert store.blocking("c_other") == [f"{CONSENT}/1/3"]
    assert store.resolve(f"{CONSENT}/1/3", "discarded", "checked: a test record")
    assert not store.resolve(f"{CONSENT}/1/3", "discarded", "again")
    assert store.blocking("c_other") == []


def test_redrive_applies_each_letter_once_and_leaves_what_still_fails_open(store):
    fixed = {"now": False}
    applied = []

    def handler(event: Envelope) -> None:
        if not fixed["now"] or event.payload["response_id"] == "r3":
            raise Conflict("cannot apply yet")
        applied.append(event.payload["response_id"])

    bus = subscribed(store, handler)
    for i in (1, 2, 3):
        bus.publish(TOPIC, erased(i))
    bus.deliver()
    assert store.summary()["open"] == 3
    fixed["now"] = True
    results = []
    counts = store.redrive(handler, on_result=lambda *r: results.append(r))
    assert counts == {"redriven": 2, "still_failing": 1, "skipped": 0}
    assert applied == ["r1", "r2"]
    assert [r[1] for r in results] == ["redriven", "redriven", "still_failing"]
    assert store.redrive(handler) == {"redriven": 0, "still_failing": 1, "skipped": 0}
    assert applied == ["r1", "r2"]  # idempotent: nothing applied twice
    first = store.letters(None)[0]["_id"]
    assert store.redrive(handler, [first]) == {"redriven": 0, "still_failing": 0, "skipped": 1}
    (left,) = store.letters()
    assert left["reason"].startswith("cannot apply yet")
