"""How a consultation is going, as counts only: responses over time, and per section how many were
shown it, answered in it, completed it and stopped there.

Pure domain. Every count is a sum over responses, so it is kept as a tally: what one response
adds (`response_tally`) is added when it is stored and taken away when it is erased, and the
page reads one document however many responses there are. `tally_of` computes the same tally
from every response at once (to start a tally for responses stored before it existed, and as the
reference the tests compare the running tally with). No answer value leaves this module; values
are read only to decide which sections skip logic showed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.questionnaire.answers import visible_questions
from shared.questionnaire.definition import condition_references, iter_questions

# Bucket widths tried in order: the first that keeps the series under MAX_BUCKETS points wins, so
# a day-old consultation is shown by the hour and a year-old one by the week.
UNITS: tuple[tuple[str, timedelta], ...] = (
    ("hour", timedelta(hours=1)),
    ("day", timedelta(days=1)),
    ("week", timedelta(weeks=1)),
)
MAX_BUCKETS = 200
SECTION_COUNTS = ("shown", "answered", "completed", "stopped_here")
HOUR_KEY = "%Y-%m-%dT%H"  # a tally's hour: no dots, so it can be a document key
# Stands in for a free-text answer, which is sealed: skip logic on text only asks whether it was given.
_GIVEN_TEXT = "\u2026"


@dataclass(frozen=True)
class StoredResponse:
    """What progress needs of one kept response."""

    submitted_at: datetime
    answers: Mapping[str, Any]  # structured answers (choices, numbers, dates)
    free_text_questions: frozenset[str] = frozenset()
    declined: frozenset[str] = frozenset()


@dataclass
class Progress:
    unit: str
    over_time: list[dict[str, Any]]
    sections: list[dict[str, Any]]


def as_utc(moment: datetime) -> datetime:
    """MongoDB hands datetimes back without a zone; they are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def hour_key(moment: datetime) -> str:
    return as_utc(moment).strftime(HOUR_KEY)


def _floor(moment: datetime, unit: str) -> datetime:
    moment = as_utc(moment).replace(minute=0, second=0, microsecond=0)
    if unit == "hour":
        return moment
    moment = moment.replace(hour=0)
    if unit == "day":
        return moment
    return moment - timedelta(days=moment.weekday())  # weeks start on Monday (ISO 8601)


def choose_unit(first: datetime | None, now: datetime) -> tuple[str, timedelta]:
    """The narrowest bucket width that shows the span from `first` to `now` in MAX_BUCKETS points."""
    span = timedelta(0) if first is None else as_utc(now) - as_utc(first)
    for unit, width in UNITS:
        if span <= width * (MAX_BUCKETS - 1):
            return unit, width
    return UNITS[-1]


def responses_over_time(
    counts: Iterable[tuple[datetime, int]], now: datetime
) -> tuple[str, list[dict[str, Any]]]:
    """Responses sent per period from the first one up to `now`, empty periods included.

    `counts` are (moment, how many responses were sent then), in any order. Returns (unit,
    [{"start": datetime, "submitted": n, "total": running total}]), oldest first; no points when
    nothing was sent.
    """
    moments = sorted((as_utc(moment), n) for moment, n in counts if n)
    if not moments:
        return UNITS[0][0], []
    unit, width = choose_unit(moments[0][0], now)
    start = _floor(moments[0][0], unit)
    end = _floor(max(as_utc(now), moments[-1][0]), unit)
    buckets: dict[datetime, int] = {}
    for moment, n in moments:
        bucket = _floor(moment, unit)
        buckets[bucket] = buckets.get(bucket, 0) + n
    points = []
    total = 0
    bucket = start
    while bucket <= end:
        total += buckets.get(bucket, 0)
        points.append({"start": bucket, "submitted": buckets.get(bucket, 0), "total": total})
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


