"""The survey as web pages: one section at a time, skip logic, "prefer not to say", progress.

Plain functions over the survey definition and the answers so far; no Flask, no I/O. Which
questions are shown, which follow-ups a changed answer clears, and whether an answer fits its
question are decided by `shared.questionnaire.answers`: the same pure rules the surveys service
applies when it takes the response, so a page never accepts what intake would refuse. (That
package has no framework, database or network code, and the gateway imports no service.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from gateway.web.i18n import N_
from shared.errors import ValidationFailed
from shared.questionnaire import answers as rules
from shared.questionnaire.definition import DEFAULT_MAX_LENGTH, questions_by_id, rating_bounds

DECLINE = "__declined__"  # the value of the "Prefer not to say" radio button
CHOICE_TYPES = ("single_choice", "multiple_choice")


# A submitted form: werkzeug's MultiDict (request.form is its immutable kind).
FormData = MultiDict[str, str]


@dataclass(frozen=True)
class Localised:
    """A survey text in the language closest to the participant's, and which language that is."""

    text: str
    lang: str


@dataclass(frozen=True)
class Problem:
    """Why an answer cannot be taken, as a catalog message and its values (translated when shown)."""

    message: str
    values: dict[str, Any] = field(default_factory=dict)
    more: str | None = None  # a second sentence, e.g. the allowed range


@dataclass
class SectionInput:
    """What one section's form said: answers (raw, as typed), declines, and answer+decline clashes."""

    answers: dict[str, Any]
    declined: set[str]
    clashes: set[str]
    raw: dict[str, Any]


def answer_field(question_id: str) -> str:
    return f"q_{question_id}"


def decline_field(question_id: str) -> str:
    return f"q_{question_id}__decline"


def localise(
    texts: Mapping[str, str] | str | None, language: str, fallbacks: Iterable[str]
) -> Localised | None:
    """`texts` in `language`, else in the first fallback that has it, else in any language it has."""
    if texts is None:
        return None
    if isinstance(texts, str):
        return Localised(texts, language)
    for candidate in (language, *fallbacks):
        if texts.get(candidate):
            return Localised(texts[candidate], candidate)
    for candidate, text in texts.items():
        if text:
            return Localised(text, candidate)
    return None


def section(defn: Mapping[str, Any], section_id: str) -> dict | None:
    return next((s for s in defn.get("sections") or [] if s["id"] == section_id), None)


def visible_sections(defn: Mapping[str, Any], answers: Mapping[str, Any]) -> list[str]:
    """Ids of the sections that have something to show for these answers, in order."""
    return [entry["section_id"] for entry in rules.visible_questions(defn, answers)]


def visible_in_section(
    defn: Mapping[str, Any], answers: Mapping[str, Any], section_id: str
) -> list[str]:
    """The question ids of one section shown for these answers (empty when the section is hidden)."""
    for entry in rules.visible_questions(defn, answers):
        if entry["section_id"] == section_id:
            return list(entry["question_ids"])
    return []


def first_section(defn: Mapping[str, Any], answers: Mapping[str, Any]) -> str | None:
    return rules.next_section(defn, answers, None)


def next_section(defn: Mapping[str, Any], answers: Mapping[str, Any], after: str) -> str | None:
    """The next shown section after `after`, or None at the end. Raises NotFound for an unknown section."""
    return rules.next_section(defn, answers, after)


def previous_section(
    defn: Mapping[str, Any], answers: Mapping[str, Any], section_id: str
) -> str | None:
    """The shown section before `section_id`, or None on the first one."""
    order = [s["id"] for s in defn.get("sections") or []]
    shown = set(visible_sections(defn, answers))
    if section_id not in order:
        return None
    earlier = [sid for sid in order[: order.index(section_id)] if sid in shown]
    return earlier[-1] if earlier else None


def progress(
    defn: Mapping[str, Any], answers: Mapping[str, Any], section_id: str
) -> tuple[int, int]:
    """(this section's place, number of sections) among the sections shown for these answers."""
    shown = visible_sections(defn, answers)
    if section_id not in shown:
        shown = [
            sid for sid in (s["id"] for s in defn["sections"]) if sid in shown or sid == section_id
        ]
    return shown.index(section_id) + 1, len(shown)


def read_section_form(
    defn: Mapping[str, Any], shown: Iterable[str], form: FormData
) -> SectionInput:
    """The answers and declines that one section's form carries for the questions it showed.

    Blank fields mean "skipped". A question answered and also marked "prefer not to say" is a
    clash: the page asks the participant to keep one, rather than guessing which they meant.
    """
    questions = questions_by_id(defn)
    answers: dict[str, Any] = {}
    declined: set[str] = set()
    clashes: set[str] = set()
    raw: dict[str, Any] = {}
    for qid in shown:
        question = questions.get(qid)
        if question is None:
            continue
        name = answer_field(qid)
        if question["type"] == "multiple_choice":
            value: Any = [v for v in form.getlist(name) if v]
            given = bool(value)
        else:
            value = form.get(name, "") or ""
            given = bool(value.strip())
        said_decline = value == DECLINE or form.get(decline_field(qid)) == "1"
        if value == DECLINE:
            value, given = "", False
        raw[qid] = value
        if said_decline and given:
            clashes.add(qid)
        elif said_decline:
            declined.add(qid)
        elif given:
            answers[qid] = (
                value.strip()
                if isinstance(value, str) and question["type"] != "free_text"
                else value
            )
    return SectionInput(answers, declined, clashes, raw)


