"""Server-side state of a participant's browser session, sealed with a key only the cookie holds.

The browser keeps one cookie: 256 random bits. The server stores the session under an HMAC of
that value and encrypts the state (pseudonym, consent token, answers in progress) with AES-GCM
under a key derived from it. Reading the database without the cookie reveals nothing; ending the
session deletes the document, and a lost cookie leaves only ciphertext that nobody can open.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mongoengine.errors import NotUniqueError

from gateway.web.models import WebSessionDocument
from shared.errors import Conflict
from shared.throttle import AtMostEvery

COOKIE_NAME = "voices_participant"
DEFAULT_TTL_S = (
    2 * 60 * 60
)  # idle time after which a session ends; resume codes cover longer breaks
_NONCE_BYTES = 12


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    # MongoDB hands back naive datetimes; they are UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class WebSession:
    """One participant's session: `state` is a plain dict the pages read and change, then save."""

    cookie: str
    session_hash: str
    state: dict[str, Any] = field(default_factory=dict)
    revision: int = 0


class WebSessions:
    """Creates, opens, saves and ends sealed sessions.

    `secret` is the gateway's session secret: it keys the HMAC that names a session and salts the
    key derivation, so a copy of the database plus a cookie from elsewhere is not enough either.
    """

    def __init__(
        self, secret: str, ttl_s: int = DEFAULT_TTL_S, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        if len(secret) < 32:
            raise RuntimeError("the session secret must be at least 32 characters")
        self._secret = secret.encode()
        self.ttl_s = ttl_s
        self._clock = clock
        # Creating a session deletes the expired ones, once a minute (of `clock`): loads check
        # expiry themselves, and the delete scans the collection.
        self._expired_purge = AtMostEvery(60.0, lambda: self._clock().timestamp())

    # ---------------------------------------------------------------- naming and sealing

    def _hash(self, cookie: str) -> str:
        return hmac.new(self._secret, b"web-session:" + cookie.encode(), hashlib.sha256).hexdigest()

    def _cipher(self, cookie: str) -> AESGCM:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self._secret,
            info=b"voices participant web session",
        ).derive(cookie.encode())
        return AESGCM(key)

    def _seal(self, session: WebSession) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(session.state, ensure_ascii=False, separators=(",", ":")).encode()
        return nonce + self._cipher(session.cookie).encrypt(
            nonce, plain, session.session_hash.encode()
        )

    def _open(self, cookie: str, session_hash: str, sealed: bytes) -> dict[str, Any] | None:
        try:
            plain = self._cipher(cookie).decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], session_hash.encode()
            )
        except (InvalidTag, ValueError):
            return None
        return json.loads(plain)

    # ---------------------------------------------------------------- life cycle

    def create(self, state: dict[str, Any]) -> WebSession:
        """A new session holding `state`, stored at once. The caller sets its cookie."""
        if self._expired_purge.due():
            WebSessionDocument.objects(expires_at__lte=self._clock()).delete()
        cookie = secrets.token_urlsafe(32)
        session = WebSession(
            cookie=cookie, session_hash=self._hash(cookie), state=dict(state), revision=0
        )
        try:
            WebSessionDocument(
                session_hash=session.session_hash,
                sealed=self._seal(session),
                revision=0,
                expires_at=self._clock() + timedelta(seconds=self.ttl_s),
            ).save(force_insert=True)
        except NotUniqueError:  # 256 random bits: only a broken random source gets here
            raise Conflict("Could not start a session; please try again.") from None
        return session

    def load(self, cookie: str | None) -> WebSession | None:
        """The session behind a cookie value, or None when there is none, it expired, or the value is forged."""
        if not cookie or len(cookie) > 100:
            return None
        session_hash = self._hash(cookie)
        document = WebSessionDocument.objects(session_hash=session_hash).first()
        if document is None:
            return None
        if _as_utc(document.expires_at) <= self._clock():
            WebSessionDocument.objects(session_hash=session_hash).delete()
            return None
        state = self._open(cookie, session_hash, bytes(document.sealed))
        if state is None:
            return None
        return WebSession(
            cookie=cookie, session_hash=session_hash, state=state, revision=document.revision
        )

    def save(self, session: WebSession) -> None:
        """Store the changed state and extend the session's idle time.

        Raises Conflict when the session changed since it was loaded (e.g. the same form sent twice
        at once from two tabs), so neither write silently undoes the other; Conflict also when the
        session was ended meanwhile.
        """
        updated = WebSessionDocument.objects(
            session_hash=session.session_hash, revision=session.revision
        ).update_one(
            set__sealed=self._seal(session),
            set__expires_at=self._clock() + timedelta(seconds=self.ttl_s),
            inc__revision=1,
        )
        if not updated:
            raise Conflict(
                "This page changed in another tab or window. Please go back and try again."
            )
        session.revision += 1

    def end(self, cookie: str | None) -> None:
        """Delete the session behind a cookie value, if any. Ending twice is harmless."""
        if cookie and len(cookie) <= 100:
            WebSessionDocument.objects(session_hash=self._hash(cookie)).delete()
