"""Survey definitions: the plain-data shape of a survey version and its rules.

A survey version is a dict::

    {"languages": ["ar", "en"],
     "sections": [{"id", "title": {lang: str}, "content_warning": {lang: str} | None,
                   "relevant": condition | None,
                   "questions": [{"id", "type", "label": {lang: str}, "hint": {lang: str} | None,
                                  "options": [{"code", "label": {lang: str}}],   # choice types
                                  "min", "max",          # number (optional), rating (default 1..5)
                                  "integer": bool,       # number
                                  "max_length": int,     # free_text (default 2000)
                                  "relevant": condition | None,
                                  "dimension": bool,     # choice questions only, at most 3
                                  "sensitive": bool}]}]}

Every question can be skipped and offers "prefer not to say": there is no
"required" flag on purpose, so a definition that carries one is rejected.

Conditions (skip logic) are plain JSON::

    {"question": "q1", "op": "equals", "value": "yes"}
    {"all": [cond, ...]}   {"any": [cond, ...]}   {"not": cond}

ops: equals, not_equals (single choice, number, rating, date), includes
(multiple choice), gt/gte/lt/lte (number, rating, date), answered (any type).
A comparison with a question that has no answer (skipped, declined or hidden)
is false, and so is `not_equals`; `{"not": {... "equals" ...}}` is true then.
A condition may refer only to questions that come before it.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

# The six UN official languages; a survey version declares a subset, none privileged.
UN_LANGUAGES: tuple[str, ...] = ("ar", "zh", "en", "fr", "ru", "es")

SINGLE_CHOICE = "single_choice"
MULTIPLE_CHOICE = "multiple_choice"
RATING = "rating"
NUMBER = "number"
DATE = "date"
FREE_TEXT = "free_text"
QUESTION_TYPES: tuple[str, ...] = (SINGLE_CHOICE, MULTIPLE_CHOICE, RATING, NUMBER, DATE, FREE_TEXT)
CHOICE_TYPES = frozenset({SINGLE_CHOICE, MULTIPLE_CHOICE})

MAX_DIMENSIONS = 3
DEFAULT_RATING_MIN, DEFAULT_RATING_MAX = 1, 5
# A scale wider than 11 points (0..10) is a number question, not a rating.
MAX_RATING_POINTS = 11
DEFAULT_MAX_LENGTH = 2000
MAX_FREE_TEXT_LENGTH = 10000
MAX_CONDITION_DEPTH = 8

# Ids and codes end up as keys in stored documents and events: no dots, no "$".
ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ISO_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")

CONDITION_OPS = ("equals", "not_equals", "includes", "gt", "gte", "lt", "lte", "answered")
ORDER_OPS = frozenset({"gt", "gte", "lt", "lte"})


def is_number(value: Any) -> bool:
    """True for finite ints and floats; bool is not a number here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def parse_iso_date(value: Any) -> _dt.date | None:
    """The date for a strict "YYYY-MM-DD" string, or None when it is not one."""
    if not isinstance(value, str) or not ISO_DATE_PATTERN.match(value):
        return None
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        return None


# ---------------------------------------------------------------- traversal


def iter_questions(defn: Mapping[str, Any]) -> Iterator[tuple[int, int, dict, dict]]:
    """Yield (section_index, question_index, section, question) in survey order."""
    for s_index, section in enumerate(defn.get("sections") or []):
        for q_index, question in enumerate(section.get("questions") or []):
            yield s_index, q_index, section, question


def questions_by_id(defn: Mapping[str, Any]) -> dict[str, dict]:
    """Every question of a (valid) definition keyed by id, in survey order."""
    return {q["id"]: q for _, _, _, q in iter_questions(defn)}


def rating_bounds(question: Mapping[str, Any]) -> tuple[int, int]:
    """(min, max) of a rating question, defaults applied."""
    low = question.get("min")
    high = question.get("max")
    return (
        DEFAULT_RATING_MIN if low is None else low,
        DEFAULT_RATING_MAX if high is None else high,
    )


# ---------------------------------------------------------------- conditions


def condition_references(condition: Any) -> list[str]:
    """Question ids a condition reads, in the order they appear."""
    if not isinstance(condition, Mapping):
        return []
    if "question" in condition:
        return [condition["question"]]
    refs: list[str] = []
    for key in ("all", "any"):
        for part in condition.get(key) or []:
            refs.extend(condition_references(part))
    if "not" in condition:
        refs.extend(condition_references(condition["not"]))
    return refs


def condition_holds(condition: Mapping[str, Any] | None, answers: Mapping[str, Any]) -> bool:
    """Evaluate a (validated) condition against normalised answers.

    `answers` holds only the answers that count: given, not declined, and to
    questions that are shown. None means "always shown". A comparison with a
    missing answer is false.
    """
    if condition is None:
        return True
    if "all" in condition:
        return all(condition_holds(part, answers) for part in condition["all"])
    if "any" in condition:
        return any(condition_holds(part, answers) for part in condition["any"])
    if "not" in condition:
        return not condition_holds(condition["not"], answers)
    op = condition["op"]
    qid = condition["question"]
    if qid not in answers:
        return False
    answer = answers[qid]
    if op == "answered":
        return True
    value = condition.get("value")
    if op == "equals":
        return answer == value
    if op == "not_equals":
        return answer != value
    if op == "includes":
        return isinstance(answer, list) and value in answer
    # Dates are ISO strings, so string order is date order.
    if op == "gt":
        return answer > value
    if op == "gte":
        return answer >= value
    if op == "lt":
        return answer < value
    if op == "lte":
        return answer <= value
    raise ValueError(f"unknown condition op {op!r}")  # validated definitions never get here
