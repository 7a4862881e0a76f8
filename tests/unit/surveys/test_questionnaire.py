"""Survey definitions: structure, skip-logic references, translations, event summary."""

from __future__ import annotations

import copy

import pytest

from services.surveys.questionnaire import (
    check_translations,
    publishable,
    published_questions,
    validate_definition,
)
from shared.errors import ValidationFailed
from shared.questionnaire.definition import condition_holds


def t(en: str, ar: str | None = None) -> dict:
    text = {"en": en}
    if ar is not None:
        text["ar"] = ar
    return text


def survey() -> dict:
    """A small, valid, fully translated survey (en + ar)."""
    return {
        "languages": ["en", "ar"],
        "sections": [
            {
                "id": "about",
                "title": t("About you", "عنك"),
                "questions": [
                    {
                        "id": "safe",
                        "type": "single_choice",
                        "label": t("Do you feel safe?", "هل تشعر بالأمان؟"),
                        "options": [
                            {"code": "yes", "label": t("Yes", "نعم")},
                            {"code": "no", "label": t("No", "لا")},
                        ],
                        "dimension": True,
                    },
                    {
                        "id": "age",
                        "type": "number",
                        "integer": True,
                        "min": 0,
                        "max": 120,
                        "label": t("Age", "العمر"),
                    },
                    {
                        "id": "needs",
                        "type": "multiple_choice",
                        "label": t("Needs", "الاحتياجات"),
                        "options": [
                            {"code": "food", "label": t("Food", "طعام")},
                            {"code": "shelter", "label": t("Shelter", "مأوى")},
                        ],
                    },
                ],
            },
            {
                "id": "experience",
                "title": t("Experience", "التجربة"),
                "content_warning": t(
                    "This section asks about violence.", "يسأل هذا القسم عن العنف."
                ),
                "relevant": {"question": "safe", "op": "equals", "value": "no"},
                "questions": [
                    {
                        "id": "support",
                        "type": "rating",
                        "label": t("Support received", "الدعم المتلقى"),
                    },
                    {
                        "id": "when",
                        "type": "date",
                        "label": t("When", "متى"),
                        "relevant": {"question": "support", "op": "lte", "value": 2},
                    },
                    {
                        "id": "story",
                        "type": "free_text",
                        "label": t("Tell us more", "أخبرنا المزيد"),
                        "hint": t("Optional", "اختياري"),
                        "sensitive": True,
                    },
                ],
            },
        ],
    }


def errors_of(excinfo) -> dict:
    return excinfo.value.extra["errors"]


def question(defn: dict, s: int, q: int) -> dict:
    return defn["sections"][s]["questions"][q]


def test_valid_survey_gets_defaults_and_is_not_mutated():
    original = survey()
    snapshot = copy.deepcopy(original)
    normalised = validate_definition(original)
    assert original == snapshot
    assert question(normalised, 1, 0)["min"] == 1 and question(normalised, 1, 0)["max"] == 5
    assert question(normalised, 1, 2)["max_length"] == 2000
    assert question(normalised, 0, 1)["hint"] is None
    assert question(normalised, 0, 2)["dimension"] is False
    assert normalised["sections"][0]["content_warning"] is None
    assert normalised["sections"][0]["relevant"] is None


def test_publishable_survey_passes_both_checks():
    assert publishable(survey())["languages"] == ["en", "ar"]
    check_translations(survey())


def test_duplicate_ids_across_questions_and_sections():
    defn = survey()
    question(defn, 1, 1)["id"] = "safe"
    defn["sections"][1]["id"] = "about"
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    errors = errors_of(excinfo)
    assert "duplicate id 'safe'" in errors["sections[1].questions[1].id"]
    assert "duplicate id 'about'" in errors["sections[1].id"]


def test_unknown_type_is_reported_at_its_path():
    defn = survey()
    question(defn, 0, 1)["type"] = "geopoint"
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert list(errors_of(excinfo)) == ["sections[0].questions[1].type"]


