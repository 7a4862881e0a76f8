"""Keeping each consultation's progress tally (service layer: models, no Flask).

Intake adds what a response counts for, erasure takes it away, opening an invitation counts a
participant admitted; each is one $inc on the tally document, by its id. A consultation whose
tally is missing (its responses were stored before tallies existed) gets one computed from all
its responses when its progress is first asked for.

A response and its tally are two documents, so a crash between storing one and adding to the
other would leave the count off by one. The tally therefore notes each response as pending
(`pending.<response id>`, with the time) before it is stored, and adds its counts in the same
single-document update that removes that note, on the condition that the note is still there: of
the intake, an erasure and a later view, exactly one applies it. A view settles the notes older
than PENDING_GRACE_S (longer than any request may run) by reading just those responses: counted
when stored, dropped when the store never took them. The count is exact, and a view never reads
more than the few responses whose requests died.
"""

from __future__ import annotations

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


# A request runs at most gunicorn's 30 s timeout; a note older than this has no request behind it.
PENDING_GRACE_S = 120.0


def _update(amounts: dict[str, int], submitted_at: datetime | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {"$inc": amounts}
    if submitted_at is not None:
        # Stored times keep milliseconds; the tally keeps what a read of the response would give.
        stored = submitted_at.replace(microsecond=submitted_at.microsecond // 1000 * 1000)
        update["$max"] = {"last_submitted_at": stored}
    return update


def _apply(
    consultation_id: str, amounts: dict[str, int], submitted_at: datetime | None = None
) -> None:
    ProgressTally._get_collection().update_one(
        {"_id": consultation_id}, _update(amounts, submitted_at), upsert=True
    )


def _pending(response_id: str) -> str:
    return f"pending.{response_id}"  # response ids are "r_" and hex: a safe field name


def _settle(consultation_id: str, response_id: str, update: dict[str, Any]) -> bool:
    """Apply `update` and remove the response's pending note, only while the note is there:
    True for the one caller that did."""
    update = {**update, "$unset": {_pending(response_id): ""}}
    result = ProgressTally._get_collection().update_one(
        {"_id": consultation_id, _pending(response_id): {"$exists": True}}, update
    )
    return result.matched_count == 1


def expect_response(consultation_id: str, response_id: str) -> None:
    """Before a response is stored: note it on the tally as pending."""
    ProgressTally._get_collection().update_one(
        {"_id": consultation_id}, {"$set": {_pending(response_id): utcnow()}}, upsert=True
    )


def forget_response(consultation_id: str, response_id: str) -> None:
    """The store refused the response (a duplicate): it counts for nothing."""
    _settle(consultation_id, response_id, {})


def start(consultation_id: str) -> None:
    """An empty tally for a new consultation (so it never needs counting from scratch)."""
    try:
        ProgressTally(consultation_id=consultation_id).save(force_insert=True)
    except NotUniqueError:
        pass


def count_opened(consultation_id: str) -> None:
    _apply(consultation_id, {"opened": 1})


def _response_amounts(consultation: Consultation, response: Response) -> dict[str, int]:
    definition = _definitions(consultation).get(response.survey_version)
    if definition is None:
        return {"submitted": 1}
    counter = progress.SectionCounter(definition)
    return progress.response_tally(counter, stored_response(response.to_mongo().to_dict()))


def count_response(consultation: Consultation, response: Response) -> None:
    """A response noted by `expect_response` was stored: add what it counts for (unless a view
    or an erasure settled its note first)."""
    _settle(
        consultation.consultation_id,
        response.response_id,
        _update(_response_amounts(consultation, response), response.submitted_at),
    )


def uncount_response(response: Response) -> None:
    """A response is being erased: take away what it counted for, and count the erasure. One
    still pending was never added: its note goes, and only the erasure counts."""
    if _settle(response.consultation_id, response.response_id, {"$inc": {"erased": 1}}):
        return
    consultation = Consultation.objects(consultation_id=response.consultation_id).first()
    if consultation is None:
        return
    amounts = progress.negated(_response_amounts(consultation, response))
    _apply(response.consultation_id, {**amounts, "erased": 1})


def settle_overdue(consultation: Consultation, document: dict[str, Any]) -> bool:
    """Settle the tally's pending notes older than PENDING_GRACE_S (their requests died between
    storing a response and counting it, or before the store took it). True when any was."""
    now = utcnow()
    overdue = [
        response_id
        for response_id, since in (document.get("pending") or {}).items()
        if (now - _as_utc(since)).total_seconds() > PENDING_GRACE_S
    ]
    cid = consultation.consultation_id
    for response_id in overdue:
        response = Response.objects(response_id=response_id, consultation_id=cid).first()
        if response is None:
            _settle(cid, response_id, {})
        else:
            count_response(consultation, response)
    return bool(overdue)


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
    if document is not None and settle_overdue(consultation, document):
        document = ProgressTally._get_collection().find_one({"_id": consultation.consultation_id})
    return document or {}
