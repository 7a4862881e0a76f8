"""Reading an XLSForm workbook and mapping its rows to a Voices survey definition."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import IO, Any

from pyxform import aliases, constants
from pyxform.errors import PyXFormError
from pyxform.parsing.sheet_headers import dealias_and_group_headers
from pyxform.question import MultipleChoiceQuestion, Option
from pyxform.question_type_dictionary import QUESTION_TYPE_DICT
from pyxform.survey import Survey
from pyxform.xls2json_backends import get_xlsform
from pyxform.xls2xform import convert

from shared.errors import ValidationFailed

from ..questionnaire import (
    CODE_PATTERN,
    DATE,
    FREE_TEXT,
    ID_PATTERN,
    MULTIPLE_CHOICE,
    NUMBER,
    RATING,
    SINGLE_CHOICE,
    check_translations,
    validate_definition,
)
from .expressions import (
    RelevantParser,
    Unsupported,
    number_bounds,
    own_reference_as_dot,
    range_scale,
    text_max_length,
)
from .languages import (
    DEFAULT_LABEL,
    DEFAULT_SECTION_TITLE,
    OTHER_CHOICE,
    SPECIFY_OTHER,
    LanguageColumns,
    language_code,
)
from .problems import CHOICES, SETTINGS, SURVEY, in_sheet_order, problem, raise_problems

_log = logging.getLogger("voices.surveys.xlsform")

_TYPES_INTEGER = {"integer", "int", "add integer prompt", "q int"}
_TYPES_DECIMAL = {"decimal", "add decimal prompt", "q decimal"}
_TYPES_DATE = {"date", "add date prompt", "q date"}
_TYPES_TEXT = {"text", "string", "add text prompt", "q string"}
_TYPES_NOTE = {"note", "add note prompt", "q note"}
# Filled in by the phone or the server, not answered: Voices records none of it, so these rows are skipped.
_TYPES_METADATA = {
    "start", "end", "today", "deviceid", "device id", "imei", "subscriberid", "subscriber id",
    "simserial", "sim id", "phonenumber", "phone number", "username", "email", "audit",
    "start-geopoint", "background-geopoint", "background-audio", "start time", "end time",
    "get start time", "get end time", "get today", "get device id", "get subscriber id",
    "get sim id", "get phone number", "uri:deviceid", "uri:email", "uri:phonenumber",
    "uri:simserial", "uri:subscriberid", "uri:username",
}  # fmt: skip
_RE_BEGIN = re.compile(r"^begin[ _](?P<kind>\w+(?: group)?)(?:\s+.*)?$")
_RE_END = re.compile(r"^end[ _](?P<kind>\w+(?: group)?)$")
_OR_OTHER = {"or_other", "or other", "or specify other"}
_SUPPORTED_TYPES_HINT = "select_one, select_multiple, integer, decimal, range, date, text, begin/end group (notes are skipped)"
_DELETE_ROW = "delete the row and any ${%s} that refers to it"

# Columns Voices reads, ignores with a warning, or refuses (after pyxform's header aliasing).
_IGNORED_BIND = {"required": "'required' is ignored: every question in Voices can be skipped",
                 "jr:requiredMsg": "'required_message' is ignored: nothing is required",
                 "jr:constraintMsg": "'constraint_message' is ignored: Voices writes its own messages",
                 "jr:noAppErrorString": "'no_app_error_string' is ignored"}  # fmt: skip
_IGNORED_CONTROL = {"appearance", "autoplay", "rows"}
# Top-level keys handled above or in the row code; any other non-empty column gets a warning.
_READ_TOP = {"media", "guidance_hint", "default", "instance", "label", "hint", "type", "name", "choice_filter",
             "__row", "bind", "control", "dimension", "sensitive", "content_warning", "parameters"}  # fmt: skip
_REFUSED_TOP = {
    "trigger": "'trigger' (recalculating on change) is not supported: clear the cell",
    "repeat_count": "repeats are not supported: ask the questions once, outside a repeat",
}
_REFUSED_BIND = {
    "calculate": "calculations are not supported: clear the calculation cell",
    "readonly": "read-only fields are not supported: clear the read_only cell",
    constants.ENTITIES_SAVETO_NS: "entities are not supported: clear the save_to cell",
}


@dataclass
class XLSFormImport:
    """An imported survey: the definition (validated, not necessarily fully
    translated), the form title from the settings sheet, and warnings about
    what was skipped or ignored, each {"sheet", "row", "name", "reason"}."""

    definition: dict
    title: str | None = None
    warnings: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- reading the workbook


def _dealias(workbook, sheet: str, header_aliases, header_columns, strip: bool) -> list[dict]:
    data = getattr(workbook, sheet, None)
    if not data:
        return []
    return list(
        dealias_and_group_headers(
            sheet_name=sheet,
            sheet_data=data,
            sheet_header=getattr(workbook, f"{sheet}_header", None),
            header_aliases=header_aliases,
            header_columns=header_columns,
            default_language=DEFAULT_LABEL,
            strip_whitespace=strip,
            add_row_number=True,
        ).data
    )


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


def _yes_no(value: Any) -> bool | None:
    if value is None:
        return False
    text = str(value).strip()
    if text in aliases.yes_no:
        return aliases.yes_no[text]
    return {"yes": True, "no": False, "true": True, "false": False}.get(text.lower())


def _both(first: dict | None, second: dict | None) -> dict | None:
    """A condition true when both are (None is always true)."""
    if first is None or second is None:
        return first or second
    return {"all": [*(first["all"] if set(first) == {"all"} else [first]), second]}


def _choice_code(name: str, position: int, taken: set[str]) -> str:
    """A Voices code for a choice name it cannot keep: accents dropped, other characters as _, unique."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_")[:56] or f"choice_{position}"
    code, n = base, 1
    while code in taken:
        n += 1
        code = f"{base}_{n}"
    return code


