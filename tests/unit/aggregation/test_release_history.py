"""Release history for organisers: every snapshot, who signed it off, k and the budget left."""

from __future__ import annotations

from tests.unit.aggregation.conftest import CID, answers_for, published, submitted

HISTORY = f"/api/v1/insights/consultations/{CID}/releases"


def test_history_lists_every_release_newest_first_with_its_sign_off(agg):
    agg.send(published(k=5), *[submitted(i, answers_for(i)) for i in range(30)])
    assert agg.call("GET", HISTORY, 200)["releases"] == []
    first = agg.release()
    agg.send(*[submitted(i, answers_for(i)) for i in range(30, 45)])
    second = agg.release()
    body = agg.call("GET", HISTORY, 200)
    assert body["k"] == 5 and body["epsilon_total"] is None and body["epsilon_remaining"] is None
    assert [r["snapshot"] for r in body["releases"]] == [2, 1]
    assert [r["digest"] for r in body["releases"]] == [second["digest"], first["digest"]]
    assert body["releases"][0]["signed_off_by"] == "u_1"
    assert body["releases"][0]["contributors"] == second["contributors"]
    assert body["releases"][1]["epsilon"] is None


def test_history_shows_what_each_noisy_release_spent_and_what_remains(agg):
    agg.send(published(epsilon_budget=2.0), *[submitted(i, answers_for(i)) for i in range(60)])
    agg.release(epsilon=0.5)
    body = agg.call("GET", HISTORY, 200)
    assert body["epsilon_total"] == 2.0 and body["epsilon_remaining"] == 1.5
    assert body["releases"][0]["epsilon"] == 0.5


def test_history_is_for_the_owning_organisers_only(agg):
    agg.send(published(), *[submitted(i, answers_for(i)) for i in range(20)])
    agg.release()
    other = agg.call("GET", HISTORY, 404, org="org_b")
    missing = agg.call("GET", "/api/v1/insights/consultations/c_missing/releases", 404)
    assert other["detail"] == missing["detail"]
    agg.call("GET", HISTORY, 403, role="policy")
