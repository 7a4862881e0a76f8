"""Where an import problem or warning lives in the workbook, and the one error that carries them."""
from __future__ import annotations

from typing import Any

from shared.errors import ValidationFailed

SURVEY, CHOICES, SETTINGS, FORM = "survey", "choices", "settings", "form"


def problem(sheet: str | None, row: int | None, name: Any, reason: str) -> dict:
    """One problem or warning: {"sheet", "row", "name", "reason"}; `row` as Excel shows it (header = 1)."""
    return {"sheet": sheet, "row": row, "name": None if name is None else str(name), "reason": reason}


def raise_problems(problems: list[dict]) -> None:
    """Raise ValidationFailed whose `errors` groups the problems by sheet ("form" for none), by row."""
    grouped: dict[str, list[dict]] = {}
    for item in problems:
        grouped.setdefault(item["sheet"] or FORM, []).append(item)
    for items in grouped.values():
        items.sort(key=lambda p: (p["row"] is None, p["row"] or 0))
    count = len(problems)
    raise ValidationFailed(
        f"The XLSForm cannot be imported: {count} problem{'s' if count != 1 else ''} to fix.",
        errors=grouped,
    )

