"""Grant and withdrawal rules, guardian consent, receipt codes."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.consent import grants
from shared.errors import ValidationFailed
from shared.events import ConsentGranted, ConsentWithdrawn

OFFERED = ["participate", "aggregate_reporting", "quote_anonymised", "follow_up_contact"]
CONSULTATION = {
    "consultation_id": "c-1",
    "purposes": OFFERED,
    "min_age": None,
    "languages": ["en", "cy"],
}
TEXT = {
    "version": 3,
    "language": "en",
    "body": "You can stop at any time.\nYour answers are kept safe.",
}
PEPPER = b"server-side-pepper-0123456789"


def grant(**overrides):
    arguments = {
        "consultation": CONSULTATION,
        "pseudonym": "p-9",
        "purposes": ["participate", "aggregate_reporting"],
        "text": TEXT,
        "granted_at": "2025-05-01T12:00:00Z",
        "grant_id": "g-1",
    }
    arguments.update(overrides)
    return grants.grant_consent(**arguments)


def errors_of(call, *args, **kwargs):
    with pytest.raises(ValidationFailed) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 422 and caught.value.detail
    return caught.value.extra["errors"]


# ---- grants ------------------------------------------------------------------------


def test_a_valid_grant_is_the_consent_granted_payload():
    decision = grant(purposes=["aggregate_reporting", "participate", "participate"])
    assert decision.payload == {
        "grant_id": "g-1",
        "pseudonym": "p-9",
        "consultation_id": "c-1",
        "purposes": ["participate", "aggregate_reporting"],  # consultation order, no duplicates
        "text_version": 3,
        "language": "en",
        "text_sha256": hashlib.sha256(TEXT["body"].encode("utf-8")).hexdigest(),
        "collection_method": "self",
        "guardian": False,
        "granted_at": "2025-05-01T12:00:00.000000Z",
    }
    assert decision.guardian_attestation is None
    assert ConsentGranted().validate(decision.payload) == {}


def test_grant_ids_are_fresh_when_not_given():
    first, second = grant(grant_id=None), grant(grant_id=None)
    assert first.payload["grant_id"] != second.payload["grant_id"]


def test_text_hash_is_of_the_exact_text_shown():
    assert (
        grants.consent_text_sha256("abc")
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    composed, decomposed = (
        unicodedata.normalize("NFC", "Café"),
        unicodedata.normalize("NFD", "Café"),
    )
    # visually identical, different characters: a different text was shown, so a different hash
    assert grants.consent_text_sha256(composed) != grants.consent_text_sha256(decomposed)
    assert grants.consent_text_sha256("text") != grants.consent_text_sha256("text ")


@pytest.mark.parametrize(
    "purposes, fragment",
    [
        (["aggregate_reporting"], "'participate' is required"),
        (
            ["participate", "share_with_partners"],
            "Not offered by this consultation: share_with_partners",
        ),
        ([], "'participate' is required"),
    ],
)
def test_purposes_must_include_participate_and_be_offered(purposes, fragment):
    errors = errors_of(grant, purposes=purposes)
    assert any(fragment in message for message in errors["purposes"])


def test_all_problems_are_reported_at_once():
    errors = errors_of(
        grant,
        purposes=["marketing"],
        text={"version": 0, "language": "de", "body": ""},
        collection_method="telepathy",
    )
    assert set(errors) >= {"purposes", "text_version", "language", "text", "collection_method"}


# ---- minimum age and guardians ---------------------------------------------------------------

YOUTH = {**CONSULTATION, "min_age": 16}
GUARDIAN = {"relationship": "parent", "attested": True}


@pytest.mark.parametrize(
    "declared",
    [
        {"age": 14},
        {"age": 15},
        {"age_band": "13-15"},
        {"age_band": "under 16"},
        {"age_band": "14 to 17"},
    ],
)
def test_under_the_minimum_age_without_a_guardian_is_refused(declared):
    errors = errors_of(grant, consultation=YOUTH, **declared)
    assert any("aged 16 and over" in message for message in errors["collection_method"])


@pytest.mark.parametrize("method", ["self", "facilitator"])
def test_a_facilitator_does_not_replace_a_guardian(method):
    errors = errors_of(grant, consultation=YOUTH, age=12, collection_method=method)
    assert "collection_method" in errors


def test_under_age_with_guardian_and_assent_is_recorded_as_a_guardian_grant():
    decision = grant(
        consultation=YOUTH,
        age_band="13-15",
        collection_method="guardian",
        guardian=GUARDIAN,
        participant_assent=True,
    )
    assert (
        decision.payload["collection_method"] == "guardian" and decision.payload["guardian"] is True
    )
    assert decision.guardian_attestation == {
        "relationship": "parent",
        "attested": True,
        "participant_assent": True,
        "under_min_age": True,
        "min_age": 16,
    }
    assert ConsentGranted().validate(decision.payload) == {}


@pytest.mark.parametrize(
    "guardian, assent, field",
    [
        (None, True, "guardian"),
        ({"relationship": "parent"}, True, "guardian.attested"),
        ({"relationship": "uncle's friend", "attested": True}, True, "guardian.relationship"),
        ({"relationship": "parent", "attested": True, "name": "Jane Doe"}, True, "guardian"),
        ({"relationship": "parent", "attested": True, "phone": "07700 900000"}, True, "guardian"),
        (GUARDIAN, None, "participant_assent"),
        (GUARDIAN, False, "participant_assent"),
    ],
)
def test_a_guardian_grant_needs_an_anonymous_attestation_and_the_young_persons_assent(
    guardian, assent, field
):
    errors = errors_of(
        grant,
        consultation=YOUTH,
        age=13,
        collection_method="guardian",
        guardian=guardian,
        participant_assent=assent,
    )
    assert field in errors


def test_adults_and_consultations_without_a_minimum_need_no_guardian():
    assert grant(consultation=YOUTH, age=16).payload["guardian"] is False
    assert grant(consultation=YOUTH, age_band="18+").payload["guardian"] is False
    assert grant(consultation=YOUTH, age_band="16-17").payload["guardian"] is False
    assert (
        grant(consultation=CONSULTATION).payload["guardian"] is False
    )  # no min_age, nothing to declare


def test_a_band_straddling_the_minimum_counts_as_under():
    assert grants.is_under_min_age(18, age_band="16-19") is True
    assert grants.is_under_min_age(18, age_band="18-24") is False
    assert grants.is_under_min_age(18) is None
    assert grants.is_under_min_age(None, age=3) is False


def test_age_must_be_declared_when_there_is_a_minimum():
    errors = errors_of(grant, consultation=YOUTH)
    assert any("minimum age of 16" in message for message in errors["age"])
    # a guardian grant is acceptable without a declared age
    decision = grant(
        consultation=YOUTH, collection_method="guardian", guardian=GUARDIAN, participant_assent=True
    )
    assert decision.guardian_attestation["under_min_age"] is None


@pytest.mark.parametrize(
    "declared, field",
    [
        ({"age": -1}, "age"),
        ({"age": 200}, "age"),
        ({"age": True}, "age"),
        ({"age_band": "teen"}, "age_band"),
        ({"age_band": "15-13"}, "age_band"),
    ],
)
def test_impossible_ages_are_refused(declared, field):
    assert field in errors_of(grant, consultation=YOUTH, **declared)


def test_a_guardian_record_without_a_guardian_grant_is_refused():
    assert "guardian" in errors_of(grant, guardian=GUARDIAN)


# ---- withdrawal ----------------------------------------------------------------------------

GRANT = {
    "grant_id": "g-1",
    "pseudonym": "p-9",
    "consultation_id": "c-1",
    "purposes": OFFERED,
    "text_version": 3,
    "language": "en",
    "text_sha256": "a" * 64,
    "collection_method": "self",
    "guardian": False,
    "granted_at": "2025-05-01T12:00:00.000000Z",
}


def test_withdrawing_one_purpose_keeps_the_others():
    decision = grants.withdraw_consent(GRANT, [], ["quote_anonymised"], "2025-05-02T08:00:00Z")
    assert decision.payload == {
        "grant_id": "g-1",
        "pseudonym": "p-9",
        "consultation_id": "c-1",
        "purposes": ["quote_anonymised"],
        "remaining": ["participate", "aggregate_reporting", "follow_up_contact"],
        "all": False,
        "withdrawn_at": "2025-05-02T08:00:00.000000Z",
    }
    assert ConsentWithdrawn().validate(decision.payload) == {}
    assert decision.withdrawn == ["quote_anonymised"] and not decision.all


def test_withdrawing_again_is_idempotent():
    first = grants.withdraw_consent(GRANT, [], ["quote_anonymised"], "2025-05-02T08:00:00Z")
    again = grants.withdraw_consent(
        GRANT, [first.payload], ["quote_anonymised"], "2025-05-03T08:00:00Z"
    )
    assert again.payload is None  # no new event
    assert again.withdrawn == ["quote_anonymised"] and again.remaining == first.payload["remaining"]
    # mixing an old and a new purpose only withdraws the new one
    mixed = grants.withdraw_consent(
        GRANT, [first.payload], ["quote_anonymised", "follow_up_contact"], "2025-05-03T08:00:00Z"
    )
    assert mixed.payload["purposes"] == ["follow_up_contact"]
    assert mixed.withdrawn == ["quote_anonymised", "follow_up_contact"]


@pytest.mark.parametrize(
    "request_", [None, ["participate"], ["participate", "aggregate_reporting"]]
)
def test_withdrawing_participate_or_everything_withdraws_all(request_):
    decision = grants.withdraw_consent(GRANT, [], request_, "2025-05-02T08:00:00Z")
    assert decision.payload["purposes"] == OFFERED and decision.payload["remaining"] == []
    assert decision.payload["all"] is True and decision.all
    after = grants.withdraw_consent(
        GRANT, [decision.payload], ["aggregate_reporting"], "2025-05-04T08:00:00Z"
    )
    assert after.payload is None and after.remaining == [] and after.withdrawn == OFFERED
    assert grants.current_purposes(GRANT, [decision.payload]) == []


def test_withdrawing_what_was_never_granted_or_nothing_is_refused():
    narrow = {**GRANT, "purposes": ["participate"]}
    assert "purposes" in errors_of(
        grants.withdraw_consent, narrow, [], ["quote_anonymised"], "2025-05-02T08:00:00Z"
    )
    assert "purposes" in errors_of(grants.withdraw_consent, GRANT, [], [], "2025-05-02T08:00:00Z")
    assert "purposes" in errors_of(
        grants.withdraw_consent, GRANT, [], "participate", "2025-05-02T08:00:00Z"
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.lists(st.sampled_from(OFFERED), min_size=1, max_size=3)), max_size=6
    )
)
def test_any_sequence_of_withdrawals_keeps_the_books_straight(requests):
    history: list[dict] = []
    for number, request_ in enumerate(requests):
        before = grants.current_purposes(GRANT, history)
        decision = grants.withdraw_consent(
            GRANT, history, request_, f"2025-06-0{1 + number % 9}T00:00:00Z"
        )
        assert set(decision.withdrawn) | set(decision.remaining) == set(OFFERED)
        assert not set(decision.withdrawn) & set(decision.remaining)
        assert decision.all == ("participate" not in decision.remaining)
        if decision.all:
            assert decision.remaining == []
        if decision.payload is None:
            assert decision.remaining == before  # nothing changed, nothing to publish
        else:
            assert decision.payload["purposes"] and set(decision.payload["purposes"]) <= set(before)
            assert ConsentWithdrawn().validate(decision.payload) == {}
            history.append(decision.payload)
        assert grants.current_purposes(GRANT, history) == decision.remaining


# ---- receipt codes -----------------------------------------------------------------------------


def test_receipt_codes_are_random_typeable_and_long_enough():
    codes = {grants.new_receipt_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in list(codes)[:50]:
        assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){6}[0-9A-HJKMNP-TV-Z]{4}", code)
        assert not set(code) & set("ILOU")
    assert grants.RECEIPT_SYMBOLS * math.log2(len(grants.RECEIPT_ALPHABET)) >= 128
    # every symbol of the alphabet turns up: the codes are not drawn from a narrow subset
    assert set("".join(codes).replace("-", "")) == set(grants.RECEIPT_ALPHABET)


def test_typed_codes_are_normalised_before_hashing():
    code = grants.new_receipt_code()
    stored = grants.receipt_code_hash(code, PEPPER)
    typed_variants = [
        code.lower(),
        code.replace("-", " "),
        code.replace("-", ""),
        f"  {code}  ",
        code.replace("0", "O").replace("1", "l"),
    ]
    for typed in typed_variants:
        assert grants.normalise_receipt_code(typed) == code
        assert grants.receipt_code_hash(typed, PEPPER) == stored
        assert grants.receipt_code_matches(typed, stored, PEPPER)
    assert re.fullmatch(r"[0-9a-f]{64}", stored) and code.replace("-", "") not in stored


def test_receipt_code_hash_depends_on_the_pepper_and_the_code():
    code, other = grants.new_receipt_code(), grants.new_receipt_code()
    stored = grants.receipt_code_hash(code, PEPPER)
    assert grants.receipt_code_hash(code, b"another-pepper-0123456789") != stored
    assert not grants.receipt_code_matches(other, stored, PEPPER)
    assert not grants.receipt_code_matches("not a code", stored, PEPPER)
    with pytest.raises(ValueError):
        grants.receipt_code_hash(code, b"short")


@pytest.mark.parametrize(
    "typed", ["", "ABCD-EFGH", "K7QF-9MZX-" * 4, "UUUU-UUUU-UUUU-UUUU-UUUU-UUUU-UUUU", 1234]
)
def test_malformed_receipt_codes_are_refused(typed):
    assert "receipt_code" in errors_of(grants.normalise_receipt_code, typed)
