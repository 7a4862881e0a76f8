"""Keeping each consultation's progress tally (service layer: models, no Flask).

Intake adds what a response counts for, erasure takes it away, opening an invitation counts a
participant admitted; each is one $inc on the tally document, by its id. A consultation whose
tally is missing (its responses were stored before tallies existed) gets one computed from all
its responses when its progress is first asked for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from mongoengine.errors import NotUniqueError

from services.surveys import progress
from services.surveys.models import Consultation, Erasure, Participant, ProgressTally, Response
from shared.events import utcnow


def _as_utc(moment: datetime | None) -> datetime:
    return progress.as_utc(moment or utcnow())


def stored_response(document: dict[str, Any]) -> progress.StoredResponse:
    """What progress reads of a stored response (a raw document or a Response's mongo dict)."""
    return progress.StoredResponse(
        submitted_at=_as_utc(document.get("submitted_at")),
        answers=document.get("answers") or {},
        free_text_questions=frozenset(document.get("free_text") or {}),
        declined=frozenset(document.get("declined") or ()),
    )


def _definitions(consultation: Consultation) -> dict[int, dict]:
    return {v["number"]: v["definition"] for v in consultation.versions}


def _apply(
    consultation_id: str, amounts: dict[str, int], submitted_at: datetime | None = None
) -> None:
    update: dict[str, Any] = {"$inc": amounts}
    if submitted_at is not None:
        # Stored times keep milliseconds; the tally keeps what a read of the response would give.
        stored = submitted_at.replace(microsecond=submitted_at.microsecond // 1000 * 1000)
        update["$max"] = {"last_submitted_at": stored}
    ProgressTally._get_collection().update_one({"_id": consultation_id}, update, upsert=True)


def start(consultation_id: str) -> None:
    """An empty tally for a new consultation (so it never needs counting from scratch)."""
    try:
        ProgressTally(consultation_id=consultation_id).save(force_insert=True)
    except NotUniqueError:
        pass


def count_opened(consultation_id: str) -> None:
    _apply(consultation_id, {"opened": 1})


# One counter per published version (a published definition never changes), so that its walks
# over the survey are shared between responses; bounded, a counter dropped is built again.
_counters: OrderedDict[tuple[str, int], progress.SectionCounter] = OrderedDict()
_counters_lock = threading.Lock()
_MAX_COUNTERS = 64
_MAX_WALKS_KEPT = 1024  # distinct skip-logic answers one counter keeps walks for


def _counter(consultation_id: str, number: int, definition: dict) -> progress.SectionCounter:
    key = (consultation_id, number)
    with _counters_lock:
        counter = _counters.get(key)
        if counter is None or counter.walks_kept() > _MAX_WALKS_KEPT:
            counter = _counters[key] = progress.SectionCounter(definition)
        _counters.move_to_end(key)
        while len(_counters) > _MAX_COUNTERS:
            _counters.popitem(last=False)
        return counter


def _response_amounts(consultation: Consultation, response: Response) -> dict[str, int]:
    definition = _definitions(consultation).get(response.survey_version)
    if definition is None:
        return {"submitted": 1}
    counter = _counter(consultation.consultation_id, response.survey_version, definition)
    return progress.response_tally(
        counter,
        progress.StoredResponse(
            submitted_at=_as_utc(response.submitted_at),
            answers=response.answers or {},
            free_text_questions=frozenset(response.free_text or {}),
            declined=frozenset(response.declined or ()),
        ),
    )


def count_response(consultation: Consultation, response: Response) -> None:
    """A response was stored: add what it counts for."""
    _apply(
        consultation.consultation_id,
        _response_amounts(consultation, response),
        response.submitted_at,
    )


def uncount_response(response: Response) -> None:
    """A response is being erased: take away what it counted for, and count the erasure."""
    consultation = Consultation.objects(consultation_id=response.consultation_id).first()
    if consultation is None:
        return
    amounts = progress.negated(_response_amounts(consultation, response))
    _apply(response.consultation_id, {**amounts, "erased": 1})


def recount(consultation: Consultation) -> dict[str, Any]:
    """The tally computed from every stored response, participant and erasure of the consultation."""
    cid = consultation.consultation_id
    documents = (
        Response.objects(consultation_id=cid)
        .only("survey_version", "submitted_at", "answers", "free_text", "declined")
        .as_pymongo()
    )
    definitions = _definitions(consultation)
    tally = progress.tally_of(
        definitions,
        (
            (d.get("survey_version"), stored_response(d))
            for d in documents
            if d.get("survey_version") in definitions
        ),
    )
    return {
        "opened": Participant.objects(consultation_id=cid).count(),
        "submitted": tally.get("submitted", 0),
        "erased": Erasure.objects(consultation_id=cid).count(),
        "hours": tally.get("hours", {}),
        "sections": tally.get("sections", {}),
    }


def tally(consultation: Consultation) -> dict[str, Any]:
    """The consultation's tally, counted from scratch first when it has none."""
    document = ProgressTally._get_collection().find_one({"_id": consultation.consultation_id})
    if document is None:
        counted = recount(consultation)
        latest = (
            Response.objects(consultation_id=consultation.consultation_id)
            .order_by("-submitted_at")
            .only("submitted_at")
            .first()
        )
        counted["last_submitted_at"] = latest.submitted_at if latest else None
        try:
            ProgressTally(consultation_id=consultation.consultation_id, **counted).save(
                force_insert=True
            )
        except NotUniqueError:
            pass  # counted meanwhile by another request, or started by an intake
        document = ProgressTally._get_collection().find_one({"_id": consultation.consultation_id})
    return document or {}
