"""Checking survey definitions: their structure, skip logic and translations, before they are
saved and before they are published. The format itself, and the rules that read it, are in
`shared.questionnaire.definition`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from shared.errors import ValidationFailed
from shared.questionnaire.definition import (
    CHOICE_TYPES,
    CODE_PATTERN,
    CONDITION_OPS,
    DATE,
    DEFAULT_MAX_LENGTH,
    FREE_TEXT,
    ID_PATTERN,
    MAX_CONDITION_DEPTH,
    MAX_DIMENSIONS,
    MAX_FREE_TEXT_LENGTH,
    MAX_RATING_POINTS,
    MULTIPLE_CHOICE,
    NUMBER,
    ORDER_OPS,
    QUESTION_TYPES,
    RATING,
    SINGLE_CHOICE,
    UN_LANGUAGES,
    is_number,
    iter_questions,
    parse_iso_date,
    rating_bounds,
)

_DEFINITION_KEYS = frozenset({"languages", "sections"})
_SECTION_KEYS = frozenset({"id", "title", "content_warning", "relevant", "questions"})
_COMMON_QUESTION_KEYS = frozenset(
    {"id", "type", "label", "hint", "relevant", "dimension", "sensitive"}
)
_TYPE_KEYS = {
    SINGLE_CHOICE: frozenset({"options"}),
    MULTIPLE_CHOICE: frozenset({"options"}),
    RATING: frozenset({"min", "max"}),
    NUMBER: frozenset({"min", "max", "integer"}),
    DATE: frozenset(),
    FREE_TEXT: frozenset({"max_length"}),
}
_OPTION_KEYS = frozenset({"code", "label"})


class _Errors:
    """Collects messages per path so a caller sees every problem at once."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.by_path.setdefault(path, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_path)


def _check_condition(
    condition: Any,
    path: str,
    earlier: Mapping[str, dict],
    all_ids: set[str],
    errors: _Errors,
    depth: int = 0,
) -> None:
    if depth > MAX_CONDITION_DEPTH:
        errors.add(path, f"conditions may nest at most {MAX_CONDITION_DEPTH} levels deep")
        return
    if not isinstance(condition, Mapping):
        errors.add(path, "a condition must be an object")
        return
    forms = [key for key in ("question", "all", "any", "not") if key in condition]
    if len(forms) != 1:
        errors.add(path, 'a condition has exactly one of "question", "all", "any", "not"')
        return
    form = forms[0]
    if form in ("all", "any"):
        if set(condition) != {form}:
            errors.add(path, f'"{form}" cannot be combined with other keys')
        parts = condition[form]
        if not isinstance(parts, list) or not parts:
            errors.add(f"{path}.{form}", "must be a non-empty list of conditions")
            return
        for i, part in enumerate(parts):
            _check_condition(part, f"{path}.{form}[{i}]", earlier, all_ids, errors, depth + 1)
        return
    if form == "not":
        if set(condition) != {"not"}:
            errors.add(path, '"not" cannot be combined with other keys')
        _check_condition(condition["not"], f"{path}.not", earlier, all_ids, errors, depth + 1)
        return

    extra = set(condition) - {"question", "op", "value"}
    if extra:
        errors.add(path, f"unknown keys: {', '.join(sorted(map(str, extra)))}")
    qid = condition.get("question")
    op = condition.get("op")
    if op not in CONDITION_OPS:
        errors.add(f"{path}.op", f"must be one of {', '.join(CONDITION_OPS)}")
        return
    if not isinstance(qid, str) or qid not in earlier:
        if isinstance(qid, str) and qid in all_ids:
            errors.add(
                f"{path}.question", f"refers to question {qid!r}, which does not come earlier"
            )
        else:
            errors.add(f"{path}.question", f"refers to unknown question {qid!r}")
        return
    target = earlier[qid]
    qtype = target.get("type")
    has_value = "value" in condition
    value = condition.get("value")
    vpath = f"{path}.value"
    if op == "answered":
        if has_value:
            errors.add(vpath, '"answered" takes no value; wrap it in "not" for unanswered')
        return
    if not has_value:
        errors.add(vpath, f'"{op}" needs a value')
        return
    if qtype == FREE_TEXT:
        errors.add(f"{path}.op", 'free-text answers can only be tested with "answered"')
        return
    if op == "includes":
        if qtype != MULTIPLE_CHOICE:
            errors.add(f"{path}.op", '"includes" applies to multiple-choice questions only')
        elif value not in _option_codes(target):
            errors.add(vpath, f"{value!r} is not an option of question {qid!r}")
        return
    if qtype == MULTIPLE_CHOICE:
        errors.add(f"{path}.op", 'use "includes" or "answered" with a multiple-choice question')
        return
    if qtype == SINGLE_CHOICE:
        if op in ORDER_OPS:
            errors.add(f"{path}.op", f'"{op}" does not apply to a single-choice question')
        elif value not in _option_codes(target):
            errors.add(vpath, f"{value!r} is not an option of question {qid!r}")
        return
    if qtype in (NUMBER, RATING):
        if not is_number(value):
            errors.add(vpath, "must be a number")
        return
    if qtype == DATE and parse_iso_date(value) is None:
        errors.add(vpath, "must be a date as YYYY-MM-DD")


