"""The XLSForm corpus (xlsform_corpus.py): every form gets its expected outcome.

Whatever the form, the organiser gets a definition or a ValidationFailed, never another error.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.surveys.questionnaire import publishable
from services.surveys.xlsform import read_xlsform
from shared.errors import ValidationFailed

from .xlsform_corpus import CORPUS, EN, Form

# A refusal says what to do: after the reason comes an instruction.
WHAT_TO_DO = re.compile(
    r"[:;(]\s.*\b(delete|change|write|add|rename|clear|fill|copy|move|correct|ask|make|"
    r"number|end|use|rewrite|save|set|name)\b",
    re.IGNORECASE | re.DOTALL,
)


def outcome(form: Form):
    """The import result, or the refusal: never any other exception."""
    try:
        return read_xlsform(form.data(), languages=form.languages), None
    except ValidationFailed as exc:
        return None, exc


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_form(name):
    form = CORPUS[name]
    imported, refusal = outcome(form)
    if form.questions is not None:
        assert refusal is None, refusal.extra
        definition = imported.definition
        assert [q["id"] for s in definition["sections"] for q in s["questions"]] == form.questions
        assert set(definition["languages"]) == set(form.languages)
        publishable(definition)
        assert all(w["sheet"] and w["row"] for w in imported.warnings), imported.warnings
        for (sheet, row), words in form.warned.items():
            reasons = [
                w["reason"] for w in imported.warnings if (w["sheet"], w["row"]) == (sheet, row)
            ]
            assert any(words in reason for reason in reasons), (sheet, row, reasons)
        return
    assert refusal is not None, f"{name} was imported"
    found = [p for items in refusal.extra["errors"].values() for p in items]
    for (sheet, row), words in form.refused.items():
        reasons = [p["reason"] for p in found if p["sheet"] == sheet and (p["row"] or 0) == row]
        assert any(words in reason for reason in reasons), (sheet, row, found)
    for item in found:
        assert WHAT_TO_DO.search(item["reason"]), item
    warnings = refusal.extra["warnings"]
    assert all(w["row"] for w in warnings)
    for (sheet, row), words in form.warned.items():
        assert any(
            words in w["reason"] for w in warnings if (w["sheet"], w["row"]) == (sheet, row)
        ), warnings


def test_the_corpus_covers_what_real_forms_use():
    """Plain and translated labels, metadata, groups, constraints, relevant, lists, .xls, hints, required."""
    headers = {str(cell) for form in CORPUS.values() for cell in form.survey[0]}
    types = {
        str(row[0]).split(" ")[0] for form in CORPUS.values() for row in form.survey[1:] if row[0]
    }
    assert {"label", EN, "hint", "required", "constraint", "relevant", "appearance"} <= headers
    assert {
        "start",
        "end",
        "today",
        "deviceid",
        "begin",
        "begin_group",
        "select_one",
        "select_multiple",
        "integer",
        "decimal",
        "range",
        "date",
        "text",
        "note",
    } <= types
    assert any(form.legacy_xls for form in CORPUS.values()) and any(
        not f.legacy_xls for f in CORPUS.values()
    )
    imported = [name for name, form in CORPUS.items() if form.questions is not None]
    assert len(imported) >= 7 and len(CORPUS) - len(imported) >= 4


# Cells as real forms have them, right and wrong, for forms no one wrote by hand.
_TYPES = [
    "text",
    "integer",
    "decimal",
    "date",
    "range",
    "note",
    "start",
    "audit",
    "geopoint",
    "calculate",
    "time",
    "select_one yn",
    "select_multiple yn",
    "select_one yn or_other",
    "select_one nolist",
    "select_one",
    "rank yn",
    "select_one_from_file a.csv",
    "begin group",
    "end group",
    "begin_group",
    "end_group",
    "begin repeat",
    "end repeat",
    "Integer",
    "SELECT_ONE yn",
    None,
]
_COLUMNS = {
    "label": [None, "Question", "سؤال", 3],
    "label::English (en)": [None, "Question"],
    "label::Swahili (sw)": [None, "Swali"],
    "hint": [None, "A hint"],
    "relevant": [
        None,
        "${q1} = 'yes'",
        "selected(${q2}, 'no')",
        "${q3} > 2",
        "${nope} = 1",
        "(",
        "1 = 1",
        "count-selected(${q1}) > 0",
        "${q1} = 'père'",
    ],
    "constraint": [
        None,
        ". > 0",
        "${q2} < 10",
        "string-length(.) <= 5",
        ". >= 5 and . <= 1",
        "regex(., 'x')",
    ],
    "required": [None, "yes", "maybe"],
    "parameters": [None, "start=1 end=5", "x", "randomize=true"],
    "choice_filter": [None, "name = 'yes'"],
    "calculation": [None, "1 + 1"],
    "dimension": [None, "yes", "sometimes"],
    "$kuid": [None, "abc"],
}
_NAMES = [None, "q1", "q2", "q3", "q1", "1bad", "père", "a b", "q1_other"]


@st.composite
def forms(draw):
    columns = [
        "type",
        "name",
        *draw(st.lists(st.sampled_from(sorted(_COLUMNS)), unique=True, max_size=6)),
    ]
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_TYPES),
                st.sampled_from(_NAMES),
                *[st.sampled_from(_COLUMNS[c]) for c in columns[2:]],
            ),
            min_size=1,
            max_size=10,
        )
    )
    choices = draw(
        st.sampled_from(
            [
                None,
                [
                    ["list_name", "name", "label"],
                    ["yn", "yes", "Yes"],
                    ["yn", "no", "No"],
                    ["yn", "père", "P"],
                ],
                [
                    ["list_name", "name", "label::English (en)"],
                    ["yn", "yes", None],
                    ["yn", None, "x"],
                    ["yn", "yes", "y"],
                ],
            ]
        )
    )
    settings_sheet = draw(
        st.sampled_from(
            [None, [["default_language"], ["English (en)"]], [["default_language"], ["Klingon"]]]
        )
    )
    return Form(
        [columns, *map(list, rows)],
        choices,
        settings_sheet,
        languages=draw(st.sampled_from([["en"], ["en", "ar"]])),
        legacy_xls=draw(st.booleans()),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forms())
def test_any_form_is_imported_or_refused_with_rows_and_never_fails_otherwise(form):
    imported, refusal = outcome(form)
    if refusal is not None:
        found = [p for items in refusal.extra["errors"].values() for p in items]
        assert found and all(
            set(p) == {"sheet", "row", "name", "reason"} and p["reason"] for p in found
        )
        assert not any(
            "object has no attribute" in p["reason"] or "Traceback" in p["reason"] for p in found
        )
    else:
        assert all(w["sheet"] and w["row"] for w in imported.warnings)
