"""Verifying consent tokens offline: any service holding the consent service's public key can.

A consent token is a JWT signed with Ed25519 (alg EdDSA) by the consent
service. Issuing lives in services/consent; only verification is shared.
"""
from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from shared.errors import Unauthorized

ISSUER = "voices-consent"
AUDIENCE = "voices-surveys"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("sub", "cid", "gid", "purposes", "iat", "exp", "iss", "aud")


def load_public_key(public_key: bytes | str | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    key = load_pem_public_key(public_key.encode() if isinstance(public_key, str) else public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the consent public key must be an Ed25519 key")
    return key


def verify_consent_token(token: str, public_key: bytes | str | Ed25519PublicKey, *, consultation_id: str | None = None,
                         required_purpose: str | None = "participate", now: float | None = None) -> dict[str, Any]:
    """The token's claims when its signature, issuer, audience and expiry hold.

    Raises Unauthorized naming what failed: signature, expiry, consultation or purpose.
    """
    key = load_public_key(public_key)
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": now is None},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The consent token has expired; please give consent again.") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"The consent token is not valid ({type(exc).__name__}).") from None
    if now is not None and claims["exp"] <= now:
        raise Unauthorized("The consent token has expired; please give consent again.")
    if consultation_id is not None and claims["cid"] != consultation_id:
        raise Unauthorized("The consent token is for another consultation.")
    if required_purpose and required_purpose not in claims["purposes"]:
        raise Unauthorized(f"The consent token does not include the '{required_purpose}' purpose.")
    return claims
