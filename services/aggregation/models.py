"""Aggregation storage: one document per counted response, tombstones, consultation metadata."""
from __future__ import annotations

from datetime import datetime, timezone

import mongoengine as me

from shared.outbox import OutboxDocument

ALIAS = "aggregation"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ConsultationMeta(me.Document):
    """What aggregation knows of a consultation, from consultation.published."""

    meta = {"db_alias": ALIAS, "collection": "consultations"}
    consultation_id = me.StringField(primary_key=True)
    organisation_id = me.StringField(required=True)
    survey_version = me.IntField(required=True)
    title = me.StringField()
    min_cell_size = me.IntField(required=True)
    questions = me.ListField(me.DictField())
    status = me.StringField(default="open")


class Contribution(me.Document):
    """One response's structured answers; removing the document removes its contribution."""

    meta = {"db_alias": ALIAS, "collection": "contributions",
            "indexes": ["consultation_id", ("consultation_id", "pseudonym")]}
    response_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    pseudonym = me.StringField(required=True)
    survey_version = me.IntField()
    answers = me.DictField()
    declined = me.ListField(me.StringField())
    submitted_at = me.StringField()
    counted_at = me.DateTimeField(default=_now)


class Tombstone(me.Document):
    """A pseudonym whose answers must never count again in a consultation."""

    meta = {"db_alias": ALIAS, "collection": "tombstones",
            "indexes": [{"fields": ("consultation_id", "pseudonym"), "unique": True}]}
    consultation_id = me.StringField(required=True)
    pseudonym = me.StringField(required=True)
    reason = me.StringField(required=True)
    at = me.DateTimeField(default=_now)


class Release(OutboxDocument):
    """A released snapshot; its release.published event is the ledger sign-off."""

    meta = {"db_alias": ALIAS, "collection": "releases",
            "indexes": [{"fields": ("consultation_id", "snapshot"), "unique": True}]}
    release_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    snapshot = me.IntField(required=True)
    signed_off_by = me.StringField(required=True)
    released_at = me.DateTimeField(default=_now)
    digest = me.StringField(required=True)
    content = me.DictField()