def _option_codes(question: Mapping[str, Any]) -> list[Any]:
    return [o.get("code") for o in question.get("options") or [] if isinstance(o, Mapping)]


# ---------------------------------------------------------------- structure


def _check_text(value: Any, path: str, errors: _Errors, *, nullable: bool) -> None:
    if value is None:
        if not nullable:
            errors.add(path, "is required (an object of language -> text)")
        return
    if not isinstance(value, Mapping):
        errors.add(path, "must be an object of language -> text")
        return
    for lang, text in value.items():
        if lang not in UN_LANGUAGES:
            errors.add(path, f"unknown language {lang!r}; use one of {', '.join(UN_LANGUAGES)}")
        elif not isinstance(text, str):
            errors.add(path, f"text for {lang!r} must be a string")


def _check_id(value: Any, path: str, seen: set[str], errors: _Errors) -> bool:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        errors.add(
            path, "must start with a letter or _ and use only letters, digits, _ and - (max 64)"
        )
        return False
    if value in seen:
        errors.add(path, f"duplicate id {value!r}")
        return False
    seen.add(value)
    return True


def _check_bool(question: dict, key: str, path: str, errors: _Errors) -> None:
    value = question.setdefault(key, False)
    if not isinstance(value, bool):
        errors.add(f"{path}.{key}", "must be true or false")


def _check_question(
    question: Any,
    path: str,
    seen: set[str],
    earlier: dict[str, dict],
    all_ids: set[str],
    errors: _Errors,
) -> dict | None:
    if not isinstance(question, dict):
        errors.add(path, "a question must be an object")
        return None
    _check_id(question.get("id"), f"{path}.id", seen, errors)
    qtype = question.get("type")
    if qtype not in QUESTION_TYPES:
        errors.add(
            f"{path}.type", f"unknown type {qtype!r}; use one of {', '.join(QUESTION_TYPES)}"
        )
        return None
    allowed = _COMMON_QUESTION_KEYS | _TYPE_KEYS[qtype]
    for key in sorted(set(question) - allowed, key=str):
        if key == "required":
            errors.add(
                f"{path}.required", "every question can be skipped; there is no required flag"
            )
        else:
            errors.add(f"{path}.{key}", f"not a field of a {qtype} question")

    _check_text(question.get("label"), f"{path}.label", errors, nullable=False)
    question.setdefault("hint", None)
    _check_text(question["hint"], f"{path}.hint", errors, nullable=True)
    _check_bool(question, "sensitive", path, errors)
    _check_bool(question, "dimension", path, errors)
    if question["dimension"] is True and qtype not in CHOICE_TYPES:
        errors.add(
            f"{path}.dimension", "only single- and multiple-choice questions can be dimensions"
        )

    if qtype in CHOICE_TYPES:
        _check_options(question, path, errors)
    elif qtype == RATING:
        low, high = rating_bounds(question)
        question["min"], question["max"] = low, high
        ok = True
        for key, bound in (("min", low), ("max", high)):
            if isinstance(bound, bool) or not isinstance(bound, int):
                errors.add(f"{path}.{key}", "must be a whole number")
                ok = False
        if ok and not (low < high and high - low + 1 <= MAX_RATING_POINTS):
            errors.add(
                f"{path}.max",
                f"a rating runs from min to a larger max, at most {MAX_RATING_POINTS} points",
            )
    elif qtype == NUMBER:
        question.setdefault("min", None)
        question.setdefault("max", None)
        _check_bool(question, "integer", path, errors)
        low, high = question["min"], question["max"]
        ok = True
        for key, bound in (("min", low), ("max", high)):
            if bound is not None and not is_number(bound):
                errors.add(f"{path}.{key}", "must be a finite number or null")
                ok = False
        if ok and low is not None and high is not None:
            if low > high:
                errors.add(f"{path}.max", "must not be less than min")
            elif question["integer"] is True and math.floor(high) < math.ceil(low):
                errors.add(f"{path}.max", "no whole number lies between min and max")
    elif qtype == FREE_TEXT:
        question.setdefault("max_length", DEFAULT_MAX_LENGTH)
        limit = question["max_length"]
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_FREE_TEXT_LENGTH
        ):
            errors.add(
                f"{path}.max_length", f"must be a whole number from 1 to {MAX_FREE_TEXT_LENGTH}"
            )

    question.setdefault("relevant", None)
    if question["relevant"] is not None:
        _check_condition(question["relevant"], f"{path}.relevant", earlier, all_ids, errors)
    return question


