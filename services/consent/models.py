"""Consent storage: what consent knows of consultations, texts, grants, ledger entries, checkpoints."""

from __future__ import annotations

import mongoengine as me

from shared.events import utcnow
from shared.outbox import OutboxDocument

ALIAS = "consent"


class ConsultationPolicy(me.Document):
    """A consultation's consent rules, learned from the surveys service's events."""

    meta = {"db_alias": ALIAS, "collection": "consultations"}
    consultation_id = me.StringField(primary_key=True)
    organisation_id = me.StringField(required=True)
    purposes = me.ListField(me.StringField())
    min_age = me.IntField(null=True)
    languages = me.ListField(me.StringField())
    status = me.StringField(default="draft")


class ConsentText(OutboxDocument):
    """One language of one consent text version; immutable once published."""

    meta = {
        "db_alias": ALIAS,
        "collection": "consent_texts",
        "indexes": [{"fields": ("consultation_id", "version", "language"), "unique": True}],
    }
    consultation_id = me.StringField(required=True)
    organisation_id = me.StringField(required=True)
    version = me.IntField(required=True, min_value=1)
    language = me.StringField(required=True)
    title = me.StringField(required=True)
    body = me.StringField(required=True)
    purposes = me.DictField()  # purpose -> plain-language explanation
    policy_url = me.StringField()
    controller = me.DictField()  # who is responsible: name, contact, address
    jurisdiction = me.StringField()
    sha256 = me.StringField(required=True)
    published_at = me.DateTimeField(null=True)


class Grant(OutboxDocument):
    meta = {
        "db_alias": ALIAS,
        "collection": "grants",
        "indexes": [{"fields": ("consultation_id", "pseudonym"), "unique": True}],
    }
    grant_id = me.StringField(primary_key=True)
    receipt_hash = me.StringField(required=True, unique=True)
    pseudonym = me.StringField(required=True)
    consultation_id = me.StringField(required=True)
    organisation_id = me.StringField(required=True)
    purposes = me.ListField(me.StringField())  # as granted
    withdrawn = me.ListField(me.StringField())
    text_version = me.IntField(required=True)
    language = me.StringField(required=True)
    text_sha256 = me.StringField(required=True)
    collection_method = me.StringField(required=True)
    guardian = me.DictField()  # relationship and attestation, never a name
    assent = me.BooleanField(null=True)
    granted_at = me.DateTimeField(default=utcnow)
    # Later events for the receipt: withdrawals, erasures, erasure confirmations (each with its event_id).
    events = me.ListField(me.DictField())


def ledger_key(seq: int) -> str:
    """The stored key (`_id`) of ledger entry `seq`: its number as 12 digits, so that keys sort
    as the numbers do. A string key, because some MongoDB-protocol servers (FerretDB 1.x) answer
    a lookup by `_id` from an index only for string and ObjectId keys, never for numbers."""
    if not 0 <= seq < 10**12:
        raise ValueError(f"ledger entry number out of range: {seq}")
    return f"{seq:012d}"


class LedgerEntry(me.Document):
    """One ledger entry exactly as hashed, plus the event it came from (for idempotence).

    Never updated or deleted: the primary key derived from seq (`ledger_key`) makes appends
    linear, and everything derived from entries (the Merkle tree cache) relies on an entry
    never changing once written.
    """

    meta = {"db_alias": ALIAS, "collection": "ledger", "indexes": ["kind"]}
    key = me.StringField(primary_key=True)
    seq = me.IntField(required=True)
    kind = me.StringField(required=True)
    at = me.StringField(required=True)
    data = me.DictField(required=True)
    prev_hash = me.StringField(required=True)
    hash = me.StringField(required=True)
    event_id = me.StringField(unique=True, sparse=True)

    def clean(self) -> None:
        self.key = ledger_key(self.seq)

    def as_entry(self) -> dict:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "at": self.at,
            "data": dict(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class LedgerHead(me.Document):
    """Where the ledger ends: seq and hash of its last entry, kept in one document read by key.

    Finding the end by sorting the entries costs more as the ledger grows (on servers that sort
    in memory); this costs the same at any size. It only moves forward, from one stored entry
    to the next, by a conditional update; after a crash between an entry's insert and this
    update it lags one entry behind, which the next append (or a start) repairs.
    """

    meta = {"db_alias": ALIAS, "collection": "ledger_head"}
    name = me.StringField(primary_key=True)
    seq = me.IntField(required=True)
    hash = me.StringField(required=True)


class Checkpoint(me.Document):
    """A signed tree head. Checkpoints form a list: each names the size of the one before it
    (0 for the first), and that name is unique, so two signers racing from the same
    predecessor cannot both store theirs; sizes and timestamps therefore only grow."""

    meta = {"db_alias": ALIAS, "collection": "checkpoints"}
    tree_size = me.IntField(primary_key=True)
    previous_size = me.IntField(required=True, unique=True)
    root_hash = me.StringField(required=True)
    timestamp = me.StringField(required=True)
    signature = me.StringField(required=True)
    key_id = me.StringField(required=True)

    def as_checkpoint(self) -> dict:
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "timestamp": self.timestamp,
            "signature": self.signature,
            "key_id": self.key_id,
        }


class SnapshotSignOff(me.Document):
    """The one sign-off a snapshot of a consultation may have: `_id` is "<consultation>:<snapshot>",
    so a second sign-off of the same snapshot collides with the first whatever its digest."""

    meta = {"db_alias": ALIAS, "collection": "snapshot_sign_offs"}
    key = me.StringField(primary_key=True)
    digest = me.StringField(required=True)
    release_id = me.StringField(required=True)
    event_id = me.StringField(required=True)
