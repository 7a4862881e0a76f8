"""How a consultation is going, as counts only: responses over time, and per section how many were
shown it, answered in it, completed it and stopped there.

Pure domain: takes plain data (the survey definition and, per stored response, when it was sent,
which questions it answered and which it declined) and returns plain data. No answer value leaves
this module; values are read only to decide which sections skip logic showed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.surveys.answers import visible_questions
from services.surveys.questionnaire import condition_references, iter_questions

# Bucket widths tried in order: the first that keeps the series under MAX_BUCKETS points wins, so
# a day-old consultation is shown by the hour and a year-old one by the week.
UNITS: tuple[tuple[str, timedelta], ...] = (
    ("hour", timedelta(hours=1)),
    ("day", timedelta(days=1)),
    ("week", timedelta(weeks=1)),
)
MAX_BUCKETS = 200
# Stands in for a free-text answer, which is sealed: skip logic on text only asks whether it was given.
_GIVEN_TEXT = "\u2026"


@dataclass(frozen=True)
class StoredResponse:
    """What progress needs of one kept response."""

    submitted_at: datetime
    answers: Mapping[str, Any]  # structured answers (choices, numbers, dates)
    free_text_questions: frozenset[str] = frozenset()
    declined: frozenset[str] = frozenset()
    awaiting_delivery: bool = False  # its response.submitted event is not relayed yet


@dataclass
class SectionProgress:
    section_id: str
    title: Mapping[str, str]
    shown: int = 0
    answered: int = 0
    completed: int = 0
    stopped_here: int = 0


@dataclass
class Progress:
    submitted: int
    awaiting_delivery: int
    unit: str
    over_time: list[dict[str, Any]]
    sections: list[SectionProgress] = field(default_factory=list)
    first_at: datetime | None = None
    last_at: datetime | None = None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _floor(moment: datetime, unit: str) -> datetime:
    moment = _utc(moment).replace(minute=0, second=0, microsecond=0)
    if unit == "hour":
        return moment
    moment = moment.replace(hour=0)
    if unit == "day":
        return moment
    return moment - timedelta(days=moment.weekday())  # weeks start on Monday (ISO 8601)


def choose_unit(first: datetime | None, now: datetime) -> tuple[str, timedelta]:
    """The narrowest bucket width that shows the span from `first` to `now` in MAX_BUCKETS points."""
    span = timedelta(0) if first is None else _utc(now) - _utc(first)
    for unit, width in UNITS:
        if span <= width * (MAX_BUCKETS - 1):
            return unit, width
    return UNITS[-1]


def responses_over_time(
    times: Iterable[datetime], now: datetime
) -> tuple[str, list[dict[str, Any]]]:
    """Responses sent per period from the first one up to `now`, empty periods included.

    Returns (unit, [{"start": datetime, "submitted": n, "total": running total}]), oldest first;
    no points when nothing was sent.
    """
    moments = sorted(_utc(t) for t in times)
    if not moments:
        return UNITS[0][0], []
    unit, width = choose_unit(moments[0], now)
    start = _floor(moments[0], unit)
    end = _floor(max(_utc(now), moments[-1]), unit)
    counts: dict[datetime, int] = {}
    for moment in moments:
        bucket = _floor(moment, unit)
        counts[bucket] = counts.get(bucket, 0) + 1
    points = []
    total = 0
    bucket = start
    while bucket <= end:
        total += counts.get(bucket, 0)
        points.append({"start": bucket, "submitted": counts.get(bucket, 0), "total": total})
        bucket += width
    return unit, points


def _skip_logic_inputs(definition: Mapping[str, Any]) -> list[str]:
    """Question ids whose answers decide what is shown (the only values visibility depends on)."""
    referenced: list[str] = []
    for _, _, section, question in iter_questions(definition):
        for condition in (section.get("relevant"), question.get("relevant")):
            if condition:
                referenced.extend(condition_references(condition))
    return sorted(set(referenced))


def section_progress(
    definition: Mapping[str, Any], responses: Iterable[StoredResponse]
) -> list[SectionProgress]:
    """Per section of `definition`, in survey order, counted over `responses`.

    shown: skip logic showed the section; answered: at least one of its questions answered;
    completed: every shown question of it answered or declined ("prefer not to say");
    stopped_here: it is the last section the response answered or declined anything in, and a
    later section was shown (the rest was left blank).
    """
    sections = [
        SectionProgress(section_id=s["id"], title=dict(s.get("title") or {}))
        for s in definition.get("sections") or []
    ]
    by_id = {s.section_id: s for s in sections}
    order = [s.section_id for s in sections]
    inputs = _skip_logic_inputs(definition)
    visibility_cache: dict[str, list[dict]] = {}
    for response in responses:
        answers: dict[str, Any] = dict(response.answers)
        for qid in response.free_text_questions:
            answers[qid] = _GIVEN_TEXT
        # Visibility depends only on the answers conditions read: responses that agree on those
        # share one walk over the survey, which keeps 10,000 responses cheap.
        key = json.dumps([answers.get(qid) for qid in inputs], sort_keys=True, default=str)
        visible = visibility_cache.get(key)
        if visible is None:
            visible = visible_questions(definition, answers)
            visibility_cache[key] = visible
        given = set(answers) | set(response.free_text_questions)
        touched = [
            entry["section_id"]
            for entry in visible
            if any(q in given or q in response.declined for q in entry["question_ids"])
        ]
        for entry in visible:
            section = by_id.get(entry["section_id"])
            if section is None:
                continue
            questions = entry["question_ids"]
            section.shown += 1
            if any(q in given for q in questions):
                section.answered += 1
            if all(q in given or q in response.declined for q in questions):
                section.completed += 1
        if touched:
            last = touched[-1]
            shown_ids = [entry["section_id"] for entry in visible]
            if shown_ids.index(last) < len(shown_ids) - 1 and last in by_id:
                by_id[last].stopped_here += 1
    return [by_id[sid] for sid in order]


def consultation_progress(
    definition: Mapping[str, Any] | None, responses: Iterable[StoredResponse], now: datetime
) -> Progress:
    """Counts over the kept responses of a consultation: over time and per section.

    `definition` is the survey version sections are counted against (the current one; None
    before anything was published gives no sections). Responses to other versions still count
    over time and per section where their question ids match.
    """
    kept = list(responses)
    unit, points = responses_over_time((r.submitted_at for r in kept), now)
    times = [_utc(r.submitted_at) for r in kept]
    return Progress(
        submitted=len(kept),
        awaiting_delivery=sum(1 for r in kept if r.awaiting_delivery),
        unit=unit,
        over_time=points,
        sections=section_progress(definition, kept) if definition else [],
        first_at=min(times) if times else None,
        last_at=max(times) if times else None,
    )
