"""Per-participant field encryption and crypto-shredding."""

from __future__ import annotations

import base64

import pytest

from services.surveys.field_crypto import (
    FieldIntegrityError,
    KeyShredded,
    decrypt_field,
    encrypt_field,
    load_kek,
    new_participant_key,
    unwrap_key,
    wrap_key,
)
from shared.errors import Gone

AAD = b"r_123:q7"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def flip_byte(token: str, prefix: str, index: int) -> str:
    raw = bytearray(b64url_decode(token[len(prefix) :]))
    raw[index] ^= 0x01
    return prefix + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_round_trip_unicode():
    key = new_participant_key()
    text = "لا أشعر بالأمان في المخيم — 我很害怕 — ça va"
    token = encrypt_field(key, text, AAD)
    assert token.startswith("v1.")
    assert text not in token
    assert decrypt_field(key, token, AAD) == text


def test_keys_and_tokens_are_fresh_each_time():
    key = new_participant_key()
    assert len(key) == 32 and key != new_participant_key()
    assert encrypt_field(key, "same", AAD) != encrypt_field(key, "same", AAD)


def test_wrong_aad_fails():
    key = new_participant_key()
    token = encrypt_field(key, "secret", AAD)
    with pytest.raises(FieldIntegrityError):
        decrypt_field(key, token, b"r_123:q8")


def test_wrong_key_fails():
    token = encrypt_field(new_participant_key(), "secret", AAD)
    with pytest.raises(FieldIntegrityError):
        decrypt_field(new_participant_key(), token, AAD)


@pytest.mark.parametrize("index", [0, 11, 12, -1])  # nonce, first ciphertext byte, tag
def test_modified_token_fails(index):
    key = new_participant_key()
    token = encrypt_field(key, "secret", AAD)
    with pytest.raises(FieldIntegrityError):
        decrypt_field(key, flip_byte(token, "v1.", index), AAD)


@pytest.mark.parametrize(
    "token", ["v2.AAAA", "v1.", "v1.@@@", "v1." + "A" * 10, "plain text", None]
)
def test_malformed_tokens_fail_cleanly(token):
    with pytest.raises(FieldIntegrityError):
        decrypt_field(new_participant_key(), token, AAD)


def test_shredded_key_means_gone():
    token = encrypt_field(new_participant_key(), "secret", AAD)
    for missing in (None, b""):
        with pytest.raises(KeyShredded) as excinfo:
            decrypt_field(missing, token, AAD)
        assert isinstance(excinfo.value, Gone) and excinfo.value.status == 410
    with pytest.raises(KeyShredded):
        encrypt_field(None, "new text", AAD)


def test_wrap_unwrap_round_trip_and_shredding():
    kek = new_participant_key()
    key = new_participant_key()
    wrapped = wrap_key(kek, key, b"p_abc")
    assert wrapped.startswith("k1.") and key.hex() not in wrapped
    assert unwrap_key(kek, wrapped, b"p_abc") == key
    # Erasing the stored wrapped key is the shredding: nothing left to unwrap.
    for erased in (None, ""):
        with pytest.raises(KeyShredded):
            unwrap_key(kek, erased, b"p_abc")


def test_end_to_end_shredding_makes_old_tokens_unreadable():
    kek = new_participant_key()
    stored = {"wrapped_key": wrap_key(kek, new_participant_key(), b"p_1")}
    token = encrypt_field(unwrap_key(kek, stored["wrapped_key"], b"p_1"), "my story", AAD)
    stored["wrapped_key"] = None  # withdrawal
    with pytest.raises(KeyShredded):
        decrypt_field(unwrap_key(kek, stored["wrapped_key"], b"p_1"), token, AAD)


def test_unwrap_detects_wrong_kek_context_and_tampering():
    kek, key = new_participant_key(), new_participant_key()
    wrapped = wrap_key(kek, key, b"p_abc")
    with pytest.raises(FieldIntegrityError):
        unwrap_key(new_participant_key(), wrapped, b"p_abc")
    with pytest.raises(FieldIntegrityError):
        unwrap_key(kek, wrapped, b"p_other")  # swapped between participants
    with pytest.raises(FieldIntegrityError):
        unwrap_key(kek, flip_byte(wrapped, "k1.", 20), b"p_abc")


def test_field_token_cannot_pass_as_wrapped_key():
    kek = new_participant_key()
    token = encrypt_field(kek, "x" * 32, b"")
    with pytest.raises(FieldIntegrityError):
        unwrap_key(kek, "k1." + token[3:])


def test_load_kek_accepts_config_forms_and_refuses_short_keys():
    raw = new_participant_key()
    assert load_kek(base64.b64encode(raw).decode()) == raw
    assert load_kek(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert load_kek(base64.b64encode(raw)) == raw
    with pytest.raises(ValueError):
        load_kek(base64.b64encode(raw[:16]).decode())
    with pytest.raises(ValueError):
        wrap_key(raw[:16], raw)


def test_bad_argument_types_are_programming_errors():
    key = new_participant_key()
    with pytest.raises(TypeError):
        encrypt_field(key, b"bytes", AAD)
    with pytest.raises(TypeError):
        encrypt_field(key, "text", "aad as str")
    with pytest.raises(ValueError):
        encrypt_field(key[:16], "text", AAD)
