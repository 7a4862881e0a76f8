"""XLSForm import: real .xlsx workbooks built here with openpyxl."""

from __future__ import annotations

import io

import pytest

from services.surveys.questionnaire import check_translations, publishable
from services.surveys.xlsform import import_xlsform, read_xlsform
from shared.errors import ValidationFailed
from shared.questionnaire.answers import validate_answers, visible_questions
from shared.questionnaire.definition import CODE_PATTERN

from .workbooks import AR, EN, YES_NO, problems, warnings_by_row, xls, xlsx

CONSULTATION_FORM = [
    [
        "type",
        "name",
        EN,
        AR,
        "hint::English (en)",
        "hint::Arabic (ar)",
        "relevant",
        "constraint",
        "required",
    ],
    [
        "select_one yn",
        "safe",
        "Do you feel safe?",
        "هل تشعر بالأمان؟",
        None,
        None,
        None,
        None,
        "yes",
    ],  # row 2
    ["begin group", "about", "About you", "عنك", None, None, None, None, None],  # row 3
    [
        "integer",
        "age",
        "How old are you?",
        "كم عمرك؟",
        "Years",
        "سنوات",
        None,
        ". >= 0 and . <= 120",
        None,
    ],
    [
        "select_multiple needs",
        "needs",
        "What do you need?",
        "ماذا تحتاج؟",
        None,
        None,
        None,
        None,
        None,
    ],
    ["end group", None, None, None, None, None, None, None, None],  # row 6
    [None] * 9,  # row 7: blank rows keep later row numbers honest
    [
        "begin group",
        "health",
        "Health",
        "الصحة",
        None,
        None,
        "selected(${needs}, 'health')",
        None,
        None,
    ],
    [
        "date",
        "seen",
        "When were you last seen by a doctor?",
        "متى رآك طبيب آخر مرة؟",
        None,
        None,
        None,
        None,
        None,
    ],
    ["note", "thanks_note", "Thank you", "شكرا", None, None, None, None, None],  # row 10
    [
        "text",
        "story",
        "Tell us more",
        "أخبرنا المزيد",
        None,
        None,
        "${safe} = 'no' and ${age} >= 18",
        "string-length(.) <= 500",
        None,
    ],
    ["end group", None, None, None, None, None, None, None, None],
]

SETTINGS = [
    ["form_title", "form_id", "default_language"],
    ["Safety consultation", "safety", "English (en)"],
]


def test_round_trip_with_arabic_groups_relevant_and_select_multiple():
    imported = read_xlsform(xlsx(CONSULTATION_FORM, YES_NO, SETTINGS))
    definition = imported.definition
    assert imported.title == "Safety consultation"
    assert definition["languages"] == ["en", "ar"]
    assert [s["id"] for s in definition["sections"]] == ["section_1", "about", "health"]

    loose, about, health = definition["sections"]
    assert loose["title"] == {"en": "Questions", "ar": "أسئلة"}
    safe = loose["questions"][0]
    assert safe["type"] == "single_choice"
    assert safe["label"] == {"en": "Do you feel safe?", "ar": "هل تشعر بالأمان؟"}
    assert safe["options"] == [
        {"code": "yes", "label": {"en": "Yes", "ar": "نعم"}},
        {"code": "no", "label": {"en": "No", "ar": "لا"}},
    ]

    age, needs = about["questions"]
    assert about["title"] == {"en": "About you", "ar": "عنك"}
    assert (age["type"], age["integer"], age["min"], age["max"]) == ("number", True, 0, 120)
    assert age["hint"] == {"en": "Years", "ar": "سنوات"}
    assert needs["type"] == "multiple_choice"
    assert [o["code"] for o in needs["options"]] == ["food", "shelter", "health"]
    assert needs["options"][2]["label"]["ar"] == "رعاية صحية"

    assert health["relevant"] == {"question": "needs", "op": "includes", "value": "health"}
    assert [q["id"] for q in health["questions"]] == ["seen", "story"]  # the note is skipped
    story = health["questions"][1]
    assert story["type"] == "free_text" and story["max_length"] == 500
    assert story["relevant"] == {
        "all": [
            {"question": "safe", "op": "equals", "value": "no"},
            {"question": "age", "op": "gte", "value": 18},
        ]
    }

    # Fully translated: publishable as is.
    check_translations(definition)
    publishable(definition)

    # Warnings say what was left out, with rows.
    reasons = {(w["row"], w["name"]): w["reason"] for w in imported.warnings}
    assert "notes are not imported" in reasons[(10, "thanks_note")]
    assert "skipped" in reasons[(1, "required")] and "row 2" in reasons[(1, "required")]

    # And the definition drives answers and skip logic.
    answers = {
        "safe": "no",
        "age": "30",
        "needs": ["health", "food"],
        "seen": "2024-05-01",
        "story": "  الطبيب بعيد  ",
    }
    assert validate_answers(definition, answers) == {
        "safe": "no",
        "age": 30,
        "needs": ["food", "health"],
        "seen": "2024-05-01",
        "story": "الطبيب بعيد",
    }
    with pytest.raises(ValidationFailed) as excinfo:
        validate_answers(definition, {"needs": ["food"], "seen": "2024-05-01"})
    assert excinfo.value.extra["errors"] == {
        "seen": ["question seen is not shown for these answers"]
    }
    shown = visible_questions(definition, {"safe": "yes", "age": 30, "needs": ["health"]})
    assert shown[-1] == {"section_id": "health", "question_ids": ["seen"]}