def _check_options(question: dict, path: str, errors: _Errors) -> None:
    options = question.get("options")
    minimum = 2 if question["type"] == SINGLE_CHOICE else 1
    if not isinstance(options, list) or len(options) < minimum:
        errors.add(
            f"{path}.options", f"a {question['type']} question needs at least {minimum} options"
        )
        return
    codes: set[str] = set()
    for i, option in enumerate(options):
        opath = f"{path}.options[{i}]"
        if not isinstance(option, dict):
            errors.add(opath, "an option must be an object with code and label")
            continue
        extra = set(option) - _OPTION_KEYS
        if extra:
            errors.add(opath, f"unknown keys: {', '.join(sorted(map(str, extra)))}")
        code = option.get("code")
        if not isinstance(code, str) or not CODE_PATTERN.match(code):
            errors.add(f"{opath}.code", "must use only letters, digits, _ and - (max 64)")
        elif code in codes:
            errors.add(f"{opath}.code", f"duplicate option code {code!r}")
        else:
            codes.add(code)
        _check_text(option.get("label"), f"{opath}.label", errors, nullable=False)


def _all_question_ids(defn: Mapping[str, Any]) -> set[str]:
    ids = set()
    for section in defn.get("sections") or []:
        if isinstance(section, Mapping):
            for question in section.get("questions") or []:
                if isinstance(question, Mapping) and isinstance(question.get("id"), str):
                    ids.add(question["id"])
    return ids


def _structure_errors(defn: Any) -> tuple[dict | None, _Errors]:
    errors = _Errors()
    if not isinstance(defn, Mapping):
        errors.add("", "a survey definition must be an object")
        return None, errors
    defn = copy.deepcopy(dict(defn))
    for key in sorted(set(defn) - _DEFINITION_KEYS, key=str):
        errors.add(str(key), "not a field of a survey definition")

    languages = defn.get("languages")
    if not isinstance(languages, list) or not languages:
        errors.add("languages", "must be a non-empty list of language codes")
    else:
        for i, lang in enumerate(languages):
            if lang not in UN_LANGUAGES:
                errors.add(
                    f"languages[{i}]",
                    f"unknown language {lang!r}; use one of {', '.join(UN_LANGUAGES)}",
                )
        if len(set(map(str, languages))) != len(languages):
            errors.add("languages", "each language may appear once")

    sections = defn.get("sections")
    if not isinstance(sections, list) or not sections:
        errors.add("sections", "a survey needs at least one section")
        return defn, errors

    all_ids = _all_question_ids(defn)
    seen: set[str] = set()
    earlier: dict[str, dict] = {}
    dimensions: list[str] = []
    for s_index, section in enumerate(sections):
        spath = f"sections[{s_index}]"
        if not isinstance(section, dict):
            errors.add(spath, "a section must be an object")
            continue
        for key in sorted(set(section) - _SECTION_KEYS, key=str):
            errors.add(f"{spath}.{key}", "not a field of a section")
        _check_id(section.get("id"), f"{spath}.id", seen, errors)
        _check_text(section.get("title"), f"{spath}.title", errors, nullable=False)
        section.setdefault("content_warning", None)
        _check_text(section["content_warning"], f"{spath}.content_warning", errors, nullable=True)
        section.setdefault("relevant", None)
        if section["relevant"] is not None:
            # A section's condition sees only questions of earlier sections.
            _check_condition(section["relevant"], f"{spath}.relevant", earlier, all_ids, errors)
        questions = section.get("questions")
        if not isinstance(questions, list) or not questions:
            errors.add(f"{spath}.questions", "a section needs at least one question")
            continue
        for q_index, question in enumerate(questions):
            qpath = f"{spath}.questions[{q_index}]"
            checked = _check_question(question, qpath, seen, earlier, all_ids, errors)
            if checked is None:
                continue
            if isinstance(checked.get("id"), str):
                earlier.setdefault(checked["id"], checked)
            if checked.get("dimension") is True and checked["type"] in CHOICE_TYPES:
                dimensions.append(str(checked.get("id")))
    if len(dimensions) > MAX_DIMENSIONS:
        errors.add(
            "dimensions",
            f"at most {MAX_DIMENSIONS} questions may be dimensions, found {len(dimensions)}: "
            + ", ".join(dimensions),
        )
    return defn, errors


