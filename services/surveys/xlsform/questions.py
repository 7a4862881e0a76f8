"""One survey row as a Voices question: its type, choices, constraint, skip logic and texts."""

from __future__ import annotations

from typing import Any, Protocol

from pyxform import aliases, constants

from shared.questionnaire.definition import (
    DATE,
    FREE_TEXT,
    ID_PATTERN,
    MULTIPLE_CHOICE,
    NUMBER,
    RATING,
    SINGLE_CHOICE,
)

from .expressions import (
    Unsupported,
    number_bounds,
    own_reference_as_dot,
    range_scale,
    text_max_length,
)
from .languages import OTHER_CHOICE, SPECIFY_OTHER, LanguageColumns
from .problems import SURVEY
from .vocabulary import (
    OR_OTHER,
    TYPES_DATE,
    TYPES_DECIMAL,
    TYPES_INTEGER,
    TYPES_METADATA,
    TYPES_NOTE,
    TYPES_TEXT,
    unsupported_type,
    yes_no,
)


class FormRows(Protocol):
    """What mapping a question row needs from the mapping of the whole form."""

    languages: LanguageColumns
    names: set[Any]
    questions: dict[str, dict]
    skipped: dict[str, str]

    def refuse(self, row: dict, reason: str, sheet: str = ...) -> None: ...
    def warn(self, row: dict, reason: str, sheet: str = ...) -> None: ...
    def check_columns(self, row: dict, *, question: bool) -> bool: ...
    def options(self, list_name: str, row: dict) -> list[dict] | None: ...
    def condition(self, row: dict) -> tuple[bool, dict | None]: ...


