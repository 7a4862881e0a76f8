"""The invitation sheet just made, kept for the person who made it, during their sign-in only.

The surveys service keeps a hash of each code, never the code, so the sheet (its codes and links)
exists only in the answer that created it. To print it and download it as CSV after that answer,
the gateway keeps it sealed with AES-GCM under a key derived from the staff session cookie, which
is never stored: the database alone cannot open it, and once the person signs out (the cookie is
gone) no one can. It expires after SHEET_TTL as well, and one consultation keeps one sheet per
session (a new batch replaces it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import mongoengine as me
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.web.models import ALIAS

SHEET_TTL = timedelta(hours=2)
_NONCE_BYTES = 12


class InvitationSheetDocument(me.Document):
    meta: ClassVar[dict[str, Any]] = {
        "db_alias": ALIAS,
        "collection": "staff_invitation_sheets",
        "indexes": ["expires_at"],
    }
    sheet_hash = me.StringField(primary_key=True)  # HMAC of (session cookie, consultation)
    sealed = me.BinaryField(required=True)
    expires_at = me.DateTimeField(required=True)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class InvitationSheets:
    """Keeps and reopens one sealed sheet per (staff session, consultation)."""

    def __init__(self, secret: bytes, ttl: timedelta = SHEET_TTL) -> None:
        self._secret = secret
        self.ttl = ttl

    def _name(self, cookie: str, consultation_id: str) -> str:
        message = b"invitation-sheet:" + cookie.encode() + b"\x00" + consultation_id.encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _cipher(self, cookie: str) -> AESGCM:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self._secret,
            info=b"voices staff invitation sheet",
        ).derive(cookie.encode())
        return AESGCM(key)

    def keep(
        self, cookie: str, consultation_id: str, invitations: list[dict[str, Any]], now: datetime
    ) -> None:
        """Seal and store the sheet, replacing this session's earlier sheet of the consultation."""
        InvitationSheetDocument.objects(expires_at__lte=now).delete()
        name = self._name(cookie, consultation_id)
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(invitations, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = nonce + self._cipher(cookie).encrypt(nonce, plain, name.encode())
        InvitationSheetDocument.objects(sheet_hash=name).update_one(
            upsert=True, set__sealed=sealed, set__expires_at=now + self.ttl
        )

    def open(self, cookie: str, consultation_id: str, now: datetime) -> list[dict[str, Any]]:
        """The sheet kept for this session and consultation; empty when none, expired or forged."""
        name = self._name(cookie, consultation_id)
        document = InvitationSheetDocument.objects(sheet_hash=name).first()
        if document is None:
            return []
        if _utc(document.expires_at) <= now:
            InvitationSheetDocument.objects(sheet_hash=name).delete()
            return []
        sealed = bytes(document.sealed)
        try:
            plain = self._cipher(cookie).decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], name.encode()
            )
        except (InvalidTag, ValueError):
            return []
        return json.loads(plain)