def validate_definition(defn: Any) -> dict:
    """Check the structure and skip logic of a survey version.

    Returns a normalised deep copy with defaults filled in (hint,
    content_warning and relevant None; dimension, sensitive and integer
    False; rating 1..5; free-text max_length 2000).
    Raises ValidationFailed with `errors` keyed by path, e.g.
    "sections[0].questions[2].options", for duplicate ids, unknown types or
    fields, missing options, bad bounds, conditions that refer to later or
    unknown questions, dimensions on non-choice questions or more than three
    of them. Missing translations are not checked here (see
    `check_translations`), so drafts can be saved half translated.
    """
    normalised, errors = _structure_errors(defn)
    if errors:
        raise ValidationFailed("The survey definition is not valid.", errors=errors.by_path)
    assert normalised is not None  # noqa: S101 for mypy: no errors means it was normalised
    return normalised


# ---------------------------------------------------------------- translations


def _translation_errors(defn: Any) -> _Errors:
    errors = _Errors()
    if not isinstance(defn, Mapping):
        return errors
    languages = [lang for lang in defn.get("languages") or [] if isinstance(lang, str)]

    def need(text: Any, path: str) -> None:
        text = text if isinstance(text, Mapping) else {}
        for lang in languages:
            value = text.get(lang)
            if not isinstance(value, str) or not value.strip():
                errors.add(path, f"missing translation for {lang!r}")

    for s_index, section in enumerate(defn.get("sections") or []):
        if not isinstance(section, Mapping):
            continue
        spath = f"sections[{s_index}]"
        need(section.get("title"), f"{spath}.title")
        if section.get("content_warning") is not None:
            need(section["content_warning"], f"{spath}.content_warning")
        for q_index, question in enumerate(section.get("questions") or []):
            if not isinstance(question, Mapping):
                continue
            qpath = f"{spath}.questions[{q_index}]"
            need(question.get("label"), f"{qpath}.label")
            if question.get("hint") is not None:
                need(question["hint"], f"{qpath}.hint")
            for o_index, option in enumerate(question.get("options") or []):
                if isinstance(option, Mapping):
                    need(option.get("label"), f"{qpath}.options[{o_index}].label")
    return errors


def check_translations(defn: Any) -> None:
    """Check that every text exists, non-blank, in every declared language.

    Returns None when complete. Raises ValidationFailed whose `errors` map
    each path (e.g. "sections[1].questions[0].options[2].label") to messages
    naming each missing language.
    """
    errors = _translation_errors(defn)
    if errors:
        raise ValidationFailed("Some texts are not translated.", errors=errors.by_path)


def publishable(defn: Any) -> dict:
    """Check that a survey version can be published: valid and fully translated.

    Returns the normalised definition (as `validate_definition`). Raises
    ValidationFailed carrying structure and translation errors together, so
    an organiser sees everything left to fix in one go.
    """
    normalised, errors = _structure_errors(defn)
    for path, messages in _translation_errors(defn).by_path.items():
        for message in messages:
            errors.add(path, message)
    if errors:
        raise ValidationFailed("The survey cannot be published yet.", errors=errors.by_path)
    assert normalised is not None  # noqa: S101 for mypy: no errors means it was normalised
    return normalised


# ---------------------------------------------------------------- event summary


def published_questions(defn: Mapping[str, Any]) -> list[dict]:
    """The `questions` list of the consultation.published event payload.

    One entry per question in survey order: {id, type, options: [codes]
    (empty for non-choice types), dimension, min, max, label, option_labels}
    where min/max are the rating scale or the number bounds, None otherwise;
    `label` is the question's wording by language and `option_labels` each
    option's label by language (released figures are read in these words).
    Expects a definition that passed `validate_definition`.
    """
    summary = []
    for _, _, _, question in iter_questions(defn):
        qtype = question["type"]
        low = high = None
        if qtype == RATING:
            low, high = rating_bounds(question)
        elif qtype == NUMBER:
            low, high = question.get("min"), question.get("max")
        summary.append(
            {
                "id": question["id"],
                "type": qtype,
                "options": [o["code"] for o in question.get("options") or []]
                if qtype in CHOICE_TYPES
                else [],
                "dimension": bool(question.get("dimension", False)),
                "min": low,
                "max": high,
                "label": _texts(question.get("label")),
                "option_labels": {
                    o["code"]: _texts(o.get("label")) for o in question.get("options") or []
                }
                if qtype in CHOICE_TYPES
                else {},
            }
        )
    return summary


def _texts(value: Any) -> dict[str, str]:
    """A translated text as {language: text}, leaving out anything that is not a string."""
    if not isinstance(value, Mapping):
        return {}
    return {lang: text for lang, text in value.items() if isinstance(text, str)}