def _unsupported_type(kind: str, lowered: str, name: str) -> str:
    """Why a question type cannot be imported, and what to change in the spreadsheet instead."""
    command = lowered.split(" ")[0]
    if command in aliases.select_from_file or aliases.select.get(command) == "select one external":
        return (
            f"{kind!r} takes its choices from a file: copy them into the choices sheet and change the "
            "type to select_one or select_multiple with that list"
        )
    if command == "rank":
        return (
            f"{kind!r} is not supported: change the type to select_multiple (the order is not kept)"
        )
    entry = QUESTION_TYPE_DICT.get(kind) or QUESTION_TYPE_DICT.get(lowered)
    if entry is None:
        return f"question type {kind!r} is not supported; change the type to one of {_SUPPORTED_TYPES_HINT}"
    bind_type = entry.get("bind", {}).get("type")
    tag = entry.get("control", {}).get("tag")
    delete = _DELETE_ROW % name
    if bind_type in ("geopoint", "geotrace", "geoshape"):
        return f"{kind!r} records a location, which Voices never does: {delete}, or ask for a region with select_one"
    if tag == "upload":
        return f"{kind!r} takes a file, photo or recording, which Voices never stores: {delete}"
    if bind_type in ("time", "dateTime"):
        return f"{kind!r} is not supported: change the type to date (or to text for a time of day)"
    if bind_type == "barcode":
        return f"{kind!r} is not supported: change the type to text"
    if tag == "trigger":
        return (
            f"{kind!r} is not supported: change the type to select_one with a list of one choice "
            "(e.g. 'yes'); every Voices question can be skipped"
        )
    if entry.get("control") is None:  # calculate, hidden, external data: values nobody answers
        return f"{kind!r} computes or loads a value, which Voices never does: {delete}"
    return f"question type {kind!r} is not supported; change the type to one of {_SUPPORTED_TYPES_HINT}"


