"""Differential privacy per consultation: the budget from consultation.published, spending it, reading it."""
from __future__ import annotations

from datetime import datetime

from services.aggregation import rebuild
from services.aggregation.models import ConsultationMeta, PrivacyBudgetDocument, Release
from tests.unit.aggregation.conftest import CID, ORG, answers_for, published, submitted

BUDGET = f"/api/v1/insights/consultations/{CID}/privacy-budget"
OTHER = "c_other"


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fill(agg, cid=CID, org=ORG, epsilon_budget=None, n=30):
    agg.send(published(cid=cid, org=org, epsilon_budget=epsilon_budget),
             *[submitted(1000 * len(cid) + i, answers_for(i), cid=cid, pseudonym=f"{cid}-p{i}") for i in range(n)])


def stored(agg, model, **query):
    with agg.app.app_context():
        return list(model.objects(**query))


def test_a_consultation_without_a_budget_refuses_noisy_releases_and_stores_nothing(agg):
    fill(agg)
    problem = agg.release(epsilon=0.5, expect=409)
    assert "not offered" in problem["detail"] and problem["remaining"] == 0 and problem["requested"] == 0.5
    assert stored(agg, Release) == [] and stored(agg, PrivacyBudgetDocument) == []
    plain = agg.release()  # without noise it is released as before
    assert plain["privacy"] is None and plain["epsilon_remaining"] is None
    assert agg.call("GET", BUDGET, 200) == {"consultation_id": CID, "epsilon_total": None, "epsilon_spent": 0.0,
                                            "remaining": None, "spent": []}


def test_an_event_from_before_the_setting_means_no_differential_privacy(agg):
    event = published(epsilon_budget=2.0)
    del event.payload["epsilon_budget"]
    agg.send(event, *[submitted(i, answers_for(i)) for i in range(20)])
    [meta] = stored(agg, ConsultationMeta)
    assert meta.epsilon_budget is None
    agg.release(epsilon=0.5, expect=409)


def test_each_consultation_spends_its_own_budget_and_over_budget_is_a_409_saying_what_is_left(agg):
    fill(agg, epsilon_budget=1.0)
    fill(agg, cid=OTHER, epsilon_budget=5.0)
    first = agg.release(epsilon=0.75)
    assert first["privacy"]["epsilon"] == 0.75 and first["epsilon_remaining"] == 0.25
    problem = agg.release(epsilon=0.5, expect=409)
    assert "budget" in problem["detail"]
    assert (problem["remaining"], problem["requested"], problem["epsilon_total"]) == (0.25, 0.5, 1.0)
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
    assert budget["epsilon_total"] == 2.0 and budget["epsilon_spent"] == 1.5 and budget["remaining"] == 0.5
    assert [(s["snapshot"], s["epsilon"]) for s in budget["spent"]] == [(1, 0.5), (2, 1.0)]
    # Spent as the snapshot was built, just before it was stored.
    for spend, release in zip(budget["spent"], (one, three)):
        assert spend["at"].endswith("Z")
        assert abs((moment(release["released_at"]) - moment(spend["at"])).total_seconds()) < 5
    assert moment(budget["spent"][0]["at"]) < moment(budget["spent"][1]["at"])


def test_only_the_owning_organisers_read_the_budget(agg):
    fill(agg, epsilon_budget=2.0)
    fill(agg, cid=OTHER, org="org_b", epsilon_budget=4.0)
    agg.release(epsilon=1.0)
    agg.call("GET", BUDGET, 404, org="org_b")  # another organisation's consultation is not there for them
    for role in ("policy", "auditor", "admin"):
        agg.call("GET", BUDGET, 403, role=role)
    agg.call("GET", "/api/v1/insights/consultations/c_unknown/privacy-budget", 404)
    theirs = agg.call("GET", f"/api/v1/insights/consultations/{OTHER}/privacy-budget", 200, org="org_b")
    assert theirs["epsilon_total"] == 4.0 and theirs["spent"] == []
    agg.call("GET", f"/api/v1/insights/consultations/{OTHER}/privacy-budget", 404)
    # Nor can an organiser spend another organisation's budget.
    agg.call("POST", "/api/v1/releases", 404, json={"consultation_id": OTHER, "epsilon": 1.0})
    assert agg.call("GET", f"/api/v1/insights/consultations/{OTHER}/privacy-budget", 200,
                    org="org_b")["remaining"] == 4.0


def test_a_new_version_keeps_the_budget_and_a_rebuild_restores_it_with_what_was_spent(agg):
    fill(agg, epsilon_budget=2.0)
    agg.release(epsilon=1.5)
    agg.send(published(version=2, epsilon_budget=2.0), published(version=1, epsilon_budget=None))
    [meta] = stored(agg, ConsultationMeta)
    assert (meta.survey_version, meta.epsilon_budget) == (2, 2.0)  # the older version does not win
    with agg.app.app_context():
        records = [(topic, 0, offset, value) for topic in agg.runtime.subscriptions
                   for offset, value in enumerate(agg.bus.topics[topic])]
        rebuild.clear_projection(agg.runtime.db, "voices-aggregation")
        assert ConsultationMeta.objects.count() == 0
        rebuild.replay(records, agg.runtime.dispatcher)
    budget = agg.call("GET", BUDGET, 200)
    assert (budget["epsilon_total"], budget["remaining"]) == (2.0, 0.5)
    agg.release(epsilon=1.0, expect=409)
