"""XLSForm import: which language each column is in, and the translations a form lacks."""

from __future__ import annotations

import pytest

from services.surveys.questionnaire import publishable
from services.surveys.xlsform import import_xlsform, language_code, read_xlsform
from shared.errors import ValidationFailed

from .workbooks import AR, EN, problems, warnings_by_row, xlsx


def test_a_column_in_another_language_is_left_out_with_a_warning_at_its_header():
    survey = [["type", "name", EN, "label::Swahili (sw)"], ["text", "q", "Q", "Swali"]]
    imported = read_xlsform(xlsx(survey))
    assert imported.definition["sections"][0]["questions"][0]["label"] == {"en": "Q"}
    [warning] = [w for w in imported.warnings if w["name"] == "label::Swahili (sw)"]
    assert warning["row"] == 1 and "Swahili" in warning["reason"]
    with pytest.raises(ValidationFailed) as excinfo:  # nothing left in a language Voices works in
        import_xlsform(xlsx([["type", "name", "label::Swahili (sw)"], ["text", "q", "Swali"]]))
    [problem] = problems(excinfo)
    assert problem["row"] == 1 and "label::Swahili (sw)" in problem["reason"]


def test_default_language_names_the_language_of_plain_columns():
    survey = [["type", "name", "label"], ["text", "q", "Question"]]
    assert import_xlsform(xlsx(survey), default_language="fr", languages=["en"])["languages"] == [
        "fr"
    ]
    from_settings = import_xlsform(
        xlsx(survey, settings=[["default_language"], ["Español"]]), default_language="fr"
    )
    assert from_settings["sections"][0]["questions"][0]["label"] == {"es": "Question"}
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey, settings=[["default_language"], ["Deutsch"]]))
    [problem] = problems(excinfo)
    assert (problem["row"], problem["name"]) == (1, "label") and "Deutsch" in problem["reason"]


def test_missing_translation_imports_but_is_not_publishable():
    survey = [["type", "name", EN, AR], ["text", "q1", "One", "واحد"], ["text", "q2", "Two", None]]
    definition = import_xlsform(xlsx(survey))
    assert definition["sections"][0]["questions"][1]["label"] == {"en": "Two"}
    with pytest.raises(ValidationFailed) as excinfo:
        publishable(definition)
    assert excinfo.value.extra["errors"] == {
        "sections[0].questions[1].label": ["missing translation for 'ar'"]
    }


@pytest.mark.parametrize(
    "label, code",
    [
        ("Arabic (ar)", "ar"),
        ("ar", "ar"),
        ("ar-SA", "ar"),
        ("العربية", "ar"),
        ("Chinese (zh-Hans)", "zh"),
        ("中文", "zh"),
        ("English", "en"),
        ("Français (fr)", "fr"),
        ("русский", "ru"),
        ("Spanish (es)", "es"),
        ("Swahili (sw)", None),
        ("English (sw)", None),
        ("Klingon", None),
        ("spa", "es"),
    ],
)
def test_language_code(label, code):
    assert language_code(label) == code


@pytest.mark.parametrize(
    "consultation, expected", [(["fr"], "fr"), (["ar"], "ar"), (["en", "es"], "en")]
)
def test_a_plain_label_column_is_in_the_consultation_language(consultation, expected):
    survey = [["type", "name", "label", "hint"], ["text", "q", "Question", "A hint"]]
    imported = read_xlsform(xlsx(survey), languages=consultation)
    question = imported.definition["sections"][0]["questions"][0]
    assert imported.definition["languages"] == [expected]
    assert (question["label"], question["hint"]) == ({expected: "Question"}, {expected: "A hint"})
    if len(consultation) > 1:  # a guess among several is said, with the column
        assert "label" in warnings_by_row(imported)[("survey", 1)]


def test_a_plain_label_column_takes_the_consultation_language_no_other_column_has():
    survey = [["type", "name", "label", "label::Arabic (ar)"], ["text", "q", "Question", "سؤال"]]
    definition = read_xlsform(xlsx(survey), languages=["ar", "en"]).definition
    assert definition["sections"][0]["questions"][0]["label"] == {"en": "Question", "ar": "سؤال"}
    publishable(definition)


def test_a_plain_label_column_on_the_choices_sheet_of_a_translated_survey_sheet():
    survey = [["type", "name", EN], ["select_one yn", "q", "Question"]]
    choices = [["list_name", "name", "label"], ["yn", "yes", "Yes"], ["yn", "no", "No"]]
    definition = read_xlsform(xlsx(survey, choices), languages=["en"]).definition
    assert definition["sections"][0]["questions"][0]["options"][0]["label"] == {"en": "Yes"}


def test_a_plain_label_column_without_any_language_to_go_by_is_english_with_a_warning():
    survey = [["type", "name", "label"], ["text", "q", "Question"]]
    imported = read_xlsform(xlsx(survey))
    assert imported.definition["languages"] == ["en"]
    assert "default_language" in warnings_by_row(imported)[("survey", 1)]


def test_a_plain_column_beside_label_columns_for_every_consultation_language():
    survey = [
        ["type", "name", "label", EN, AR, "hint"],
        ["text", "q", "Swali", "Question", "سؤال", "A hint"],
    ]
    imported = read_xlsform(xlsx(survey), languages=["ar", "en"])
    question = imported.definition["sections"][0]["questions"][0]
    # The extra plain label is left out; the plain hint goes with the first label language.
    assert (question["label"], question["hint"]) == (
        {"en": "Question", "ar": "سؤال"},
        {"ar": "A hint"},
    )
    by_column = {w["name"]: w["reason"] for w in imported.warnings if w["row"] == 1}
    assert "not imported" in by_column["label"] and "'ar'" in by_column["hint"]


def test_missing_translations_are_warned_at_import_with_their_rows():
    survey = [
        ["type", "name", EN, AR],
        ["begin group", "g", "Group", None],
        ["text", "q1", "One", "واحد"],
        ["select_one yn", "q2", "Two", None],
        ["end group", None, None, None],
    ]
    choices = [["list_name", "name", EN, AR], ["yn", "yes", "Yes", None], ["yn", "no", "No", "لا"]]
    warnings = warnings_by_row(read_xlsform(xlsx(survey, choices)))
    for where in (("survey", 2), ("survey", 4), ("choices", 2)):
        assert "missing translation for 'ar'" in warnings[where], where
    assert ("survey", 3) not in warnings and ("choices", 3) not in warnings
