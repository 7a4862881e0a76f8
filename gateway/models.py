"""Gateway storage: organisations, staff accounts, their API tokens, sign-in sessions and set-password links."""

from __future__ import annotations

import mongoengine as me

from shared.auth import ROLES
from shared.events import utcnow

ALIAS = "gateway"


class Organisation(me.Document):
    meta = {"db_alias": ALIAS, "collection": "organisations"}
    organisation_id = me.StringField(primary_key=True)
    name = me.StringField(required=True, unique=True)
    created_at = me.DateTimeField(default=utcnow)


class Account(me.Document):
    meta = {"db_alias": ALIAS, "collection": "accounts"}
    account_id = me.StringField(primary_key=True)
    email = me.StringField(required=True, unique=True)
    role = me.StringField(required=True, choices=ROLES)
    organisation_id = me.StringField(null=True)
    readable_organisations = me.ListField(me.StringField())
    password_hash = me.StringField(null=True)
    disabled = me.BooleanField(default=False)
    created_at = me.DateTimeField(default=utcnow)


class ApiToken(me.Document):
    """Only the SHA-256 of the token is stored; the token itself is shown once."""

    meta = {"db_alias": ALIAS, "collection": "api_tokens", "indexes": ["account_id"]}
    token_hash = me.StringField(primary_key=True)
    token_id = me.StringField(required=True, unique=True)
    account_id = me.StringField(required=True)
    label = me.StringField()
    expires_at = me.DateTimeField(required=True)
    revoked = me.BooleanField(default=False)
    created_at = me.DateTimeField(default=utcnow)


class StaffSession(me.Document):
    """A signed-in browser: only the SHA-256 of the cookie value is stored."""

    meta = {"db_alias": ALIAS, "collection": "staff_sessions", "indexes": ["account_id"]}
    session_hash = me.StringField(primary_key=True)
    session_id = me.StringField(required=True, unique=True)
    account_id = me.StringField(required=True)
    expires_at = me.DateTimeField(required=True)
    revoked = me.BooleanField(default=False)
    created_at = me.DateTimeField(default=utcnow)
    # When the session was last used, for an idle timeout (kept to the minute, see accounts.py).
    last_seen_at = me.DateTimeField(null=True)


class PasswordLink(me.Document):
    """A one-time code to set a password; only its SHA-256 is stored, and it is used at most once."""

    meta = {"db_alias": ALIAS, "collection": "password_links", "indexes": ["account_id"]}
    code_hash = me.StringField(primary_key=True)
    account_id = me.StringField(required=True)
    expires_at = me.DateTimeField(required=True)
    used = me.BooleanField(default=False)
    created_at = me.DateTimeField(default=utcnow)
