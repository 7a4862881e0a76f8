"""XLSForm upload through the API: a real .xlsx built here with openpyxl, Arabic labels included."""

from __future__ import annotations

import io

import pytest

from services.surveys.models import Response

from .workbooks import AR, EN, xls, xlsx
from .xlsform_corpus import CORPUS

CHOICES = [
    ["list_name", "name", EN, AR],
    ["yn", "yes", "Yes", "نعم"],
    ["yn", "no", "No", "لا"],
    ["needs", "food", "Food", "طعام"],
    ["needs", "health", "Health care", "رعاية صحية"],
]
FORM = [
    ["type", "name", EN, AR, "relevant", "constraint", "dimension"],
    ["select_one yn", "safe", "Do you feel safe?", "هل تشعر بالأمان؟", None, None, "yes"],
    ["begin group", "about", "About you", "عنك", None, None, None],
    ["integer", "age", "How old are you?", "كم عمرك؟", None, ". >= 16 and . <= 100", None],
    ["select_multiple needs", "needs", "What do you need?", "ماذا تحتاج؟", None, None, None],
    ["range", "support", "How good was the support?", "ما مدى جودة الدعم؟", None, None, None],
    ["date", "left_on", "When did you leave?", "متى غادرت؟", None, None, None],
    [
        "text",
        "story",
        "What would have helped?",
        "ما الذي كان سيساعد؟",
        "${safe} = 'no'",
        "string-length(.) <= 300",
        None,
    ],
    ["end group", None, None, None, None, None, None],
]
SETTINGS = [["form_title", "form_id"], ["Safety consultation", "safety"]]


def form_book(survey, choices=CHOICES, settings=SETTINGS, parameters: dict | None = None) -> bytes:
    """The form as .xlsx; `parameters` maps a row number to its value in an added parameters column."""
    if parameters:
        survey = [
            [*row, "parameters" if number == 1 else parameters.get(number)]
            for number, row in enumerate(survey, start=1)
        ]
    return xlsx(survey, choices, settings)


