"""Aggregation never stalls on one bad event, never releases past a withdrawal it could not
apply, and says on /readyz when events wait in its outbox too long."""

from __future__ import annotations

import json

import pytest

from services.aggregation import rebuild
from shared.bus import PublishFailed
from shared.errors import ValidationFailed
from shared.events import Envelope
from tests.conftest import store_unchanged
from tests.unit.aggregation.conftest import (
    CID,
    QUESTIONS,
    answers_for,
    published,
    submitted,
    withdrawn,
)

BASE = f"/api/v1/insights/consultations/{CID}"


def counted(agg) -> int:
    return agg.call("GET", f"{BASE}/progress", 200)["responses_counted"]


def test_poison_and_handler_poison_are_dead_lettered_and_later_events_still_count(agg):
    agg.send(published(), submitted(1, answers_for(1)))
    poison = submitted(2, answers_for(2)).to_dict()
    poison["payload"]["response_id"] = ""  # passed the old contract, refused by the projection
    agg.bus.publish_raw(agg.settings.topics.responses, json.dumps(poison).encode())
    bad_survey = published(cid="c_other", questions=[QUESTIONS[0], QUESTIONS[0]])  # ids twice
    agg.send(bad_survey, submitted(3, answers_for(3)))
    assert counted(agg) == 2
    letters = {d["event_type"]: d for d in agg.runtime.dead_letters.letters()}
    assert letters["response.submitted"]["kind"] == "contract"
    assert "response_id" in letters["response.submitted"]["reason"]
    assert letters["consultation.published"]["kind"] == "rejected"
    assert "duplicate question ids" in letters["consultation.published"]["reason"]
    assert len(agg.bus.topics[f"{agg.settings.topics.responses}.dlq"]) == 1
    assert len(agg.bus.topics[f"{agg.settings.topics.surveys}.dlq"]) == 1
    ready = agg.client.get("/readyz").get_json()["checks"]["dead_letters"]
    assert ready["open"] == 2 and ready["blocking_releases"] == 0 and ready["oldest"]


def test_a_withdrawal_that_cannot_be_applied_holds_back_releases_until_redriven(agg, monkeypatch):
    agg.send(published(), *[submitted(i, answers_for(i)) for i in range(12)])
    handlers = agg.runtime.dispatcher.handlers
    working = handlers["consent.withdrawn"]

    def broken(event, ctx):
        raise ValidationFailed("cannot apply this withdrawal")

    monkeypatch.setitem(handlers, "consent.withdrawn", broken)
    agg.send(withdrawn("p3", everything=True))
    assert counted(agg) == 12  # not applied ...
    with store_unchanged(lambda: list(agg.runtime.db["releases"].find())):
        refused = agg.release(expect=409)  # ... so nothing may be released
    assert "withdrawal" in refused["detail"] and len(refused["dead_letters"]) == 1

    monkeypatch.setitem(handlers, "consent.withdrawn", working)  # the fix is deployed
    listed = agg.app.test_cli_runner().invoke(args=["dlq", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output)["blocks_releases"] is True
    first = agg.app.test_cli_runner().invoke(args=["dlq", "redrive", "--all"])
    assert first.exit_code == 0, first.output
    assert "redriven 1" in first.output
    again = agg.app.test_cli_runner().invoke(args=["dlq", "redrive", "--all"])
    assert again.exit_code == 0 and "redriven 0" in again.output
    assert counted(agg) == 11
    assert agg.release()["snapshot"] == 1  # released once the withdrawal is in


def test_a_rebuild_skips_what_it_cannot_accept_and_freshness_leaves_replays_out(agg):
    agg.send(published(), *[submitted(i, answers_for(i)) for i in range(6)])
    assert agg.call("GET", f"{BASE}/freshness", 200)["responses"] == 6
    poison = submitted(99, answers_for(99)).to_dict()
    poison["payload"]["consultation_id"] = "c_other"  # valid for the contract ...
    records = [
        (topic, 0, offset, value)
        for topic in agg.runtime.subscriptions
        for offset, value in enumerate(agg.bus.topics[topic])
    ]
    with agg.app.app_context():
        rebuild.clear_projection(agg.runtime.db, "voices-aggregation")
        report = rebuild.replay(
            records
            + [(agg.settings.topics.responses, 1, 0, b"{}")]
            + [(agg.settings.topics.responses, 1, 1, json.dumps(poison).encode())],
            agg.runtime.dispatcher,
            dead_letters=agg.runtime.dead_letters,
        )
    assert report.handled == 8 and report.invalid == 1
    fresh = agg.call("GET", f"{BASE}/freshness", 200)
    assert fresh["responses"] == 0 and fresh["replayed"] == 6 and fresh["p50_seconds"] is None
    agg.send(submitted(7, answers_for(7)))  # arrives live after the rebuild
    fresh = agg.call("GET", f"{BASE}/freshness", 200)
    assert fresh["responses"] == 1 and fresh["replayed"] == 6
    assert len(agg.runtime.dead_letters.letters()) == 1


def test_an_event_waiting_in_the_outbox_beyond_its_bound_makes_the_service_unready(
    make_aggregation,
):
    agg = make_aggregation()
    runtime = agg.runtime
    assert agg.client.get("/readyz").status_code == 200
    # An event stored long ago and not yet published: the broker has not taken it since.
    old = Envelope(
        type="contacts.accessed",
        key="c_1",
        producer="aggregation",
        occurred_at="2020-01-01T00:00:00Z",
        payload={},
    )
    runtime.db["releases"].insert_one(
        {"_id": "rel_old", "pending_events": [{"topic": "x", "envelope": old.to_dict()}]}
    )
    agg.bus.fail_publish = True
    with pytest.raises(PublishFailed):
        runtime.relay.relay_once()
    response = agg.client.get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert (
        checks["outbox"].startswith("oldest event waiting") and checks["outbox_oldest_age_s"] > 30
    )
    # Requests are still answered meanwhile, so a load balancer keeps sending them.
    assert agg.client.get("/readyz/requests").status_code == 200
    agg.bus.fail_publish = False
    runtime.relay.relay_once()
    checks = agg.client.get("/readyz").get_json()["checks"]
    assert checks["outbox"] == "ok" and checks["outbox_oldest_age_s"] is None


def test_a_store_that_does_not_answer_takes_the_service_out_of_serving(
    make_aggregation, monkeypatch
):
    agg = make_aggregation()

    def no_answer(alias):
        raise TimeoutError("no answer")

    monkeypatch.setattr("shared.runtime.mongo.ping", no_answer)
    response = agg.client.get("/readyz/requests")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"mongodb": "unavailable: TimeoutError"}
