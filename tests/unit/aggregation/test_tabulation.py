"""Vectorised tabulation: the same tables as the reference `tables.tabulate`, and as pandas."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.aggregation import tables, tabulation
from services.aggregation.projection import DECLINED, SKIPPED, Contribution

QUESTIONS = [
    {"id": "region", "type": "single_choice", "options": ["n", "s", "e"], "dimension": True},
    {"id": "age", "type": "single_choice", "options": ["young", "old"], "dimension": True},
    {"id": "needs", "type": "multiple_choice", "options": ["food", "home", "law"]},
    {"id": "tags", "type": "multiple_choice", "options": ["a", "b"], "dimension": True},
    {"id": "safety", "type": "rating", "options": [], "min": 1, "max": 5},
    {"id": "score", "type": "rating", "options": []},  # no declared scale: data-driven
    {"id": "years", "type": "number", "options": [], "min": 0, "max": 120},
    {"id": "since", "type": "date", "options": []},
    {"id": "story", "type": "free_text", "options": []},
]

# Every shape of answer the reference tells apart: good ones, wrong types, out of range, bool
# beside int, NaN, unhashable list elements, lists where a string is expected and the reverse.
ANSWERS = {
    "region": st.sampled_from(["n", "s", "e", "x", 1, True, ["n"], None]),
    "age": st.sampled_from(["young", "old", "", None, 2.5]),
    "needs": st.sampled_from(
        [["food"], ["home", "law"], [], ["law", "law", "food"], ["zzz"], "food", [1, "law"]]
    ),
    "tags": st.sampled_from([["a"], ["a", "b"], ["b"], [], None]),
    "safety": st.sampled_from([1, 2, 5, 3.0, 2.5, 0, 6, True, "3", float("nan"), None]),
    "score": st.sampled_from([1, 2.0, 7, -1, 1.5, False, None]),
    "years": st.sampled_from([0, 30, 30.0, 30.5, 121, -1, float("inf"), 10**30, None]),
    "since": st.sampled_from(["2024-01-05", "2024-13-01", "2023-12-31", "x", 20240105, None]),
    "story": st.sampled_from(["text", None]),
}


@st.composite
def contributions(draw: st.DrawFn) -> list[Contribution]:
    out = []
    for i in range(draw(st.integers(0, 40))):
        answers = {}
        for qid, values in ANSWERS.items():
            value = draw(values)
            if value is not None:
                answers[qid] = value
        declined = tuple(draw(st.lists(st.sampled_from(list(ANSWERS)), max_size=2)))
        out.append(
            Contribution(
                response_id=f"r{i}",
                # Some participants answer twice: one counts (the later submission).
                pseudonym=f"p{draw(st.integers(0, 30))}",
                consultation_id=draw(st.sampled_from(["c", "c", "other"])),
                answers=answers,
                declined=declined,
                survey_version=1,
                submitted_at=f"2024-01-{1 + draw(st.integers(0, 2)):02d}",
            )
        )
    return out


def assert_same_tables(got: tables.Tables, want: tables.Tables) -> None:
    assert got.counts == want.counts
    assert got.axes == want.axes
    assert got.layouts == want.layouts
    assert got.consultation_id == want.consultation_id
    assert got.numeric.keys() == want.numeric.keys()
    for qid, summary in want.numeric.items():
        other = got.numeric[qid]
        assert (other.count, other.sum, other.values) == (
            summary.count,
            summary.sum,
            summary.values,
        )
        assert other.mean == summary.mean or (math.isnan(other.mean) and math.isnan(summary.mean))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contributions())
def test_same_tables_as_the_reference_for_any_answers(cs: list[Contribution]) -> None:
    for consultation_id in ("c", None):
        assert_same_tables(
            tabulation.tabulate(cs, QUESTIONS, consultation_id=consultation_id),
            tables.tabulate(cs, QUESTIONS, consultation_id=consultation_id),
        )


def test_nobody_gives_empty_tables() -> None:
    got = tabulation.tabulate([], QUESTIONS, consultation_id="c")
    assert got.counts == {}
    assert_same_tables(got, tables.tabulate([], QUESTIONS, consultation_id="c"))


def test_an_answer_given_only_by_someone_who_declined_is_no_category() -> None:
    cs = [
        Contribution("r1", "p1", "c", {"years": 44}, ("years",)),
        Contribution("r2", "p2", "c", {"years": 30}),
    ]
    got = tabulation.tabulate(cs, QUESTIONS, consultation_id="c")
    assert got.axes["years"].categories == ("30", DECLINED, SKIPPED)
    assert got.count((("years", DECLINED),)) == 1
    assert got.numeric["years"].count == 1 and got.numeric["years"].sum == 30.0


def test_counts_agree_with_pandas_cell_for_cell() -> None:
    """An independent count: pandas groupby over a frame with multiple choice exploded."""
    import random

    rng = random.Random(5)
    questions = QUESTIONS[:5]
    cs = []
    for i in range(3000):
        answers = {
            "region": rng.choice(["n", "s", "e"]),
            "age": rng.choice(["young", "old"]),
            "needs": [o for o in ("food", "home", "law") if rng.random() < 0.4] or ["food"],
            "tags": [o for o in ("a", "b") if rng.random() < 0.5] or ["b"],
            "safety": rng.randint(1, 5),
        }
        declined = tuple(q for q in answers if rng.random() < 0.03)
        for q in list(answers):
            if rng.random() < 0.05:
                del answers[q]
        cs.append(Contribution(f"r{i}", f"p{i}", "c", answers, declined))
    tables = tabulation.tabulate(cs, questions, consultation_id="c")

    rows = []
    for c in cs:
        row = {}
        for q in questions:
            qid, multiple = q["id"], q["type"] == "multiple_choice"
            if qid in c.declined:
                value = DECLINED
            elif qid not in c.answers:
                value = SKIPPED
            else:
                value = c.answers[qid] if multiple else str(c.answers[qid])
            row[qid] = [value] if multiple and isinstance(value, str) else value
        rows.append(row)
    frame = pd.DataFrame(rows)
    expected = {(): len(frame)}
    for shape in tables.shapes():
        if not shape:
            continue
        part = frame[list(shape)]
        for qid in shape:
            if qid in ("needs", "tags"):
                part = part.explode(qid)
        for index, n in part.groupby(list(shape)).size().items():
            index = index if isinstance(index, tuple) else (index,)
            expected[tuple(zip(shape, index, strict=True))] = int(n)
    assert tables.counts == expected
