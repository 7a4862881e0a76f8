"""Differential privacy per consultation: the budget from consultation.published, spending it, reading it."""

from __future__ import annotations

import math
import threading
from datetime import datetime

import mongomock
import pytest

from services.aggregation import rebuild, releases, repository
from services.aggregation.models import ConsultationDocument, PrivacyBudgetDocument, Release
from shared.auth import Principal
from tests.unit.aggregation.conftest import CID, ORG, answers_for, published, submitted

BUDGET = f"/api/v1/insights/consultations/{CID}/privacy-budget"
OTHER = "c_other"


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def fill(agg, cid=CID, org=ORG, epsilon_budget=None, n=30):
    agg.send(
        published(cid=cid, org=org, epsilon_budget=epsilon_budget),
        *[
            submitted(1000 * len(cid) + i, answers_for(i), cid=cid, pseudonym=f"{cid}-p{i}")
            for i in range(n)
        ],
    )


def stored(agg, model, **query):
    with agg.app.app_context():
        return list(model.objects(**query))


def test_a_consultation_without_a_budget_refuses_noisy_releases_and_stores_nothing(agg):
    fill(agg)
    problem = agg.release(epsilon=0.5, expect=409)
    assert (
        "not offered" in problem["detail"]
        and problem["remaining"] == 0
        and problem["requested"] == 0.5
    )
    assert stored(agg, Release) == [] and stored(agg, PrivacyBudgetDocument) == []
    plain = agg.release()  # without noise it is released as before
    assert plain["privacy"] is None and plain["epsilon_remaining"] is None
    assert agg.call("GET", BUDGET, 200) == {
        "consultation_id": CID,
        "epsilon_total": None,
        "epsilon_spent": 0.0,
        "remaining": None,
        "spent": [],
    }


def test_an_event_from_before_the_setting_means_no_differential_privacy(agg):
    event = published(epsilon_budget=2.0)
    del event.payload["epsilon_budget"]
    agg.send(event, *[submitted(i, answers_for(i)) for i in range(20)])
    [meta] = stored(agg, ConsultationDocument)
    assert meta.epsilon_budget is None
    agg.release(epsilon=0.5, expect=409)


def test_each_consultation_spends_its_own_budget_and_over_budget_is_a_409_saying_what_is_left(agg):
    fill(agg, epsilon_budget=1.0)
    fill(agg, cid=OTHER, epsilon_budget=5.0)
    first = agg.release(epsilon=0.75)
    assert first["privacy"]["epsilon"] == 0.75 and first["epsilon_remaining"] == 0.25
    problem = agg.release(epsilon=0.5, expect=409)
    assert "budget" in problem["detail"]
    assert (problem["remaining"], problem["requested"], problem["epsilon_total"]) == (
        0.25,
        0.5,
        1.0,
    )
    assert len(stored(agg, Release, consultation_id=CID)) == 1  # the refused release stored nothing
    # The other consultation's budget is its own: 5.0 pays what this one could not.
    assert agg.release(cid=OTHER, epsilon=3.0)["epsilon_remaining"] == 2.0
    agg.release(epsilon=None, expect=409)  # with a budget, no release is exact
    last = agg.release(epsilon=0.25)
    assert last["snapshot"] == 2 and last["epsilon_remaining"] == 0.0
    agg.release(epsilon=0.01, expect=409)


def test_the_budget_reads_total_each_snapshot_spent_with_when_and_what_is_left(agg):
    fill(agg, epsilon_budget=2.0)
    one = agg.release(epsilon=0.5)
    three = agg.release(epsilon=1.0)
    budget = agg.call("GET", BUDGET, 200)
    assert (
        budget["epsilon_total"] == 2.0
        and budget["epsilon_spent"] == 1.5
        and budget["remaining"] == 0.5
    )
    assert [(s["snapshot"], s["epsilon"]) for s in budget["spent"]] == [(1, 0.5), (2, 1.0)]
    # Spent as the snapshot was built, just before it was stored: each spend falls between the
    # release before it and its own release (an order, not a duration, so load cannot break it).
    assert all(spend["at"].endswith("Z") for spend in budget["spent"])
    moments = []
    for spend, release in zip(budget["spent"], (one, three), strict=True):
        moments += [moment(spend["at"]), moment(release["released_at"])]
    assert moments == sorted(moments)


def test_only_the_owning_organisers_read_the_budget(agg):
    fill(agg, epsilon_budget=2.0)
    fill(agg, cid=OTHER, org="org_b", epsilon_budget=4.0)
    agg.release(epsilon=1.0)
    agg.call(
        "GET", BUDGET, 404, org="org_b"
    )  # another organisation's consultation is not there for them
    for role in ("policy", "auditor", "admin"):
        agg.call("GET", BUDGET, 403, role=role)
    agg.call("GET", "/api/v1/insights/consultations/c_unknown/privacy-budget", 404)
    theirs = agg.call(
        "GET", f"/api/v1/insights/consultations/{OTHER}/privacy-budget", 200, org="org_b"
    )
    assert theirs["epsilon_total"] == 4.0 and theirs["spent"] == []
    agg.call("GET", f"/api/v1/insights/consultations/{OTHER}/privacy-budget", 404)
    # Nor can an organiser spend another organisation's budget.
    agg.call("POST", "/api/v1/releases", 404, json={"consultation_id": OTHER, "epsilon": 1.0})
    assert (
        agg.call("GET", f"/api/v1/insights/consultations/{OTHER}/privacy-budget", 200, org="org_b")[
            "remaining"
        ]
        == 4.0
    )