class SectionCounter:
    """Per-section counts of one response against one survey definition.

    Visibility depends only on the answers skip logic reads, so responses that agree on those
    share one walk over the survey (a cache per definition): counting 10,000 responses at once
    stays cheap.
    """

    def __init__(self, definition: Mapping[str, Any]) -> None:
        self.definition = definition
        self._inputs = _skip_logic_inputs(definition)
        self._visible: dict[str, list[dict]] = {}

    def walks_kept(self) -> int:
        """How many distinct walks over the survey this counter keeps."""
        return len(self._visible)

    def counts(self, response: StoredResponse) -> dict[str, dict[str, int]]:
        """{section id: {shown, answered, completed, stopped_here}} with 0 or 1 each.

        shown: skip logic showed the section; answered: at least one of its questions answered;
        completed: every shown question of it answered or declined ("prefer not to say");
        stopped_here: the last section the response answered or declined anything in, although
        a later section was shown (the rest was left blank).
        """
        answers: dict[str, Any] = dict(response.answers)
        for qid in response.free_text_questions:
            answers[qid] = _GIVEN_TEXT
        key = json.dumps([answers.get(q) for q in self._inputs], sort_keys=True, default=str)
        visible = self._visible.get(key)
        if visible is None:
            visible = self._visible[key] = visible_questions(self.definition, answers)
        given = set(answers)
        out: dict[str, dict[str, int]] = {}
        touched = []
        for entry in visible:
            questions = entry["question_ids"]
            out[entry["section_id"]] = {
                "shown": 1,
                "answered": int(any(q in given for q in questions)),
                "completed": int(all(q in given or q in response.declined for q in questions)),
                "stopped_here": 0,
            }
            if any(q in given or q in response.declined for q in questions):
                touched.append(entry["section_id"])
        if touched and touched[-1] != visible[-1]["section_id"]:
            out[touched[-1]]["stopped_here"] = 1
        return out


def response_tally(counter: SectionCounter, response: StoredResponse) -> dict[str, int]:
    """What one stored response adds to its consultation's tally, as {dotted path: amount}."""
    tally = {"submitted": 1, f"hours.{hour_key(response.submitted_at)}": 1}
    for section_id, counts in counter.counts(response).items():
        for name, value in counts.items():
            if value:
                tally[f"sections.{section_id}.{name}"] = value
    return tally


def negated(tally: Mapping[str, int]) -> dict[str, int]:
    """What erasing a response takes away from the tally it was added to."""
    return {path: -amount for path, amount in tally.items()}


def tally_of(
    definitions: Mapping[int, Mapping[str, Any]],
    responses: Iterable[tuple[int, StoredResponse]],
) -> dict[str, Any]:
    """The tally of every (survey version, response) at once, as a nested document: {submitted,
    hours: {hour: n}, sections: {section id: {count: n}}}. `definitions` by version number."""
    counters = {number: SectionCounter(d) for number, d in definitions.items()}
    flat: dict[str, int] = {}
    for version, response in responses:
        for path, amount in response_tally(counters[version], response).items():
            flat[path] = flat.get(path, 0) + amount
    return nested(flat)


def nested(flat: Mapping[str, int]) -> dict[str, Any]:
    """{"a.b": 1} as {"a": {"b": 1}}, the shape the tally document has."""
    out: dict[str, Any] = {}
    for path, amount in flat.items():
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = node.get(leaf, 0) + amount
    return out


def report(
    definition: Mapping[str, Any] | None, tally: Mapping[str, Any], now: datetime
) -> Progress:
    """Over time and per section of `definition` (the current version; None: no sections) from a
    tally. Sections are matched by id, so responses to earlier versions count where ids agree."""
    hours = (tally.get("hours") or {}).items()
    unit, points = responses_over_time(
        ((datetime.strptime(hour, HOUR_KEY).replace(tzinfo=UTC), n) for hour, n in hours), now
    )
    counted = tally.get("sections") or {}
    sections = [
        {
            "section_id": section["id"],
            "title": dict(section.get("title") or {}),
            **{
                name: max(0, int((counted.get(section["id"]) or {}).get(name, 0)))
                for name in SECTION_COUNTS
            },
        }
        for section in ((definition or {}).get("sections") or [])
    ]
    return Progress(unit=unit, over_time=points, sections=sections)
