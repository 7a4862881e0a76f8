"""Surveys storage: consultations with their versions, invitations, participants, responses."""

from __future__ import annotations

import mongoengine as me

from shared.events import utcnow
from shared.outbox import OutboxDocument

ALIAS = "surveys"


class Consultation(OutboxDocument):
    meta = {"db_alias": ALIAS, "collection": "consultations", "indexes": ["organisation_id"]}
    consultation_id = me.StringField(primary_key=True)
    organisation_id = me.StringField(required=True)
    title = me.StringField(required=True)
    titles = me.DictField()  # {language: title}, what participants see; `title` when empty
    description = me.StringField()
    descriptions = me.DictField()  # {language: description}
    status = me.StringField(
        required=True, default="draft", choices=("draft", "open", "closed", "archived")
    )
    languages = me.ListField(me.StringField())
    purposes = me.ListField(me.StringField())
    min_cell_size = me.IntField(default=10, min_value=5)
    min_age = me.IntField(null=True)
    retention_days = me.IntField(default=365, min_value=1)
    # Differential privacy: the epsilon its released snapshots may spend in total; None: not offered.
    epsilon_budget = me.FloatField(null=True)
    opens_at = me.DateTimeField(null=True)
    closes_at = me.DateTimeField(null=True)
    created_at = me.DateTimeField(default=utcnow)
    opened_at = me.DateTimeField(null=True)
    closed_at = me.DateTimeField(null=True)
    # The survey definition being edited; published versions below are immutable copies.
    draft = me.DictField()
    versions = me.ListField(me.DictField())  # [{number, definition, published_at}]
    # Languages with a published consent text, learnt from consent_text.published events.
    consent_languages = me.ListField(me.StringField())
    # Optimistic concurrency: every save bumps it, a stale writer gets a conflict.
    revision = me.IntField(default=0)

    @property
    def current_version(self) -> dict | None:
        return self.versions[-1] if self.versions else None


class Invitation(me.Document):
    """A single-use code or a multi-use anonymous link; only the code's hash is stored."""

    meta = {"db_alias": ALIAS, "collection": "invitations", "indexes": ["consultation_id"]}
    code_hash = me.StringField(primary_key=True)
    invitation_id = me.StringField(required=True, unique=True)
    consultation_id = me.StringField(required=True)
    kind = me.StringField(required=True, choices=("single", "link"))
    label = me.StringField()
    # A link counts each opening; a single-use code becomes 1 when the first answer is stored.
    uses = me.IntField(default=0)
    spent_by = me.StringField(null=True)  # single use: the pseudonym whose answers spent it
    revoked = me.BooleanField(default=False)
    created_at = me.DateTimeField(default=utcnow)


class Participant(me.Document):
    """A pseudonym and its wrapped data key; nothing else about the person."""

    meta = {"db_alias": ALIAS, "collection": "participants", "indexes": ["consultation_id"]}
    pseudonym = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    invitation_id = me.StringField()
    # "single" or "link", copied from the invitation at opening so that storing answers from a
    # link (nothing to spend) needs no invitation lookup; None on records from before it was kept.
    invitation_kind = me.StringField(null=True)
    # Set before a resume draft is first stored, so that storing the answers looks for a draft to
    # delete only when there may be one; None on records from before it was kept (look).
    has_draft = me.BooleanField(null=True)
    # Erasing this erases every encrypted field of the participant, wherever copies are (crypto-shredding).
    wrapped_key = me.StringField(null=True)
    created_at = me.DateTimeField(default=utcnow)


class Response(OutboxDocument):
    meta = {
        "db_alias": ALIAS,
        "collection": "responses",
        "indexes": [
            "consultation_id",
            {"fields": ("consultation_id", "pseudonym"), "unique": True},
        ],
    }
    response_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    pseudonym = me.StringField(required=True)
    survey_version = me.IntField(required=True)
    grant_id = me.StringField(required=True)
    purposes = me.ListField(me.StringField())
    answers = me.DictField()
    declined = me.ListField(me.StringField())
    free_text = me.DictField()  # question id -> ciphertext under the participant's key
    quotable = me.BooleanField(default=True)
    submitted_at = me.DateTimeField(default=utcnow)


class Erasure(OutboxDocument):
    """Proof that a response was erased; carries the response.erased event until it is relayed."""

    meta = {
        "db_alias": ALIAS,
        "collection": "erasures",
        "indexes": ["consultation_id", "pseudonym"],
    }
    response_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    pseudonym = me.StringField(required=True)
    reason = me.StringField(required=True, choices=("withdrawal", "retention"))
    erased_at = me.DateTimeField(default=utcnow)