def merge_section(
    defn: Mapping[str, Any],
    answers: Mapping[str, Any],
    declined: Iterable[str],
    shown: Iterable[str],
    given: SectionInput,
) -> tuple[dict, list[str]]:
    """The whole response after one section's form: the shown questions take the new values, and
    follow-up answers that the new values hide are forgotten (as ODK does)."""
    shown = set(shown)
    merged = {qid: value for qid, value in answers.items() if qid not in shown}
    merged.update(given.answers)
    merged_declined = [qid for qid in declined if qid not in shown] + sorted(given.declined)
    return rules.drop_hidden(defn, merged, merged_declined)


def forget_section(
    defn: Mapping[str, Any], answers: Mapping[str, Any], declined: Iterable[str], section_id: str
) -> tuple[dict, list[str]]:
    """The response with every answer and decline of one section removed (the section was skipped)."""
    ids = {q["id"] for q in (section(defn, section_id) or {}).get("questions") or []}
    kept = {qid: value for qid, value in answers.items() if qid not in ids}
    return rules.drop_hidden(defn, kept, [qid for qid in declined if qid not in ids])


def check(
    defn: Mapping[str, Any], answers: Mapping[str, Any], declined: Iterable[str]
) -> tuple[dict, list[str], dict[str, Problem]]:
    """(normalised answers, declined ids in survey order, problems by question id).

    The answers are normalised only when there is no problem; otherwise they come back as given,
    so the page can show what the participant typed next to what to change.
    """
    declined = list(declined)
    try:
        accepted = rules.validate_answers(defn, answers, declined)
    except ValidationFailed as exc:
        questions = questions_by_id(defn)
        problems = {qid: problem_for(questions.get(qid)) for qid in (exc.extra.get("errors") or {})}
        return dict(answers), declined, problems
    return accepted, rules.declined_questions(defn, declined), {}


def problem_for(question: Mapping[str, Any] | None) -> Problem:
    """What to tell a participant whose answer does not fit `question`, in plain words."""
    if question is None:
        return Problem(N_("This answer cannot be used. Please check it."))
    qtype = question["type"]
    if qtype in CHOICE_TYPES:
        return Problem(N_("Please choose from the list."))
    if qtype == "rating":
        low, high = rating_bounds(question)
        return Problem(
            N_("Please choose a number from %(low)s to %(high)s."), {"low": low, "high": high}
        )
    if qtype == "number":
        first = (
            N_("Please write a whole number.")
            if question.get("integer")
            else N_("Please write a number.")
        )
        least, most = question.get("min"), question.get("max")
        if least is not None and most is not None:
            return Problem(
                first, {"low": least, "high": most}, N_("It must be from %(low)s to %(high)s.")
            )
        if least is not None:
            return Problem(first, {"low": least}, N_("It must be %(low)s or more."))
        if most is not None:
            return Problem(first, {"high": most}, N_("It must be %(high)s or less."))
        return Problem(first)
    if qtype == "date":
        return Problem(N_("Please give a real date, like 2024-03-31."))
    if qtype == "free_text":
        return Problem(
            N_("Please write at most %(limit)s characters."),
            {"limit": question.get("max_length", DEFAULT_MAX_LENGTH)},
        )
    return Problem(N_("This answer cannot be used. Please check it."))


CLASH = Problem(N_("You chose an answer and also “Prefer not to say”. Please keep only one."))


def question_views(
    defn: Mapping[str, Any],
    question_ids: Iterable[str],
    language: str,
    fallbacks: list[str],
    values: Mapping[str, Any],
    declined: Iterable[str],
    problems: Mapping[str, Problem],
) -> list[dict[str, Any]]:
    """What the section template needs for each shown question: texts, options, current value, problem."""
    questions = questions_by_id(defn)
    declined = set(declined)
    views = []
    for qid in question_ids:
        question = questions[qid]
        value = values.get(qid)
        view: dict[str, Any] = {
            "id": qid,
            "type": question["type"],
            "field": answer_field(qid),
            "decline_field": decline_field(qid),
            "label": localise(question.get("label"), language, fallbacks),
            "hint": localise(question.get("hint"), language, fallbacks),
            "declined": qid in declined,
            "problem": problems.get(qid),
            "value": "" if value is None or isinstance(value, list) else str(value),
            # Not "values": in a template, `q.values` is the dict's own method.
            "chosen": [str(v) for v in value] if isinstance(value, list) else [],
        }
        if question["type"] in CHOICE_TYPES:
            view["options"] = [
                {"code": o["code"], "label": localise(o.get("label"), language, fallbacks)}
                for o in question["options"]
            ]
        elif question["type"] == "rating":
            low, high = rating_bounds(question)
            view["points"] = [str(point) for point in range(low, high + 1)]
        elif question["type"] == "number":
            view.update(
                min=question.get("min"),
                max=question.get("max"),
                integer=bool(question.get("integer")),
            )
        elif question["type"] == "free_text":
            view["max_length"] = question.get("max_length", DEFAULT_MAX_LENGTH)
        views.append(view)
    return views


def tally(
    defn: Mapping[str, Any], answers: Mapping[str, Any], declined: Iterable[str]
) -> dict[str, int]:
    """How many shown questions are answered, marked "prefer not to say", or left empty."""
    shown = [
        qid for entry in rules.visible_questions(defn, answers) for qid in entry["question_ids"]
    ]
    declined = set(declined)
    answered = sum(1 for qid in shown if qid in answers)
    said_no = sum(1 for qid in shown if qid in declined and qid not in answers)
    return {"answered": answered, "declined": said_no, "skipped": len(shown) - answered - said_no}
