"""Answers to a survey version: checking, normalising, skip logic, free-text split.

Answers are a dict {question_id: value}; `declined` lists the questions the
participant answered with "prefer not to say". Everything is skippable, so
any subset is a valid partial response. A blank value (None, "" or only
whitespace) means "not answered" for every type, because web forms send
every field whether filled in or not.

Expects a definition that passed the surveys service's `validate_definition`.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.errors import NotFound, ValidationFailed
from shared.questionnaire.definition import (
    DATE,
    DEFAULT_MAX_LENGTH,
    FREE_TEXT,
    MULTIPLE_CHOICE,
    NUMBER,
    RATING,
    SINGLE_CHOICE,
    condition_holds,
    iter_questions,
    parse_iso_date,
    questions_by_id,
    rating_bounds,
)


class _Invalid(Exception):
    """One answer that does not fit its question; the message is for the participant."""


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_whole_number(value: Any) -> int:
    """An int from an int, an integral float, or a numeric string (web forms post strings)."""
    if isinstance(value, bool):
        raise _Invalid("must be a whole number")
    if isinstance(value, int):
        return value
    number = _as_number(value)
    if number != math.floor(number):
        raise _Invalid("must be a whole number")
    return int(number)


def _as_number(value: Any) -> float | int:
    """An int or finite float from a number or a numeric string."""
    if isinstance(value, bool):
        raise _Invalid("must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, (str, Decimal)):
        try:
            value = float(Decimal(value.strip() if isinstance(value, str) else value))
        except (InvalidOperation, OverflowError):
            raise _Invalid("must be a number") from None
    if not isinstance(value, float):
        raise _Invalid("must be a number")
    if not math.isfinite(value):
        raise _Invalid("must be a finite number")
    return value


def _as_float(value: Any) -> float:
    try:
        return float(_as_number(value))
    except OverflowError:
        raise _Invalid("must be a finite number") from None


def normalise_answer(question: Mapping[str, Any], value: Any) -> Any:
    """The stored form of one non-blank answer, or _Invalid with a reason."""
    qtype = question["type"]
    if qtype == SINGLE_CHOICE:
        codes = [o["code"] for o in question["options"]]
        if not isinstance(value, str) or value not in codes:
            raise _Invalid(f"must be one of: {', '.join(codes)}")
        return value
    if qtype == MULTIPLE_CHOICE:
        codes = [o["code"] for o in question["options"]]
        if not isinstance(value, (list, tuple)) or not value:
            raise _Invalid(
                "must be a non-empty list of option codes (skip the question to give none)"
            )
        if not all(isinstance(code, str) for code in value):
            raise _Invalid("option codes must be strings")
        unknown = [code for code in value if code not in codes]
        if unknown:
            raise _Invalid(f"unknown options: {', '.join(unknown)}; choose from {', '.join(codes)}")
        if len(set(value)) != len(value):
            raise _Invalid("each option may be chosen once")
        # Option order, not click order, so equal answers compare equal downstream.
        return [code for code in codes if code in value]
    if qtype == RATING:
        low, high = rating_bounds(question)
        rating = _as_whole_number(value)
        if not low <= rating <= high:
            raise _Invalid(f"must be from {low} to {high}")
        return rating
    if qtype == NUMBER:
        if question.get("integer"):
            number: int | float = _as_whole_number(value)
        else:
            number = _as_float(value)
        least, most = question.get("min"), question.get("max")
        if least is not None and number < least:
            raise _Invalid(f"must be at least {least}")
        if most is not None and number > most:
            raise _Invalid(f"must be at most {most}")
        return number
    if qtype == DATE:
        if isinstance(value, str):
            value = value.strip()
        if parse_iso_date(value) is None:
            raise _Invalid("must be a real date written YYYY-MM-DD")
        return value
    if qtype == FREE_TEXT:
        if not isinstance(value, str):
            raise _Invalid("must be text")
        # NFC so the same words typed on different keyboards count the same length.
        text = unicodedata.normalize("NFC", value.strip())
        limit = question.get("max_length", DEFAULT_MAX_LENGTH)
        if len(text) > limit:
            raise _Invalid(f"must be at most {limit} characters (got {len(text)})")
        return text
    raise ValueError(f"unknown question type {qtype!r}")  # validated definitions never get here


class _Walk:
    """One pass over the survey in order, deciding visibility as answers accumulate."""

    def __init__(
        self, defn: Mapping[str, Any], answers: Mapping[str, Any], declined: Iterable[str]
    ):
        self.errors: dict[str, list[str]] = {}
        self.accepted: dict[str, Any] = {}  # normalised answers of shown questions
        self.hidden: set[str] = set()
        self.visible: list[dict] = []
        declined_set = set(declined)
        for _, _, section, question in iter_questions(defn):
            qid = question["id"]
            # Conditions only ever read answers of earlier, shown questions.
            shown = condition_holds(section.get("relevant"), self.accepted) and condition_holds(
                question.get("relevant"), self.accepted
            )
            raw = answers.get(qid)
            answered = qid in answers and not _is_blank(raw)
            if not shown:
                self.hidden.add(qid)
                if answered or qid in declined_set:
                    self._fail(qid, f"question {qid} is not shown for these answers")
                continue
            if not self.visible or self.visible[-1]["section_id"] != section["id"]:
                self.visible.append({"section_id": section["id"], "question_ids": []})
            self.visible[-1]["question_ids"].append(qid)
            if answered and qid in declined_set:
                self._fail(qid, f"question {qid} is both answered and declined")
            elif answered:
                try:
                    self.accepted[qid] = normalise_answer(question, raw)
                except _Invalid as exc:
                    self._fail(qid, str(exc))

    def _fail(self, qid: str, message: str) -> None:
        self.errors.setdefault(qid, []).append(message)


def _check_containers(answers: Any, declined: Any) -> list[str]:
    errors: dict[str, list[str]] = {}
    if not isinstance(answers, Mapping):
        errors["answers"] = ["must be an object of question id -> answer"]
    if isinstance(declined, (str, bytes, Mapping)) or not isinstance(declined, Iterable):
        declined = None
    else:
        declined = list(declined)  # may be a one-shot iterator
    if declined is None or not all(isinstance(qid, str) for qid in declined):
        errors["declined"] = ["must be a list of question ids"]
    if errors:
        raise ValidationFailed("The answers are not in the expected shape.", errors=errors)
    return declined


def validate_answers(
    defn: Mapping[str, Any], answers: Mapping[str, Any], declined: Iterable[str] = ()
) -> dict:
    """Check a (possibly partial) response and return its normalised answers.

    Returns {question_id: value} in survey order, blank answers dropped:
    single choice -> code; multiple choice -> codes in option order; rating
    -> int; number -> int if the question is integer else float; date ->
    "YYYY-MM-DD"; free text -> stripped NFC string. Duplicates in `declined`
    are harmless; use `declined_questions` for the clean list.
    Raises ValidationFailed with `errors` keyed by question id for: unknown
    question ids (in answers or declined), answers that do not fit their
    question, answers to or declines of questions that skip logic hides for
    these answers, and questions both answered and declined.
    """
    declined = _check_containers(answers, declined)
    known = questions_by_id(defn)
    errors: dict[str, list[str]] = {}
    for qid in list(answers) + declined:
        if qid not in known:
            errors[str(qid)] = [f"unknown question {qid!r}"]
    walk = _Walk(defn, answers, declined)
    for qid, messages in walk.errors.items():
        errors.setdefault(qid, []).extend(messages)
    if errors:
        raise ValidationFailed("Some answers cannot be accepted.", errors=errors)
    return walk.accepted


def declined_questions(defn: Mapping[str, Any], declined: Iterable[str]) -> list[str]:
    """The declined question ids, deduplicated, in survey order, unknown ids dropped.

    Call after `validate_answers` succeeded, for the stored response and the
    response.submitted event.
    """
    wanted = set(declined)
    return [q["id"] for _, _, _, q in iter_questions(defn) if q["id"] in wanted]


def visible_questions(defn: Mapping[str, Any], answers: Mapping[str, Any]) -> list[dict]:
    """Which sections and questions to show for the answers given so far.

    Returns [{"section_id", "question_ids": [...]}] in survey order, leaving
    out hidden questions and sections with nothing to show. Never raises for
    bad answers: an answer that does not fit, or to a hidden question, simply
    counts as not given, so the pages can be rendered while the participant
    is still correcting things.
    """
    return _Walk(defn, answers if isinstance(answers, Mapping) else {}, ()).visible


def next_section(
    defn: Mapping[str, Any], answers: Mapping[str, Any], after: str | None = None
) -> str | None:
    """The id of the first shown section after section `after` (or the first one), None at the end.

    Sections hidden by skip logic, or with all their questions hidden, are
    passed over. Raises NotFound if `after` is not a section of this survey.
    """
    order = [section["id"] for section in defn["sections"]]
    if after is not None and after not in order:
        raise NotFound(f"Section {after!r} is not part of this survey.")
    start = -1 if after is None else order.index(after)
    shown = {entry["section_id"] for entry in visible_questions(defn, answers)}
    for section_id in order[start + 1 :]:
        if section_id in shown:
            return section_id
    return None


def drop_hidden(
    defn: Mapping[str, Any], answers: Mapping[str, Any], declined: Iterable[str] = ()
) -> tuple[dict, list[str]]:
    """Forget answers and declines to questions that the current answers hide.

    For the web flow: when a participant goes back and changes an earlier
    answer, follow-up answers that no longer apply are cleared (as ODK does)
    instead of failing the submission. Values are returned as given, not
    normalised; unknown question ids are kept so `validate_answers` still
    reports them.
    """
    declined = list(declined)
    hidden = _Walk(defn, answers, declined).hidden
    kept = {qid: value for qid, value in answers.items() if qid not in hidden}
    return kept, [qid for qid in declined if qid not in hidden]


def split_free_text(defn: Mapping[str, Any], answers: Mapping[str, Any]) -> tuple[dict, dict]:
    """Separate free text from the rest of a normalised response.

    Returns (structured_answers, free_text_answers): the first may go into
    events and projections; the second must be encrypted per participant
    and never published (its keys are the event's free_text_questions).
    Raises ValidationFailed for question ids the survey does not have.
    """
    known = questions_by_id(defn)
    unknown = [qid for qid in answers if qid not in known]
    if unknown:
        raise ValidationFailed(
            "Some answers cannot be accepted.",
            errors={str(qid): [f"unknown question {qid!r}"] for qid in unknown},
        )
    structured: dict[str, Any] = {}
    free_text: dict[str, str] = {}
    for qid, value in answers.items():
        (free_text if known[qid]["type"] == FREE_TEXT else structured)[qid] = value
    return structured, free_text