def upload(surveys, cid, data: bytes, expect: int, filename="form.xlsx", query: str = ""):
    return surveys.organiser(
        "POST",
        f"/api/v1/consultations/{cid}/survey/xlsform{query}",
        expect,
        data={"file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def test_an_xlsform_becomes_the_draft_publishes_and_takes_answers(surveys):
    cid = surveys.create(None)["consultation_id"]
    imported = upload(surveys, cid, form_book(FORM, parameters={6: "start=1 end=5 step=1"}), 200)
    assert imported["form_title"] == "Safety consultation"
    assert not any("languages" in w["reason"] for w in imported["warnings"])
    draft = imported["draft"]
    assert draft["languages"] == ["en", "ar"]
    loose, about = draft["sections"]
    safe = loose["questions"][0]
    assert safe["type"] == "single_choice" and safe["dimension"] is True
    assert safe["label"] == {"en": "Do you feel safe?", "ar": "هل تشعر بالأمان؟"}
    assert safe["options"][1] == {"code": "no", "label": {"en": "No", "ar": "لا"}}
    types = {q["id"]: q["type"] for q in about["questions"]}
    assert types == {
        "age": "number",
        "needs": "multiple_choice",
        "support": "rating",
        "left_on": "date",
        "story": "free_text",
    }
    age, _, support, _, story = about["questions"]
    assert (age["min"], age["max"], age["integer"]) == (16, 100, True)
    assert (support["min"], support["max"]) == (1, 5)
    assert story["max_length"] == 300 and story["relevant"] == {
        "question": "safe",
        "op": "equals",
        "value": "no",
    }
    assert surveys.organiser("GET", f"/api/v1/consultations/{cid}", 200)["draft"] == draft

    surveys.organiser("POST", f"/api/v1/consultations/{cid}/publish", 200)
    [version] = surveys.organiser("GET", f"/api/v1/consultations/{cid}/versions", 200)
    assert version["definition"] == draft
    pseudonym = surveys.participant(cid)
    receipt = surveys.submit(
        surveys.token(pseudonym, cid),
        {
            "safe": "no",
            "age": "17",
            "needs": ["health"],
            "support": 5,
            "left_on": "2025-01-31",
            "story": "بعد أن غادرت، ساعدني أحد الجيران",
        },
    )
    stored = Response.objects.get(response_id=receipt["response_id"])
    assert stored.answers == {
        "safe": "no",
        "age": 17,
        "needs": ["health"],
        "support": 5,
        "left_on": "2025-01-31",
    }
    assert list(stored.free_text) == ["story"]
    with_hidden = surveys.token(surveys.participant(cid), cid)
    assert surveys.submit(with_hidden, {"safe": "yes", "story": "x"}, expect=422)["errors"] == {
        "story": ["question story is not shown for these answers"]
    }


def test_what_cannot_be_imported_is_listed_row_by_row_and_nothing_changes(surveys, unchanged):
    cid = surveys.create(None)["consultation_id"]
    form = [
        ["type", "name", EN, AR, "relevant", "constraint", "dimension"],
        [
            "select_one yn",
            "safe",
            "Do you feel safe?",
            "هل تشعر بالأمان؟",
            None,
            None,
            None,
        ],  # row 2: fine
        ["geopoint", "where", "Where are you?", "أين أنت؟", None, None, None],  # row 3
        ["deviceid", "device", None, None, None, None, None],  # row 4: skipped with a warning
        ["begin repeat", "people", "People", "أشخاص", None, None, None],  # row 5
        ["text", "name_of", "Name", "الاسم", None, None, None],
        ["end repeat", None, None, None, None, None, None],
        ["select_one colours", "colour", "Colour", "لون", None, None, None],  # row 8: no such list
        [
            "integer",
            "age",
            "Age",
            "العمر",
            "${where} != ''",
            None,
            None,
        ],  # row 9: refers to a refused row
        ["text", "story", "Story", "قصة", None, "regex(., '^[a-z]+$')", "maybe"],  # row 10
    ]
    with unchanged():
        problem = upload(surveys, cid, form_book(form), 422)
    rows = {(p["sheet"], p["row"]) for items in problem["errors"].values() for p in items}
    assert {("survey", 3), ("survey", 5), ("survey", 8), ("survey", 9), ("survey", 10)} <= rows
    assert ("survey", 2) not in rows and ("survey", 4) not in rows
    reasons = {p["row"]: p["reason"] for p in problem["errors"]["survey"]}
    assert "geopoint" in reasons[3] and "colours" in reasons[8]
    assert all(
        set(p) == {"sheet", "row", "name", "reason"}
        for items in problem["errors"].values()
        for p in items
    )


def test_a_form_in_a_language_outside_the_six_is_refused_at_its_header(surveys, unchanged):
    cid = surveys.create(None)["consultation_id"]
    form = [["type", "name", "label::Deutsch (de)"], ["text", "story", "Geschichte"]]
    with unchanged():
        problem = upload(surveys, cid, form_book(form, choices=None), 422)
    [item] = problem["errors"]["survey"]
    assert item["row"] == 1 and "de" in item["reason"]


def test_a_default_language_can_be_named_for_unlabelled_columns(surveys):
    cid = surveys.create(None, languages=["fr"])["consultation_id"]
    form = [["type", "name", "label"], ["text", "histoire", "Qu'est-ce qui vous aurait aidé ?"]]
    imported = upload(
        surveys,
        cid,
        form_book(form, choices=None, settings=None),
        200,
        query="?default_language=fr",
    )
    assert imported["draft"]["languages"] == ["fr"]
    surveys.organiser("POST", f"/api/v1/consultations/{cid}/publish", 200)


def test_uploads_that_are_not_workbooks_are_refused(surveys, unchanged):
    cid = surveys.create(None)["consultation_id"]
    with unchanged():
        assert (
            "form"
            in upload(surveys, cid, b"name,type\nsafe,text\n", 422, filename="form.csv")["errors"]
        )
        assert "file" in upload(surveys, cid, b"", 422)["errors"]
        surveys.organiser(
            "POST",
            f"/api/v1/consultations/{cid}/survey/xlsform",
            422,
            data={},
            content_type="multipart/form-data",
        )
        surveys.organiser(
            "POST", f"/api/v1/consultations/{cid}/survey/xlsform", 422, json={"file": "x"}
        )


def test_an_upload_over_the_size_limit_is_refused(surveys, unchanged):
    cid = surveys.create(None)["consultation_id"]
    with unchanged():
        upload(surveys, cid, b"PK" + b"\0" * (1024 * 1024 + 10), 413)


def test_only_the_owning_organiser_can_import(surveys, unchanged):
    cid = surveys.create(None)["consultation_id"]
    data = form_book(FORM, parameters={6: "start=1 end=5"})
    with unchanged():
        surveys.call(
            "POST",
            f"/api/v1/consultations/{cid}/survey/xlsform",
            404,
            headers=surveys.staff("org_b"),
            data={"file": (io.BytesIO(data), "form.xlsx")},
            content_type="multipart/form-data",
        )
        surveys.call(
            "POST",
            f"/api/v1/consultations/{cid}/survey/xlsform",
            401,
            data={"file": (io.BytesIO(data), "form.xlsx")},
            content_type="multipart/form-data",
        )


def test_a_form_in_other_languages_than_the_consultation_is_kept_with_a_warning(surveys, unchanged):
    cid = surveys.create(None)["consultation_id"]  # en and ar
    form = [["type", "name", "label::English (en)"], ["text", "story", "What would have helped?"]]
    imported = upload(surveys, cid, form_book(form, choices=None), 200)
    [warning] = [w for w in imported["warnings"] if "languages" in w["reason"]]
    assert "(en)" in warning["reason"] and "(en, ar)" in warning["reason"]
    with unchanged():
        assert (
            "languages"
            in surveys.organiser("POST", f"/api/v1/consultations/{cid}/publish", 422)["errors"]
        )


def test_plain_label_columns_take_the_consultation_language_and_publish(surveys):
    cid = surveys.create(None, languages=["fr"])["consultation_id"]
    form = [
        ["type", "name", "label", "hint"],
        ["start", "start", None, None],
        ["text", "histoire", "Qu'est-ce qui vous aurait aidé ?", "Écrivez librement"],
    ]
    imported = upload(surveys, cid, form_book(form, choices=None, settings=None), 200)
    assert imported["draft"]["languages"] == ["fr"]
    assert imported["draft"]["sections"][0]["questions"][0]["hint"] == {"fr": "Écrivez librement"}
    assert [(w["row"], w["name"]) for w in imported["warnings"]] == [(2, "start")]
    surveys.organiser("POST", f"/api/v1/consultations/{cid}/publish", 200)


def test_a_legacy_xls_upload_imports_whatever_its_file_name(surveys):
    cid = surveys.create(None)["consultation_id"]
    data = xls(FORM, CHOICES, SETTINGS)
    imported = upload(surveys, cid, data, 200, filename="form.xlsx")
    assert [q["id"] for s in imported["draft"]["sections"] for q in s["questions"]] == [
        "safe",
        "age",
        "needs",
        "support",
        "left_on",
        "story",
    ]
    surveys.organiser("POST", f"/api/v1/consultations/{cid}/publish", 200)


def test_a_refused_upload_lists_its_warnings_with_rows_beside_the_errors(surveys, unchanged):
    cid = surveys.create(None)["consultation_id"]
    form = [
        ["type", "name", EN, AR],
        ["deviceid", "device", None, None],
        ["geopoint", "where", "Where are you?", "أين أنت؟"],
    ]
    with unchanged():
        problem = upload(surveys, cid, form_book(form, choices=None), 422)
    assert [(p["row"], p["name"]) for p in problem["errors"]["survey"]] == [(3, "where")]
    assert "delete the row" in problem["errors"]["survey"][0]["reason"]
    assert [(w["sheet"], w["row"], w["name"]) for w in problem["warnings"]] == [
        ("survey", 2, "device")
    ]


@pytest.mark.parametrize(
    "name", sorted(name for name, form in CORPUS.items() if form.questions is not None)
)
def test_every_importable_corpus_form_uploads_and_publishes(surveys, name):
    form = CORPUS[name]
    cid = surveys.create(None, languages=form.languages)["consultation_id"]
    filename = "form.xls" if form.legacy_xls else "form.xlsx"
    imported = upload(surveys, cid, form.data(), 200, filename=filename)
    assert [
        q["id"] for s in imported["draft"]["sections"] for q in s["questions"]
    ] == form.questions
    surveys.organiser("POST", f"/api/v1/consultations/{cid}/publish", 200)
