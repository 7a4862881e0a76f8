"""Projection: which responses count, in any order, and what the tables count."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.aggregation.disclosure import protect_tables
from services.aggregation.projection import (
    DECLINED,
    SKIPPED,
    Contribution,
    ProjectionState,
    apply_event,
    consultation_meta_from_published,
    contribution_from_document,
    contribution_from_submitted,
    counted_contributions,
    merge_tombstones,
    tombstone_from_document,
    tombstone_from_erased,
    tombstone_from_withdrawn,
)
from services.aggregation.snapshots import build_snapshot
from services.aggregation.tables import tabulate
from shared.errors import ValidationFailed
from tests.unit.aggregation.conftest import QUESTIONS

CID = "c-1"


def published(questions=QUESTIONS, version=1, k=10):
    return {
        "consultation_id": CID,
        "organisation_id": "o-1",
        "survey_version": version,
        "title": "t",
        "languages": ["en"],
        "min_cell_size": k,
        "min_age": None,
        "purposes": ["participate", "aggregate_reporting"],
        "questions": questions,
        "published_at": "2024-01-01",
    }


def submitted(
    rid,
    pseudonym,
    answers,
    purposes=("participate", "aggregate_reporting"),
    declined=(),
    at="2024-02-01T10:00:00Z",
):
    return {
        "response_id": rid,
        "consultation_id": CID,
        "survey_version": 1,
        "pseudonym": pseudonym,
        "grant_id": "g-" + pseudonym,
        "purposes": list(purposes),
        "submitted_at": at,
        "answers": answers,
        "declined": list(declined),
        "free_text_questions": [],
    }


def withdrawn(pseudonym, purposes, all_=False):
    return {
        "grant_id": "g-" + pseudonym,
        "pseudonym": pseudonym,
        "consultation_id": CID,
        "purposes": list(purposes),
        "remaining": [],
        "all": all_,
        "withdrawn_at": "2024-03-01T00:00:00Z",
    }


def erased(rid, pseudonym, reason):
    return {
        "response_id": rid,
        "consultation_id": CID,
        "pseudonym": pseudonym,
        "reason": reason,
        "erased_at": "2024-03-02T00:00:00Z",
    }


def event(etype, payload, event_id=None):
    return {
        "id": event_id or str(uuid.uuid4()),
        "type": etype,
        "version": 1,
        "occurred_at": "2024-01-01T00:00:00Z",
        "producer": "test",
        "key": CID,
        "trace_id": "t",
        "payload": payload,
    }


def fold(events):
    state = ProjectionState()
    for e in events:
        state = apply_event(state, e)
    return state


# ---- contributions and tombstones -------------------------------------------


def test_response_without_aggregate_reporting_is_not_even_stored():
    p = submitted("r1", "p1", {"region": "north"}, purposes=("participate",))
    assert contribution_from_submitted(p) is None
    assert fold([event("response.submitted", p)]).contributions == {}


def test_free_text_and_unknown_questions_are_dropped_when_the_survey_is_known():
    meta = consultation_meta_from_published(published())
    p = submitted(
        "r1",
        "p1",
        {"region": "north", "story": "my story", "ghost": "x", "needs": ["legal", "legal"]},
    )
    c = contribution_from_submitted(p, meta)
    assert dict(c.answers) == {"region": "north", "needs": ["legal"]}


def test_contribution_round_trips_through_its_document():
    c = contribution_from_submitted(submitted("r1", "p1", {"region": "north"}, declined=("age",)))
    assert contribution_from_document(c.to_document()) == c


def test_incomplete_payload_is_a_validation_error():
    with pytest.raises(ValidationFailed) as err:
        contribution_from_submitted({"response_id": "r1", "purposes": ["aggregate_reporting"]})
    assert set(err.value.extra["errors"]) == {"pseudonym", "consultation_id"}


def test_withdrawal_of_another_purpose_changes_nothing():
    assert tombstone_from_withdrawn(withdrawn("p1", ["quote_anonymised"])) is None
    assert tombstone_from_withdrawn(withdrawn("p1", ["aggregate_reporting"])).whole_participant
    assert tombstone_from_withdrawn(withdrawn("p1", [], all_=True)).whole_participant


def test_withdrawal_before_response_makes_the_response_count_for_nothing():
    events = [
        event("consent.withdrawn", withdrawn("p1", ["aggregate_reporting"])),
        event("response.submitted", submitted("r1", "p1", {"region": "north"})),
        event("response.submitted", submitted("r2", "p2", {"region": "north"})),
    ]
    state = fold(events)
    assert set(state.contributions) == {"r2"}


def test_withdrawal_after_response_removes_it():
    state = fold(
        [
            event("response.submitted", submitted("r1", "p1", {"region": "north"})),
            event("consent.withdrawn", withdrawn("p1", [], all_=True)),
        ]
    )
    assert state.contributions == {}
    assert state.tombstones[(CID, "p1")].whole_participant


def test_retention_erasure_keeps_the_contribution():
    # Aggregates stay: only a withdrawal takes a participant's answers out of the counts.
    assert tombstone_from_erased(erased("r1", "p1", "retention")) is None
    state = fold(
        [
            event("response.submitted", submitted("r1", "p1", {"region": "north"})),
            event("response.erased", erased("r1", "p1", "retention")),
        ]
    )
    assert set(state.contributions) == {"r1"} and state.tombstones == {}


def test_erasure_after_withdrawal_buries_the_participant_even_before_the_withdrawal_arrives():
    state = fold(
        [
            event("response.erased", erased("r1", "p1", "withdrawal")),
            event("response.submitted", submitted("r1", "p1", {"region": "north"})),
            event("response.submitted", submitted("r9", "p1", {"region": "north"})),
        ]
    )
    assert state.contributions == {}


def test_tombstone_merge_is_a_union_and_round_trips():
    a = tombstone_from_erased(erased("r1", "p1", "withdrawal"))
    b = tombstone_from_withdrawn(withdrawn("p1", ["aggregate_reporting"]))
    ab, ba = merge_tombstones(a, b), merge_tombstones(b, a)
    assert ab == ba == merge_tombstones(ab, a)
    assert (
        ab.whole_participant
        and ab.response_ids == {"r1"}
        and ab.reasons == {"withdrawn", "erased:withdrawal"}
    )
    assert tombstone_from_document(ab.to_document()) == ab
    with pytest.raises(ValidationFailed):
        merge_tombstones(a, tombstone_from_erased(erased("r2", "p2", "withdrawal")))


def test_counted_contributions_filters_behind_a_late_tombstone():
    cs = [
        contribution_from_submitted(submitted(f"r{i}", f"p{i}", {"region": "north"}))
        for i in range(3)
    ]
    kept = counted_contributions(cs, [tombstone_from_withdrawn(withdrawn("p1", [], all_=True))])
    assert [c.response_id for c in kept] == ["r0", "r2"]


def test_republished_consultation_keeps_the_highest_survey_version():
    v2 = event("consultation.published", published(version=2))
    v1 = event("consultation.published", published(version=1))
    assert fold([v2, v1]).consultations[CID].survey_version == 2
    assert fold([v1, v2]).consultations[CID].survey_version == 2


# ---- tabulation --------------------------------------------------------------


def contrib(rid, answers, declined=(), pseudonym=None, at="2024-02-01"):
    return Contribution(rid, pseudonym or "p-" + rid, CID, answers, tuple(declined), 1, at)


def test_multiple_choice_counts_each_selection_and_people_once_per_cell():
    cs = [
        contrib("a", {"needs": ["housing", "legal"], "region": "north"}),
        contrib("b", {"needs": ["housing"], "region": "north"}),
        contrib("c", {"needs": []}, declined=("region",)),
    ]
    t = tabulate(cs, QUESTIONS)
    assert t.count((("needs", "housing"),)) == 2
    assert t.count((("needs", "legal"),)) == 1
    assert t.count((("needs", SKIPPED),)) == 1  # nothing ticked is no answer
    assert t.count((("needs", "housing"), ("region", "north"))) == 2
    assert t.count((("region", DECLINED),)) == 1
    assert t.contributors == 3
    # "a" ticked two needs: 3 ticks in the north, but the north group is 2 people
    north_ticks = sum(
        t.count((("needs", o), ("region", "north"))) for o in ("housing", "legal", "health")
    )
    assert north_ticks == 3 and t.count((("region", "north"),)) == 2


def test_rating_keeps_sum_count_mean_and_distribution_and_ignores_out_of_range():
    cs = [
        contrib("a", {"safety": 2}),
        contrib("b", {"safety": 4}),
        contrib("c", {"safety": 9}),
        contrib("d", {"safety": 2.5}),
        contrib("e", {}, declined=("safety",)),
    ]
    t = tabulate(cs, QUESTIONS)
    s = t.numeric["safety"]
    assert (s.count, s.sum, s.mean) == (2, 6.0, 3.0)
    assert [t.count((("safety", v),)) for v in "12345"] == [0, 1, 0, 1, 0]
    assert t.count((("safety", SKIPPED),)) == 2 and t.count((("safety", DECLINED),)) == 1
    assert t.axes["safety"].categories == ("1", "2", "3", "4", "5", DECLINED, SKIPPED)


def test_dates_are_counted_by_month_and_number_categories_come_from_the_data():
    qs = [
        {"id": "when", "type": "date", "options": [], "dimension": False},
        {"id": "n", "type": "number", "options": [], "dimension": False},
    ]
    cs = [
        contrib("a", {"when": "2023-04-02", "n": 3}),
        contrib("b", {"when": "2023-04-30", "n": 3.0}),
        contrib("c", {"when": "2023-13-01", "n": 0.5}),
    ]
    t = tabulate(cs, qs)
    assert t.count((("when", "2023-04"),)) == 2 and t.count((("when", SKIPPED),)) == 1
    assert t.count((("n", "3"),)) == 2 and t.count((("n", "0.5"),)) == 1
    assert t.axes["n"].data_driven and t.axes["when"].data_driven


def test_one_voice_per_participant_the_last_submission_counts():
    cs = [
        contrib("r1", {"region": "north"}, pseudonym="p", at="2024-02-01"),
        contrib("r2", {"region": "south"}, pseudonym="p", at="2024-02-03"),
    ]
    t = tabulate(cs, QUESTIONS)
    assert t.contributors == 1
    assert t.count((("region", "south"),)) == 1 and t.count((("region", "north"),)) == 0


def test_layouts_cross_every_question_by_each_dimension_and_each_pair():
    t = tabulate([], QUESTIONS)
    kinds = {(lay.kind, lay.question, lay.dimensions) for lay in t.layouts}
    assert ("crosstab", "needs", ("region",)) in kinds
    assert ("crosstab2", "needs", ("region", "age")) in kinds
    assert ("crosstab", "region", ("age",)) in kinds
    assert not any(lay.question == "story" for lay in t.layouts)
    assert not any(lay.question in lay.dimensions for lay in t.layouts)


# ---- order independence and redelivery (property) ----------------------------

answer_values = st.fixed_dictionaries(
    {},
    optional={
        "region": st.sampled_from(["north", "south"]),
        "age": st.sampled_from(["young", "older"]),
        "needs": st.lists(st.sampled_from(["housing", "legal", "health"]), unique=True, max_size=3),
        "safety": st.integers(1, 5),
    },
)

response_spec = st.tuples(
    st.integers(0, 11),  # pseudonym index (collisions = resubmissions)
    answer_values,
    st.booleans(),  # aggregate_reporting granted
    st.lists(st.sampled_from(["region", "age", "needs", "safety"]), unique=True, max_size=2),
    st.integers(0, 5),  # submitted day
)
withdrawal_spec = st.tuples(st.integers(0, 11), st.sampled_from(["all", "aggregate", "other"]))
erasure_spec = st.tuples(st.integers(0, 40), st.sampled_from(["retention", "withdrawal"]))


def expected_counted(responses, withdrawals, erasures):
    """Independent statement of the rules, without the projection code."""
    buried = {p for p, kind in withdrawals if kind in ("all", "aggregate")}
    buried |= {responses[i][0] for i, why in erasures if i < len(responses) and why == "withdrawal"}
    # Retention erasures change nothing: aggregates stay.
    return {f"r{i}" for i, (p, _, agg, _, _) in enumerate(responses) if agg and p not in buried}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    responses=st.lists(response_spec, max_size=25),
    withdrawals=st.lists(withdrawal_spec, max_size=4),
    erasures=st.lists(erasure_spec, max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_same_result_in_any_order_and_with_every_event_delivered_twice(
    responses, withdrawals, erasures, order
):
    events = [event("consultation.published", published())]
    for i, (p, answers, agg, declined, day) in enumerate(responses):
        purposes = ("participate", "aggregate_reporting") if agg else ("participate",)
        events.append(
            event(
                "response.submitted",
                submitted(
                    f"r{i}",
                    f"p{p}",
                    answers,
                    purposes,
                    declined,
                    at=f"2024-02-0{day + 1}T00:00:00Z",
                ),
            )
        )
    for p, kind in withdrawals:
        payload = {
            "all": withdrawn(f"p{p}", [], all_=True),
            "aggregate": withdrawn(f"p{p}", ["aggregate_reporting"]),
            "other": withdrawn(f"p{p}", ["follow_up_contact"]),
        }[kind]
        events.append(event("consent.withdrawn", payload))
    for i, why in erasures:
        if i < len(responses):
            events.append(event("response.erased", erased(f"r{i}", f"p{responses[i][0]}", why)))

    in_order = fold(events)
    shuffled = events + [dict(e) for e in events]  # same event ids, delivered twice
    order.shuffle(shuffled)
    reordered = fold(shuffled)

    assert set(in_order.contributions) == expected_counted(responses, withdrawals, erasures)
    assert in_order.contributions == reordered.contributions
    assert in_order.tombstones == reordered.tombstones

    def release(state):
        meta = state.consultations[CID]
        counted = counted_contributions(state.contributions.values(), state.tombstones.values())
        tables = tabulate(counted, meta.questions, consultation_id=CID)
        return build_snapshot(
            tables,
            protect_tables(tables, 5),
            consultation_id=CID,
            snapshot=1,
            created_at="2024-04-01T00:00:00Z",
        )

    assert release(in_order)["digest"] == release(reordered)["digest"]
