"""Consent tokens and Ed25519 key helpers."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.consent import tokens
from shared.errors import Unauthorized

NOW = 1_750_000_000
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def issue(key, **overrides):
    claims = {
        "pseudonym": "p-7f3a",
        "consultation_id": "c-1",
        "grant_id": "g-42",
        "purposes": ["participate", "aggregate_reporting"],
        "private_key": key,
        "ttl": timedelta(hours=1),
        "now": NOW,
    }
    claims.update(overrides)
    return tokens.issue_consent_token(**claims)


def reason_of(token, key, **kwargs):
    with pytest.raises(Unauthorized) as caught:
        tokens.verify_consent_token(token, key, **kwargs)
    assert caught.value.status == 401 and caught.value.detail
    return caught.value.extra["reason"]


# ---- keys ------------------------------------------------------------------


def test_key_pem_round_trips_and_key_id_names_the_public_key(signing_key):
    private_pem = tokens.private_key_to_pem(signing_key)
    public_pem = tokens.public_key_to_pem(signing_key)
    assert b"BEGIN PRIVATE KEY" in private_pem and b"BEGIN PUBLIC KEY" in public_pem
    reloaded = tokens.load_private_key(private_pem)
    assert tokens.raw_public_key(reloaded) == tokens.raw_public_key(signing_key)
    assert tokens.raw_public_key(
        tokens.load_public_key(public_pem.decode())
    ) == tokens.raw_public_key(signing_key)

    kid = tokens.key_id(signing_key)
    assert len(kid) == 16 and int(kid, 16) >= 0
    assert kid == tokens.key_id(tokens.load_public_key(public_pem))
    assert kid != tokens.key_id(tokens.generate_signing_key())


def test_encrypted_private_pem_needs_its_password(signing_key):
    pem = tokens.private_key_to_pem(signing_key, password=b"correct horse battery")
    assert b"ENCRYPTED" in pem
    assert tokens.key_id(
        tokens.load_private_key(pem, password=b"correct horse battery")
    ) == tokens.key_id(signing_key)
    with pytest.raises((ValueError, TypeError)):
        tokens.load_private_key(pem)


def test_non_ed25519_keys_are_refused():
    from cryptography.hazmat.primitives import serialization

    other = ec.generate_private_key(ec.SECP256R1())
    pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError):
        tokens.load_public_key(pem)
    private_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError):
        tokens.load_private_key(private_pem)


# ---- issue and verify -----------------------------------------------------------


def test_token_verifies_with_the_public_key_and_carries_the_grant(signing_key):
    token = issue(signing_key)
    public_pem = tokens.public_key_to_pem(signing_key)
    claims = tokens.verify_consent_token(token, public_pem, consultation_id="c-1", now=NOW + 10)
    assert claims == {
        "sub": "p-7f3a",
        "cid": "c-1",
        "gid": "g-42",
        "purposes": ["participate", "aggregate_reporting"],
        "iat": NOW,
        "exp": NOW + 3600,
        "iss": "voices-consent",
        "aud": "voices-surveys",
    }
    assert jwt.get_unverified_header(token)["kid"] == tokens.key_id(signing_key)
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"


def test_token_from_another_key_is_a_bad_signature(signing_key, other_key):
    assert reason_of(issue(other_key), signing_key, now=NOW) == "bad_signature"


def test_flipping_any_single_character_of_the_token_breaks_it(signing_key):
    token = issue(signing_key)
    public = signing_key.public_key()
    rng = random.Random(1729)
    checked = 0
    for position, original in enumerate(token):
        candidates = set()
        if original in B64URL:
            # Same symbol with its lowest bit flipped: base64 decoders may map
            # both spellings to the same bytes in the last symbol of a segment.
            candidates.add(B64URL[B64URL.index(original) ^ 1])
        candidates.add(chr(ord(original) ^ 0x20))
        candidates.add(rng.choice([c for c in B64URL + "." if c != original]))
        for replacement in candidates - {original}:
            tampered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(Unauthorized):
                tokens.verify_consent_token(tampered, public, now=NOW)
            checked += 1
    assert checked >= 2 * len(token)


def test_alternative_base64_spelling_of_the_signature_is_refused(signing_key):
    token = issue(signing_key)
    head, payload, signature = token.split(".")
    # 64 signature bytes use 2 of the last symbol's 6 bits; flipping an unused
    # bit gives another string for the same signature.
    variant = signature[:-1] + B64URL[B64URL.index(signature[-1]) ^ 1]
    twin = f"{head}.{payload}.{variant}"
    assert twin != token
    # Recent PyJWT refuses this too; older ones (pyproject allows >= 2.8) decoded it.
    assert reason_of(twin, signing_key.public_key(), now=NOW) == "malformed"


def test_expired_token_is_refused_at_and_after_exp(signing_key):
    token = issue(signing_key, ttl=600)
    tokens.verify_consent_token(token, signing_key.public_key(), now=NOW + 599)
    assert reason_of(token, signing_key.public_key(), now=NOW + 600) == "expired"
    assert reason_of(token, signing_key.public_key(), now=NOW + 86400) == "expired"
    # leeway tolerates a little clock skew between services
    tokens.verify_consent_token(token, signing_key.public_key(), now=NOW + 620, leeway=30)


def test_token_checked_against_the_real_clock_by_default(signing_key):
    stale = issue(signing_key, now=time.time() - 7200, ttl=3600)
    assert reason_of(stale, signing_key.public_key()) == "expired"
    fresh = issue(signing_key, now=time.time(), ttl=3600)
    assert tokens.verify_consent_token(fresh, signing_key.public_key())["sub"] == "p-7f3a"


def test_token_issued_in_the_future_is_not_yet_valid(signing_key):
    assert reason_of(issue(signing_key), signing_key.public_key(), now=NOW - 120) == "not_yet_valid"


def test_token_for_another_consultation_is_refused(signing_key):
    token = issue(signing_key)
    assert (
        reason_of(token, signing_key.public_key(), consultation_id="c-2", now=NOW)
        == "wrong_consultation"
    )


def test_token_without_the_required_purpose_is_refused(signing_key):
    token = issue(signing_key, purposes=["aggregate_reporting"])
    assert reason_of(token, signing_key.public_key(), now=NOW) == "missing_purpose"
    assert (
        reason_of(
            issue(signing_key),
            signing_key.public_key(),
            required_purpose="quote_anonymised",
            now=NOW,
        )
        == "missing_purpose"
    )
    claims = tokens.verify_consent_token(
        issue(signing_key),
        signing_key.public_key(),
        required_purpose="aggregate_reporting",
        now=NOW,
    )
    assert "aggregate_reporting" in claims["purposes"]


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"aud": "someone-else"}, "wrong_audience"),
        ({"iss": "not-voices"}, "wrong_issuer"),
        ({"gid": None}, "missing_claim"),
        ({"purposes": "participate"}, "malformed"),
        ({"exp": "tomorrow"}, "malformed"),
    ],
)
def test_tokens_signed_with_our_key_but_wrong_claims_are_refused(signing_key, change, reason):
    claims = {
        "sub": "p-1",
        "cid": "c-1",
        "gid": "g-1",
        "purposes": ["participate"],
        "iat": NOW,
        "exp": NOW + 60,
        "iss": "voices-consent",
        "aud": "voices-surveys",
    }
    claims.update(change)
    claims = {k: v for k, v in claims.items() if v is not None}
    forged = jwt.encode(claims, signing_key, algorithm="EdDSA")
    assert reason_of(forged, signing_key.public_key(), now=NOW) == reason


def test_unsigned_and_garbage_tokens_are_malformed(signing_key):
    unsigned = jwt.encode(
        {
            "sub": "p",
            "cid": "c",
            "gid": "g",
            "purposes": ["participate"],
            "iat": NOW,
            "exp": NOW + 60,
            "iss": "voices-consent",
            "aud": "voices-surveys",
        },
        None,
        algorithm="none",
    )
    assert reason_of(unsigned, signing_key.public_key(), now=NOW) == "malformed"
    for junk in ["", "a.b", "a.b.c.d", "not a token", 42, None]:
        assert reason_of(junk, signing_key.public_key(), now=NOW) == "malformed"


@pytest.mark.parametrize(
    "change", [{"purposes": []}, {"pseudonym": ""}, {"ttl": 0}, {"ttl": timedelta(seconds=-5)}]
)
def test_issuing_refuses_meaningless_tokens(signing_key, change):
    with pytest.raises(ValueError):
        issue(signing_key, **change)
