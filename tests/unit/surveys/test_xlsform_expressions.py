"""XLSForm import: constraints kept as bounds, relevant expressions kept as skip logic, and
what is refused or dropped with a warning."""

from __future__ import annotations

import pytest

from services.surveys.xlsform import import_xlsform, read_xlsform
from shared.errors import ValidationFailed

from .workbooks import EN, YES_NO, problems, xlsx


@pytest.mark.parametrize(
    "qtype, constraint, expected",
    [
        ("integer", ". > 0 and . < 10", {"min": 1, "max": 9}),
        ("integer", "18 <= .", {"min": 18, "max": None}),
        ("decimal", ". >= 0.5 and . <= 99.5", {"min": 0.5, "max": 99.5}),
        ("text", "string-length(.) < 200", {"max_length": 199}),
    ],
)
def test_simple_constraints_become_bounds(qtype, constraint, expected):
    survey = [["type", "name", EN, "constraint"], [qtype, "q", "Q", constraint]]
    question = import_xlsform(xlsx(survey))["sections"][0]["questions"][0]
    assert {k: question.get(k) for k in expected} == expected


@pytest.mark.parametrize(
    "qtype, constraint",
    [
        ("decimal", ". > 0"),
        ("integer", ". >= 0 or . <= -5"),
        ("date", ". <= today()"),
        ("select_one yn", "count-selected(.) = 1"),
        ("text", "regex(., '^[0-9]{10}$')"),
        ("integer", ". > ${a}"),
    ],
)
def test_constraints_voices_cannot_keep_are_dropped_with_a_warning_at_their_row(qtype, constraint):
    survey = [
        ["type", "name", EN, "constraint"],
        ["integer", "a", "A", None],
        [qtype, "q", "Q", constraint],
    ]
    imported = read_xlsform(xlsx(survey, YES_NO[:3]))
    question = imported.definition["sections"][0]["questions"][1]
    assert question.get("min") is None and question.get("max") is None
    assert question.get("max_length") in (None, 2000)
    assert any(
        constraint in w["reason"] and "not kept" in w["reason"]
        for w in imported.warnings
        if w["row"] == 3
    )


@pytest.mark.parametrize(
    "expression, condition",
    [
        ("${safe} != 'yes'", {"not": {"question": "safe", "op": "equals", "value": "yes"}}),
        ("${safe} = ''", {"not": {"question": "safe", "op": "answered"}}),
        ("${needs} != ''", {"question": "needs", "op": "answered"}),
        (
            "not(selected(${needs}, 'food'))",
            {"not": {"question": "needs", "op": "includes", "value": "food"}},
        ),
        ("selected(${safe}, 'no')", {"question": "safe", "op": "equals", "value": "no"}),
        ("18 < ${age}", {"question": "age", "op": "gt", "value": 18}),
        ("${age} <= 17.5", {"question": "age", "op": "lte", "value": 17.5}),
        (
            "${safe} = 'no' or ${age} < 18 and ${needs} != ''",
            {
                "any": [
                    {"question": "safe", "op": "equals", "value": "no"},
                    {
                        "all": [
                            {"question": "age", "op": "lt", "value": 18},
                            {"question": "needs", "op": "answered"},
                        ]
                    },
                ]
            },
        ),
        (
            "(${safe} = 'no' or ${age} < 18) and selected(${needs}, 'health')",
            {
                "all": [
                    {
                        "any": [
                            {"question": "safe", "op": "equals", "value": "no"},
                            {"question": "age", "op": "lt", "value": 18},
                        ]
                    },
                    {"question": "needs", "op": "includes", "value": "health"},
                ]
            },
        ),
    ],
)
def test_relevant_expressions(expression, condition):
    survey = [
        ["type", "name", EN, "relevant"],
        ["select_one yn", "safe", "S", None],
        ["integer", "age", "A", None],
        ["select_multiple needs", "needs", "N", None],
        ["text", "q", "Q", expression],
    ]
    questions = import_xlsform(xlsx(survey, YES_NO))["sections"][0]["questions"]
    assert questions[-1]["relevant"] == condition


@pytest.mark.parametrize(
    "expression, condition",
    [
        (
            "${scale} <= 2",
            {
                "any": [
                    {"question": "scale", "op": "equals", "value": "1"},
                    {"question": "scale", "op": "equals", "value": "2"},
                ]
            },
        ),
        ("4 < ${scale}", {"question": "scale", "op": "equals", "value": "5"}),
        ("count-selected(${needs}) > 0", {"question": "needs", "op": "answered"}),
        ("count-selected(${needs}) = 0", {"not": {"question": "needs", "op": "answered"}}),
        ("1 <= count-selected(${needs})", {"question": "needs", "op": "answered"}),
        ("string-length(${scale}) = 0", {"not": {"question": "scale", "op": "answered"}}),
    ],
)
def test_scales_and_counted_choices_in_relevant(expression, condition):
    survey = [
        ["type", "name", EN, "relevant"],
        ["select_one scale", "scale", "S", None],
        ["select_multiple needs", "needs", "N", None],
        ["text", "q", "Q", expression],
    ]
    choices = [*YES_NO, *[["scale", str(n), str(n), str(n)] for n in range(1, 6)]]
    assert (
        import_xlsform(xlsx(survey, choices))["sections"][0]["questions"][-1]["relevant"]
        == condition
    )


@pytest.mark.parametrize(
    "expression", ["${scale} > 5", "count-selected(${needs}) > 1", "${safe} >= 1"]
)
def test_comparisons_that_cannot_be_kept_are_refused(expression):
    survey = [
        ["type", "name", EN, "relevant"],
        ["select_one scale", "scale", "S", None],
        ["select_multiple needs", "needs", "N", None],
        ["select_one yn", "safe", "S", None],
        ["text", "q", "Q", expression],
    ]
    choices = [*YES_NO, *[["scale", str(n), str(n), str(n)] for n in range(1, 6)]]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey, choices))
    assert [p["row"] for p in problems(excinfo)] == [5]


@pytest.mark.parametrize(
    "expression",
    [
        "${needs} = 'food'",
        "${safe} = 'maybe'",
        "${safe} > 2",
        "${age} = 'old'",
        "${when} > '2020-01-01'",
        "string-length(${safe}) > 3",
        "${safe} = 'no' and",
        "${safe} = ${age}",
        "${nobody} = 'x'",
        "true()",
    ],
)
def test_unsupported_relevant_expressions(expression):
    survey = [
        ["type", "name", EN, "relevant"],
        ["select_one yn", "safe", "S", None],
        ["integer", "age", "A", None],
        ["select_multiple needs", "needs", "N", None],
        ["date", "when", "W", None],
        ["text", "q", "Q", expression],
    ]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey, YES_NO))
    assert any(
        p["sheet"] == "survey" and p["row"] == 6 and p["name"] == "q" for p in problems(excinfo)
    )


@pytest.mark.parametrize(
    "qtype, constraint, expected",
    [
        ("integer", "${q} > 0 and ${q} < 120", {"min": 1, "max": 119}),
        ("decimal", "${q} >= 0.5 and . <= 2", {"min": 0.5, "max": 2}),
        ("text", "string-length(${q}) <= 80", {"max_length": 80}),
    ],
)
def test_a_constraint_may_name_its_own_question(qtype, constraint, expected):
    survey = [["type", "name", EN, "constraint"], [qtype, "q", "Q", constraint]]
    question = import_xlsform(xlsx(survey))["sections"][0]["questions"][0]
    assert {k: question.get(k) for k in expected} == expected