@pytest.mark.parametrize(
    "options, message",
    [
        (None, "at least 2 options"),
        ([], "at least 2 options"),
        ([{"code": "yes", "label": {"en": "Y"}}], "at least 2 options"),
    ],
)
def test_single_choice_needs_options(options, message):
    defn = survey()
    if options is None:
        del question(defn, 0, 0)["options"]
    else:
        question(defn, 0, 0)["options"] = options
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert any(message in m for m in errors_of(excinfo)["sections[0].questions[0].options"])


def test_option_codes_must_be_unique_and_safe():
    defn = survey()
    question(defn, 0, 2)["options"] = [
        {"code": "food", "label": t("Food")},
        {"code": "food", "label": t("Food again")},
        {"code": "a.b", "label": t("Dotted")},
    ]
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    errors = errors_of(excinfo)
    assert "sections[0].questions[2].options[1].code" in errors
    assert "sections[0].questions[2].options[2].code" in errors


def test_options_on_a_number_question_are_rejected():
    defn = survey()
    question(defn, 0, 1)["options"] = [{"code": "a", "label": t("A")}]
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert "sections[0].questions[1].options" in errors_of(excinfo)


@pytest.mark.parametrize(
    "changes, path",
    [
        ({"min": 10, "max": 5}, "sections[0].questions[1].max"),
        ({"min": "0"}, "sections[0].questions[1].min"),
        ({"max": float("inf")}, "sections[0].questions[1].max"),
        ({"min": 0.2, "max": 0.8}, "sections[0].questions[1].max"),  # integer, nothing in between
    ],
)
def test_bad_number_bounds(changes, path):
    defn = survey()
    question(defn, 0, 1).update(changes)
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert path in errors_of(excinfo)


@pytest.mark.parametrize(
    "changes", [{"min": 5, "max": 5}, {"min": 0, "max": 11}, {"min": 1.5}, {"max": True}]
)
def test_bad_rating_scale(changes):
    defn = survey()
    question(defn, 1, 0).update(changes)
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert any(k.startswith("sections[1].questions[0].") for k in errors_of(excinfo))


def test_rating_zero_to_ten_is_fine():
    defn = survey()
    question(defn, 1, 0).update({"min": 0, "max": 10})
    assert question(validate_definition(defn), 1, 0)["max"] == 10


@pytest.mark.parametrize("limit", [0, 10001, "200", True])
def test_bad_free_text_limit(limit):
    defn = survey()
    question(defn, 1, 2)["max_length"] = limit
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert "sections[1].questions[2].max_length" in errors_of(excinfo)


def test_required_flag_is_refused_because_everything_is_skippable():
    defn = survey()
    question(defn, 0, 0)["required"] = True
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert "skipped" in errors_of(excinfo)["sections[0].questions[0].required"][0]


def test_forward_reference_in_question_condition():
    defn = survey()
    question(defn, 0, 1)["relevant"] = {"question": "needs", "op": "includes", "value": "food"}
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    messages = errors_of(excinfo)["sections[0].questions[1].relevant.question"]
    assert "does not come earlier" in messages[0]


def test_self_reference_is_a_forward_reference():
    defn = survey()
    question(defn, 0, 1)["relevant"] = {"question": "age", "op": "answered"}
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert "sections[0].questions[1].relevant.question" in errors_of(excinfo)


def test_section_condition_may_not_read_its_own_questions():
    defn = survey()
    defn["sections"][1]["relevant"] = {"question": "support", "op": "answered"}
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert "sections[1].relevant.question" in errors_of(excinfo)