def test_import_xlsform_from_path_and_file_object(tmp_path):
    data = xlsx(CONSULTATION_FORM, YES_NO, SETTINGS)
    path = tmp_path / "form.xlsx"
    path.write_bytes(data)
    assert import_xlsform(path) == import_xlsform(str(path)) == import_xlsform(io.BytesIO(data))


def test_unsupported_rows_are_each_reported_with_sheet_and_row():
    survey = [
        ["type", "name", EN, "relevant", "constraint", "choice_filter", "calculation"],
        ["select_one yn", "safe", "Safe?", None, None, None, None],  # 2 ok
        ["geopoint", "where", "Where?", None, None, None, None],  # 3
        ["calculate", "score", None, None, None, None, "1 + 1"],  # 4
        ["begin repeat", "kids", "Children", None, None, None, None],  # 5
        ["text", "kid_name", "Name", None, None, None, None],  # 6 ok in itself
        ["end repeat", None, None, None, None, None, None],
        ["select_one yn or_other", "other", "Other?", None, None, None, None],  # 8
        ["select_one yn", "filtered", "Filtered", None, None, "list_name = 'yn'", None],  # 9
        ["integer", "n", "N", "count(${safe}) > 1", None, None, None],  # 10
        [
            "integer",
            "m",
            "M",
            None,
            "regex(., '[0-9]+')",
            None,
            None,
        ],  # 11: constraint dropped, warned
        ["deviceid", "device", None, None, None, None, None],  # 12
        ["text", "early", "Early", "${late} != ''", None, None, None],  # 13: forward reference
        ["text", "late", "Late", None, None, None, None],  # 14 ok
        ["select_one missing_list", "nolist", "No list", None, None, None, None],  # 15
        ["text", "refers_to_map", "Q", "${where} = 'x'", None, None, None],  # 16
    ]
    choices = [["list_name", "name", EN], ["yn", "yes", "Yes"], ["yn", "no no", "No"]]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey, choices, [["default_language"], ["English (en)"]]))
    found = problems(excinfo)
    by_row = {(p["sheet"], p["row"]): p for p in found if p["sheet"] in ("survey", "choices")}
    assert ("choices", 3) not in by_row  # 'no no' is kept as no_no, with a warning
    expected = {
        3: "where",
        4: "score",
        5: "kids",
        10: "n",
        13: "early",
        15: "nolist",
        16: "refers_to_map",
    }
    for row, name in expected.items():
        assert ("survey", row) in by_row, row
        assert by_row[("survey", row)]["name"] == name
    # Kept with a warning: 8 (or_other), 9 (choice_filter), 11 (constraint dropped), 12 (metadata).
    assert not any(p["sheet"] == "survey" and p["row"] in (2, 6, 8, 9, 11, 12, 14) for p in found)
    assert {8, 9, 11, 12} <= {w["row"] for w in excinfo.value.extra["warnings"]}
    assert "geopoint" in by_row[("survey", 3)]["reason"]
    assert "repeat" in by_row[("survey", 5)]["reason"]
    assert "not an earlier question" in by_row[("survey", 13)]["reason"]
    assert "not imported" in by_row[("survey", 16)]["reason"]
    assert set(excinfo.value.extra["errors"]) <= {"survey", "choices", "form"}
    assert all(set(p) == {"sheet", "row", "name", "reason"} for p in found)