class QuestionRows:
    """Maps question rows of the survey sheet, reporting problems and warnings through `form`."""

    def __init__(self, form: FormRows) -> None:
        self.form = form

    def question(self, row: dict, kind: str, lowered: str) -> dict | None:
        if lowered in TYPES_NOTE:
            self.form.warn(
                row,
                "notes are not imported; move the text into a hint or a section's content_warning",
            )
            self.form.skipped.setdefault(str(row.get("name")), "a note")
            return None
        if lowered in TYPES_METADATA:
            self.form.warn(
                row,
                f"{kind!r} is skipped: it records device, account or timing data about the "
                "participant, which Voices never collects",
            )
            if row.get("name"):
                self.form.skipped.setdefault(
                    str(row["name"]), f"{kind!r} records data Voices never collects"
                )
            return None
        built = self.question_type(row, kind, lowered)
        if built is None:
            return None
        name = row.get("name")
        if not name or not ID_PATTERN.match(str(name)):
            self.form.refuse(
                row,
                "rename the question: a name starts with a letter or _ and uses only the letters "
                "a-z, digits, _ and - (at most 64)",
            )
            return None
        columns_ok = self.form.check_columns(row, question=True)
        if row.get("content_warning"):
            self.form.warn(row, "content_warning is read on 'begin group' rows only; ignored here")
        built = self.constraint(row, built)
        relevant_ok, relevant = self.form.condition(row)
        flags = {}
        for flag in ("dimension", "sensitive"):
            value = yes_no(row.get(flag))
            if value is None:
                self.form.refuse(
                    row, f"{flag!r} must be yes or no: write one of them, or leave the cell empty"
                )
                columns_ok = False
            flags[flag] = bool(value)
        if built is None or not (columns_ok and relevant_ok):
            return None
        or_other = built.pop("__or_other", False)
        label = self.form.languages.texts(SURVEY, "label", row.get("label")) or {}
        hint = self.form.languages.texts(SURVEY, "hint", row.get("hint"))
        if not row.get(
            "label"
        ):  # ODK shows a question with only a hint; Voices needs its text as the label
            if not hint:
                self.form.refuse(
                    row, "this question has no label: write the question in the label column"
                )
                return None
            label, hint = hint, None
            self.form.languages.adopt(label)
            self.form.warn(
                row,
                "this question has no label, so its hint is the question's text: move it to the "
                "label column to say so",
            )
        for column, texts in (("label", label), ("hint", hint)):
            if any("${" in text for text in (texts or {}).values()):
                self.form.warn(
                    row,
                    f"the {column} shows ${{...}} as written: Voices does not put earlier answers "
                    "into texts, so reword it",
                )
        question = {
            "id": str(name),
            "type": built["type"],
            "label": label,
            "hint": hint,
            **{key: value for key, value in built.items() if key != "type"},
            "relevant": relevant,
            **flags,
            "__row": row["__row"],
        }
        self.form.questions.setdefault(question["id"], question)
        if or_other:
            op = "includes" if question["type"] == MULTIPLE_CHOICE else "equals"
            follow_up = {
                "id": f"{name}_other",
                "type": FREE_TEXT,
                "label": None,
                "hint": None,
                "relevant": {"question": question["id"], "op": op, "value": "other"},
                "dimension": False,
                "sensitive": False,
                "__row": row["__row"],
                "__texts": SPECIFY_OTHER,
            }
            self.form.questions.setdefault(follow_up["id"], follow_up)
            question["__then"] = follow_up
        return question

    def question_type(self, row: dict, kind: str, lowered: str) -> dict | None:
        if lowered in TYPES_INTEGER:
            return {"type": NUMBER, "integer": True, "min": None, "max": None}
        if lowered in TYPES_DECIMAL:
            return {"type": NUMBER, "integer": False, "min": None, "max": None}
        if lowered in TYPES_DATE:
            return {"type": DATE}
        if lowered in TYPES_TEXT:
            return {"type": FREE_TEXT}
        if lowered == "range":
            try:
                low, high = range_scale(row.get("parameters"))
            except Unsupported as exc:
                self.form.refuse(row, str(exc))
                return None
            return {"type": RATING, "min": low, "max": high}
        for command in sorted(aliases.select, key=len, reverse=True):
            if lowered.startswith(command + " "):
                return self.select(row, command, kind[len(command) + 1 :].strip())
        if lowered in aliases.select:
            self.form.refuse(
                row,
                f"{kind!r} needs a choice list name: write it after the type, e.g. 'select_one yes_no'",
            )
            return None
        self.form.refuse(row, unsupported_type(kind, lowered, str(row.get("name"))))
        return None

    def select(self, row: dict, command: str, rest: str) -> dict | None:
        meaning = aliases.select[command]
        if command in aliases.select_from_file or meaning not in (
            constants.SELECT_ONE,
            constants.SELECT_ALL_THAT_APPLY,
        ):
            self.form.refuse(
                row, unsupported_type(f"{command} {rest}", command, str(row.get("name")))
            )
            return None
        parts = rest.split(" ", 1)
        list_name = parts[0]
        or_other = len(parts) > 1 and parts[1].strip().lower() in OR_OTHER
        if len(parts) > 1 and not or_other:
            self.form.refuse(
                row,
                f"cannot read the type {command + ' ' + rest!r}: write it as '{command} <list name>'",
            )
            return None
        if row.get("parameters"):
            self.form.warn(
                row,
                f"parameters {row['parameters']!r} are ignored: choices are shown in the list's order",
            )
        options = self.form.options(list_name, row)
        if options is None:
            return None
        qtype = SINGLE_CHOICE if meaning == constants.SELECT_ONE else MULTIPLE_CHOICE
        if or_other and not self.add_other(row, options):
            return None
        return {"type": qtype, "options": options, "__or_other": or_other}

    def add_other(self, row: dict, options: list[dict]) -> bool:
        """Add what ODK's or_other adds: the choice 'other' (and, in `question`, the text question
        `<name>_other` asked when it is chosen); False after refusing when a name is taken."""
        follow_up = f"{row.get('name')}_other"
        if any(option["code"] == "other" for option in options):
            self.form.refuse(
                row,
                "'or_other' adds the choice 'other', which the list already has: remove 'or_other' "
                "from the type, and add a text question for 'other' if you need one",
            )
            return False
        if follow_up in self.form.names:
            self.form.refuse(
                row,
                f"'or_other' adds the text question {follow_up!r}, and a row already has that name: "
                "rename that row, or remove 'or_other' from the type",
            )
            return False
        options.append(
            {
                "code": "other",
                "label": None,
                "__row": row["__row"],
                "__name": "other",
                "__sheet": SURVEY,
                "__texts": OTHER_CHOICE,
            }
        )
        self.form.warn(
            row,
            f"'or_other' adds the choice 'other' and the text question {follow_up!r}, asked when "
            "'other' is chosen",
        )
        return True

    def constraint(self, row: dict, built: dict | None) -> dict | None:
        """The question with the bounds its constraint sets; a constraint Voices cannot keep is
        dropped with a warning (it only narrows what may be answered, and every answer is still
        checked against the question's type and choices)."""
        expression = (row.get("bind") or {}).get("constraint")
        if built is None or not expression:
            return built
        # `${age} > 0` on the age row means the same as `. > 0` (Kobo's own examples write it so).
        own = own_reference_as_dot(str(expression), str(row.get("name")))
        try:
            if built["type"] == NUMBER:
                low, high = number_bounds(own, built["integer"])
                return {**built, "min": low, "max": high}
            if built["type"] == FREE_TEXT:
                return {**built, "max_length": text_max_length(own)}
            raise Unsupported(
                f"Voices keeps no constraint on {row.get('type')!r} questions, only the choices "
                "and the type"
            )
        except Unsupported as exc:
            self.form.warn(
                row,
                f"constraint {expression!r} is not kept, so any answer of the question's type is "
                f"accepted: {exc}",
            )
            return built
