"""Invitation, resume and link codes; pseudonyms; storage digests."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.surveys.codes import (
    CROCKFORD,
    TYPED_DATA_CHARS,
    CodeKind,
    code_matches,
    format_typed_code,
    hash_code,
    is_pseudonym,
    new_invitation_code,
    new_link_token,
    new_pseudonym,
    new_resume_code,
    normalise_link_token,
    normalise_typed_code,
)
from shared.errors import ValidationFailed

PEPPER = b"p" * 32
TYPED = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){6}$")


def test_typed_codes_are_grouped_crockford_with_enough_entropy():
    for make in (new_invitation_code, new_resume_code):
        code = make()
        assert TYPED.match(code), code
    assert TYPED_DATA_CHARS * math.log2(len(CROCKFORD)) >= 128
    assert len({new_resume_code() for _ in range(200)}) == 200


def test_link_tokens_and_pseudonyms():
    token = new_link_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 256 bits
    assert normalise_link_token(f"  {token}\n") == token
    pseudonym = new_pseudonym()
    assert re.fullmatch(r"p_[A-Za-z0-9_-]{22}", pseudonym)
    assert is_pseudonym(pseudonym) and not is_pseudonym("p_short") and not is_pseudonym(None)
    assert pseudonym != new_pseudonym()


def test_forgiving_input_normalises_to_the_same_code():
    code = new_resume_code()
    canonical = code.replace("-", "")
    assert normalise_typed_code(code) == canonical
    assert normalise_typed_code(code.lower().replace("-", " ")) == canonical
    # Full-width characters from an IME, and dash look-alikes.
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c != "-" else "\u2013" for c in code)
    assert normalise_typed_code(fullwidth) == canonical
    # Arabic-Indic digits from an Arabic keyboard.
    arabic = "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in code)
    assert normalise_typed_code(arabic) == canonical


def test_confusable_letters_read_as_digits():
    data = "0" * (TYPED_DATA_CHARS - 1) + "1"
    # Find the check character by asking the format through a generated code's rules.
    for check in CROCKFORD:
        try:
            canonical = normalise_typed_code(data + check)
            break
        except ValidationFailed:
            continue
    typed = canonical.replace("0", "O").replace("1", "l")
    assert normalise_typed_code(typed) == canonical


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_single_character_typo_is_caught(data):
    canonical = new_resume_code().replace("-", "")
    position = data.draw(st.integers(0, len(canonical) - 1))
    replacement = data.draw(st.sampled_from([c for c in CROCKFORD if c != canonical[position]]))
    typo = canonical[:position] + replacement + canonical[position + 1 :]
    with pytest.raises(ValidationFailed) as excinfo:
        normalise_typed_code(typo)
    assert "mistyped" in excinfo.value.extra["errors"]["code"][0]


@pytest.mark.parametrize("text", ["", "ABCD", "U" * 28, "ABCD-EFGH-!", 12345, None])
def test_malformed_typed_codes(text):
    with pytest.raises(ValidationFailed) as excinfo:
        normalise_typed_code(text)
    assert "code" in excinfo.value.extra["errors"]


def test_format_round_trip():
    canonical = normalise_typed_code(new_invitation_code())
    assert normalise_typed_code(format_typed_code(canonical)) == canonical


def test_hash_is_stable_keyed_and_separated_by_kind():
    code = new_invitation_code()
    digest = hash_code(CodeKind.INVITATION, code, PEPPER)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert hash_code(CodeKind.INVITATION, code.lower(), PEPPER) == digest
    assert hash_code(CodeKind.RESUME, code, PEPPER) != digest
    assert hash_code(CodeKind.INVITATION, code, b"q" * 32) != digest
    assert code.replace("-", "") not in digest


def test_code_matches():
    code = new_resume_code()
    stored = hash_code(CodeKind.RESUME, code, PEPPER)
    assert code_matches(CodeKind.RESUME, code.replace("-", " "), PEPPER, stored)
    assert not code_matches(CodeKind.RESUME, new_resume_code(), PEPPER, stored)
    assert not code_matches(CodeKind.RESUME, "garbage", PEPPER, stored)
    assert not code_matches(CodeKind.INVITATION, code, PEPPER, stored)


def test_link_tokens_hash_exactly():
    token = new_link_token()
    stored = hash_code(CodeKind.LINK, token, PEPPER)
    assert code_matches(CodeKind.LINK, token, PEPPER, stored)
    assert not code_matches(CodeKind.LINK, token.swapcase(), PEPPER, stored)
    with pytest.raises(ValidationFailed):
        hash_code(CodeKind.LINK, token[:-1], PEPPER)


def test_short_pepper_is_refused():
    with pytest.raises(ValueError):
        hash_code(CodeKind.RESUME, new_resume_code(), b"short")