def test_nested_condition_errors_have_precise_paths():
    defn = survey()
    question(defn, 1, 2)["relevant"] = {
        "all": [
            {"question": "safe", "op": "equals", "value": "maybe"},
            {"not": {"question": "nobody", "op": "answered"}},
            {"any": []},
            {"question": "needs", "op": "equals", "value": "food"},
            {"question": "age", "op": "gt", "value": "3"},
            {"question": "when", "op": "answered", "value": True},
        ]
    }
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    errors = errors_of(excinfo)
    base = "sections[1].questions[2].relevant.all"
    assert f"{base}[0].value" in errors  # not an option
    assert f"{base}[1].not.question" in errors  # unknown question
    assert f"{base}[2].any" in errors  # empty
    assert f"{base}[3].op" in errors  # equals on multiple choice
    assert f"{base}[4].value" in errors  # not a number
    assert f"{base}[5].value" in errors  # answered takes no value


def test_condition_on_free_text_content_is_refused():
    defn = survey()
    defn["sections"].append(
        {
            "id": "more",
            "title": t("More", "المزيد"),
            "relevant": {"question": "story", "op": "equals", "value": "help"},
            "questions": [{"id": "x", "type": "date", "label": t("X", "س")}],
        }
    )
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert "sections[2].relevant.op" in errors_of(excinfo)


def test_condition_depth_is_bounded():
    deep: dict = {"question": "safe", "op": "answered"}
    for _ in range(20):
        deep = {"not": deep}
    defn = survey()
    question(defn, 0, 1)["relevant"] = deep
    with pytest.raises(ValidationFailed):
        validate_definition(defn)


def test_at_most_three_dimensions():
    defn = survey()
    question(defn, 0, 2)["dimension"] = True
    extra = [
        {
            "id": f"d{i}",
            "type": "single_choice",
            "label": t("D", "د"),
            "dimension": True,
            "options": [{"code": "a", "label": t("A", "أ")}, {"code": "b", "label": t("B", "ب")}],
        }
        for i in range(2)
    ]
    defn["sections"][0]["questions"].extend(extra)
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert "found 4" in errors_of(excinfo)["dimensions"][0]
    defn["sections"][0]["questions"].pop()
    validate_definition(defn)  # three is allowed


def test_dimension_only_on_choice_questions():
    defn = survey()
    question(defn, 1, 0)["dimension"] = True
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert "sections[1].questions[0].dimension" in errors_of(excinfo)


@pytest.mark.parametrize(
    "defn, path",
    [
        ({"languages": [], "sections": []}, "languages"),
        ({"languages": ["en", "de"], "sections": []}, "languages[1]"),
        ({"languages": ["en", "en"], "sections": []}, "languages"),
        ({"languages": ["en"], "sections": []}, "sections"),
        (
            {"languages": ["en"], "sections": [{"id": "s", "title": t("S"), "questions": []}]},
            "sections[0].questions",
        ),
        ({"languages": ["en"], "sections": [], "title": "x"}, "title"),
        (
            {
                "languages": ["en"],
                "sections": [
                    {
                        "id": "1s",
                        "title": t("S"),
                        "questions": [{"id": "q", "type": "date", "label": t("Q")}],
                    }
                ],
            },
            "sections[0].id",
        ),
        (
            {
                "languages": ["en"],
                "sections": [
                    {
                        "id": "s",
                        "title": {"de": "S"},
                        "questions": [{"id": "q", "type": "date", "label": t("Q")}],
                    }
                ],
            },
            "sections[0].title",
        ),
    ],
)
def test_structural_errors(defn, path):
    with pytest.raises(ValidationFailed) as excinfo:
        validate_definition(defn)
    assert path in errors_of(excinfo)


def test_not_a_dict_at_all():
    with pytest.raises(ValidationFailed):
        validate_definition(["not", "a", "survey"])


