"""Consent tokens, and the Ed25519 keys that sign them and the ledger checkpoints.

A consent token is a compact JWS (JWT, algorithm ``EdDSA``) that the consent
service hands to a participant after a grant. The surveys service verifies it
offline with the consent service's public key before storing any answer, so
the token carries exactly what that check needs: who (a pseudonym, never a
name), which consultation, which grant, and which purposes.

Pure module: no Flask, no storage. Keys are ``cryptography`` objects or PEM.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# Verification (and the public-key helpers it needs) is shared: the surveys service verifies offline.
from shared.consent_tokens import (  # noqa: F401  (load_public_key, verify_consent_token re-exported)
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    PublicKeyLike,
    _epoch,
    as_public_key,
    load_public_key,
    verify_consent_token,
)

DEFAULT_TTL = timedelta(hours=4)
PrivateKeyLike = Ed25519PrivateKey | bytes | str


# ---- keys --------------------------------------------------------------------


def generate_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key (for tokens and ledger checkpoints)."""
    return Ed25519PrivateKey.generate()


def private_key_to_pem(private_key: Ed25519PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM of a private key, encrypted when ``password`` is given."""
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_key_to_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key (or of a private key's public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes | str, password: bytes | None = None) -> Ed25519PrivateKey:
    """Parse a PEM private key; raises ValueError unless it is an Ed25519 key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the consent service signs with Ed25519 keys only")
    return key


def as_private_key(key: PrivateKeyLike) -> Ed25519PrivateKey:
    """Accept a key object or its PEM; raises ValueError for anything else."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, (bytes, str)):
        return load_private_key(key)
    raise ValueError(f"not an Ed25519 private key: {type(key).__name__}")


def raw_public_key(key: PublicKeyLike) -> bytes:
    """The 32 raw bytes of the public key."""
    return as_public_key(key).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def key_id(key: PublicKeyLike) -> str:
    """First 16 hex digits of SHA-256 over the raw public key: names a key in headers and checkpoints."""
    return hashlib.sha256(raw_public_key(key)).hexdigest()[:16]


# ---- consent tokens ------------------------------------------------------------


def issue_consent_token(
    *,
    pseudonym: str,
    consultation_id: str,
    grant_id: str,
    purposes: Sequence[str],
    private_key: PrivateKeyLike,
    ttl: timedelta | int = DEFAULT_TTL,
    now: datetime | float | None = None,
) -> str:
    """Sign a consent token for one grant and return it (compact JWS string).

    Claims: sub=pseudonym, cid=consultation_id, gid=grant_id, purposes,
    iat, exp (iat + ttl), iss="voices-consent", aud="voices-surveys"; the
    header names the signing key (``kid``) so keys can be rotated.
    Raises ValueError on empty identifiers, no purposes, or a non-positive ttl.
    """
    for name, value in (
        ("pseudonym", pseudonym),
        ("consultation_id", consultation_id),
        ("grant_id", grant_id),
    ):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
    unique_purposes = list(dict.fromkeys(purposes))
    if not unique_purposes or not all(isinstance(p, str) and p for p in unique_purposes):
        raise ValueError("a consent token needs at least one purpose")
    seconds = int(ttl.total_seconds()) if isinstance(ttl, timedelta) else int(ttl)
    if seconds <= 0:
        raise ValueError("ttl must be positive")
    signer = as_private_key(private_key)
    issued_at = _epoch(now)
    claims = {
        "sub": pseudonym,
        "cid": consultation_id,
        "gid": grant_id,
        "purposes": unique_purposes,
        "iat": issued_at,
        "exp": issued_at + seconds,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    return jwt.encode(claims, signer, algorithm=ALGORITHM, headers={"kid": key_id(signer)})


def public_keys_by_id(keys: Iterable[PublicKeyLike]) -> dict[str, Ed25519PublicKey]:
    """Index public keys by key_id, for verifiers that accept several keys during rotation."""
    return {key_id(k): as_public_key(k) for k in keys}