class Withdrawal(OutboxDocument):
    """Tombstone: what a pseudonym withdrew, so a response that arrives later is refused or marked.

    Also carries the withdrawal.processed events until they are relayed.
    """

    meta = {"db_alias": ALIAS, "collection": "withdrawals"}
    pseudonym = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    purposes = me.ListField(me.StringField())
    all = me.BooleanField(default=False)
    at = me.DateTimeField(default=utcnow)
    # Ids of the full withdrawals (or late erasures) already confirmed: one withdrawal.processed each.
    confirmed = me.ListField(me.StringField())


class ApprovedQuote(OutboxDocument):
    """An excerpt of a free-text answer that an organiser approved for publication.

    The excerpt is kept encrypted under the participant's key, like the answer
    it comes from; revoking a quote removes it. The record stays (ids only) so
    that approving the same excerpt again is answered from it. Not named
    Quote: mongoengine keeps one registry entry per class name, aggregation
    has a Quote, and a clash keeps a stale collection after a reconnect.
    """

    meta = {
        "db_alias": ALIAS,
        "collection": "quotes",
        "indexes": ["consultation_id", "pseudonym", "response_id"],
    }
    quote_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    response_id = me.StringField(required=True)
    pseudonym = me.StringField(required=True)
    question_id = me.StringField(required=True)
    excerpt = me.StringField(null=True)  # ciphertext under the participant's key; None once revoked
    approved_by = me.StringField(required=True)
    approved_at = me.DateTimeField(default=utcnow)
    revoked = me.BooleanField(default=False)
    revoked_by = me.StringField(null=True)
    revoked_at = me.DateTimeField(null=True)


class ResumeDraft(me.Document):
    """An in-progress response kept on the server under a resume code (hash only), encrypted.

    One per participant: the pseudonym is the key, so saving again replaces
    the draft in one atomic upsert and the earlier code stops working.
    """

    meta = {
        "db_alias": ALIAS,
        "collection": "resume_drafts",
        "indexes": ["expires_at", "consultation_id"],
    }
    pseudonym = me.StringField(primary_key=True)
    code_hash = me.StringField(required=True, unique=True)
    consultation_id = me.StringField(required=True)
    # Answers, declines, position and consent token, sealed with the participant's key.
    ciphertext = me.StringField(required=True)
    saved_at = me.DateTimeField(default=utcnow)
    # Reads check it; each save deletes the drafts that expired (no TTL index: not every
    # MongoDB-protocol server has them, and the answers must not outlive their time anywhere).
    expires_at = me.DateTimeField(required=True)


class FollowUpContact(me.Document):
    """How a participant who consented to follow_up_contact may be reached; one per participant.

    Method, value, best time and the message flag are sealed together under
    the participant's key, so shredding the key makes them unreadable too.
    """

    meta = {"db_alias": ALIAS, "collection": "follow_up_contacts", "indexes": ["consultation_id"]}
    pseudonym = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    ciphertext = me.StringField(required=True)
    given_at = me.DateTimeField(default=utcnow)


class ContactAccess(OutboxDocument):
    """One organiser read of a consultation's contact details (who, how many, when); carries contacts.accessed."""

    meta = {"db_alias": ALIAS, "collection": "contact_accesses", "indexes": ["consultation_id"]}
    access_id = me.StringField(primary_key=True)
    consultation_id = me.StringField(required=True)
    organisation_id = me.StringField(required=True)
    accessed_by = me.StringField(required=True)
    count = me.IntField(required=True)
    accessed_at = me.DateTimeField(default=utcnow)


class ProgressTally(me.Document):
    """Running counts of a consultation's progress (services/surveys/progress.py): one document
    read by its id, however many responses there are. Changed only with $inc, so concurrent
    intake and erasure add up whatever their order."""

    meta = {"db_alias": ALIAS, "collection": "progress_tallies"}
    consultation_id = me.StringField(primary_key=True)
    opened = me.IntField(default=0)  # participants admitted by an invitation
    submitted = me.IntField(default=0)  # responses kept
    erased = me.IntField(default=0)
    hours = me.DictField()  # "YYYY-MM-DDTHH" (UTC) -> responses sent in that hour, still kept
    sections = me.DictField()  # section id -> {shown, answered, completed, stopped_here}
    # When the latest response was stored (moved forward with $max; erasures leave it).
    last_submitted_at = me.DateTimeField()
    # Response id -> when it was about to be stored, until its counts are added (tallies.py).
    pending = me.DictField()
    # Response id -> {at, amounts} noted before it is deleted, until it is taken off (tallies.py).
    erasing = me.DictField()