class _Importer:
    def __init__(
        self, workbook, default_language: str | None, consultation_languages: Sequence[str] | None
    ) -> None:
        self.problems: list[dict] = []
        self.warnings: list[dict] = []
        self._column_warnings: dict[tuple[str, str], tuple[str, list[int]]] = {}
        self.survey_rows = _dealias(
            workbook,
            SURVEY,
            aliases.survey_header,
            set(MultipleChoiceQuestion.get_slot_names()),
            True,
        )
        self.choice_rows = _dealias(
            workbook, CHOICES, aliases.list_header, set(Option.get_slot_names()), False
        )
        settings_rows = _dealias(
            workbook, SETTINGS, aliases.settings_header, set(Survey.get_slot_names()), False
        )
        self.settings = settings_rows[0] if settings_rows else {}
        self.title = self.settings.get("title")
        self.languages = LanguageColumns(
            self.settings.get(constants.DEFAULT_LANGUAGE_KEY) or default_language,
            self.problems,
            self.warnings,
            consultation_languages=consultation_languages,
            labelled=self._labelled_languages(),
        )
        self.names = {row.get("name") for row in self.survey_rows if row.get("name")}
        self.sections: list[dict] = []
        self.questions: dict[str, dict] = {}  # imported so far, by id
        self.skipped: dict[str, str] = {}  # names of rows not imported -> why
        self.paths: dict[
            str, tuple[str, int, str | None]
        ] = {}  # definition path -> (sheet, row, name)
        self._lists: dict[str, list[dict] | None] = {}

    def _labelled_languages(self) -> dict[str, set[str]]:
        """By sheet, the codes of the languages that its `label::<language>` columns name."""
        labelled = {}
        for sheet, rows in ((SURVEY, self.survey_rows), (CHOICES, self.choice_rows)):
            labels = {
                key for row in rows if isinstance(row.get("label"), dict) for key in row["label"]
            }
            labelled[sheet] = {
                code for code in map(language_code, labels - {DEFAULT_LABEL}) if code is not None
            }
        return labelled

    # -- bookkeeping

    def refuse(self, row: dict, reason: str, sheet: str = SURVEY) -> None:
        self.problems.append(problem(sheet, row.get("__row"), row.get("name"), reason))
        if sheet == SURVEY and row.get("name"):
            self.skipped.setdefault(str(row["name"]), reason)

    def warn(self, row: dict, reason: str, sheet: str = SURVEY) -> None:
        self.warnings.append(problem(sheet, row.get("__row"), row.get("name"), reason))

    def warn_column(self, sheet: str, column: str, row: int, reason: str) -> None:
        entry = self._column_warnings.setdefault((sheet, column), (reason, []))
        entry[1].append(row)

    def column_warnings(self) -> list[dict]:
        out = []
        for (sheet, column), (reason, rows) in self._column_warnings.items():
            where = f"row {rows[0]}" if len(rows) == 1 else f"rows {', '.join(map(str, rows))}"
            out.append(problem(sheet, 1, column, f"{reason} ({where})"))
        return out

    # -- columns

    def check_columns(self, row: dict, *, question: bool) -> bool:
        """Refuse columns Voices cannot honour, warn about ignored ones; False if refused."""
        ok = True
        number = row["__row"]
        for key, reason in _REFUSED_TOP.items():
            if row.get(key):
                self.refuse(row, reason)
                ok = False
        for key, value in (row.get("bind") or {}).items():
            if key in ("relevant",) or (key == "constraint" and question):
                continue
            if key == "required" and _yes_no(value) is False:
                continue
            if key in _IGNORED_BIND:
                self.warn_column(SURVEY, key, number, _IGNORED_BIND[key])
            elif key == "readonly" and _yes_no(value) is False:
                continue
            else:
                self.refuse(
                    row,
                    _REFUSED_BIND.get(
                        key, f"column {key!r} is not supported: clear it on this row"
                    ),
                )
                ok = False
        for key in row.get("control") or {}:
            if key in _IGNORED_CONTROL:
                self.warn_column(
                    SURVEY, key, number, f"{key!r} is ignored: Voices pages have their own layout"
                )
            elif key == "jr:count":
                self.refuse(row, _REFUSED_TOP["repeat_count"])
                ok = False
            else:
                self.refuse(row, f"column {key!r} is not supported: clear it on this row")
                ok = False
        if row.get("media"):
            self.warn_column(SURVEY, "media", number, "images, audio and video are not imported")
        if row.get(
            "choice_filter"
        ):  # offers more choices than meant, all from the list: kept, with a word
            self.warn(
                row,
                f"choice_filter {row['choice_filter']!r} is not kept: the whole choice list is offered",
            )
        for key in ("guidance_hint", "default"):
            if row.get(key):
                self.warn_column(SURVEY, key, number, f"{key!r} is ignored")
        for key in row:
            if key not in _READ_TOP and key not in _REFUSED_TOP and row.get(key):
                self.warn_column(SURVEY, str(key), number, f"column {key!r} is not read by Voices")
        return ok

    # -- choices

    def options(self, list_name: str, row: dict) -> list[dict] | None:
        if list_name not in self._lists:
            self._lists[list_name] = self._read_list(list_name)
        options = self._lists[list_name]
        if options is None:
            self.refuse(
                row,
                f"choice list {list_name!r} is not in the choices sheet: add it there, or correct "
                "the list name after the type",
            )
            return None
        return copy.deepcopy(options)  # each question gets its own option dicts

    def _read_list(self, list_name: str) -> list[dict] | None:
        rows = [r for r in self.choice_rows if r.get(constants.LIST_NAME_S) == list_name]
        if not rows:
            return None
        # Names Voices keeps as they are come first, so a renamed choice never takes one of them.
        taken = {
            str(r["name"])
            for r in rows
            if r.get("name") is not None and CODE_PATTERN.match(str(r["name"]))
        }
        options, names = [], set()
        for position, row in enumerate(rows, start=1):
            name = row.get("name")
            if name is None:
                self.refuse(
                    row,
                    f"this choice of list {list_name!r} has no name: fill in the name column",
                    CHOICES,
                )
                continue
            name = str(name)
            if name in names:
                self.refuse(
                    row,
                    f"choice {name!r} appears twice in list {list_name!r}: rename or delete one",
                    CHOICES,
                )
                continue
            names.add(name)
            code = name
            if not CODE_PATTERN.match(name):
                code = _choice_code(name, position, taken)
                taken.add(code)
                self.warn(
                    row,
                    f"choice name {name!r} is stored as {code!r}: Voices codes use only the letters "
                    "a-z, digits, _ and - (answers and exports show the new code)",
                    CHOICES,
                )
            if row.get("media"):
                self.warn_column(
                    CHOICES, "media", row["__row"], "images, audio and video are not imported"
                )
            options.append(
                {
                    "code": code,
                    "label": self.languages.texts(CHOICES, "label", row.get("label")) or {},
                    "__row": row["__row"],
                    "__name": name,
                }
            )
        return options

    # -- conditions

    def lookup(self, name: str) -> dict:
        if name in self.questions:
            return self.questions[name]
        if name in self.skipped:
            raise Unsupported(f"${{{name}}} is not imported ({self.skipped[name]})")
        if name in self.names:
            raise Unsupported(
                f"${{{name}}} is not an earlier question: move its row above this one"
            )
        raise Unsupported(f"${{{name}}} is not in the form: correct the name")

    def condition(self, row: dict) -> tuple[bool, dict | None]:
        expression = (row.get("bind") or {}).get("relevant")
        if not expression:
            return True, None
        try:
            return True, RelevantParser(str(expression), self.lookup).parse()
        except Unsupported as exc:
            self.refuse(
                row,
                f"relevant {expression!r}: {exc}. Voices reads ${{q}} = 'choice', selected(${{q}}, "
                "'choice'), comparisons with numbers, = '' and != '', joined by and, or, not(); "
                "rewrite it so, or clear it to always show the question",
            )
            return False, None

    # -- the survey sheet

    def run(self) -> None:
        groups: list[dict] = []  # open groups and repeats, innermost last (see `begin`)
        loose: dict | None = None
        for row in self.survey_rows:
            raw_type = row.get("type")
            if raw_type is None:
                if len(row) > 1:
                    self.refuse(row, "this row has no type: fill in its type, or delete the row")
                continue
            kind = " ".join(str(raw_type).split())
            lowered = kind.lower()
            begin, end = _RE_BEGIN.match(lowered), _RE_END.match(lowered)
            if begin:
                loose = None
                parent = groups[-1] if groups else None
                if parent is not None and parent["section"] is not None:
                    # An outer group's questions before this group keep their section, those after it get another.
                    parent["section"]["__holds_groups"] = True
                    parent["section"] = None
                groups.append(self.begin(row, begin.group("kind"), parent))
                continue
            if end:
                if not groups:
                    self.refuse(
                        row,
                        f"{kind!r} without a matching begin: delete the row, or add the begin row "
                        "above the questions it closes",
                    )
                else:
                    groups.pop()
                continue
            question = self.question(row, kind, lowered)
            if question is None:
                continue
            if groups:
                group = groups[-1]
                if group["refused"]:
                    continue  # inside a refused repeat or group: already reported
                if group["section"] is None:
                    group["section"] = self.group_section(
                        group, self.unused_id(f"{group['name']}_", 2), row["__row"]
                    )
                section = group["section"]
            else:
                if loose is None:
                    loose = self.new_section(self.unused_id("section_"), None, row["__row"])
                section = loose
            section["questions"].append(question)
            if "__then" in question:  # the text question or_other adds
                section["questions"].append(question.pop("__then"))
        for group in groups:
            self.problems.append(problem(SURVEY, group["row"]["__row"], group["name"], (
                "this group or repeat is never ended: add an 'end group' row after its last question"
            )))  # fmt: skip

    def unused_id(self, prefix: str, first: int | None = None) -> str:
        """`prefix` + the first number from `first` (the section count + 1) that no question or section uses."""
        n = len(self.sections) + 1 if first is None else first
        while f"{prefix}{n}" in self.names or any(s["id"] == f"{prefix}{n}" for s in self.sections):
            n += 1
        return f"{prefix}{n}"

    def new_section(self, sid: str, group_row: dict | None, row_number: int) -> dict:
        section = {
            "id": sid,
            "title": None,
            "content_warning": None,
            "relevant": None,
            "questions": [],
            "__row": row_number,
            "__name": None if group_row is None else group_row.get("name"),
        }
        self.sections.append(section)
        return section

    def group_section(self, group: dict, sid: str, row_number: int) -> dict:
        section = self.new_section(sid, group["row"], row_number)
        for key in ("title", "content_warning", "relevant"):
            section[key] = group[key]
        return section

    def begin(self, row: dict, kind: str, parent: dict | None) -> dict:
        """An open group: {"row", "name", "refused", "title", "content_warning", "relevant", "section"}.

        Sections have one level, so a group inside a group becomes a section of its own that
        carries the outer group's relevant (and title and content warning when it has none);
        the outer group's questions after it go on in another section.
        """
        name = row.get("name")
        group = {
            "row": row,
            "name": None if name is None else str(name),
            "refused": True,
            "section": None,
            "title": None,
            "content_warning": None,
            "relevant": None,
        }
        if parent is not None and parent["refused"]:
            return group  # inside a refused repeat or group: already reported
        kind = kind.replace("_", " ")
        if kind != "group":
            self.refuse(
                row,
                f"'begin {kind}' is not supported: Voices asks each question once; change it to "
                "'begin group' (and its end row to 'end group'), or number the repeated questions",
            )
            return group
        if not name or not ID_PATTERN.match(str(name)):
            self.refuse(
                row,
                "rename the group: a name starts with a letter or _ and uses only the letters a-z, "
                "digits, _ and - (at most 64)",
            )
            return group
        columns_ok = self.check_columns(row, question=False)
        relevant_ok, relevant = self.condition(row)
        if not (columns_ok and relevant_ok):
            return group
        title = self.languages.texts(SURVEY, "label", row.get("label")) or None
        content_warning = self.languages.texts(
            SURVEY, "content_warning", row.get("content_warning")
        )
        if parent is not None:
            self.warn(
                row,
                f"this group is inside group {parent['name']!r}: Voices sections have one level, so it "
                "becomes a section of its own, shown only when the outer group is",
            )
            title = title or parent["title"]
            content_warning = content_warning or parent["content_warning"]
            relevant = _both(parent["relevant"], relevant)
        if title is None:  # given the generic title in definition(), as loose questions are
            self.warn(
                row,
                "this group has no label, so its section is titled 'Questions' (in each language): "
                "add a label to the begin group row to give it a title of its own",
            )
        group.update(refused=False, title=title, content_warning=content_warning, relevant=relevant)
        group["section"] = self.group_section(group, str(name), row["__row"])
        return group

    def question(self, row: dict, kind: str, lowered: str) -> dict | None:
        if lowered in _TYPES_NOTE:
            self.warn(
                row,
                "notes are not imported; move the text into a hint or a section's content_warning",
            )
            self.skipped.setdefault(str(row.get("name")), "a note")
            return None
        if lowered in _TYPES_METADATA:
            self.warn(
                row,
                f"{kind!r} is skipped: it records device, account or timing data about the "
                "participant, which Voices never collects",
            )
            if row.get("name"):
                self.skipped.setdefault(
                    str(row["name"]), f"{kind!r} records data Voices never collects"
                )
            return None
        built = self.question_type(row, kind, lowered)
        if built is None:
            return None
        name = row.get("name")
        if not name or not ID_PATTERN.match(str(name)):
            self.refuse(
                row,
                "rename the question: a name starts with a letter or _ and uses only the letters "
                "a-z, digits, _ and - (at most 64)",
            )
            return None
        columns_ok = self.check_columns(row, question=True)
        if row.get("content_warning"):
            self.warn(row, "content_warning is read on 'begin group' rows only; ignored here")
        built = self.constraint(row, built)
        relevant_ok, relevant = self.condition(row)
        flags = {}
        for flag in ("dimension", "sensitive"):
            value = _yes_no(row.get(flag))
            if value is None:
                self.refuse(
                    row, f"{flag!r} must be yes or no: write one of them, or leave the cell empty"
                )
                columns_ok = False
            flags[flag] = bool(value)
        if built is None or not (columns_ok and relevant_ok):
            return None
        or_other = built.pop("__or_other", False)
        label = self.languages.texts(SURVEY, "label", row.get("label")) or {}
        hint = self.languages.texts(SURVEY, "hint", row.get("hint"))
        if not row.get(
            "label"
        ):  # ODK shows a question with only a hint; Voices needs its text as the label
            if not hint:
                self.refuse(
                    row, "this question has no label: write the question in the label column"
                )
                return None
            label, hint = hint, None
            self.languages.adopt(label)
            self.warn(
                row,
                "this question has no label, so its hint is the question's text: move it to the "
                "label column to say so",
            )
        for column, texts in (("label", label), ("hint", hint)):
            if any("${" in text for text in (texts or {}).values()):
                self.warn(
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
        self.questions.setdefault(question["id"], question)
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
            self.questions.setdefault(follow_up["id"], follow_up)
            question["__then"] = follow_up
        return question

    def question_type(self, row: dict, kind: str, lowered: str) -> dict | None:
        if lowered in _TYPES_INTEGER:
            return {"type": NUMBER, "integer": True, "min": None, "max": None}
        if lowered in _TYPES_DECIMAL:
            return {"type": NUMBER, "integer": False, "min": None, "max": None}
        if lowered in _TYPES_DATE:
            return {"type": DATE}
        if lowered in _TYPES_TEXT:
            return {"type": FREE_TEXT}
        if lowered == "range":
            try:
                low, high = range_scale(row.get("parameters"))
            except Unsupported as exc:
                self.refuse(row, str(exc))
                return None
            return {"type": RATING, "min": low, "max": high}
        for command in sorted(aliases.select, key=len, reverse=True):
            if lowered.startswith(command + " "):
                return self.select(row, command, kind[len(command) + 1 :].strip())
        if lowered in aliases.select:
            self.refuse(
                row,
                f"{kind!r} needs a choice list name: write it after the type, e.g. 'select_one yes_no'",
            )
            return None
        self.refuse(row, _unsupported_type(kind, lowered, str(row.get("name"))))
        return None

    def select(self, row: dict, command: str, rest: str) -> dict | None:
        meaning = aliases.select[command]
        if command in aliases.select_from_file or meaning not in (
            constants.SELECT_ONE,
            constants.SELECT_ALL_THAT_APPLY,
        ):
            self.refuse(row, _unsupported_type(f"{command} {rest}", command, str(row.get("name"))))
            return None
        parts = rest.split(" ", 1)
        list_name = parts[0]
        or_other = len(parts) > 1 and parts[1].strip().lower() in _OR_OTHER
        if len(parts) > 1 and not or_other:
            self.refuse(
                row,
                f"cannot read the type {command + ' ' + rest!r}: write it as '{command} <list name>'",
            )
            return None
        if row.get("parameters"):
            self.warn(
                row,
                f"parameters {row['parameters']!r} are ignored: choices are shown in the list's order",
            )
        options = self.options(list_name, row)
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
            self.refuse(
                row,
                "'or_other' adds the choice 'other', which the list already has: remove 'or_other' "
                "from the type, and add a text question for 'other' if you need one",
            )
            return False
        if follow_up in self.names:
            self.refuse(
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
        self.warn(
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
            self.warn(
                row,
                f"constraint {expression!r} is not kept, so any answer of the question's type is "
                f"accepted: {exc}",
            )
            return built

    # -- result

    def definition(self) -> dict:
        languages = list(self.languages.order)
        sections = []
        for s_index, section in enumerate(self.sections):
            if not section["questions"]:
                if section["__name"] is not None and not section.get("__holds_groups"):
                    self.warnings.append(problem(
                        SURVEY, section["__row"], section["__name"],
                        "this group has no questions Voices can import and is left out",
                    ))  # fmt: skip
                continue
            spath = f"sections[{len(sections)}]"
            self.paths[spath] = (SURVEY, section["__row"], section["__name"])
            if (
                section["title"] is None
            ):  # made from questions outside groups, or a group without a label
                section["title"] = {lang: DEFAULT_SECTION_TITLE[lang] for lang in languages}
            for q_index, question in enumerate(section["questions"]):
                qpath = f"{spath}.questions[{q_index}]"
                self.paths[qpath] = (SURVEY, question.pop("__row"), question["id"])
                for o_index, option in enumerate(question.get("options") or []):
                    option_path = f"{qpath}.options[{o_index}]"
                    sheet = option.pop("__sheet", CHOICES)
                    self.paths[option_path] = (sheet, option.pop("__row"), option.pop("__name"))
                for item in (question, *(question.get("options") or [])):
                    if (
                        "__texts" in item
                    ):  # added by or_other: Voices' own words in the form's languages
                        texts = item.pop("__texts")
                        item["label"] = {lang: texts[lang] for lang in languages}
            sections.append({k: v for k, v in section.items() if not k.startswith("__")})
        return {"languages": languages, "sections": sections}

    def translation_warnings(self, definition: dict) -> list[dict]:
        """One warning per text still missing a language, at its row (publishing needs them all)."""
        try:
            check_translations(definition)
        except ValidationFailed as exc:
            gaps = exc.extra["errors"]
        else:
            return []
        found: dict[tuple, dict] = {}  # a choice list shared by several questions is one row
        for path, messages in gaps.items():
            sheet, row, name = self.where(path)
            field = path.rsplit(".", 1)[-1]
            column = "label" if field == "title" else field
            for message in messages:
                code = message.rsplit("'", 2)[
                    -2
                ]  # check_translations ends with the language, quoted
                header = self.languages.column_for(sheet, column, code)
                reason = f"{message} in column '{header}': fill it in before publishing"
                found.setdefault((sheet, row, reason), problem(sheet, row, name, reason))
        return list(found.values())

    def where(self, path: str) -> tuple[str, int | None, str | None]:
        """The spreadsheet row behind a definition path (longest known prefix)."""
        best = ""
        for known in self.paths:
            if (path == known or path.startswith(known + ".")) and len(known) > len(best):
                best = known
        return self.paths.get(best, (SURVEY, None, None))


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
        importer = _Importer(workbook, default_language, languages)
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
            "the form has no questions Voices can import: add rows of type " + _SUPPORTED_TYPES_HINT
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
