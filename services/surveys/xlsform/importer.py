"""Reading an XLSForm workbook and mapping its rows to a Voices survey definition."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pyxform.errors import PyXFormError
from pyxform.xls2json_backends import get_xlsform
from pyxform.xls2xform import convert

from services.surveys.questionnaire import validate_definition
from shared.errors import ValidationFailed

from .mapping import FormMapping
from .problems import SURVEY, in_sheet_order, problem, raise_problems
from .vocabulary import SUPPORTED_TYPES_HINT

_log = logging.getLogger("voices.surveys.xlsform")


@dataclass
class XLSFormImport:
    """An imported survey: the definition (validated, not necessarily fully
    translated), the form title from the settings sheet, and warnings about
    what was skipped or ignored, each {"sheet", "row", "name", "reason"}."""

    definition: dict
    title: str | None = None
    warnings: list[dict] = field(default_factory=list)


_WORKBOOK_TYPES = {
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": ".xls",  # OLE2 compound document: Excel 97-2003
    b"PK\x03\x04": ".xlsx",  # zip: Office Open XML (.xlsx, .xlsm)
}
_NOT_A_WORKBOOK = "the file is not an .xlsx or .xls workbook: save the form from Excel, LibreOffice or Kobo as .xlsx"


def _source_bytes(source: bytes | str | os.PathLike | IO[bytes]) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return Path(source).read_bytes()
    return source.read()


def _pyxform_problem(exc: Exception, rows_by_name: dict[str, int] | None = None) -> dict:
    """A pyxform error as a row problem, with the row and sheet when the message gives them away."""
    message = str(exc)
    row_match = re.search(r"\[row\s*:\s*(\d+)\]", message)
    sheet_match = re.search(r"'(survey|choices|settings)' sheet", message)
    named = re.search(r"named '([^']+)'|'name' value '([^']+)'", message)
    row = int(row_match.group(1)) if row_match else None
    name = (named.group(1) or named.group(2)) if named else None
    if row is None and name is not None and rows_by_name:
        row = rows_by_name.get(name)
    # Row numbers in pyxform messages without a sheet are survey-sheet rows.
    sheet = sheet_match.group(1) if sheet_match else (SURVEY if row is not None else None)
    return problem(sheet, row, name, f"pyxform: {message}")


def read_xlsform(
    source: bytes | str | os.PathLike | IO[bytes],
    *,
    default_language: str | None = None,
    languages: Sequence[str] | None = None,
) -> XLSFormImport:
    """Import an .xlsx or .xls XLSForm (bytes, a path, or a binary file object).

    `languages` are the consultation's; `default_language` (e.g. "en" or
    "English (en)") names the language of label/hint columns without one.
    The settings sheet's default_language wins over it; without either, such
    columns are in the first of `languages` that no label column of their
    sheet has (English without `languages`). Returns an XLSFormImport whose
    definition passed `validate_definition`; its warnings list what was
    skipped, ignored or renamed, and the translations still missing. Raises
    ValidationFailed listing every row that cannot be imported (see the
    package docstring for the shape), plus any whole-form error from pyxform.
    """
    data = _source_bytes(source)
    # The content decides, not the file name: an .xls saved as .xlsx (or the reverse) is common.
    file_type = _WORKBOOK_TYPES.get(data[:8]) or _WORKBOOK_TYPES.get(data[:4])
    if file_type is None:
        raise_problems([problem(None, None, None, _NOT_A_WORKBOOK)])
    try:
        workbook = get_xlsform(data, file_type=file_type)
    except Exception:  # noqa: BLE001 - anything unreadable is the uploader's to fix
        # The reader's own words name formats Voices does not take (.md, .csv): not shown.
        raise_problems([problem(None, None, None, (
            f"{_NOT_A_WORKBOOK} (it starts like an {file_type} file but cannot be opened as one: it may be "
            "damaged, or another kind of document)"
        ))])  # fmt: skip
    # pyxform checks the form as a whole (names, references, sheet structure).
    pyxform_error: PyXFormError | None = None
    try:
        # A copy of what was read, rather than parsing the workbook a second time.
        convert(copy.deepcopy(dataclasses.asdict(workbook)), form_name="data")
    except PyXFormError as exc:
        pyxform_error = exc
    except Exception:  # noqa: BLE001 - a fault inside pyxform says nothing the organiser can act on
        # Voices' own checks below still decide what is imported.
        _log.exception("pyxform failed while checking an XLSForm")
    try:
        importer = FormMapping(workbook, default_language, languages)
        importer.run()
    except PyXFormError as exc:  # header problems found while reading the sheets
        raise_problems([_pyxform_problem(e) for e in (pyxform_error, exc) if e is not None])
    problems = list(importer.problems)
    if pyxform_error is not None:
        rows_by_name = {str(r["name"]): r["__row"] for r in importer.survey_rows if r.get("name")}
        reported = _pyxform_problem(pyxform_error, rows_by_name)
        # The same row, or the same name, already explained in Voices' words is enough.
        if not any(
            (
                reported["row"] is not None
                and (p["sheet"], p["row"]) == (reported["sheet"], reported["row"])
            )
            or (reported["name"] is not None and f"'{reported['name']}'" in p["reason"])
            for p in problems
        ):
            problems.append(reported)
    definition = importer.definition()
    if not definition["sections"] and not problems:
        problems.append(problem(SURVEY, None, None, (
            "the form has no questions Voices can import: add rows of type " + SUPPORTED_TYPES_HINT
        )))  # fmt: skip
    if definition["sections"] and not definition["languages"] and importer.languages.left_out:
        problems.append(problem(SURVEY, 1, None, (
            f"no label column is in a language Voices works in (found {', '.join(importer.languages.left_out)}): "
            "add one, such as 'label::English (en)'"
        )))  # fmt: skip
    warnings = importer.warnings + importer.column_warnings()
    if problems:
        raise_problems(problems, warnings)
    try:
        definition = validate_definition(definition)
    except ValidationFailed as exc:
        for path, messages in exc.extra["errors"].items():
            sheet, row, name = importer.where(path)
            for message in messages:
                problems.append(problem(sheet, row, name, f"{path}: {message}"))
        raise_problems(problems, warnings)
    title = importer.title if isinstance(importer.title, str) else None
    warnings += importer.translation_warnings(definition)
    return XLSFormImport(definition, title, in_sheet_order(warnings))


def import_xlsform(
    source: bytes | str | os.PathLike | IO[bytes],
    *,
    default_language: str | None = None,
    languages: Sequence[str] | None = None,
) -> dict:
    """The survey definition of an .xlsx or .xls XLSForm; `read_xlsform` without title and warnings.

    Raises ValidationFailed as `read_xlsform` does.
    """
    return read_xlsform(source, default_language=default_language, languages=languages).definition
