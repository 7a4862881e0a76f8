import uuid

import pytest
from marshmallow import ValidationError

from shared.events import CONTRACTS, Envelope, _contract_schema


def erased_event(**payload_changes) -> dict:
    payload = {
        "response_id": "r1",
        "consultation_id": "c1",
        "pseudonym": "p_1",
        "reason": "withdrawal",
        "erased_at": "2026-01-01T00:00:00Z",
        **payload_changes,
    }
    return Envelope(type="response.erased", key="c1", producer="surveys", payload=payload).to_dict()


def test_a_valid_envelope_round_trips():
    raw = erased_event()
    parsed = Envelope.parse(raw)
    assert parsed.to_dict() == raw


@pytest.mark.parametrize(
    "field", ["id", "type", "version", "occurred_at", "producer", "key", "trace_id", "payload"]
)
def test_every_envelope_field_is_required(field):
    raw = erased_event()
    del raw[field]
    with pytest.raises(ValidationError) as err:
        Envelope.parse(raw)
    assert err.value.messages == {field: ["Missing data for required field."]}


def test_an_extra_envelope_field_is_rejected_by_name():
    raw = {**erased_event(), "ip_address": "203.0.113.9"}
    with pytest.raises(ValidationError) as err:
        Envelope.parse(raw)
    assert err.value.messages == {"ip_address": ["Unknown field."]}


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("id", "not-a-uuid", "Not a valid UUID."),
        ("version", "1", "Not a valid integer."),
        ("version", 0, "greater than or equal to 1"),
        ("occurred_at", "yesterday", "Not a valid datetime."),
        ("occurred_at", "2026-01-01T00:00:00", "Not a valid aware datetime."),
        ("type", "Response Erased", "String does not match expected pattern."),
        ("payload", [1, 2], "Not a valid mapping type."),
    ],
)
def test_wrong_types_get_a_message_naming_the_field(field, value, fragment):
    raw = {**erased_event(), field: value}
    with pytest.raises(ValidationError) as err:
        Envelope.parse(raw)
    assert fragment in " ".join(err.value.messages[field])


def test_payload_is_checked_against_its_contract():
    with pytest.raises(ValidationError) as err:
        Envelope.parse(erased_event(reason="because"))
    assert "reason" in err.value.messages["payload"]
    with pytest.raises(ValidationError) as err:
        Envelope.parse(erased_event(free_text="my story"))
    assert err.value.messages["payload"] == {"free_text": ["Unknown field."]}


def test_unknown_type_or_version_has_no_contract():
    raw = {**erased_event(), "version": 9}
    with pytest.raises(ValidationError) as err:
        Envelope.parse(raw)
    assert "no contract for response.erased v9" in err.value.messages["type"][0]


def test_contract_payloads_reject_unknown_fields():
    # Strictness matters most for privacy: nobody can slip a new personal field into an event.
    for schema in CONTRACTS.values():
        assert schema.Meta.unknown == "raise"


def test_ids_are_unique_uuids():
    a, b = erased_event(), erased_event()
    assert a["id"] != b["id"]
    uuid.UUID(a["id"])


def test_a_reused_contract_schema_still_rejects_bad_payloads_after_good_ones():
    # Parsing reuses one schema instance per contract; nothing from an earlier event may leak into the next.
    good = Envelope.parse(erased_event())
    assert _contract_schema("response.erased", 1) is _contract_schema("response.erased", 1)
    with pytest.raises(ValidationError) as err:
        Envelope.parse(erased_event(reason="because", free_text="my story"))
    fresh_errors = CONTRACTS[("response.erased", 1)]().validate(
        erased_event(reason="because", free_text="my story")["payload"]
    )
    assert err.value.messages == {"payload": fresh_errors}
    assert set(fresh_errors) == {"reason", "free_text"}
    with pytest.raises(ValidationError) as err:
        Envelope.parse({k: v for k, v in erased_event().items() if k != "trace_id"})
    assert err.value.messages == {"trace_id": ["Missing data for required field."]}
    assert Envelope.parse(good.to_dict()) == good
