"""Aggregation storage: counted contributions, tombstones, consultation metadata, releases, quotes.

Every document here except `Release` and `PrivacyBudgetDocument` is derived from the
event topics and can be rebuilt by replaying them (see `rebuild`).
"""

from __future__ import annotations

import mongoengine as me

from shared.events import utcnow
from shared.outbox import OutboxDocument

ALIAS = "aggregation"


class ConsultationDocument(me.Document):
    """What aggregation knows of a consultation, from consultation.published (highest survey version wins)."""

    meta = {"db_alias": ALIAS, "collection": "consultations"}
    consultation_id = me.StringField(primary_key=True)
    organisation_id = me.StringField(required=True)
    survey_version = me.IntField(required=True)
    title = me.StringField()
    min_cell_size = me.IntField()
    # Total differential-privacy epsilon its snapshots may spend; None: releases with noise are refused.
    epsilon_budget = me.FloatField(null=True)
    purposes = me.ListField(me.StringField())
    questions = me.ListField(me.DictField())
    # wording.wording_from_published: title, question wording and option labels by language.
    wording = me.DictField()


class ContributionDocument(me.Document):
    """One consented response's structured answers; deleting the document removes its contribution."""

    meta = {
        "db_alias": ALIAS,
        "collection": "contributions",
        "indexes": ["consultation_id", ("consultation_id", "pseudonym")],
    }
    response_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    pseudonym = me.StringField(required=True)
    survey_version = me.IntField()
    answers = me.DictField()
    declined = me.ListField(me.StringField())
    submitted_at = me.StringField()
    counted_at = me.DateTimeField(default=utcnow)
    # Counted while replaying the topics (a rebuild, a fresh start), not as the event arrived:
    # its counted_at says when the replay reached it, which is no measure of freshness.
    replayed = me.BooleanField(default=False)


def participant_key(consultation_id: str, pseudonym: str) -> str:
    """The stored key (`_id`) of what is kept per participant of a consultation (tombstone, list
    of contributions). Length-prefixed, so no two (consultation, pseudonym) pairs share a key.
    Lookups by `_id` are the ones every MongoDB-protocol server answers from an index."""
    return f"{len(consultation_id)}:{consultation_id}:{pseudonym}"


class TombstoneDocument(me.Document):
    """projection.Tombstone stored: what of one pseudonym in one consultation must never count again.

    Only ever grows ($set true / $addToSet), so concurrent and repeated updates commute.
    `quotes_withdrawn`: quote_anonymised consent withdrawn (quotes only; the answers still count).
    Keyed by `participant_key`; tombstones stored before were re-keyed by `migrate_to_keys`.
    """

    meta = {"db_alias": ALIAS, "collection": "tombstones", "indexes": ["consultation_id"]}
    key = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    pseudonym = me.StringField(required=True)
    whole_participant = me.BooleanField(default=False)
    response_ids = me.ListField(me.StringField())
    reasons = me.ListField(me.StringField())
    quotes_withdrawn = me.BooleanField(default=False)
    at = me.DateTimeField(default=utcnow)

    def clean(self) -> None:
        self.key = participant_key(self.consultation_id, self.pseudonym)


class ParticipantContributions(me.Document):
    """The response ids whose contributions are stored for one participant of a consultation, so
    that a withdrawal finds them by key instead of by a query on the contributions.

    Ids are added ($addToSet) after the contribution is stored and never removed: an id whose
    contribution is gone is simply not found.
    """

    meta = {"db_alias": ALIAS, "collection": "participant_contributions"}
    key = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    pseudonym = me.StringField(required=True)
    response_ids = me.ListField(me.StringField())


class StorageLayout(me.Document):
    """Markers of one-off changes to how the projection is stored (see `repository.migrate_to_keys`)."""

    meta = {"db_alias": ALIAS, "collection": "storage_layout"}
    name = me.StringField(primary_key=True)
    done_at = me.DateTimeField(default=utcnow)


class Quote(me.Document):
    """An organiser-approved anonymised quote (quote.approved); `revoked` is sticky (quote.revoked)."""

    meta = {
        "db_alias": ALIAS,
        "collection": "quotes",
        "indexes": ["consultation_id", ("consultation_id", "pseudonym")],
    }
    quote_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    pseudonym = me.StringField()
    question_id = me.StringField()
    text = me.StringField()
    approved_by = me.StringField()
    approved_at = me.StringField()
    revoked = me.BooleanField(default=False)


class PrivacyBudgetDocument(me.Document):
    """What a consultation's snapshots spent of its privacy budget; `revision` makes every spend a
    compare-and-set. `spent` entries are {snapshot, epsilon, at}. The total is not copied here:
    ConsultationDocument.epsilon_budget is the only place it is kept.
    """

    meta = {"db_alias": ALIAS, "collection": "privacy_budgets"}
    consultation_id = me.StringField(primary_key=True)
    spent = me.ListField(me.DictField())
    revision = me.IntField(default=0)


class Release(OutboxDocument):
    """A released snapshot; its release.published event is the ledger sign-off."""

    meta = {
        "db_alias": ALIAS,
        "collection": "releases",
        "indexes": [{"fields": ("consultation_id", "snapshot"), "unique": True}, "organisation_id"],
    }
    release_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    organisation_id = me.StringField(required=True)
    title = me.StringField()
    snapshot = me.IntField(required=True)
    signed_off_by = me.StringField(required=True)
    released_at = me.DateTimeField(default=utcnow)
    digest = me.StringField(required=True)
    epsilon = me.FloatField()
    content = me.DictField()
