"""XLSForm (ODK / KoboToolbox) import into a Voices survey definition.

What is mapped:
  select_one L            -> single_choice (options from list L of the choices sheet)
  select_multiple L       -> multiple_choice
  integer / decimal       -> number (integer flag); a constraint made only of
                             `. >= n`, `. <= n` (and `>`/`<` for integers)
                             joined by `and` becomes min/max
  range                   -> rating (whole-number start..end, step 1, <= 11 points)
  date                    -> date
  text                    -> free_text; `string-length(.) <= n` becomes max_length
  begin group / end group -> a section (group relevant -> section relevant);
                             runs of questions outside groups become their own
                             sections with a generic translated title
  label::Arabic (ar), label::ar, label (+ settings default_language)
                          -> translations in ar, zh, en, fr, ru, es
  relevant                -> conditions, for `${q} = 'x'`, `${q} != 'x'`,
                             `selected(${q}, 'x')`, `${q} > 3` (>=, <, <=),
                             `${q} = ''` / `${q} != ''`, `and`, `or`, `not(...)`
  extra columns (Voices extensions): `dimension`, `sensitive` (yes/no) on
  question rows, `content_warning::<language>` on begin group rows.

Decided on purpose:
  - note rows are skipped with a warning (display-only text; nothing to
    answer), so organisers can move crucial text into a hint or a section's
    content warning;
  - `required`, `appearance`, media, `guidance_hint`, `default` and messages
    are ignored with a warning: every Voices question is skippable and the
    participant pages have their own layout;
  - everything else is refused, row by row: other question types (geopoint,
    image, calculate, metadata such as deviceid or start, ...), repeats,
    nested groups, `or_other`, `choice_filter`, calculations, read-only
    fields, constraints or relevant expressions outside the forms above,
    languages outside the six.

Errors: ValidationFailed whose `errors` maps a sheet name ("survey",
"choices", "settings") or "form" (problems that belong to no sheet, e.g. an
unreadable file) to a list of {"sheet", "row", "name", "reason"}; `row` is
the spreadsheet row as Excel shows it (header = 1, so a problem with a column
points at row 1). pyxform checks the form as a whole too; its messages come
prefixed "pyxform:" and are dropped when Voices already explained that row.

pyxform is used for reading (its header aliases and `label::Language (xx)`
grouping, with row numbers kept) and for whole-form checks; the mapping is
done here on the grouped rows. `dealias_and_group_headers` lives in
pyxform.parsing, which is not a documented API: the tests pin its behaviour.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pyxform import aliases, constants
from pyxform.errors import PyXFormError
from pyxform.parsing.sheet_headers import dealias_and_group_headers
from pyxform.question import MultipleChoiceQuestion, Option
from pyxform.survey import Survey
from pyxform.xls2json_backends import get_xlsform
from pyxform.xls2xform import convert

from shared.errors import ValidationFailed

from .questionnaire import (
    CODE_PATTERN,
    DATE,
    FREE_TEXT,
    ID_PATTERN,
    MAX_RATING_POINTS,
    MULTIPLE_CHOICE,
    NUMBER,
    RATING,
    SINGLE_CHOICE,
    UN_LANGUAGES,
    validate_definition,
)

SURVEY, CHOICES, SETTINGS, FORM = "survey", "choices", "settings", "form"
_DEFAULT = constants.DEFAULT_LANGUAGE_VALUE

# Title for sections made from questions outside any group.
DEFAULT_SECTION_TITLE = {
    "ar": "أسئلة",
    "zh": "问题",
    "en": "Questions",
    "fr": "Questions",
    "ru": "Вопросы",
    "es": "Preguntas",
}

_LANGUAGE_NAMES = {
    "arabic": "ar", "العربية": "ar", "عربي": "ar", "ara": "ar",
    "chinese": "zh", "mandarin": "zh", "中文": "zh", "汉语": "zh", "漢語": "zh", "zho": "zh", "chi": "zh",
    "english": "en", "eng": "en",
    "french": "fr", "français": "fr", "francais": "fr", "fra": "fr", "fre": "fr",
    "russian": "ru", "русский": "ru", "rus": "ru",
    "spanish": "es", "español": "es", "espanol": "es", "castellano": "es", "spa": "es",
}  # fmt: skip
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_PARENTHESISED = re.compile(r"^(?P<name>.*?)\s*\((?P<tag>[^()]*)\)\s*$")

_TYPES_INTEGER = {"integer", "int", "add integer prompt", "q int"}
_TYPES_DECIMAL = {"decimal", "add decimal prompt", "q decimal"}
_TYPES_DATE = {"date", "add date prompt", "q date"}
_TYPES_TEXT = {"text", "string", "add text prompt", "q string"}
_TYPES_NOTE = {"note", "add note prompt", "q note"}
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

# Columns Voices reads, ignores with a warning, or refuses (after pyxform's header aliasing).
_IGNORED_BIND = {"required": "'required' is ignored: every question in Voices can be skipped",
                 "jr:requiredMsg": "'required_message' is ignored: nothing is required",
                 "jr:constraintMsg": "'constraint_message' is ignored: Voices writes its own messages",
                 "jr:noAppErrorString": "'no_app_error_string' is ignored"}  # fmt: skip
_IGNORED_CONTROL = {"appearance", "autoplay", "rows"}
# Top-level keys handled above or in the row code; any other non-empty column gets a warning.
_READ_TOP = {"media", "guidance_hint", "default", "instance", "label", "hint", "type", "name",
             "__row", "bind", "control", "dimension", "sensitive", "content_warning", "parameters"}  # fmt: skip
_REFUSED_TOP = {
    "choice_filter": "'choice_filter' (cascading choices) is not supported",
    "trigger": "'trigger' (recalculating on change) is not supported",
    "repeat_count": "repeats are not supported",
}
_REFUSED_BIND = {
    "calculate": "calculations are not supported",
    "readonly": "read-only fields are not supported",
    constants.ENTITIES_SAVETO_NS: "entities are not supported",
}


@dataclass
class XLSFormImport:
    """An imported survey: the definition (validated, not necessarily fully
    translated), the form title from the settings sheet, and warnings about
    what was skipped or ignored, each {"sheet", "row", "name", "reason"}."""

    definition: dict
    title: str | None = None
    warnings: list[dict] = field(default_factory=list)


class _Unsupported(Exception):
    """A relevant expression or constraint outside the mapped forms; the message says why."""


def _problem(sheet: str | None, row: int | None, name: Any, reason: str) -> dict:
    return {"sheet": sheet, "row": row, "name": None if name is None else str(name), "reason": reason}


# ---------------------------------------------------------------- languages


def language_code(label: str) -> str | None:
    """The UN language code for an XLSForm language label, or None.

    Accepts "Arabic (ar)", "ar", "ar-SA", "zh-Hans", "Arabic", "العربية",
    "Français"... A code in parentheses wins over the name.
    """
    text = label.strip()
    match = _PARENTHESISED.match(text)
    candidates = [match.group("tag").strip()] if match else [text]
    for tag in candidates:
        if _LANGUAGE_TAG.match(tag):
            base = re.split(r"[-_]", tag)[0].lower()
            if base in UN_LANGUAGES:
                return base
            if base in _LANGUAGE_NAMES:
                return _LANGUAGE_NAMES[base]
            if match:
                return None  # an explicit code for another language
    name = (match.group("name") if match else text).strip().casefold()
    return _LANGUAGE_NAMES.get(name)


class _Languages:
    """Maps the language labels used in text columns to codes, noting problems once per column."""

    def __init__(self, default_label: str | None, problems: list[dict]) -> None:
        self.default_label = default_label
        self.problems = problems
        self.order: list[str] = []
        self._seen: dict[tuple[str, str, str], str | None] = {}
        self._owner: dict[tuple[str, str, str], str] = {}  # (sheet, column, code) -> label

    def header(self, sheet: str, column: str, label: str) -> str | None:
        key = (sheet, column, label)
        if key in self._seen:
            return self._seen[key]
        header = column if label == _DEFAULT else f"{column}::{label}"
        if label == _DEFAULT:
            code = language_code(self.default_label) if self.default_label else None
            if code is None:
                self.problems.append(_problem(sheet, 1, header, (
                    f"column '{column}' has no language: name it like '{column}::English (en)' "
                    "or set default_language in the settings sheet"
                    if not self.default_label
                    else f"default_language {self.default_label!r} is not one of {', '.join(UN_LANGUAGES)}"
                )))  # fmt: skip
        else:
            code = language_code(label)
            if code is None:
                self.problems.append(_problem(
                    sheet, 1, header,
                    f"language {label!r} is not one of the supported languages {', '.join(UN_LANGUAGES)}",
                ))  # fmt: skip
        if code is not None:
            owner = self._owner.setdefault((sheet, column, code), label)
            if owner != label:
                self.problems.append(_problem(
                    sheet, 1, header, f"two '{column}' columns are both in language {code!r}"
                ))  # fmt: skip
                code = None
            elif column == "label" and code not in self.order:  # labels decide the languages
                self.order.append(code)
        self._seen[key] = code
        return code

    def texts(self, sheet: str, column: str, value: Any) -> dict[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            value = {_DEFAULT: value}
        out = {}
        for label, text in value.items():
            code = self.header(sheet, column, label)
            if code is not None and isinstance(text, str) and text.strip():
                out[code] = text.strip()
        return out


# ---------------------------------------------------------------- relevant expressions

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<ref>\$\{\s*(?P<refname>[^}\s]+)\s*\})
    | (?P<str>'[^']*'|"[^"]*")
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op>!=|>=|<=|=|>|<)
    | (?P<lp>\() | (?P<rp>\)) | (?P<comma>,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.X,
)
_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "=": "=", "!=": "!="}
_ORDER_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def _tokenise(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _Unsupported(f"cannot read the expression from {text[pos:].strip()!r}")
        kind = match.lastgroup if match.lastgroup != "refname" else "ref"
        if match.group("ref"):
            tokens.append(("ref", match.group("refname")))
        else:
            tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _RelevantParser:
    """Recursive descent over the small XPath subset Voices maps to conditions."""

    def __init__(self, text: str, lookup) -> None:
        self.tokens = _tokenise(text)
        self.pos = 0
        self.lookup = lookup  # name -> earlier question dict, or raises _Unsupported

    def parse(self) -> dict:
        if not self.tokens:
            raise _Unsupported("empty expression")
        condition = self._or()
        if self.pos != len(self.tokens):
            raise _Unsupported(f"unexpected {self.tokens[self.pos][1]!r}")
        return condition

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, kind: str, value: str | None = None) -> str:
        token = self._peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            found = "the end" if token is None else repr(token[1])
            raise _Unsupported(f"expected {value or kind} but found {found}")
        self.pos += 1
        return token[1]

    def _joined(self, word: str, part, key: str) -> dict:
        parts = [part()]
        while self._peek() == ("word", word):
            self.pos += 1
            parts.append(part())
        if len(parts) == 1:
            return parts[0]
        flat = []
        for p in parts:  # (a and b) and c -> one "all"
            flat.extend(p[key] if set(p) == {key} else [p])
        return {key: flat}

    def _or(self) -> dict:
        return self._joined("or", self._and, "any")

    def _and(self) -> dict:
        return self._joined("and", self._unary, "all")

    def _unary(self) -> dict:
        token = self._peek()
        if token == ("word", "not"):
            self.pos += 1
            self._take("lp")
            inner = self._or()
            self._take("rp")
            return {"not": inner}
        if token == ("lp", "("):
            self.pos += 1
            inner = self._or()
            self._take("rp")
            return inner
        if token == ("word", "selected"):
            self.pos += 1
            self._take("lp")
            name = self._take("ref")
            self._take("comma")
            literal = self._literal()
            self._take("rp")
            return self._selected(name, literal)
        return self._comparison()

    def _literal(self) -> tuple[str, str]:
        token = self._peek()
        if token is None or token[0] not in ("str", "num"):
            raise _Unsupported("expected a quoted value or a number")
        self.pos += 1
        return (token[0], token[1][1:-1] if token[0] == "str" else token[1])

    def _operand(self) -> tuple[str, str]:
        token = self._peek()
        if token is not None and token[0] == "ref":
            self.pos += 1
            return token
        if token is not None and token[0] == "word":
            raise _Unsupported(f"function or name {token[1]!r} is not supported")
        return self._literal()

    def _comparison(self) -> dict:
        left = self._operand()
        op_token = self._peek()
        if op_token is None or op_token[0] != "op":
            raise _Unsupported("expected a comparison such as ${q} = 'x'")
        self.pos += 1
        op = op_token[1]
        right = self._operand()
        if left[0] == "ref" and right[0] != "ref":
            return self._compare(left[1], op, right)
        if right[0] == "ref" and left[0] != "ref":
            return self._compare(right[1], _FLIP[op], left)
        raise _Unsupported("a comparison needs one ${question} and one value")

    def _selected(self, name: str, literal: tuple[str, str]) -> dict:
        question = self.lookup(name)
        code = literal[1]
        if question["type"] not in (SINGLE_CHOICE, MULTIPLE_CHOICE):
            raise _Unsupported(f"selected() needs a choice question, ${{{name}}} is not one")
        _require_option(question, code)
        op = "includes" if question["type"] == MULTIPLE_CHOICE else "equals"
        return {"question": question["id"], "op": op, "value": code}

    def _compare(self, name: str, op: str, literal: tuple[str, str]) -> dict:
        question = self.lookup(name)
        qid, qtype = question["id"], question["type"]
        if literal == ("str", ""):
            answered = {"question": qid, "op": "answered"}
            if op == "!=":
                return answered
            if op == "=":
                return {"not": answered}
            raise _Unsupported(f"cannot compare ${{{name}}} {op} ''")

        def equality(value: Any) -> dict:
            equals = {"question": qid, "op": "equals", "value": value}
            # ODK's `!=` is true for an empty answer; not(equals) keeps that meaning.
            return equals if op == "=" else {"not": equals}

        if qtype == SINGLE_CHOICE:
            if op not in ("=", "!="):
                raise _Unsupported(f"{op} does not apply to the choice question ${{{name}}}")
            _require_option(question, literal[1])
            return equality(literal[1])
        if qtype == MULTIPLE_CHOICE:
            raise _Unsupported(f"use selected(${{{name}}}, 'code') for the multiple-choice question ${{{name}}}")
        if qtype in (NUMBER, RATING):
            try:
                number = float(literal[1])
            except ValueError:
                raise _Unsupported(f"${{{name}}} is a number, {literal[1]!r} is not") from None
            value: int | float = int(number) if number.is_integer() else number
            if op in ("=", "!="):
                return equality(value)
            return {"question": qid, "op": _ORDER_OPS[op], "value": value}
        raise _Unsupported(f"${{{name}}} is a {qtype} question; only = '' and != '' apply to it")


def _require_option(question: dict, code: str) -> None:
    if code not in [o["code"] for o in question.get("options") or []]:
        raise _Unsupported(f"{code!r} is not an option of ${{{question['id']}}}")


# ---------------------------------------------------------------- constraints

_NUM = r"-?\d+(?:\.\d+)?"
_RE_BOUND_DOT_FIRST = re.compile(rf"^\.\s*(>=|<=|>|<)\s*({_NUM})$")
_RE_BOUND_DOT_LAST = re.compile(rf"^({_NUM})\s*(>=|<=|>|<)\s*\.$")
_RE_STRING_LENGTH = re.compile(r"^string-length\(\s*\.\s*\)\s*(<=|<)\s*(\d+)$")


def _number_bounds(constraint: str, integer: bool) -> tuple[float | int | None, float | int | None]:
    low: float | int | None = None
    high: float | int | None = None
    for clause in re.split(r"\s+and\s+", constraint.strip()):
        clause = clause.strip()
        if clause.startswith("(") and clause.endswith(")"):
            clause = clause[1:-1].strip()
        match = _RE_BOUND_DOT_FIRST.match(clause)
        if match:
            op, number = match.group(1), float(match.group(2))
        else:
            match = _RE_BOUND_DOT_LAST.match(clause)
            if not match:
                raise _Unsupported(f"constraint {constraint!r} is not made of `. >= n` / `. <= n` joined by and")
            number, op = float(match.group(1)), _FLIP[match.group(2)]
        if op in (">", "<") and not integer:
            raise _Unsupported("a strict bound (> or <) on a decimal cannot be kept; use >= or <=")
        if op == ">=":
            bound, is_low = (math.ceil(number) if integer else number), True
        elif op == ">":
            bound, is_low = math.floor(number) + 1, True
        elif op == "<=":
            bound, is_low = (math.floor(number) if integer else number), False
        else:
            bound, is_low = math.ceil(number) - 1, False
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        if is_low:
            low = bound if low is None else max(low, bound)
        else:
            high = bound if high is None else min(high, bound)
    return low, high


def _text_max_length(constraint: str) -> int:
    match = _RE_STRING_LENGTH.match(constraint.strip())
    if not match:
        raise _Unsupported(f"constraint {constraint!r} is not string-length(.) <= n")
    limit = int(match.group(2))
    return limit if match.group(1) == "<=" else limit - 1


def _range_scale(raw: Any) -> tuple[int, int]:
    params = {"start": "1", "end": "10", "step": "1"}  # ODK's defaults
    if raw:
        for part in re.split(r"[\s;,]+", str(raw).strip()):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or key.strip().lower() not in params:
                raise _Unsupported(f"range parameter {part!r} is not supported (only start, end, step)")
            params[key.strip().lower()] = value.strip()
    try:
        start, end, step = (float(params[k]) for k in ("start", "end", "step"))
    except ValueError:
        raise _Unsupported("range start, end and step must be numbers") from None
    if step != 1 or not start.is_integer() or not end.is_integer():
        raise _Unsupported("a range becomes a rating only with whole-number start and end and step=1")
    if not start < end or end - start + 1 > MAX_RATING_POINTS:
        raise _Unsupported(f"a rating runs upwards over at most {MAX_RATING_POINTS} points")
    return int(start), int(end)


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
            default_language=_DEFAULT,
            strip_whitespace=strip,
            add_row_number=True,
        ).data
    )


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
    named = re.search(r"named '([^']+)'", message)
    row = int(row_match.group(1)) if row_match else None
    name = named.group(1) if named else None
    if row is None and name is not None and rows_by_name:
        row = rows_by_name.get(name)
    # Row numbers in pyxform messages without a sheet are survey-sheet rows.
    sheet = sheet_match.group(1) if sheet_match else (SURVEY if row is not None else None)
    return _problem(sheet, row, name, f"pyxform: {message}")


def _yes_no(value: Any) -> bool | None:
    if value is None:
        return False
    text = str(value).strip()
    if text in aliases.yes_no:
        return aliases.yes_no[text]
    return {"yes": True, "no": False, "true": True, "false": False}.get(text.lower())


class _Importer:
    def __init__(self, workbook, default_language: str | None) -> None:
        self.problems: list[dict] = []
        self.warnings: list[dict] = []
        self._column_warnings: dict[tuple[str, str], tuple[str, list[int]]] = {}
        self.survey_rows = _dealias(
            workbook, SURVEY, aliases.survey_header, set(MultipleChoiceQuestion.get_slot_names()), True
        )
        self.choice_rows = _dealias(
            workbook, CHOICES, aliases.list_header, set(Option.get_slot_names()), False
        )
        settings_rows = _dealias(workbook, SETTINGS, aliases.settings_header, set(Survey.get_slot_names()), False)
        self.settings = settings_rows[0] if settings_rows else {}
        self.title = self.settings.get("title")
        self.languages = _Languages(self.settings.get(constants.DEFAULT_LANGUAGE_KEY) or default_language, self.problems)
        self.names = {row.get("name") for row in self.survey_rows if row.get("name")}
        self.sections: list[dict] = []
        self.questions: dict[str, dict] = {}  # imported so far, by id
        self.skipped: dict[str, str] = {}  # names of rows not imported -> why
        self.paths: dict[str, tuple[str, int, str | None]] = {}  # definition path -> (sheet, row, name)
        self._lists: dict[str, list[dict] | None] = {}

    # -- bookkeeping

    def refuse(self, row: dict, reason: str, sheet: str = SURVEY) -> None:
        self.problems.append(_problem(sheet, row.get("__row"), row.get("name"), reason))
        if sheet == SURVEY and row.get("name"):
            self.skipped.setdefault(str(row["name"]), reason)

    def warn(self, row: dict, reason: str, sheet: str = SURVEY) -> None:
        self.warnings.append(_problem(sheet, row.get("__row"), row.get("name"), reason))

    def warn_column(self, sheet: str, column: str, row: int, reason: str) -> None:
        entry = self._column_warnings.setdefault((sheet, column), (reason, []))
        entry[1].append(row)

    def column_warnings(self) -> list[dict]:
        out = []
        for (sheet, column), (reason, rows) in self._column_warnings.items():
            where = f"row {rows[0]}" if len(rows) == 1 else f"rows {', '.join(map(str, rows))}"
            out.append(_problem(sheet, 1, column, f"{reason} ({where})"))
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
                self.refuse(row, _REFUSED_BIND.get(key, f"column {key!r} is not supported"))
                ok = False
        for key in row.get("control") or {}:
            if key in _IGNORED_CONTROL:
                self.warn_column(SURVEY, key, number, f"{key!r} is ignored: Voices pages have their own layout")
            elif key == "jr:count":
                self.refuse(row, "repeats are not supported")
                ok = False
            else:
                self.refuse(row, f"column {key!r} is not supported")
                ok = False
        if row.get("media"):
            self.warn_column(SURVEY, "media", number, "images, audio and video are not imported")
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
            self.refuse(row, f"choice list {list_name!r} is not in the choices sheet")
            return None
        return copy.deepcopy(options)  # each question gets its own option dicts

    def _read_list(self, list_name: str) -> list[dict] | None:
        rows = [r for r in self.choice_rows if r.get(constants.LIST_NAME_S) == list_name]
        if not rows:
            return None
        options, codes = [], set()
        for row in rows:
            code = row.get("name")
            if code is None or not CODE_PATTERN.match(str(code)):
                self.refuse(row, f"choice name {code!r} must use only letters, digits, _ and - (max 64)", CHOICES)
                continue
            if code in codes:
                self.refuse(row, f"choice {code!r} appears twice in list {list_name!r}", CHOICES)
                continue
            codes.add(code)
            if row.get("media"):
                self.warn_column(CHOICES, "media", row["__row"], "images, audio and video are not imported")
            options.append(
                {
                    "code": str(code),
                    "label": self.languages.texts(CHOICES, "label", row.get("label")) or {},
                    "__row": row["__row"],
                }
            )
        return options

    # -- conditions

    def lookup(self, name: str) -> dict:
        if name in self.questions:
            return self.questions[name]
        if name in self.skipped:
            raise _Unsupported(f"${{{name}}} is not imported ({self.skipped[name]})")
        if name in self.names:
            raise _Unsupported(f"${{{name}}} is not an earlier question")
        raise _Unsupported(f"${{{name}}} is not in the form")

    def condition(self, row: dict) -> tuple[bool, dict | None]:
        expression = (row.get("bind") or {}).get("relevant")
        if not expression:
            return True, None
        try:
            return True, _RelevantParser(str(expression), self.lookup).parse()
        except _Unsupported as exc:
            self.refuse(row, f"relevant {expression!r}: {exc}")
            return False, None

    # -- the survey sheet

    def run(self) -> None:
        stack: list[dict | None] = []  # open groups/repeats; None = not imported
        opened: list[dict] = []  # their begin rows, to point at an unclosed one
        loose: dict | None = None
        for row in self.survey_rows:
            raw_type = row.get("type")
            if raw_type is None:
                if len(row) > 1:
                    self.refuse(row, "this row has no type")
                continue
            kind = " ".join(str(raw_type).split())
            lowered = kind.lower()
            begin, end = _RE_BEGIN.match(lowered), _RE_END.match(lowered)
            if begin:
                loose = None
                stack.append(self.begin(row, begin.group("kind"), nested=bool(stack)))
                opened.append(row)
                continue
            if end:
                if not stack:
                    self.refuse(row, f"{kind!r} without a matching begin")
                else:
                    stack.pop()
                    opened.pop()
                continue
            question = self.question(row, kind, lowered)
            if question is None:
                continue
            if stack:
                section = stack[-1]
                if section is None:
                    continue  # inside a refused repeat or nested group: already reported
            else:
                if loose is None:
                    loose = self.new_section(self.default_section_id(), None, row["__row"])
                section = loose
            section["questions"].append(question)
        for row in opened:
            self.problems.append(_problem(SURVEY, row["__row"], row.get("name"), "this group or repeat is never ended"))

    def default_section_id(self) -> str:
        n = len(self.sections) + 1
        while f"section_{n}" in self.names or any(s["id"] == f"section_{n}" for s in self.sections):
            n += 1
        return f"section_{n}"

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

    def begin(self, row: dict, kind: str, nested: bool) -> dict | None:
        kind = kind.replace("_", " ")
        if kind != "group":
            self.refuse(row, f"'begin {kind}' is not supported: repeats and loops cannot be imported")
            return None
        if nested:
            self.refuse(row, "groups inside groups are not supported: Voices sections have one level")
            return None
        name = row.get("name")
        if not name or not ID_PATTERN.match(str(name)):
            self.refuse(row, "a group name must start with a letter or _ and use only letters, digits, _ and -")
            return None
        columns_ok = self.check_columns(row, question=False)
        relevant_ok, relevant = self.condition(row)
        if not (columns_ok and relevant_ok):
            return None
        section = self.new_section(str(name), row, row["__row"])
        section["title"] = self.languages.texts(SURVEY, "label", row.get("label")) or {}
        section["content_warning"] = self.languages.texts(SURVEY, "content_warning", row.get("content_warning"))
        section["relevant"] = relevant
        return section

    def question(self, row: dict, kind: str, lowered: str) -> dict | None:
        if lowered in _TYPES_NOTE:
            self.warn(row, "notes are not imported; move the text into a hint or a section's content_warning")
            self.skipped.setdefault(str(row.get("name")), "a note")
            return None
        built = self.question_type(row, kind, lowered)
        if built is None:
            return None
        name = row.get("name")
        if not name or not ID_PATTERN.match(str(name)):
            self.refuse(row, "a question name must start with a letter or _ and use only letters, digits, _ and -")
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
                self.refuse(row, f"{flag!r} must be yes or no")
                columns_ok = False
            flags[flag] = bool(value)
        if built is None or not (columns_ok and relevant_ok):
            return None
        question = {
            "id": str(name),
            "type": built["type"],
            "label": self.languages.texts(SURVEY, "label", row.get("label")) or {},
            "hint": self.languages.texts(SURVEY, "hint", row.get("hint")),
            **{key: value for key, value in built.items() if key != "type"},
            "relevant": relevant,
            **flags,
            "__row": row["__row"],
        }
        self.questions.setdefault(question["id"], question)
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
                low, high = _range_scale(row.get("parameters"))
            except _Unsupported as exc:
                self.refuse(row, str(exc))
                return None
            return {"type": RATING, "min": low, "max": high}
        for command in sorted(aliases.select, key=len, reverse=True):
            if lowered.startswith(command + " "):
                return self.select(row, command, kind[len(command) + 1 :].strip())
        if lowered in aliases.select:
            self.refuse(row, f"{kind!r} needs a choice list name")
            return None
        if lowered in _TYPES_METADATA:
            self.refuse(row, f"{kind!r} records device, account or timing data about the participant; Voices never collects it")
            return None
        self.refuse(row, f"question type {kind!r} is not supported; use {_SUPPORTED_TYPES_HINT}")
        return None

    def select(self, row: dict, command: str, rest: str) -> dict | None:
        meaning = aliases.select[command]
        if command in aliases.select_from_file or meaning not in (
            constants.SELECT_ONE,
            constants.SELECT_ALL_THAT_APPLY,
        ):
            self.refuse(row, f"{command!r} is not supported: choices must come from the choices sheet")
            return None
        parts = rest.split(" ", 1)
        list_name = parts[0]
        if len(parts) > 1:
            if parts[1].strip().lower() in _OR_OTHER:
                self.refuse(row, "'or_other' is not supported: add a separate text question for 'other'")
            else:
                self.refuse(row, f"cannot read the type {command + ' ' + rest!r}")
            return None
        if row.get("parameters"):
            self.refuse(row, "parameters (such as randomize) are not supported on choice questions")
            return None
        options = self.options(list_name, row)
        if options is None:
            return None
        qtype = SINGLE_CHOICE if meaning == constants.SELECT_ONE else MULTIPLE_CHOICE
        return {"type": qtype, "options": options}

    def constraint(self, row: dict, built: dict | None) -> dict | None:
        expression = (row.get("bind") or {}).get("constraint")
        if built is None or not expression:
            return built
        try:
            if built["type"] == NUMBER:
                low, high = _number_bounds(str(expression), built["integer"])
                return {**built, "min": low, "max": high}
            if built["type"] == FREE_TEXT:
                return {**built, "max_length": _text_max_length(str(expression))}
        except _Unsupported as exc:
            self.refuse(row, str(exc))
            return None
        self.refuse(row, f"constraints on {row.get('type')!r} questions are not supported")
        return None

    # -- result

    def definition(self) -> dict:
        languages = list(self.languages.order)
        sections = []
        for s_index, section in enumerate(self.sections):
            if not section["questions"]:
                if section["__name"] is not None:
                    self.warnings.append(_problem(
                        SURVEY, section["__row"], section["__name"],
                        "this group has no questions Voices can import and is left out",
                    ))  # fmt: skip
                continue
            spath = f"sections[{len(sections)}]"
            self.paths[spath] = (SURVEY, section["__row"], section["__name"])
            if section["title"] is None:  # made from questions outside groups
                section["title"] = {lang: DEFAULT_SECTION_TITLE[lang] for lang in languages}
            for q_index, question in enumerate(section["questions"]):
                qpath = f"{spath}.questions[{q_index}]"
                self.paths[qpath] = (SURVEY, question.pop("__row"), question["id"])
                for o_index, option in enumerate(question.get("options") or []):
                    self.paths[f"{qpath}.options[{o_index}]"] = (CHOICES, option.pop("__row"), option["code"])
            sections.append({k: v for k, v in section.items() if not k.startswith("__")})
        return {"languages": languages, "sections": sections}

    def where(self, path: str) -> tuple[str, int | None, str | None]:
        """The spreadsheet row behind a definition path (longest known prefix)."""
        best = ""
        for known in self.paths:
            if (path == known or path.startswith(known + ".")) and len(known) > len(best):
                best = known
        return self.paths.get(best, (SURVEY, None, None))


def _raise(problems: list[dict]) -> None:
    grouped: dict[str, list[dict]] = {}
    for problem in problems:
        grouped.setdefault(problem["sheet"] or FORM, []).append(problem)
    for items in grouped.values():
        items.sort(key=lambda p: (p["row"] is None, p["row"] or 0))
    count = len(problems)
    raise ValidationFailed(
        f"The XLSForm cannot be imported: {count} problem{'s' if count != 1 else ''} to fix.",
        errors=grouped,
    )


def read_xlsform(
    source: bytes | str | os.PathLike | IO[bytes], *, default_language: str | None = None
) -> XLSFormImport:
    """Import an .xlsx XLSForm (bytes, a path, or a binary file object).

    `default_language` (e.g. "en" or "English (en)") names the language of
    label/hint columns without one; the settings sheet's default_language
    wins over it. Returns an XLSFormImport whose definition passed
    `validate_definition` (translations may still be missing: check them at
    publish time). Raises ValidationFailed listing every row that cannot be
    imported (see the module docstring for the shape), plus any whole-form
    error from pyxform.
    """
    data = _source_bytes(source)
    try:
        workbook = get_xlsform(data, file_type=".xlsx")
    except Exception as exc:  # noqa: BLE001 - anything unreadable is the uploader's to fix
        _raise([_problem(None, None, None, f"not a readable .xlsx workbook: {exc}")])
    # pyxform checks the form as a whole (names, references, sheet structure).
    pyxform_error: Exception | None = None
    try:
        # A copy of what was read, rather than parsing the .xlsx a second time.
        convert(copy.deepcopy(dataclasses.asdict(workbook)), form_name="data")
    except Exception as exc:  # noqa: BLE001 - pyxform raises more than PyXFormError on odd input
        pyxform_error = exc
    try:
        importer = _Importer(workbook, default_language)
        importer.run()
    except PyXFormError as exc:  # header problems found while reading the sheets
        _raise([_pyxform_problem(e) for e in (pyxform_error, exc) if e is not None])
    problems = list(importer.problems)
    if pyxform_error is not None:
        rows_by_name = {str(r["name"]): r["__row"] for r in importer.survey_rows if r.get("name")}
        reported = _pyxform_problem(pyxform_error, rows_by_name)
        # The same row already explained in Voices' words is enough.
        if reported["row"] is None or not any(
            (p["sheet"], p["row"]) == (reported["sheet"], reported["row"]) for p in problems
        ):
            problems.append(reported)
    definition = importer.definition()
    if not definition["sections"] and not problems:
        problems.append(_problem(SURVEY, None, None, "the form has no questions Voices can import"))
    if problems:
        _raise(problems)
    try:
        definition = validate_definition(definition)
    except ValidationFailed as exc:
        for path, messages in exc.extra["errors"].items():
            sheet, row, name = importer.where(path)
            for message in messages:
                problems.append(_problem(sheet, row, name, f"{path}: {message}"))
        _raise(problems)
    title = importer.title if isinstance(importer.title, str) else None
    return XLSFormImport(definition, title, importer.warnings + importer.column_warnings())


def import_xlsform(source: bytes | str | os.PathLike | IO[bytes], *, default_language: str | None = None) -> dict:
    """The survey definition of an .xlsx XLSForm; `read_xlsform` without title and warnings.

    Raises ValidationFailed as `read_xlsform` does.
    """
    return read_xlsform(source, default_language=default_language).definition
