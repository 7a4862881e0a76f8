"""Answers: every question type good and bad, skip logic, declines, free-text split."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.surveys.questionnaire import validate_definition
from shared.errors import NotFound, ValidationFailed
from shared.questionnaire.answers import (
    declined_questions,
    drop_hidden,
    next_section,
    split_free_text,
    validate_answers,
    visible_questions,
)


def t(en: str) -> dict:
    return {"en": en}


def options(*codes: str) -> list[dict]:
    return [{"code": code, "label": t(code)} for code in codes]


DEFINITION = validate_definition(
    {
        "languages": ["en"],
        "sections": [
            {
                "id": "start",
                "title": t("Start"),
                "questions": [
                    {
                        "id": "q1",
                        "type": "single_choice",
                        "label": t("Safe?"),
                        "options": options("yes", "no"),
                    },
                    {
                        "id": "q2",
                        "type": "multiple_choice",
                        "label": t("Needs"),
                        "options": options("food", "shelter", "health"),
                    },
                    {"id": "q3", "type": "rating", "label": t("Support")},
                    {
                        "id": "q4",
                        "type": "number",
                        "label": t("Age"),
                        "integer": True,
                        "min": 0,
                        "max": 120,
                    },
                    {"id": "q5", "type": "number", "label": t("Distance km"), "min": 0.5},
                    {"id": "q6", "type": "date", "label": t("When")},
                    {
                        "id": "q7",
                        "type": "free_text",
                        "label": t("Why"),
                        "max_length": 10,
                        "relevant": {"question": "q1", "op": "equals", "value": "no"},
                    },
                ],
            },
            {
                "id": "health",
                "title": t("Health"),
                "relevant": {"question": "q2", "op": "includes", "value": "health"},
                "questions": [
                    {
                        "id": "h1",
                        "type": "single_choice",
                        "label": t("Seen?"),
                        "options": options("yes", "no"),
                    },
                    {
                        "id": "h2",
                        "type": "free_text",
                        "label": t("Tell us"),
                        "relevant": {"not": {"question": "h1", "op": "equals", "value": "yes"}},
                    },
                ],
            },
            {
                "id": "end",
                "title": t("End"),
                "questions": [
                    {"id": "e1", "type": "free_text", "label": t("Anything else?")},
                ],
            },
        ],
    }
)


def fails(answers: dict, declined=()) -> dict:
    with pytest.raises(ValidationFailed) as excinfo:
        validate_answers(DEFINITION, answers, declined)
    return excinfo.value.extra["errors"]


def test_empty_response_is_fine_everything_is_skippable():
    assert validate_answers(DEFINITION, {}, []) == {}


def test_full_response_is_normalised_in_survey_order():
    result = validate_answers(
        DEFINITION,
        {
            "e1": "  thanks  ",
            "q2": ["health", "food"],
            "q1": "no",
            "q3": "4",
            "q4": 30.0,
            "q5": "2.5",
            "q6": "2024-02-29",
            "q7": "afraid",
            "h1": "no",
            "h2": "clinic",
        },
    )
    assert result == {
        "q1": "no",
        "q2": ["food", "health"],
        "q3": 4,
        "q4": 30,
        "q5": 2.5,
        "q6": "2024-02-29",
        "q7": "afraid",
        "h1": "no",
        "h2": "clinic",
        "e1": "thanks",
    }
    assert list(result) == ["q1", "q2", "q3", "q4", "q5", "q6", "q7", "h1", "h2", "e1"]
    assert isinstance(result["q4"], int) and isinstance(result["q5"], float)


@pytest.mark.parametrize("value", ["", "   ", None])
def test_blank_means_not_answered(value):
    assert validate_answers(DEFINITION, {"q1": value, "q6": value, "e1": value}) == {}


@pytest.mark.parametrize(
    "qid, value",
    [
        ("q1", "maybe"),
        ("q1", ["yes"]),
        ("q1", 1),
        ("q2", []),
        ("q2", "food"),
        ("q2", ["food", "food"]),
        ("q2", ["food", "cars"]),
        ("q2", [1]),
        ("q3", 0),
        ("q3", 6),
        ("q3", 2.5),
        ("q3", True),
        ("q3", "three"),
        ("q4", -1),
        ("q4", 121),
        ("q4", 30.5),
        ("q4", "30.5"),
        ("q4", "nan"),
        ("q4", False),
        ("q5", 0.4),
        ("q5", float("inf")),
        ("q5", "1e400"),
        ("q5", [1]),
        ("q6", "2023-02-29"),
        ("q6", "2024-13-01"),
        ("q6", "20240101"),
        ("q6", "1/2/2024"),
        ("q6", 20240101),
        ("e1", 5),
        ("e1", ["text"]),
    ],
)
def test_wrong_values_are_reported_by_question_id(qid, value):
    errors = fails({qid: value})
    assert list(errors) == [qid]


def test_free_text_too_long_after_stripping():
    assert validate_answers(DEFINITION, {"q1": "no", "q7": "  0123456789  "})["q7"] == "0123456789"
    errors = fails({"q1": "no", "q7": "0123456789x"})
    assert "at most 10 characters" in errors["q7"][0]


def test_free_text_length_counts_composed_characters():
    # "é" typed as e + combining accent is one character after NFC.
    decomposed = "e\u0301" * 10
    assert validate_answers(DEFINITION, {"q1": "no", "q7": decomposed})["q7"] == "\u00e9" * 10


def test_unknown_question_id():
    errors = fails({"q99": "x", "q1": "yes"})
    assert errors == {"q99": ["unknown question 'q99'"]}
    assert fails({}, ["nope"]) == {"nope": ["unknown question 'nope'"]}


def test_answer_to_hidden_question_names_it():
    errors = fails({"q1": "yes", "q7": "because"})
    assert errors == {"q7": ["question q7 is not shown for these answers"]}


def test_hidden_when_the_condition_question_was_skipped_or_declined():
    assert "q7" in fails({"q7": "because"})
    assert "q7" in fails({"q7": "because"}, ["q1"])


def test_hidden_section_hides_all_its_questions():
    errors = fails({"q2": ["food"], "h1": "yes"})
    assert errors == {"h1": ["question h1 is not shown for these answers"]}
    assert validate_answers(DEFINITION, {"q2": ["health"], "h1": "yes"}) == {
        "q2": ["health"],
        "h1": "yes",
    }


def test_cascade_reads_only_shown_answers():
    # h2 shows when h1 is not "yes", but h1 lives in a hidden section: h1's answer
    # is an error, and it must not make h2 visible either.
    errors = fails({"h1": "no", "h2": "x"})
    assert set(errors) == {"h1", "h2"}


def test_declining_a_hidden_question_is_an_error():
    assert "q7" in fails({"q1": "yes"}, ["q7"])


def test_answered_and_declined():
    errors = fails({"q1": "yes"}, ["q1"])
    assert errors == {"q1": ["question q1 is both answered and declined"]}


def test_declined_only_is_fine_and_blank_answer_with_decline_is_fine():
    assert validate_answers(DEFINITION, {"q1": ""}, ["q1", "q3", "q3"]) == {}
    assert declined_questions(DEFINITION, ["q3", "q1", "q3", "zzz"]) == ["q1", "q3"]


def test_invalid_answer_does_not_open_follow_ups():
    errors = fails({"q1": "No", "q7": "why"})
    assert set(errors) == {"q1", "q7"}


@pytest.mark.parametrize("answers, declined", [(["q1"], []), ({"q1": "yes"}, "q1"), ({}, [1])])
def test_wrong_containers(answers, declined):
    with pytest.raises(ValidationFailed):
        validate_answers(DEFINITION, answers, declined)


def test_visible_questions_follow_answers():
    assert visible_questions(DEFINITION, {}) == [
        {"section_id": "start", "question_ids": ["q1", "q2", "q3", "q4", "q5", "q6"]},
        {"section_id": "end", "question_ids": ["e1"]},
    ]
    shown = visible_questions(DEFINITION, {"q1": "no", "q2": ["health"], "h1": "no"})
    assert shown == [
        {"section_id": "start", "question_ids": ["q1", "q2", "q3", "q4", "q5", "q6", "q7"]},
        {"section_id": "health", "question_ids": ["h1", "h2"]},
        {"section_id": "end", "question_ids": ["e1"]},
    ]
    # h1 = yes hides h2; bad answers never raise here.
    shown = visible_questions(DEFINITION, {"q1": "???", "q2": ["health"], "h1": "yes", "zz": 1})
    assert shown[1] == {"section_id": "health", "question_ids": ["h1"]}
    assert "q7" not in shown[0]["question_ids"]


def test_next_section():
    assert next_section(DEFINITION, {}) == "start"
    assert next_section(DEFINITION, {}, "start") == "end"
    assert next_section(DEFINITION, {"q2": ["health"]}, "start") == "health"
    assert next_section(DEFINITION, {}, "end") is None
    with pytest.raises(NotFound):
        next_section(DEFINITION, {}, "nowhere")


def test_drop_hidden_clears_stale_follow_ups():
    answers, declined = drop_hidden(DEFINITION, {"q1": "yes", "q7": "stale", "zz": 1}, ["q7", "q3"])
    assert answers == {"q1": "yes", "zz": 1}
    assert declined == ["q3"]


def test_split_free_text_keeps_text_out_of_structured_answers():
    answers = validate_answers(DEFINITION, {"q1": "no", "q7": "secret", "q3": 2, "e1": "more"})
    structured, free_text = split_free_text(DEFINITION, answers)
    assert structured == {"q1": "no", "q3": 2}
    assert free_text == {"q7": "secret", "e1": "more"}
    with pytest.raises(ValidationFailed):
        split_free_text(DEFINITION, {"ghost": "x"})


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["q1", "q2", "q3", "q4", "q6", "q7", "h1", "h2"]),
        st.one_of(
            st.none(),
            st.text(max_size=12),
            st.integers(-5, 200),
            st.lists(st.sampled_from(["food", "shelter", "health", "x"]), max_size=4),
        ),
    )
)
def test_accepted_answers_are_stable_and_only_for_visible_questions(raw):
    """Whatever comes in: either a clean error, or answers that validate again unchanged."""
    try:
        result = validate_answers(DEFINITION, raw)
    except ValidationFailed as exc:
        assert set(exc.extra["errors"]) <= set(raw)
        return
    assert validate_answers(DEFINITION, result) == result
    shown = {
        qid for entry in visible_questions(DEFINITION, result) for qid in entry["question_ids"]
    }
    assert set(result) <= shown


def test_declined_may_be_any_iterable_of_ids():
    errors = fails({"q1": "yes"}, iter(["q1"]))
    assert errors == {"q1": ["question q1 is both answered and declined"]}
