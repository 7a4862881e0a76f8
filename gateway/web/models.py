"""Storage of the participant web app: one sealed document per browser session.

The document holds only ciphertext. Its key is derived from the session cookie, which is never
stored, so the database alone cannot open a session, and a session whose cookie is gone (quick
exit, browser closed) cannot be opened by anyone.
"""

from __future__ import annotations

import mongoengine as me

ALIAS = "gateway"


class WebSessionDocument(me.Document):
    meta = {
        "db_alias": ALIAS,
        "collection": "participant_web_sessions",
        # Expiry is checked on every read, and each new session deletes the expired ones
        # (no TTL index: not every MongoDB-protocol server has them).
        "indexes": ["expires_at"],
    }
    session_hash = me.StringField(primary_key=True)  # HMAC of the cookie value
    sealed = me.BinaryField(required=True)  # AES-GCM nonce + ciphertext of the session state (JSON)
    revision = me.IntField(required=True, default=0)  # compare-and-set guard against lost updates
    expires_at = me.DateTimeField(required=True)
