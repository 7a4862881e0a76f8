"""The XLSForm corpus (xlsform_corpus.py): every form gets its expected outcome.

Whatever the form, the organiser gets a definition or a ValidationFailed, never another error.
"""
from __future__ import annotations

import re

import pytest

from services.surveys.questionnaire import publishable
from services.surveys.xlsform import read_xlsform
from shared.errors import ValidationFailed

from .xlsform_corpus import CORPUS, EN, Form

# A refusal says what to do: after the reason comes an instruction.
WHAT_TO_DO = re.compile(r"[:;(]\s.*\b(delete|change|write|add|rename|clear|fill|copy|move|correct|ask|make|"
                        r"number|end|use|rewrite|save|set|name)\b", re.I | re.S)


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
            reasons = [w["reason"] for w in imported.warnings if (w["sheet"], w["row"]) == (sheet, row)]
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
        assert any(words in w["reason"] for w in warnings if (w["sheet"], w["row"]) == (sheet, row)), warnings


def test_the_corpus_covers_what_real_forms_use():
    """Plain and translated labels, metadata, groups, constraints, relevant, lists, .xls, hints, required."""
    headers = {str(cell) for form in CORPUS.values() for cell in form.survey[0]}
    types = {str(row[0]).split(" ")[0] for form in CORPUS.values() for row in form.survey[1:] if row[0]}
    assert {"label", EN, "hint", "required", "constraint", "relevant", "appearance"} <= headers
    assert {"start", "end", "today", "deviceid", "begin", "begin_group", "select_one", "select_multiple",
            "integer", "decimal", "range", "date", "text", "note"} <= types
    assert any(form.legacy_xls for form in CORPUS.values()) and any(not f.legacy_xls for f in CORPUS.values())
    imported = [name for name, form in CORPUS.items() if form.questions is not None]
    assert len(imported) >= 7 and len(CORPUS) - len(imported) >= 4