def test_pyxform_whole_form_errors_are_reported_with_rows():
    survey = [["type", "name", EN], ["text", "q1", "A"], ["text", "q1", "B"]]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey))
    rows = {(p["sheet"], p["row"]) for p in problems(excinfo)}
    assert ("survey", 3) in rows
    assert any(p["reason"].startswith("pyxform:") for p in problems(excinfo))


def test_not_an_xlsx_file():
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(b"type,name,label\ntext,q,Q\n")
    assert list(excinfo.value.extra["errors"]) == ["form"]


def test_definition_rule_breaks_are_traced_back_to_rows():
    survey = [
        ["type", "name", EN, "constraint"],
        ["text", "a", "A", None],
        ["integer", "q", "Q", ". >= 10 and . <= 5"],
    ]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey))
    [problem] = problems(excinfo)
    assert (problem["sheet"], problem["row"], problem["name"]) == ("survey", 3, "q")
    assert "max" in problem["reason"]


def test_range_becomes_rating():
    survey = [
        ["type", "name", EN, "parameters"],
        ["range", "r", "R", "start=1 end=5 step=1"],
        ["range", "r10", "R", None],
    ]
    first, second = import_xlsform(xlsx(survey))["sections"][0]["questions"]
    assert (first["type"], first["min"], first["max"]) == ("rating", 1, 5)
    assert (second["min"], second["max"]) == (1, 10)
    bad = [["type", "name", EN, "parameters"], ["range", "r", "R", "start=0 end=100 step=10"]]
    with pytest.raises(ValidationFailed):
        import_xlsform(xlsx(bad))


def test_a_group_inside_a_group_becomes_a_section_shown_only_with_the_outer_one():
    survey = [
        [
            "type",
            "name",
            EN,
            AR,
            "relevant",
            "content_warning::English (en)",
            "content_warning::Arabic (ar)",
        ],
        ["select_one yn", "safe", "Safe?", "آمن؟", None, None, None],
        ["begin group", "outer", "Outer", "خارجي", "${safe} = 'no'", "Hard", "صعب"],
        ["text", "a", "A", "أ", None, None, None],
        ["begin group", "inner", None, None, "${a} != ''", None, None],  # row 5
        ["select_multiple needs", "needs", "Needs", "احتياجات", None, None, None],
        ["end group"],
        ["text", "b", "B", "ب", None, None, None],
        ["end group"],
    ]
    imported = read_xlsform(xlsx(survey, YES_NO))
    sections = imported.definition["sections"]
    assert [(s["id"], [q["id"] for q in s["questions"]]) for s in sections] == [
        ("section_1", ["safe"]),
        ("outer", ["a"]),
        ("inner", ["needs"]),
        ("outer_2", ["b"]),
    ]
    outer_shown = {"question": "safe", "op": "equals", "value": "no"}
    assert sections[1]["relevant"] == sections[3]["relevant"] == outer_shown
    assert sections[2]["relevant"] == {"all": [outer_shown, {"question": "a", "op": "answered"}]}
    assert sections[2]["title"] == sections[3]["title"] == {"en": "Outer", "ar": "خارجي"}
    assert sections[2]["content_warning"] == {"en": "Hard", "ar": "صعب"}
    assert "inside group 'outer'" in warnings_by_row(imported)[("survey", 5)]
    publishable(imported.definition)
    shown = visible_questions(imported.definition, {"safe": "no"})
    assert [s["section_id"] for s in shown] == ["section_1", "outer", "outer_2"]
    shown = visible_questions(imported.definition, {"safe": "no", "a": "x"})
    assert [s["section_id"] for s in shown] == ["section_1", "outer", "inner", "outer_2"]


