"""Keeping each consultation's progress tally (service layer: models, no Flask).

Intake adds what a response counts for, erasure takes it away, opening an invitation counts a
participant admitted; each is one $inc on the tally document, by its id. A consultation whose
tally is missing (its responses were stored before tallies existed) gets one computed from all
its responses when its progress is first asked for.

A response and its tally are two documents, so a crash between storing one and adding to the
other would leave the count off by one. The tally therefore notes each response as pending
(`pending.<response id>`, with the time) before it is stored, and adds its counts in the same
single-document update that removes that note, on the condition that the note is still there: of
the intake, an erasure and a later view, exactly one applies it. An erasure does the same the
other way: before deleting a response it notes what the response counted for
(`erasing.<response id>`), and takes it away in the update that removes that note. A view settles
the notes older than PENDING_GRACE_S (longer than any request or handler may run) by reading just
those responses: a response stored but not counted is counted, one the store never took is not,
one deleted but not taken away is taken away, one whose erasure died before deleting it stays
(the redelivered event erases it again). The count is exact, and a view never reads more than the
few responses whose requests died.
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


def _erasing(response_id: str) -> str:
    return f"erasing.{response_id}"


def _settle(
    consultation_id: str,
    response_id: str,
    update: dict[str, Any],
    note: str = "pending",
    unless: str | None = None,
) -> bool:
    """Apply `update` and remove the response's `note`, only while that note is there (and its
    `unless` note is not): True for the one caller that did."""
    field = f"{note}.{response_id}"
    condition: dict[str, Any] = {"_id": consultation_id, field: {"$exists": True}}
    removed = {field: ""}
    if unless is not None:
        condition[f"{unless}.{response_id}"] = {"$exists": False}
    update = {**update, "$unset": {**update.get("$unset", {}), **removed}}
    result = ProgressTally._get_collection().update_one(condition, update)
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
    """A response noted by `expect_response` was stored: add what it counts for (unless a view
    or an erasure settled its note first)."""
    _settle(
        consultation.consultation_id,
        response.response_id,
        _update(_response_amounts(consultation, response), response.submitted_at),
    )


def expect_erasure(response: Response) -> None:
    """Before a response is deleted: note on the tally what erasing it takes away."""
    consultation = Consultation.objects(consultation_id=response.consultation_id).first()
    amounts = progress.negated(_response_amounts(consultation, response)) if consultation else {}
    # As a list of {path, amount}: the paths hold dots, which a stored key must not (and the
    # MongoDB-protocol server of local runs takes no nested arrays).
    ProgressTally._get_collection().update_one(
        {"_id": response.consultation_id},
        {
            "$set": {
                _erasing(response.response_id): {
                    "at": utcnow(),
                    "amounts": [
                        {"path": path, "amount": amount} for path, amount in amounts.items()
                    ],
                }
            }
        },
        upsert=True,
    )


def _erased_uncounted(response_id: str) -> dict[str, Any]:
    """For a response still pending when erased: only the erasure counts, and its note goes."""
    return {"$inc": {"erased": 1}, "$unset": {_erasing(response_id): ""}}


def _erasure_update(note: dict[str, Any]) -> dict[str, Any]:
    amounts = {item["path"]: item["amount"] for item in note.get("amounts") or []}
    return {"$inc": {**amounts, "erased": 1}}


def uncount_response(response: Response) -> None:
    """A response noted by `expect_erasure` was deleted: take away what it counted for, and
    count the erasure. One still pending was never added: its notes go, and only the erasure
    counts."""
    cid, rid = response.consultation_id, response.response_id
    # Never counted (its intake died or has not counted it yet): only the erasure counts.
    if _settle(cid, rid, _erased_uncounted(rid)):
        return
    document = ProgressTally._get_collection().find_one(
        {"_id": cid, _erasing(rid): {"$exists": True}}, {_erasing(rid): 1}
    )
    if document is not None:
        note = document["erasing"][rid]
        _settle(cid, rid, _erasure_update(note), note="erasing")


def settle_overdue(consultation: Consultation, document: dict[str, Any]) -> bool:
    """Settle the tally's notes older than PENDING_GRACE_S, whose requests or handlers died
    between storing or deleting a response and counting it. True when any was."""
    now = utcnow()

    def overdue(since: Any) -> bool:
        return (now - _as_utc(since)).total_seconds() > PENDING_GRACE_S

    cid = consultation.consultation_id
    erasing = {
        rid: note for rid, note in (document.get("erasing") or {}).items() if overdue(note["at"])
    }
    pending = [rid for rid, since in (document.get("pending") or {}).items() if overdue(since)]
    for rid, note in erasing.items():
        if Response.objects(response_id=rid, consultation_id=cid).only("response_id").first():
            _settle(cid, rid, {}, note="erasing")  # not deleted: a redelivery erases it again
        elif not _settle(cid, rid, _erased_uncounted(rid)):
            _settle(cid, rid, _erasure_update(note), note="erasing")  # deleted, counted
    for rid in pending:
        response = Response.objects(response_id=rid, consultation_id=cid).first()
        if response is not None:
            count_response(consultation, response)
        else:  # never stored, unless an erasure in progress deleted it: that one settles it
            _settle(cid, rid, {}, unless="erasing")
    return bool(erasing or pending)


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
