"""Event handlers of the aggregation service: each one idempotent and order-independent."""
from __future__ import annotations

from typing import Any

from mongoengine.errors import NotUniqueError

from services.aggregation.models import ConsultationMeta, Contribution, Tombstone
from shared.events import Envelope


def record_consultation(event: Envelope, ctx: Any) -> None:
    p = event.payload
    ConsultationMeta.objects(consultation_id=p["consultation_id"]).update_one(
        upsert=True,
        set__organisation_id=p["organisation_id"], set__survey_version=p["survey_version"],
        set__title=p["title"], set__min_cell_size=p["min_cell_size"], set__questions=p["questions"],
    )


def add_contribution(event: Envelope, ctx: Any) -> None:
    """Count a response only with aggregate_reporting consent and no tombstone for its pseudonym."""
    p = event.payload
    if "aggregate_reporting" not in p["purposes"]:
        return
    if Tombstone.objects(consultation_id=p["consultation_id"], pseudonym=p["pseudonym"]).first():
        return
    Contribution.objects(response_id=p["response_id"]).update_one(
        upsert=True,
        set__consultation_id=p["consultation_id"], set__pseudonym=p["pseudonym"],
        set__survey_version=p["survey_version"], set__answers=p["answers"], set__declined=p["declined"],
        set__submitted_at=p["submitted_at"],
    )


def _bury(consultation_id: str, pseudonym: str, reason: str) -> None:
    try:
        Tombstone(consultation_id=consultation_id, pseudonym=pseudonym, reason=reason).save()
    except NotUniqueError:
        pass  # already buried: redelivery or a second withdrawal
    Contribution.objects(consultation_id=consultation_id, pseudonym=pseudonym).delete()


def subtract_withdrawn(event: Envelope, ctx: Any) -> None:
    p = event.payload
    if p["all"] or "aggregate_reporting" in p["purposes"]:
        _bury(p["consultation_id"], p["pseudonym"], "withdrawn")


def subtract_erased(event: Envelope, ctx: Any) -> None:
    p = event.payload
    # Retention erases raw responses only; their aggregate contribution stays by design.
    if p["reason"] == "withdrawal":
        _bury(p["consultation_id"], p["pseudonym"], "erased")


HANDLERS = {
    "consultation.published": record_consultation,
    "response.submitted": add_contribution,
    "consent.withdrawn": subtract_withdrawn,
    "response.erased": subtract_erased,
}