def test_voices_extension_columns():
    survey = [
        [
            "type",
            "name",
            EN,
            AR,
            "dimension",
            "sensitive",
            "content_warning::English (en)",
            "content_warning::Arabic (ar)",
        ],
        ["begin group", "g", "G", "ج", None, None, "Hard questions ahead", "أسئلة صعبة"],
        ["select_one yn", "safe", "S", "س", "yes", "no", None, None],
        ["text", "story", "T", "ت", None, "TRUE", None, None],
        ["end group"],
    ]
    section = import_xlsform(xlsx(survey, YES_NO))["sections"][0]
    assert section["content_warning"] == {"en": "Hard questions ahead", "ar": "أسئلة صعبة"}
    assert (
        section["questions"][0]["dimension"] is True
        and section["questions"][0]["sensitive"] is False
    )
    assert section["questions"][1]["sensitive"] is True
    survey[3][5] = "sometimes"
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey, YES_NO))
    assert any(p["row"] == 4 and "sensitive" in p["reason"] for p in problems(excinfo))


def test_sections_split_around_groups():
    survey = [
        ["type", "name", EN],
        ["text", "a", "A"],
        ["begin group", "g", "G"],
        ["text", "b", "B"],
        ["end group"],
        ["text", "c", "C"],
        ["text", "section_3", "D"],
    ]
    sections = import_xlsform(xlsx(survey))["sections"]
    assert [(s["id"], [q["id"] for q in s["questions"]]) for s in sections] == [
        ("section_1", ["a"]),
        ("g", ["b"]),
        ("section_4", ["c", "section_3"]),
    ]


# ---------------------------------------------------------------- forms as organisations bring them


METADATA_TYPES = [
    "start",
    "end",
    "today",
    "deviceid",
    "username",
    "phonenumber",
    "simserial",
    "subscriberid",
    "email",
    "audit",
    "start-geopoint",
    "background-audio",
]


def test_metadata_rows_are_skipped_with_a_warning_for_each_row():
    # pyxform wants the audit row unnamed.
    survey = [
        ["type", "name", EN],
        *[
            [kind, None if kind == "audit" else f"meta_{i}", None]
            for i, kind in enumerate(METADATA_TYPES)
        ],
        ["text", "story", "Story"],
    ]
    imported = read_xlsform(xlsx(survey))
    assert [q["id"] for s in imported.definition["sections"] for q in s["questions"]] == ["story"]
    warnings = warnings_by_row(imported)
    for row, kind in enumerate(METADATA_TYPES, start=2):
        assert kind in warnings[("survey", row)] and "skipped" in warnings[("survey", row)]


def test_a_question_that_depends_on_a_metadata_row_is_refused_with_the_reason():
    survey = [
        ["type", "name", EN, "relevant"],
        ["today", "today", None, None],
        ["text", "q", "Q", "${today} != ''"],
    ]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey))
    [problem] = problems(excinfo)
    assert (
        problem["row"] == 3 and "today" in problem["reason"] and "not imported" in problem["reason"]
    )


def test_a_group_without_a_label_is_reported_at_import_and_publishes():
    survey = [
        ["type", "name", EN, AR, "relevant"],
        ["select_one yn", "safe", "Safe?", "آمن؟", None],
        ["begin group", "details", None, None, "${safe} = 'no'"],  # row 3
        ["text", "why", "Why?", "لماذا؟", None],
        ["end group", None, None, None, None],
    ]
    imported = read_xlsform(xlsx(survey, YES_NO))
    section = imported.definition["sections"][1]
    assert section["id"] == "details" and set(section["title"]) == {"en", "ar"}
    assert "label" in warnings_by_row(imported)[("survey", 3)]
    publishable(imported.definition)


def test_a_legacy_xls_workbook_imports_like_the_xlsx():
    assert import_xlsform(xls(CONSULTATION_FORM, YES_NO, SETTINGS)) == import_xlsform(
        xlsx(CONSULTATION_FORM, YES_NO, SETTINGS)
    )


