"""Verifying consent tokens offline: any service holding the consent service's public key can.

A consent token is a compact JWS (JWT, algorithm EdDSA) issued by the consent
service after a grant (services/consent/tokens.py). Verification lives here
because the surveys service checks every token before storing an answer and
must not import another service's code.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import time
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import Unauthorized

ISSUER = "voices-consent"
AUDIENCE = "voices-surveys"
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("sub", "cid", "gid", "purposes", "iat", "exp", "iss", "aud")

PublicKeyLike = Ed25519PublicKey | Ed25519PrivateKey | bytes | str


@functools.lru_cache(maxsize=16)  # the surveys service verifies every token with the same PEM
def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    """Parse a PEM public key; raises ValueError unless it is an Ed25519 key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the consent service verifies Ed25519 keys only")
    return key


def as_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """Accept a public key, a private key (its public half) or a public PEM."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, (bytes, str)):
        return load_public_key(key)
    raise ValueError(f"not an Ed25519 public key: {type(key).__name__}")


def _epoch(moment: datetime | float | int | None) -> int:
    if moment is None:
        return int(time.time())
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return int(moment.timestamp())
    return int(moment)


_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def _is_canonical_b64url(segment: str) -> bool:
    # base64 decoders ignore the unused low bits of the last symbol, so one
    # signature has several spellings; accept only the canonical one so that
    # a token string is unique (it may be logged or used for replay checks).
    # Recent PyJWT checks this as well; the versions pyproject allows do not all.
    if not _B64URL.match(segment) or len(segment) % 4 == 1:
        return False
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return False
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == segment


def _reject(detail: str, reason: str) -> Unauthorized:
    return Unauthorized(detail, reason=reason)


def verify_consent_token(
    token: str,
    public_key: PublicKeyLike,
    consultation_id: str | None = None,
    required_purpose: str | None = "participate",
    now: datetime | float | None = None,
    leeway: int = 0,
) -> dict[str, Any]:
    """Check a consent token and return its claims.

    Checks the Ed25519 signature, issuer, audience, required claims and
    their types, expiry and issue time against ``now`` (default: the clock,
    with ``leeway`` seconds of skew), the consultation when
    ``consultation_id`` is given, and that ``required_purpose`` was granted.
    Raises ``shared.errors.Unauthorized`` with ``reason`` one of malformed,
    bad_signature, wrong_issuer, wrong_audience, missing_claim, expired,
    not_yet_valid, wrong_consultation, missing_purpose.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise _reject("The consent token is malformed.", "malformed")
    if not all(_is_canonical_b64url(part) for part in token.split(".")):
        raise _reject("The consent token is malformed.", "malformed")
    try:
        key = as_public_key(public_key)
    except ValueError as exc:  # a configuration error, not the caller's fault
        raise RuntimeError(f"consent token public key unusable: {exc}") from exc
    try:
        # Time checks are done below against `now`, so they are testable and
        # share one clock; PyJWT still enforces the signature, iss, aud, alg.
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise _reject("The consent token signature does not verify.", "bad_signature") from None
    except jwt.InvalidIssuerError:
        raise _reject(
            "The consent token was not issued by the consent service.", "wrong_issuer"
        ) from None
    except jwt.InvalidAudienceError:
        raise _reject(
            "The consent token is not meant for the surveys service.", "wrong_audience"
        ) from None
    except jwt.MissingRequiredClaimError as exc:
        raise _reject(
            f"The consent token lacks the '{exc.claim}' claim.", "missing_claim"
        ) from None
    except jwt.PyJWTError:
        raise _reject("The consent token is malformed.", "malformed") from None

    _check_claim_types(claims)
    moment = _epoch(now)
    if moment >= claims["exp"] + leeway:
        raise _reject(
            "The consent token has expired; please start again from your invitation link.",
            "expired",
        )
    if claims["iat"] > moment + leeway:
        raise _reject("The consent token is not valid yet (issued in the future).", "not_yet_valid")
    if consultation_id is not None and claims["cid"] != consultation_id:
        raise _reject(
            "The consent token belongs to a different consultation.", "wrong_consultation"
        )
    if required_purpose is not None and required_purpose not in claims["purposes"]:
        raise _reject(
            f"Consent for '{required_purpose}' was not given (or was withdrawn).", "missing_purpose"
        )
    return claims


def _check_claim_types(claims: dict[str, Any]) -> None:
    for name in ("sub", "cid", "gid"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise _reject(f"The consent token claim '{name}' is not a string.", "malformed")
    for name in ("iat", "exp"):
        if not isinstance(claims.get(name), int) or isinstance(claims[name], bool):
            raise _reject(
                f"The consent token claim '{name}' is not a number of seconds.", "malformed"
            )
    purposes = claims.get("purposes")
    if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
        raise _reject("The consent token claim 'purposes' is not a list of purposes.", "malformed")
