"""Where an import problem or warning lives in the workbook, and the one error that carries them."""

from __future__ import annotations

from typing import Any

from shared.errors import ValidationFailed

SURVEY, CHOICES, SETTINGS, FORM = "survey", "choices", "settings", "form"
_SHEET_ORDER = {SURVEY: 0, CHOICES: 1, SETTINGS: 2}


def problem(sheet: str | None, row: int | None, name: Any, reason: str) -> dict:
    """One problem or warning: {"sheet", "row", "name", "reason"}; `row` as Excel shows it (header = 1)."""
    return {
        "sheet": sheet,
        "row": row,
        "name": None if name is None else str(name),
        "reason": reason,
    }


def in_sheet_order(items: list[dict]) -> list[dict]:
    """Problems or warnings sorted as the workbook reads: survey, choices, settings, then by row."""
    return sorted(
        items, key=lambda p: (_SHEET_ORDER.get(p["sheet"], len(_SHEET_ORDER)), p["row"] or 0)
    )


def raise_problems(problems: list[dict], warnings: list[dict] | None = None) -> None:
    """Raise ValidationFailed whose `errors` groups the problems by sheet ("form" for none), by row.

    `warnings` (what would have been skipped or ignored) go along as a list, so one upload shows
    everything there is to change.
    """
    grouped: dict[str, list[dict]] = {}
    for item in in_sheet_order(problems):
        grouped.setdefault(item["sheet"] or FORM, []).append(item)
    count = len(problems)
    raise ValidationFailed(
        f"The XLSForm cannot be imported: {count} problem{'s' if count != 1 else ''} to fix.",
        errors=grouped,
        warnings=in_sheet_order(warnings or []),
    )
