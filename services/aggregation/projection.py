"""From events to counted contributions (pure domain).

The handler layer loads what it has stored (consultation metadata, the
contribution of a response, the tombstone of a pseudonym), calls these
functions and stores what they return. Nothing here touches storage, Kafka
or Flask.

Order independence rests on two facts:

* a tombstone only ever grows (`merge_tombstones` is a set union, so it is
  commutative, associative and idempotent), and a response that meets a
  tombstone is never stored, while a tombstone that meets a stored response
  deletes it;
* storing a contribution is an upsert keyed by the response id.

So any order and any number of redeliveries of the same events give the same
counted set. `apply_event` is the reference composition of these rules;
the property tests fold permuted, duplicated event streams through it.

The tables counted from these contributions are in `tables` (and, vectorised, `tabulation`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.errors import ValidationFailed

AGGREGATE_PURPOSE = "aggregate_reporting"
DECLINED = "_declined"
SKIPPED = "_skipped"
RESERVED_CATEGORIES = (DECLINED, SKIPPED)

CHOICE_TYPES = ("single_choice", "multiple_choice")
TABULATED_TYPES = ("single_choice", "multiple_choice", "rating", "number", "date")
QUESTION_TYPES = TABULATED_TYPES + ("free_text",)


# ---- consultation metadata -------------------------------------------------


@dataclass(frozen=True)
class Question:
    """One survey question as aggregation sees it (from consultation.published)."""

    id: str
    type: str
    options: tuple[str, ...] = ()
    dimension: bool = False
    min: float | None = None
    max: float | None = None

    @property
    def is_dimension(self) -> bool:
        """Breakdown dimensions are choice questions flagged `dimension: true`."""
        return self.dimension and self.type in CHOICE_TYPES

    def to_document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "options": list(self.options),
            "dimension": self.dimension,
            "min": self.min,
            "max": self.max,
        }


def question_from_payload(raw: Mapping[str, Any] | Question) -> Question:
    """A `Question` from one entry of consultation.published `questions`.

    Raises ValidationFailed for an unknown type, duplicate options or an
    option that uses a reserved category name (`_declined`, `_skipped`).
    """
    if isinstance(raw, Question):
        return raw
    errors: dict[str, list[str]] = {}
    qid = raw.get("id")
    if not isinstance(qid, str) or not qid:
        errors["id"] = ["a question needs a non-empty string id"]
    qtype = raw.get("type")
    if qtype not in QUESTION_TYPES:
        errors["type"] = [f"unknown question type {qtype!r}"]
    options = tuple(raw.get("options") or ())
    if any(not isinstance(o, str) or not o for o in options):
        errors["options"] = ["options are non-empty strings"]
    elif len(set(options)) != len(options):
        errors["options"] = ["options must be unique"]
    elif set(options) & set(RESERVED_CATEGORIES):
        errors["options"] = [f"{', '.join(RESERVED_CATEGORIES)} are reserved category names"]
    if qtype in CHOICE_TYPES and not options:
        errors["options"] = ["a choice question needs options"]
    if errors:
        raise ValidationFailed(
            "invalid question in consultation",
            errors={f"questions.{qid}.{k}": v for k, v in errors.items()},
        )
    lo, hi = raw.get("min"), raw.get("max")
    return Question(
        id=str(qid),  # both checked above
        type=str(qtype),
        options=options,
        dimension=bool(raw.get("dimension", False)),
        min=None if lo is None else float(lo),
        max=None if hi is None else float(hi),
    )


@dataclass(frozen=True)
class ConsultationMeta:
    """What aggregation needs to know of a published consultation."""

    consultation_id: str
    survey_version: int
    min_cell_size: int | None
    purposes: tuple[str, ...]
    questions: tuple[Question, ...]

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(q.id for q in self.questions if q.is_dimension)

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def to_document(self) -> dict[str, Any]:
        return {
            "consultation_id": self.consultation_id,
            "survey_version": self.survey_version,
            "min_cell_size": self.min_cell_size,
            "purposes": list(self.purposes),
            "questions": [q.to_document() for q in self.questions],
        }


def consultation_meta_from_published(payload: Mapping[str, Any]) -> ConsultationMeta:
    """The `ConsultationMeta` carried by a consultation.published payload.

    Also reads back what `ConsultationMeta.to_document()` stored. Raises
    ValidationFailed for missing ids, duplicate question ids or bad questions.
    """
    cid = payload.get("consultation_id")
    if not isinstance(cid, str) or not cid:
        raise ValidationFailed(
            "consultation.published without consultation_id",
            errors={"consultation_id": ["required"]},
        )
    questions = tuple(question_from_payload(q) for q in payload.get("questions") or ())
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise ValidationFailed(
            "duplicate question ids", errors={"questions": ["question ids must be unique"]}
        )
    k = payload.get("min_cell_size")
    return ConsultationMeta(
        consultation_id=cid,
        survey_version=int(payload.get("survey_version") or 0),
        min_cell_size=None if k is None else int(k),
        purposes=tuple(payload.get("purposes") or ()),
        questions=questions,
    )


def newer_consultation_meta(
    current: ConsultationMeta | None, incoming: ConsultationMeta
) -> ConsultationMeta:
    """The metadata to keep when a consultation is published again: the higher survey version wins.

    Deterministic whatever the arrival order (ties keep the incoming one,
    which for a redelivery is the same content).
    """
    if current is None or incoming.survey_version >= current.survey_version:
        return incoming
    return current


# ---- contributions ---------------------------------------------------------


@dataclass(frozen=True)
class Contribution:
    """What one consented response adds: structured answers only, never free text."""

    response_id: str
    pseudonym: str
    consultation_id: str
    answers: Mapping[str, Any]
    declined: tuple[str, ...] = ()
    survey_version: int = 0
    submitted_at: str = ""

    def to_document(self) -> dict[str, Any]:
        """Plain dict for storage (one document per response id)."""
        return {
            "response_id": self.response_id,
            "pseudonym": self.pseudonym,
            "consultation_id": self.consultation_id,
            "answers": dict(self.answers),
            "declined": list(self.declined),
            "survey_version": self.survey_version,
            "submitted_at": self.submitted_at,
        }


def contribution_from_document(doc: Mapping[str, Any]) -> Contribution:
    """Read back what `Contribution.to_document()` stored."""
    return Contribution(
        response_id=doc["response_id"],
        pseudonym=doc["pseudonym"],
        consultation_id=doc["consultation_id"],
        answers=dict(doc.get("answers") or {}),
        declined=tuple(doc.get("declined") or ()),
        survey_version=int(doc.get("survey_version") or 0),
        submitted_at=str(doc.get("submitted_at") or ""),
    )


def _required_strings(payload: Mapping[str, Any], names: Iterable[str]) -> dict[str, list[str]]:
    return {
        n: ["required non-empty string"]
        for n in names
        if not isinstance(payload.get(n), str) or not payload.get(n)
    }


def _is_structured(value: Any) -> bool:
    # Only what response.submitted may carry for structured questions; anything
    # else (dicts, nested lists) cannot be tabulated and is not kept.
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, str):
        return True
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return False


def contribution_from_submitted(
    payload: Mapping[str, Any], consultation_meta: ConsultationMeta | None = None
) -> Contribution | None:
    """The contribution a response.submitted payload makes, or None when it must not count.

    None when `aggregate_reporting` is not among the granted purposes: such
    answers are not even stored by aggregation. With `consultation_meta`
    (when consultation.published has arrived already), answers to questions
    that are not structured questions of the survey are dropped, as a second
    line of defence against free text leaking into aggregates; without it the
    answers are kept and `tabulate` applies the same filter later, so the
    tables do not depend on which event came first.

    Whether the pseudonym is tombstoned is a separate check: `is_counted`.
    Raises ValidationFailed for missing ids or a payload of another consultation.
    """
    errors = _required_strings(payload, ("response_id", "pseudonym", "consultation_id"))
    if errors:
        raise ValidationFailed("response.submitted payload is incomplete", errors=errors)
    if (
        consultation_meta is not None
        and consultation_meta.consultation_id != payload["consultation_id"]
    ):
        raise ValidationFailed(
            "response belongs to another consultation",
            errors={"consultation_id": ["does not match the consultation metadata"]},
        )
    if AGGREGATE_PURPOSE not in (payload.get("purposes") or ()):
        return None
    answers = {
        qid: (sorted(set(v)) if isinstance(v, list) else v)
        for qid, v in (payload.get("answers") or {}).items()
        if _is_structured(v)
    }
    declined = tuple(sorted({d for d in payload.get("declined") or () if isinstance(d, str)}))
    if consultation_meta is not None:
        structured = {q.id for q in consultation_meta.questions if q.type in TABULATED_TYPES}
        answers = {qid: v for qid, v in answers.items() if qid in structured}
        declined = tuple(d for d in declined if d in structured)
    return Contribution(
        response_id=payload["response_id"],
        pseudonym=payload["pseudonym"],
        consultation_id=payload["consultation_id"],
        answers=answers,
        declined=declined,
        survey_version=int(payload.get("survey_version") or 0),
        submitted_at=str(payload.get("submitted_at") or ""),
    )


# ---- tombstones ------------------------------------------------------------


@dataclass(frozen=True)
class Tombstone:
    """Why answers of one pseudonym in one consultation must not count.

    `whole_participant`: nothing of this pseudonym counts, now or later
    (withdrawal of aggregate_reporting or of everything, or an erasure
    following a withdrawal). `response_ids`: the erased responses named by
    the events (kept for the record; retention erasures make no tombstone).
    A withdrawn pseudonym stays withdrawn even if a response arrives later:
    arrival order across topics says nothing about what happened first, and
    not counting is the safe side. A participant who wants to take part again
    does so with a new invitation (a new pseudonym).
    """

    consultation_id: str
    pseudonym: str
    whole_participant: bool = False
    response_ids: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()

    def to_document(self) -> dict[str, Any]:
        return {
            "consultation_id": self.consultation_id,
            "pseudonym": self.pseudonym,
            "whole_participant": self.whole_participant,
            "response_ids": sorted(self.response_ids),
            "reasons": sorted(self.reasons),
        }


def tombstone_from_document(doc: Mapping[str, Any]) -> Tombstone:
    """Read back what `Tombstone.to_document()` stored."""
    return Tombstone(
        consultation_id=doc["consultation_id"],
        pseudonym=doc["pseudonym"],
        whole_participant=bool(doc.get("whole_participant")),
        response_ids=frozenset(doc.get("response_ids") or ()),
        reasons=frozenset(doc.get("reasons") or ()),
    )


def tombstone_from_withdrawn(payload: Mapping[str, Any]) -> Tombstone | None:
    """The tombstone a consent.withdrawn payload creates, or None if aggregates are unaffected.

    A tombstone when everything is withdrawn (`all`) or `aggregate_reporting`
    is among the purposes withdrawn now. Raises ValidationFailed for missing ids.
    """
    errors = _required_strings(payload, ("pseudonym", "consultation_id"))
    if errors:
        raise ValidationFailed("consent.withdrawn payload is incomplete", errors=errors)
    if not (payload.get("all") or AGGREGATE_PURPOSE in (payload.get("purposes") or ())):
        return None
    return Tombstone(
        consultation_id=payload["consultation_id"],
        pseudonym=payload["pseudonym"],
        whole_participant=True,
        reasons=frozenset({"withdrawn"}),
    )


def tombstone_from_erased(payload: Mapping[str, Any]) -> Tombstone | None:
    """The tombstone a response.erased payload creates, or None when aggregates stay.

    `reason: withdrawal` buries the whole pseudonym (its withdrawal event may
    not have arrived yet). Any other reason (retention) returns None: the
    surveys service erases the raw response at the end of its retention
    period, but the participant consented to being counted and did not take
    it back, so the aggregate contribution stays (a decision of the team;
    the contribution holds structured answers only, never free text).
    Raises ValidationFailed for missing ids.
    """
    errors = _required_strings(payload, ("response_id", "pseudonym", "consultation_id"))
    if errors:
        raise ValidationFailed("response.erased payload is incomplete", errors=errors)
    reason = str(payload.get("reason") or "erased")
    if reason != "withdrawal":
        return None
    return Tombstone(
        consultation_id=payload["consultation_id"],
        pseudonym=payload["pseudonym"],
        whole_participant=True,
        response_ids=frozenset({payload["response_id"]}),
        reasons=frozenset({f"erased:{reason}"}),
    )


def merge_tombstones(current: Tombstone | None, incoming: Tombstone) -> Tombstone:
    """The union of two tombstones of the same (consultation, pseudonym).

    Commutative, associative and idempotent, so redelivery and reordering
    cannot change the result. Raises ValidationFailed for different keys.
    """
    if current is None:
        return incoming
    if (current.consultation_id, current.pseudonym) != (
        incoming.consultation_id,
        incoming.pseudonym,
    ):
        raise ValidationFailed(
            "tombstones of different participants cannot be merged",
            errors={"pseudonym": ["tombstone keys differ"]},
        )
    return Tombstone(
        consultation_id=current.consultation_id,
        pseudonym=current.pseudonym,
        whole_participant=current.whole_participant or incoming.whole_participant,
        response_ids=current.response_ids | incoming.response_ids,
        reasons=current.reasons | incoming.reasons,
    )


def is_counted(
    contribution: Contribution, tombstones: Iterable[Tombstone | None] | Tombstone | None
) -> bool:
    """True when no tombstone cancels this contribution.

    `tombstones` may be one tombstone, None, or any iterable of them (only
    those of the contribution's consultation and pseudonym matter).
    """
    if tombstones is None or isinstance(tombstones, Tombstone):
        tombstones = (tombstones,)
    for t in tombstones:
        if (
            t is None
            or t.consultation_id != contribution.consultation_id
            or t.pseudonym != contribution.pseudonym
        ):
            continue
        if t.whole_participant or contribution.response_id in t.response_ids:
            return False
    return True


def counted_contributions(
    contributions: Iterable[Contribution], tombstones: Iterable[Tombstone]
) -> list[Contribution]:
    """The contributions no tombstone cancels, sorted by response id.

    Call this right before `tabulate` even though handlers delete cancelled
    contributions: a withdrawal and a response handled concurrently by two
    consumers could otherwise leave a stored contribution behind its tombstone.
    """
    by_participant: dict[tuple[str, str], list[Tombstone]] = defaultdict(list)
    for t in tombstones:
        by_participant[(t.consultation_id, t.pseudonym)].append(t)
    kept = [
        c
        for c in contributions
        if is_counted(c, by_participant.get((c.consultation_id, c.pseudonym), ()))
    ]
    return sorted(kept, key=lambda c: c.response_id)


def one_per_participant(contributions: Iterable[Contribution]) -> list[Contribution]:
    """At most one contribution per (consultation, pseudonym): the last submitted.

    One participant, one voice: a resubmission replaces the earlier answers
    (ties broken by the larger response id, so the choice does not depend on
    the order the contributions are given in). This also bounds what one
    person can change in a table, which differential privacy relies on.
    """
    best: dict[tuple[str, str], Contribution] = {}
    for c in contributions:
        k = (c.consultation_id, c.pseudonym)
        cur = best.get(k)
        if cur is None or (c.submitted_at, c.response_id) > (cur.submitted_at, cur.response_id):
            best[k] = c
    return sorted(best.values(), key=lambda c: c.response_id)


# ---- reference state machine ----------------------------------------------


@dataclass(frozen=True)
class ProjectionState:
    """Everything the projection holds, as plain mappings (the reference for the handlers).

    contributions: response id -> Contribution
    tombstones: (consultation id, pseudonym) -> Tombstone
    consultations: consultation id -> ConsultationMeta
    """

    contributions: Mapping[str, Contribution] = field(default_factory=dict)
    tombstones: Mapping[tuple[str, str], Tombstone] = field(default_factory=dict)
    consultations: Mapping[str, ConsultationMeta] = field(default_factory=dict)


def _bury(state: ProjectionState, tombstone: Tombstone) -> ProjectionState:
    key = (tombstone.consultation_id, tombstone.pseudonym)
    merged = merge_tombstones(state.tombstones.get(key), tombstone)
    tombstones = dict(state.tombstones)
    tombstones[key] = merged
    # Delete, not hide: aggregation keeps no answers it may no longer use.
    contributions = {rid: c for rid, c in state.contributions.items() if is_counted(c, merged)}
    return replace(state, tombstones=tombstones, contributions=contributions)


def apply_event(state: ProjectionState, envelope: Mapping[str, Any] | Any) -> ProjectionState:
    """The state after one event (envelope as dict or object with `type` and `payload`).

    Unknown event types leave the state unchanged. Every change is a
    set-union or an upsert keyed by a natural id, so applying the same event
    twice, or events in another order, ends in the same state; the handler
    layer may still drop duplicates by event id, but correctness does not
    depend on it. Raises ValidationFailed for payloads missing their ids.
    """
    etype = envelope["type"] if isinstance(envelope, Mapping) else envelope.type
    payload = envelope["payload"] if isinstance(envelope, Mapping) else envelope.payload
    if etype == "consultation.published":
        meta = consultation_meta_from_published(payload)
        consultations = dict(state.consultations)
        consultations[meta.consultation_id] = newer_consultation_meta(
            consultations.get(meta.consultation_id), meta
        )
        return replace(state, consultations=consultations)
    if etype == "response.submitted":
        contribution = contribution_from_submitted(payload)
        if contribution is None or contribution.response_id in state.contributions:
            return state
        tomb = state.tombstones.get((contribution.consultation_id, contribution.pseudonym))
        if not is_counted(contribution, tomb):
            return state
        contributions = dict(state.contributions)
        contributions[contribution.response_id] = contribution
        return replace(state, contributions=contributions)
    if etype == "consent.withdrawn":
        tomb = tombstone_from_withdrawn(payload)
        return state if tomb is None else _bury(state, tomb)
    if etype == "response.erased":
        tomb = tombstone_from_erased(payload)
        return state if tomb is None else _bury(state, tomb)
    return state
