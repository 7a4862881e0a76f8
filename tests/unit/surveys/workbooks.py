"""XLSForm workbooks written by the tests: .xlsx with openpyxl, legacy .xls with xlwt; and what
reading one reports, by row.

Each sheet is a list of rows, the first row being the header; None leaves a cell empty.
"""

from __future__ import annotations

import io

import openpyxl
import xlwt


def _sheets(survey: list[list], choices: list[list] | None, settings: list[list] | None):
    return [
        (name, rows)
        for name, rows in (("survey", survey), ("choices", choices), ("settings", settings))
        if rows
    ]


def xlsx(
    survey: list[list], choices: list[list] | None = None, settings: list[list] | None = None
) -> bytes:
    """An .xlsx workbook with the given sheets."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in _sheets(survey, choices, settings):
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xls(
    survey: list[list], choices: list[list] | None = None, settings: list[list] | None = None
) -> bytes:
    """A legacy Excel 97-2003 .xls workbook with the given sheets."""
    book = xlwt.Workbook(encoding="utf-8")
    for name, rows in _sheets(survey, choices, settings):
        sheet = book.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is not None:
                    sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


EN, AR = "label::English (en)", "label::Arabic (ar)"
YES_NO = [
    ["list_name", "name", EN, AR],
    ["yn", "yes", "Yes", "نعم"],
    ["yn", "no", "No", "لا"],
    ["needs", "food", "Food", "طعام"],
    ["needs", "shelter", "Shelter", "مأوى"],
    ["needs", "health", "Health care", "رعاية صحية"],
]


def problems(excinfo) -> list[dict]:
    """Every problem of a refused import, whichever sheet it is on."""
    return [p for items in excinfo.value.extra["errors"].values() for p in items]


def warnings_by_row(imported) -> dict[tuple[str, int], str]:
    return {(w["sheet"], w["row"]): w["reason"] for w in imported.warnings}