def test_missing_translations_list_path_and_language():
    defn = survey()
    defn["languages"] = ["ar", "en", "fr"]
    del question(defn, 0, 0)["options"][1]["label"]["ar"]
    question(defn, 1, 2)["hint"]["en"] = "   "
    with pytest.raises(ValidationFailed) as excinfo:
        check_translations(defn)
    errors = errors_of(excinfo)
    assert errors["sections[0].questions[0].options[1].label"] == [
        "missing translation for 'ar'",
        "missing translation for 'fr'",
    ]
    assert "missing translation for 'en'" in errors["sections[1].questions[2].hint"]
    assert errors["sections[1].content_warning"] == ["missing translation for 'fr'"]
    # Every text is missing French: one entry per text field.
    french = [p for p, msgs in errors.items() if "missing translation for 'fr'" in msgs]
    assert len(french) == 2 + 1 + 6 + 4 + 1  # titles, warning, labels, option labels, hint


def test_english_is_not_privileged():
    defn = survey()
    defn["languages"] = ["ar"]
    for section in defn["sections"]:
        section["title"].pop("en")
    validate_definition(defn)
    with pytest.raises(ValidationFailed):
        check_translations({**defn, "languages": ["en"]})
    check_translations(defn)


def test_publishable_reports_structure_and_translations_together():
    defn = survey()
    question(defn, 0, 1)["min"] = 200
    del question(defn, 0, 2)["label"]["ar"]
    with pytest.raises(ValidationFailed) as excinfo:
        publishable(defn)
    errors = errors_of(excinfo)
    assert "sections[0].questions[1].max" in errors
    assert errors["sections[0].questions[2].label"] == ["missing translation for 'ar'"]


def test_published_questions_summary():
    summary = published_questions(validate_definition(survey()))
    assert summary[0] == {
        "id": "safe",
        "type": "single_choice",
        "options": ["yes", "no"],
        "dimension": True,
        "min": None,
        "max": None,
        "label": {"en": "Do you feel safe?", "ar": "هل تشعر بالأمان؟"},
        "option_labels": {"yes": {"en": "Yes", "ar": "نعم"}, "no": {"en": "No", "ar": "لا"}},
    }
    assert summary[1] == {
        "id": "age",
        "type": "number",
        "options": [],
        "dimension": False,
        "min": 0,
        "max": 120,
        "label": {"en": "Age", "ar": "العمر"},
        "option_labels": {},
    }
    assert summary[3]["min"] == 1 and summary[3]["max"] == 5 and summary[3]["option_labels"] == {}
    assert [q["id"] for q in summary] == ["safe", "age", "needs", "support", "when", "story"]
    keys = {"id", "type", "options", "dimension", "min", "max", "label", "option_labels"}
    assert all(set(q) == keys for q in summary)
    # What the event contract accepts.
    from shared.events import QuestionSummarySchema

    assert all(not QuestionSummarySchema().validate(q) for q in summary)


@pytest.mark.parametrize(
    "condition, answers, expected",
    [
        ({"question": "a", "op": "equals", "value": "x"}, {"a": "x"}, True),
        ({"question": "a", "op": "equals", "value": "x"}, {}, False),
        ({"question": "a", "op": "not_equals", "value": "x"}, {}, False),
        ({"not": {"question": "a", "op": "equals", "value": "x"}}, {}, True),
        ({"question": "a", "op": "includes", "value": "x"}, {"a": ["y", "x"]}, True),
        ({"question": "n", "op": "gte", "value": 3}, {"n": 3}, True),
        ({"question": "n", "op": "gt", "value": 3}, {"n": 3}, False),
        ({"question": "d", "op": "lt", "value": "2020-01-10"}, {"d": "2020-01-09"}, True),
        (
            {
                "all": [
                    {"question": "a", "op": "answered"},
                    {"question": "n", "op": "lte", "value": 1},
                ]
            },
            {"a": "x", "n": 2},
            False,
        ),
        (
            {
                "any": [
                    {"question": "a", "op": "answered"},
                    {"question": "n", "op": "lte", "value": 1},
                ]
            },
            {"a": "x", "n": 2},
            True,
        ),
    ],
)
def test_condition_semantics(condition, answers, expected):
    assert condition_holds(condition, answers) is expected