def test_a_new_version_keeps_the_budget_and_a_rebuild_restores_it_with_what_was_spent(agg):
    fill(agg, epsilon_budget=2.0)
    agg.release(epsilon=1.5)
    agg.send(published(version=2, epsilon_budget=2.0), published(version=1, epsilon_budget=None))
    [meta] = stored(agg, ConsultationDocument)
    assert (meta.survey_version, meta.epsilon_budget) == (2, 2.0)  # the older version does not win
    with agg.app.app_context():
        records = [
            (topic, 0, offset, value)
            for topic in agg.runtime.subscriptions
            for offset, value in enumerate(agg.bus.topics[topic])
        ]
        rebuild.clear_projection(agg.runtime.db, "voices-aggregation")
        assert ConsultationDocument.objects.count() == 0
        rebuild.replay(records, agg.runtime.dispatcher)
    budget = agg.call("GET", BUDGET, 200)
    assert (budget["epsilon_total"], budget["remaining"]) == (2.0, 0.5)
    agg.release(epsilon=1.0, expect=409)


def serialize_store_writes(monkeypatch) -> threading.RLock:
    """Apply each write to the embedded store in one step, as a MongoDB server applies a write to one
    document atomically (mongomock does it in several Python steps, which threads could interleave)."""
    lock = threading.RLock()  # reentrant: a locked read may create the budget document
    for name in ("update_one", "insert_one"):
        original = getattr(mongomock.Collection, name)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(mongomock.Collection, name, locked)
    return lock


def release_all_at_once(agg, monkeypatch, epsilons):
    """Send one release per epsilon from as many threads; every one reads the budget before any spends."""
    lock = serialize_store_writes(monkeypatch)
    barrier = threading.Barrier(len(epsilons), timeout=30)
    first_read = threading.local()
    original = repository.privacy_budget

    def read_then_wait(*args):
        with lock:
            result = original(*args)
        if not getattr(first_read, "done", False):
            first_read.done = True
            barrier.wait()  # all releases hold the same revision before the first write
        return result

    monkeypatch.setattr(repository, "privacy_budget", read_then_wait)
    outcomes: list = [None] * len(epsilons)

    def send(i):
        r = agg.client.post(
            "/api/v1/releases",
            headers=agg.staff(),
            json={"consultation_id": CID, "epsilon": epsilons[i]},
        )
        outcomes[i] = (r.status_code, r.get_json())

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(epsilons))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_simultaneous_releases_are_each_charged_exactly_their_own_epsilon(agg, monkeypatch):
    fill(agg, epsilon_budget=10.0)
    epsilons = [0.1 * (i + 1) for i in range(8)]
    outcomes = release_all_at_once(agg, monkeypatch, epsilons)
    assert [status for status, _ in outcomes] == [201] * 8
    numbers = sorted(body["snapshot"] for _, body in outcomes)
    assert numbers == list(range(1, 9))  # each release its own snapshot number
    published = {r.snapshot: r.epsilon for r in stored(agg, Release)}
    budget = agg.call("GET", BUDGET, 200)
    assert {s["snapshot"]: s["epsilon"] for s in budget["spent"]} == published
    assert budget["epsilon_spent"] == pytest.approx(math.fsum(epsilons))
    assert sorted(published.values()) == sorted(epsilons)


def test_simultaneous_releases_never_overspend_and_the_ledger_equals_what_was_published(
    agg, monkeypatch
):
    fill(agg, epsilon_budget=1.0)
    outcomes = release_all_at_once(agg, monkeypatch, [0.3] * 6)
    assert sorted(status for status, _ in outcomes) == [201] * 3 + [409] * 3
    assert all("budget" in body["detail"] for status, body in outcomes if status == 409)
    budget = agg.call("GET", BUDGET, 200)
    released = stored(agg, Release)
    assert len(released) == 3 and budget["epsilon_spent"] == pytest.approx(0.9)
    assert sorted(s["snapshot"] for s in budget["spent"]) == sorted(r.snapshot for r in released)


def test_a_release_that_is_not_stored_gives_its_epsilon_back(agg, monkeypatch):
    fill(agg, epsilon_budget=1.0)
    agg.release(epsilon=0.25)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(releases, "_store_release", broken)
    with pytest.raises(RuntimeError), agg.app.app_context():
        releases.release(
            CID,
            Principal(kind="staff", role="organiser", organisation_id=ORG, subject="u"),
            epsilon=0.5,
            topic="t",
        )
    budget = agg.call("GET", BUDGET, 200)
    assert budget["epsilon_spent"] == 0.25 and [s["snapshot"] for s in budget["spent"]] == [1]
    [doc] = stored(agg, PrivacyBudgetDocument)
    # Both the charge and its refund stay in the record, nothing is removed from it.
    assert [(e["snapshot"], e["epsilon"]) for e in doc.spent] == [(1, 0.25), (2, 0.5), (2, -0.5)]
    monkeypatch.undo()
    assert agg.release(epsilon=0.5)["snapshot"] == 3  # a number once charged is never reused
