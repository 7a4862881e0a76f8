"""Crypto-shredding: free text and contact details encrypted with a key per participant.

Each participant gets a random 256-bit data key. Fields are sealed with
AES-256-GCM under that key; the key itself is stored only wrapped (sealed)
with the service's key-encryption key (KEK) from config. Erasing the wrapped
key makes every copy of the participant's fields unreadable: the database,
old events, backups. Nothing here stores anything; callers keep the wrapped
key next to the participant's pseudonym and delete it to shred.

Formats (ASCII, safe in JSON and Mongo):
  field token  "v1." + base64url(nonce[12] || ciphertext || tag[16])
  wrapped key  "k1." + base64url(nonce[12] || sealed key[32] || tag[16])
The version prefixes leave room for another algorithm or KEK later.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import DomainError, Gone

KEY_BYTES = 32
NONCE_BYTES = 12
FIELD_PREFIX = "v1."
WRAPPED_PREFIX = "k1."
# Domain separation: a field token can never pass as a wrapped key and vice versa.
_FIELD_AAD_LABEL = b"voices/field/v1\x00"
_WRAP_AAD_LABEL = b"voices/participant-key/v1\x00"


class KeyShredded(Gone):
    """The participant's key has been erased, so their encrypted data is gone for good."""

    def __init__(
        self, detail: str = "This participant's data has been erased.", **extra: Any
    ) -> None:
        super().__init__(detail, **extra)


class FieldIntegrityError(DomainError):
    """A token or wrapped key failed authentication: tampered, mixed up, or the wrong key.

    Not the participant's doing and never expected, hence a 500.
    """

    status, title = 500, "Stored data failed its integrity check"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise FieldIntegrityError("Stored data is not valid base64url.") from exc


def _require_key(key: bytes | None, what: str) -> bytes:
    if key is None or key == b"":
        raise KeyShredded()
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes")
    return bytes(key)


def _require_bytes(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{what} must be bytes")
    return bytes(value)


def _seal(key: bytes, plaintext: bytes, aad: bytes, prefix: str) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return prefix + _b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext, aad))


def _open(key: bytes, token: str, aad: bytes, prefix: str) -> bytes:
    if not isinstance(token, str) or not token.startswith(prefix):
        raise FieldIntegrityError(f"Stored data does not start with {prefix!r}.")
    raw = _b64decode(token[len(prefix) :])
    if len(raw) < NONCE_BYTES + 16:
        raise FieldIntegrityError("Stored data is too short.")
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise FieldIntegrityError("Stored data failed authentication.") from exc


def new_participant_key() -> bytes:
    """32 fresh random bytes: one participant's data key. Store it only wrapped."""
    return secrets.token_bytes(KEY_BYTES)


def load_kek(value: str | bytes) -> bytes:
    """The key-encryption key from its config form (base64 or base64url of 32 bytes).

    Raises ValueError when the setting is not exactly a 32-byte key, so a
    misconfigured service fails at start-up instead of at the first answer.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = value.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the key-encryption key must be base64 of 32 bytes") from exc
    if len(key) != KEY_BYTES:
        raise ValueError(f"the key-encryption key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def encrypt_field(key: bytes | None, plaintext: str, aad: bytes) -> str:
    """Seal one text field; returns a "v1." token (random nonce, so never the same twice).

    `aad` binds the token to its place, e.g. b"<response_id>/<question_id>":
    a token copied to another place will not decrypt. Raises KeyShredded
    when `key` is None or empty (the participant was erased).
    """
    key = _require_key(key, "the participant key")
    if not isinstance(plaintext, str):
        raise TypeError("plaintext must be str")
    return _seal(
        key, plaintext.encode("utf-8"), _FIELD_AAD_LABEL + _require_bytes(aad, "aad"), FIELD_PREFIX
    )


def decrypt_field(key: bytes | None, token: str, aad: bytes) -> str:
    """The text sealed in `token`, given the same key and aad it was sealed with.

    Raises KeyShredded when `key` is None or empty, FieldIntegrityError when
    the token was modified, belongs elsewhere (other aad) or to another key.
    """
    key = _require_key(key, "the participant key")
    data = _open(key, token, _FIELD_AAD_LABEL + _require_bytes(aad, "aad"), FIELD_PREFIX)
    return data.decode("utf-8")


def wrap_key(kek: bytes, key: bytes, context: bytes = b"") -> str:
    """Seal a participant key under the KEK; returns a "k1." string to store.

    `context` (e.g. the pseudonym as bytes) binds the wrapped key to its
    owner, so swapping wrapped keys between participants is detected.
    """
    kek = _require_kek(kek)
    key = _require_key(key, "the participant key")
    return _seal(kek, key, _WRAP_AAD_LABEL + _require_bytes(context, "context"), WRAPPED_PREFIX)


def unwrap_key(kek: bytes, wrapped: str | None, context: bytes = b"") -> bytes:
    """The participant key inside `wrapped`.

    Raises KeyShredded when `wrapped` is None or empty (the key was erased),
    FieldIntegrityError for a wrong KEK, a wrong context or a damaged value.
    """
    kek = _require_kek(kek)
    if wrapped is None or wrapped == "":
        raise KeyShredded()
    key = _open(kek, wrapped, _WRAP_AAD_LABEL + _require_bytes(context, "context"), WRAPPED_PREFIX)
    if len(key) != KEY_BYTES:
        raise FieldIntegrityError("A wrapped key held something other than a key.")
    return key


def _require_kek(kek: bytes) -> bytes:
    if not isinstance(kek, (bytes, bytearray)) or len(kek) != KEY_BYTES:
        raise ValueError(f"the key-encryption key must be {KEY_BYTES} bytes (see load_kek)")
    return bytes(kek)