def test_a_file_that_is_no_workbook_is_refused_naming_the_formats():
    for data in (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 damaged",
        b"PK\x03\x04 a zip that is no workbook",
        b"a,b\n",
    ):
        with pytest.raises(ValidationFailed) as excinfo:
            import_xlsform(data)
        [problem] = problems(excinfo)
        assert problem["sheet"] is None and "an .xlsx or .xls workbook" in problem["reason"]
        assert ".csv" not in problem["reason"]


def test_choice_names_voices_cannot_keep_are_mapped_and_said():
    survey = [
        ["type", "name", EN, "relevant"],
        ["select_one colour", "colour", "Colour", None],
        ["text", "why", "Why?", "${colour} = 'père' or selected(${colour}, \"red's\")"],
    ]
    choices = [
        ["list_name", "name", EN],
        ["colour", "père", "Father"],
        ["colour", "red's", "Red"],
        ["colour", "red_s", "Red too"],
        ["colour", "أحمر", "Arabic red"],
        ["colour", "blue", "Blue"],
    ]
    imported = read_xlsform(xlsx(survey, choices))
    colour, why = imported.definition["sections"][0]["questions"]
    codes = [o["code"] for o in colour["options"]]
    assert codes[0] == "pere" and codes[-1] == "blue"
    assert len(set(codes)) == 5 and all(CODE_PATTERN.match(code) for code in codes)
    assert why["relevant"] == {
        "any": [
            {"question": "colour", "op": "equals", "value": "pere"},
            {"question": "colour", "op": "equals", "value": codes[1]},
        ]
    }
    warnings = warnings_by_row(imported)
    for row, code in zip((2, 3, 5), (codes[0], codes[1], codes[3]), strict=True):
        assert repr(code) in warnings[("choices", row)]
    assert ("choices", 4) not in warnings and ("choices", 6) not in warnings


def test_an_internal_pyxform_failure_never_reaches_the_organiser(monkeypatch):
    from services.surveys.xlsform import importer

    def broken_convert(*args, **kwargs):
        raise AttributeError("'dict' object has no attribute 'nodeType'")

    monkeypatch.setattr(importer, "convert", broken_convert)
    assert import_xlsform(xlsx(CONSULTATION_FORM, YES_NO, SETTINGS))["sections"]
    survey = [["type", "name", EN], ["geopoint", "where", "Where?"]]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey))
    assert [p["row"] for p in problems(excinfo)] == [2]
    assert not any("nodeType" in p["reason"] for p in problems(excinfo))


@pytest.mark.parametrize(
    "qtype, change",
    [
        ("geopoint", "delete the row"),
        ("geotrace", "delete the row"),
        ("image", "delete the row"),
        ("audio", "delete the row"),
        ("file", "delete the row"),
        ("calculate", "delete the row"),
        ("time", "change the type to date"),
        ("datetime", "change the type to date"),
        ("barcode", "change the type to text"),
        ("acknowledge", "change the type to select_one"),
        ("trigger", "change the type to select_one"),
        ("rank colour", "change the type to select_multiple"),
        ("select_one_from_file places.csv", "into the choices sheet"),
        ("hidden", "delete the row"),
        ("xml-external", "delete the row"),
        ("osm", "delete the row"),
        ("gps", "delete the row"),
        ("q picture", "delete the row"),
    ],
)
def test_an_unsupported_type_is_refused_saying_what_to_change(qtype, change):
    survey = [
        ["type", "name", EN, "calculation"],
        [qtype, "q", "Q", "1" if qtype == "calculate" else None],
    ]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey, [["list_name", "name", EN], ["colour", "red", "Red"]]))
    reasons = [p["reason"] for p in problems(excinfo) if p["row"] == 2]
    assert reasons and qtype.split()[0] in reasons[0] and change in reasons[0], reasons


