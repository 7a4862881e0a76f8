"""Secrets handed to participants, and how they are checked and stored.

- Invitation codes (single use) and resume codes are typed by people, maybe on
  a phone, maybe from paper: Crockford base32 (no I, L, O, U), 27 random
  characters (135 bits) plus one check character, shown in groups of four:
  "K7QM-3XZ9-...". Input is forgiving: any case, spaces, dashes, full-width
  or Arabic-Indic digits, O for 0 and I/L for 1.
- Link tokens (anonymous multi-use links) live only in URLs: 256 bits of
  base64url from `secrets`.
- Pseudonyms are random opaque ids, "p_" + 22 base64url characters (128 bits),
  derived from nothing, so they reveal nothing.

Only HMAC-SHA256 digests of codes are stored, keyed with a server-side
pepper; each kind of code is hashed under its own label so a code of one kind
never matches a stored code of another.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import unicodedata

from shared.errors import ValidationFailed

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_INDEX = {ch: i for i, ch in enumerate(CROCKFORD)}
# Letters people confuse with digits are read as the digit (Crockford's rule).
_CROCKFORD_ALIASES = {"O": "0", "I": "1", "L": "1"}
TYPED_DATA_CHARS = 27  # 27 * 5 = 135 bits of randomness
TYPED_CODE_CHARS = TYPED_DATA_CHARS + 1
GROUP = 4
LINK_TOKEN_BYTES = 32
PSEUDONYM_PREFIX = "p_"
PSEUDONYM_PATTERN = re.compile(r"^p_[A-Za-z0-9_-]{22}$")
_LINK_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Separators people type or paste between groups: spaces, hyphens and dash look-alikes.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\u30fc\uff0d_.]+")
MIN_PEPPER_BYTES = 16


class CodeKind(enum.Enum):
    INVITATION = "invitation"
    RESUME = "resume"
    LINK = "link"


# ---------------------------------------------------------------- typed codes


def _luhn_mod_n(indices: list[int], *, generating: bool) -> int:
    """Luhn mod 32 sum: catches every single-character slip and most swaps."""
    base = len(CROCKFORD)
    factor = 2 if generating else 1
    total = 0
    for index in reversed(indices):
        addend = factor * index
        factor = 1 if factor == 2 else 2
        total += addend // base + addend % base
    return total % base


def _check_char(data: str) -> str:
    total = _luhn_mod_n([_CROCKFORD_INDEX[ch] for ch in data], generating=True)
    return CROCKFORD[(len(CROCKFORD) - total) % len(CROCKFORD)]


def format_typed_code(canonical: str) -> str:
    """A canonical typed code split into dash-separated groups of four, for display."""
    return "-".join(canonical[i : i + GROUP] for i in range(0, len(canonical), GROUP))


def _new_typed_code() -> str:
    data = "".join(secrets.choice(CROCKFORD) for _ in range(TYPED_DATA_CHARS))
    return format_typed_code(data + _check_char(data))


def new_invitation_code() -> str:
    """A fresh single-use invitation code, formatted for people ("XXXX-XXXX-...").

    Single use is the caller's to enforce: store `hash_code(INVITATION, ...)`
    and mark it used atomically when redeemed.
    """
    return _new_typed_code()


def new_resume_code() -> str:
    """A fresh code a participant writes down to continue a partial response later."""
    return _new_typed_code()


def normalise_typed_code(text: str) -> str:
    """The canonical form (28 upper-case characters, no separators) of a typed code.

    Raises ValidationFailed (errors["code"]) when the input cannot be a code:
    wrong length, characters never used in codes, or a failed check
    character (a typo), so the participant can be told before any lookup.
    """
    if not isinstance(text, str):
        raise ValidationFailed("This is not a code.", errors={"code": ["must be text"]})
    folded = unicodedata.normalize("NFKC", text)
    chars = []
    for ch in _SEPARATORS.sub("", folded).upper():
        digit = unicodedata.decimal(ch, None)  # Arabic-Indic, Devanagari, ... digits
        chars.append(str(digit) if digit is not None else _CROCKFORD_ALIASES.get(ch, ch))
    candidate = "".join(chars)
    bad = sorted({ch for ch in candidate if ch not in _CROCKFORD_INDEX})
    if bad:
        raise ValidationFailed(
            "This is not a valid code.",
            errors={"code": [f"codes never contain: {' '.join(bad)}"]},
        )
    if len(candidate) != TYPED_CODE_CHARS:
        raise ValidationFailed(
            "This is not a valid code.",
            errors={
                "code": [f"a code has {TYPED_CODE_CHARS} characters, this has {len(candidate)}"]
            },
        )
    if _luhn_mod_n([_CROCKFORD_INDEX[ch] for ch in candidate], generating=False) != 0:
        raise ValidationFailed(
            "This code has a typo.",
            errors={"code": ["one or more characters are mistyped; please check the code"]},
        )
    return candidate


# ---------------------------------------------------------------- link tokens and pseudonyms


def new_link_token() -> str:
    """A fresh anonymous multi-use link token (256 bits, 43 base64url characters)."""
    return secrets.token_urlsafe(LINK_TOKEN_BYTES)


def normalise_link_token(text: str) -> str:
    """The token as it must be (surrounding whitespace dropped); exact match, no folding.

    Raises ValidationFailed (errors["token"]) when it is not a link token.
    """
    token = text.strip() if isinstance(text, str) else ""
    if not _LINK_TOKEN_PATTERN.match(token):
        raise ValidationFailed("This is not a valid link.", errors={"token": ["not a link token"]})
    return token


def new_pseudonym() -> str:
    """A random opaque participant id, "p_" + 22 characters; not derived from anything."""
    return PSEUDONYM_PREFIX + secrets.token_urlsafe(16)


def is_pseudonym(text: object) -> bool:
    """True when `text` has the shape of a pseudonym (says nothing about whether it exists)."""
    return isinstance(text, str) and bool(PSEUDONYM_PATTERN.match(text))


# ---------------------------------------------------------------- storage digests


def _pepper_bytes(pepper: bytes | str) -> bytes:
    if isinstance(pepper, str):
        pepper = pepper.encode("utf-8")
    if not isinstance(pepper, (bytes, bytearray)) or len(pepper) < MIN_PEPPER_BYTES:
        raise ValueError(f"the pepper must be at least {MIN_PEPPER_BYTES} bytes")
    return bytes(pepper)


def normalise_code(kind: CodeKind, text: str) -> str:
    """The canonical form of a code of this kind (see the two normalisers)."""
    if kind is CodeKind.LINK:
        return normalise_link_token(text)
    return normalise_typed_code(text)


def hash_code(kind: CodeKind, code: str, pepper: bytes | str) -> str:
    """Hex HMAC-SHA256 of the normalised code under `pepper`: the value to store and look up by.

    Deterministic, so storage can index it. Raises ValidationFailed for a
    malformed code, ValueError for a pepper shorter than 16 bytes.
    """
    canonical = normalise_code(kind, code)
    message = f"{kind.value}:{canonical}".encode("ascii")
    return hmac.new(_pepper_bytes(pepper), message, hashlib.sha256).hexdigest()


def code_matches(kind: CodeKind, code: str, pepper: bytes | str, stored_digest: str) -> bool:
    """Constant-time check of a presented code against a stored digest; malformed codes just don't match."""
    try:
        digest = hash_code(kind, code, pepper)
    except ValidationFailed:
        return False
    return hmac.compare_digest(digest, stored_digest)
