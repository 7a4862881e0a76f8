"""The consultation's differential-privacy budget: set in draft, fixed once open, told to aggregation."""

from __future__ import annotations

import json

import pytest
from marshmallow import ValidationError

from services.surveys.models import Consultation
from shared.events import Envelope
from tests.unit.surveys.conftest import ALL_PURPOSES, SURVEY


def base(cid: str) -> str:
    return f"/api/v1/consultations/{cid}"


def raw_json(surveys, method: str, path: str, expect: int, body: dict):
    """Send `body` as written by json.dumps, which spells NaN and infinities as JavaScript does."""
    return surveys.call(
        method,
        path,
        expect,
        headers=surveys.staff(),
        data=json.dumps(body),
        content_type="application/json",
    )


def published_events(surveys) -> list[Envelope]:
    return surveys.events(surveys.settings.topics.surveys, "consultation.published")


def test_without_a_budget_differential_privacy_is_not_offered(surveys):
    created = surveys.create(SURVEY)
    assert created["epsilon_budget"] is None
    assert (
        Consultation.objects.get(consultation_id=created["consultation_id"]).epsilon_budget is None
    )


def test_a_budget_given_at_creation_is_stored_and_shown(surveys):
    created = surveys.create(SURVEY, epsilon_budget=2.5)
    assert created["epsilon_budget"] == 2.5
    assert surveys.organiser("GET", base(created["consultation_id"]), 200)["epsilon_budget"] == 2.5
    assert surveys.create(SURVEY, epsilon_budget=10)["epsilon_budget"] == 10.0  # the bound itself


@pytest.mark.parametrize(
    "budget", [0, -1, 10.01, 1e6, float("nan"), float("inf"), float("-inf"), True, "lots", [1.0]]
)
def test_bad_budgets_are_refused_at_creation_and_nothing_is_stored(surveys, unchanged, budget):
    body = {
        "title": "After leaving",
        "languages": ["en", "ar"],
        "purposes": list(ALL_PURPOSES),
        "epsilon_budget": budget,
    }
    with unchanged():
        problem = raw_json(surveys, "POST", "/api/v1/consultations", 422, body)
    assert "epsilon_budget" in problem["errors"]


def test_a_draft_budget_can_be_set_raised_lowered_and_removed(surveys):
    cid = surveys.create(SURVEY)["consultation_id"]
    for budget in (1.0, 4.0, 0.5, None, 3.0):
        assert (
            surveys.organiser("PATCH", base(cid), 200, json={"epsilon_budget": budget})[
                "epsilon_budget"
            ]
            == budget
        )
    assert Consultation.objects.get(consultation_id=cid).epsilon_budget == 3.0


@pytest.mark.parametrize("budget", [0, -0.5, 11, float("nan"), float("inf")])
def test_bad_budget_patches_are_refused_and_change_nothing(surveys, unchanged, budget):
    cid = surveys.create(SURVEY, epsilon_budget=2.0)["consultation_id"]
    with unchanged():
        problem = raw_json(surveys, "PATCH", base(cid), 422, {"epsilon_budget": budget})
    assert "epsilon_budget" in problem["errors"]


def test_the_budget_is_fixed_once_the_consultation_has_opened(surveys, unchanged):
    cid = surveys.open_consultation(epsilon_budget=2.0)
    # Raising would let snapshots reveal more than promised; lowering or removing it would not reach
    # snapshots already released, so neither is allowed either.
    for budget in (5.0, 1.0, None):
        with unchanged():
            problem = surveys.organiser("PATCH", base(cid), 409, json={"epsilon_budget": budget})
        assert problem["fields"] == ["epsilon_budget"] and "privacy budget" in problem["detail"]
    with unchanged():
        problem = surveys.organiser(
            "PATCH", base(cid), 409, json={"epsilon_budget": 1.0, "min_cell_size": 20}
        )
    assert (
        problem["fields"] == ["epsilon_budget", "min_cell_size"]
        and "consented" in problem["detail"]
    )
    assert surveys.organiser(
        "PATCH", base(cid), 200, json={"epsilon_budget": 2.0, "title": "Same budget"}
    )
    # A consultation opened without differential privacy cannot take it up later either.
    plain = surveys.open_consultation()
    with unchanged():
        surveys.organiser("PATCH", base(plain), 409, json={"epsilon_budget": 1.0})


def test_consultation_published_carries_the_budget_and_parses_under_the_contract(surveys):
    with_dp = surveys.open_consultation(epsilon_budget=1.5)
    without = surveys.open_consultation()
    events = {e.payload["consultation_id"]: e for e in published_events(surveys)}
    assert events[with_dp].payload["epsilon_budget"] == 1.5
    assert events[without].payload["epsilon_budget"] is None
    for event in events.values():
        assert Envelope.parse(json.loads(json.dumps(event.to_dict()))).payload == event.payload
    # A new version tells the same budget again.
    edited = json.loads(json.dumps(SURVEY))
    edited["sections"][0]["questions"][0]["label"]["en"] = "Reworded"
    surveys.organiser("PUT", f"{base(with_dp)}/survey", 200, json={"survey": edited})
    surveys.organiser("POST", f"{base(with_dp)}/publish", 200)
    again = [e for e in published_events(surveys) if e.payload["consultation_id"] == with_dp]
    assert [(e.payload["survey_version"], e.payload["epsilon_budget"]) for e in again] == [
        (1, 1.5),
        (2, 1.5),
    ]


def test_the_contract_accepts_older_events_without_a_budget_and_refuses_bad_ones(surveys):
    surveys.open_consultation(epsilon_budget=1.5)
    [event] = published_events(surveys)
    older = event.to_dict()
    del older["payload"]["epsilon_budget"]
    assert "epsilon_budget" not in Envelope.parse(older).payload
    for bad in (0, -1, 10.5, float("nan"), float("inf"), "1.0x"):
        raw = event.to_dict()
        raw["payload"] = {**raw["payload"], "epsilon_budget": bad}
        with pytest.raises(ValidationError) as refused:
            Envelope.parse(raw)
        assert "epsilon_budget" in refused.value.messages["payload"]