def test_or_other_adds_the_choice_and_the_text_question_odk_adds():
    survey = [
        ["type", "name", EN, AR, "parameters", "choice_filter"],
        ["select_one yn or_other", "safe", "Safe?", "آمن؟", "randomize=true", None],  # row 2
        ["select_multiple needs or_other", "needs", "Needs?", "احتياجات؟", None, None],  # row 3
        ["select_one needs", "first_need", "First?", "الأول؟", None, "name != 'food'"],
    ]  # row 4
    imported = read_xlsform(xlsx(survey, YES_NO))
    questions = imported.definition["sections"][0]["questions"]
    assert [q["id"] for q in questions] == [
        "safe",
        "safe_other",
        "needs",
        "needs_other",
        "first_need",
    ]
    assert questions[0]["options"][-1] == {"code": "other", "label": {"en": "Other", "ar": "أخرى"}}
    assert [o["code"] for o in questions[2]["options"]] == ["food", "shelter", "health", "other"]
    assert [o["code"] for o in questions[4]["options"]] == [
        "food",
        "shelter",
        "health",
    ]  # filter dropped
    assert questions[1]["type"] == "free_text" and set(questions[1]["label"]) == {"en", "ar"}
    assert questions[1]["relevant"] == {"question": "safe", "op": "equals", "value": "other"}
    assert questions[3]["relevant"] == {"question": "needs", "op": "includes", "value": "other"}
    publishable(imported.definition)
    shown = visible_questions(imported.definition, {"safe": "other", "needs": ["food"]})
    assert shown[0]["question_ids"] == ["safe", "safe_other", "needs", "first_need"]
    reasons = [w["reason"] for w in imported.warnings]
    assert any("randomize" in r for r in reasons) and any("name != 'food'" in r for r in reasons)
    assert any("'safe_other'" in r for r in reasons) and any("'needs_other'" in r for r in reasons)


@pytest.mark.parametrize("clash", ["a row named safe_other", "a choice named other"])
def test_or_other_is_refused_when_what_it_adds_has_a_name_already_taken(clash):
    survey = [["type", "name", EN], ["select_one yn or_other", "safe", "Safe?"]]
    choices = [["list_name", "name", EN], ["yn", "yes", "Yes"], ["yn", "no", "No"]]
    if clash == "a row named safe_other":
        survey.append(["text", "safe_other", "Other"])
    else:
        choices.append(["yn", "other", "Other"])
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx(survey, choices))
    [problem] = problems(excinfo)
    assert problem["row"] == 2 and "or_other" in problem["reason"] and "remove" in problem["reason"]


def test_a_question_with_only_a_hint_is_asked_with_the_hint_as_its_text():
    survey = [["type", "name", "label", "hint"], ["text", "q", None, "Tell us what helped"]]
    imported = read_xlsform(xlsx(survey), languages=["fr"])
    assert imported.definition["languages"] == ["fr"]
    question = imported.definition["sections"][0]["questions"][0]
    assert (question["label"], question["hint"]) == ({"fr": "Tell us what helped"}, None)
    assert "hint" in warnings_by_row(imported)[("survey", 2)]
    with pytest.raises(ValidationFailed) as excinfo:
        import_xlsform(xlsx([["type", "name", "label"], ["text", "q", None]]))
    [problem] = problems(excinfo)
    assert problem["row"] == 2 and "write the question in the label column" in problem["reason"]


def test_a_label_that_refers_to_an_earlier_answer_is_imported_with_a_warning():
    survey = [
        ["type", "name", EN],
        ["integer", "age", "Age"],
        ["text", "q", "At ${age}, what helped?"],
    ]
    imported = read_xlsform(xlsx(survey))
    assert imported.definition["sections"][0]["questions"][1]["label"] == {
        "en": "At ${age}, what helped?"
    }
    assert "reword" in warnings_by_row(imported)[("survey", 3)]


def test_a_group_that_holds_only_groups_is_not_reported_empty():
    survey = [
        ["type", "name", EN],
        ["begin group", "outer", "Outer"],
        ["begin group", "inner", None],
        ["text", "q", "Q"],
        ["end group"],
        ["end group"],
    ]
    imported = read_xlsform(xlsx(survey))
    assert [(s["id"], s["title"]) for s in imported.definition["sections"]] == [
        ("inner", {"en": "Outer"})
    ]
    assert not any("no questions" in w["reason"] for w in imported.warnings)
