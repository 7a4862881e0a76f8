"""Consent receipts: Kantara v1.1 fields, consent events, round trip, signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.consent import grants, receipts, tokens
from shared.errors import ValidationFailed

CONSULTATION = {
    "consultation_id": "c-77",
    "purposes": ["participate", "aggregate_reporting", "quote_anonymised", "share_with_partners"],
    "min_age": 16,
    "languages": ["en"],
}
TEXT = {
    "version": 2,
    "language": "en",
    "body": "Your answers help change services. You can stop at any time.",
}
CONTROLLER = {
    "piiController": "Survivors Speak CIC",
    "contact": "Data protection lead",
    "email": "privacy@survivors-speak.example",
    "onBehalf": False,
    "address": {
        "streetAddress": "1 Example Street",
        "addressLocality": "Leeds",
        "addressCountry": "GB",
    },
}
OPTIONS = {
    "controller": CONTROLLER,
    "policy_url": "https://survivors-speak.example/privacy",
    "jurisdiction": "GB",
    "service": "Housing services consultation 2025",
}
KANTARA_REQUIRED = {
    "version": str,
    "jurisdiction": str,
    "consentTimestamp": int,
    "collectionMethod": str,
    "consentReceiptID": str,
    "language": str,
    "piiPrincipalId": str,
    "piiControllers": list,
    "policyUrl": str,
    "services": list,
    "sensitive": bool,
    "spiCat": list,
}


@pytest.fixture()
def history():
    decision = grants.grant_consent(
        consultation=CONSULTATION,
        pseudonym="p-abc",
        age=17,
        purposes=["participate", "aggregate_reporting", "quote_anonymised"],
        text=TEXT,
        granted_at="2025-04-01T10:00:00Z",
        grant_id="g-77",
    )
    first = grants.withdraw_consent(
        decision.payload, [], ["quote_anonymised"], "2025-04-03T09:30:00Z"
    )
    erased = {
        "response_id": "r-5",
        "consultation_id": "c-77",
        "pseudonym": "p-abc",
        "reason": "withdrawal",
        "erased_at": "2025-04-03T09:31:00Z",
    }
    return decision.payload, [first.payload], [erased]


def test_receipt_has_the_kantara_fields(history):
    grant, withdrawals, erasures = history
    receipt = receipts.build_receipt(grant, withdrawals, erasures, **OPTIONS)
    for name, kind in KANTARA_REQUIRED.items():
        assert isinstance(receipt[name], kind), name
    assert receipt["version"] == "KI-CR-v1.1.0"
    assert receipt["consentTimestamp"] == int(datetime(2025, 4, 1, 10, tzinfo=UTC).timestamp())
    assert receipt["piiPrincipalId"] == "p-abc" and receipt["sensitive"] is True
    assert receipt["piiControllers"] == [CONTROLLER]
    [service] = receipt["services"]
    assert service["service"] == OPTIONS["service"]
    assert [p["purposeId"] for p in service["purposes"]] == grant["purposes"]
    for purpose in service["purposes"]:
        assert purpose["consentType"] == "EXPLICIT"
        assert isinstance(purpose["purposeCategory"], list) and isinstance(
            purpose["piiCategory"], list
        )
        assert isinstance(purpose["primaryPurpose"], bool) and isinstance(
            purpose["thirdPartyDisclosure"], bool
        )
        assert purpose["termination"]
    assert [p["primaryPurpose"] for p in service["purposes"]] == [True, False, False]
    json.dumps(receipt)  # JSON-ready as it is


def test_receipt_tracks_events_and_the_state_of_each_purpose(history):
    grant, withdrawals, erasures = history
    receipt = receipts.build_receipt(grant, withdrawals, erasures, **OPTIONS)
    assert [(e["eventType"], e["eventTime"]) for e in receipt["events"]] == [
        ("granted", "2025-04-01T10:00:00.000000Z"),
        ("withdrawn", "2025-04-03T09:30:00.000000Z"),
        ("answers_erased", "2025-04-03T09:31:00Z"),
    ]
    assert receipt["purposeStatus"] == {
        "participate": "given",
        "aggregate_reporting": "given",
        "quote_anonymised": "withdrawn",
    }
    assert receipt["consentStatus"] == "partially_withdrawn"

    everything = grants.withdraw_consent(grant, withdrawals, None, "2025-04-05T00:00:00Z").payload
    later = receipts.build_receipt(grant, withdrawals + [everything], erasures, **OPTIONS)
    assert later["consentStatus"] == "withdrawn" and set(later["purposeStatus"].values()) == {
        "withdrawn"
    }
    assert receipts.build_receipt(grant, **OPTIONS)["consentStatus"] == "active"
    # the receipt id is stable for a grant, so a participant's copies agree
    assert later["consentReceiptID"] == receipts.build_receipt(grant, **OPTIONS)["consentReceiptID"]


def test_receipt_round_trips_through_json(history):
    grant, withdrawals, erasures = history
    receipt = receipts.build_receipt(grant, withdrawals, erasures, **OPTIONS)
    recovered = receipts.read_receipt(json.loads(json.dumps(receipt)))
    assert recovered == {"grant": grant, "withdrawals": withdrawals, "erasures": erasures}


def test_guardian_receipts_name_the_relationship_not_the_person():
    decision = grants.grant_consent(
        consultation=CONSULTATION,
        pseudonym="p-young",
        age=13,
        purposes=["participate"],
        text=TEXT,
        granted_at="2025-04-01T10:00:00Z",
        collection_method="guardian",
        participant_assent=True,
        guardian={"relationship": "foster_carer", "attested": True},
    )
    receipt = receipts.build_receipt(
        decision.payload, guardian_attestation=decision.guardian_attestation, **OPTIONS
    )
    assert receipt["guardian"] is True and receipt["collectionMethodCode"] == "guardian"
    assert receipt["guardianAttestation"] == {
        "relationship": "foster_carer",
        "participantAssent": True,
    }
    assert "guardian" in receipt["collectionMethod"]
    assert receipt["events"][0]["eventBy"] == "guardian with participant assent"


def test_purpose_wording_can_be_set_per_consultation(history):
    grant, _withdrawals, _erasures = history
    receipt = receipts.build_receipt(
        grant,
        **OPTIONS,
        purpose_catalogue={
            "quote_anonymised": {
                "thirdPartyName": "Department for Housing",
                "termination": "Until 2026-01-01",
            }
        },
    )
    quote = next(
        p for p in receipt["services"][0]["purposes"] if p["purposeId"] == "quote_anonymised"
    )
    assert (
        quote["thirdPartyName"] == "Department for Housing"
        and quote["termination"] == "Until 2026-01-01"
    )


def test_events_of_other_grants_are_refused(history):
    grant, withdrawals, erasures = history
    with pytest.raises(ValueError):
        receipts.build_receipt(grant, [{**withdrawals[0], "grant_id": "g-other"}], **OPTIONS)
    with pytest.raises(ValueError):
        receipts.build_receipt(grant, [], [{**erasures[0], "pseudonym": "p-other"}], **OPTIONS)


def test_signed_receipt_verifies_and_tampering_is_refused(history, signing_key, other_key):
    grant, withdrawals, erasures = history
    receipt = receipts.build_receipt(
        grant, withdrawals, erasures, public_key=signing_key, **OPTIONS
    )
    assert receipt["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    signed = receipts.sign_receipt(receipt, signing_key)
    assert receipts.verify_signed_receipt(signed, tokens.public_key_to_pem(signing_key)) == receipt
    with pytest.raises(ValidationFailed):
        receipts.verify_signed_receipt(signed, other_key.public_key())
    head, _body, signature = signed.split(".")
    forged_body = receipts.sign_receipt({**receipt, "consentStatus": "active"}, other_key).split(
        "."
    )[1]
    with pytest.raises(ValidationFailed):
        receipts.verify_signed_receipt(
            f"{head}.{forged_body}.{signature}", signing_key.public_key()
        )


def test_anything_else_is_not_a_receipt():
    with pytest.raises(ValidationFailed):
        receipts.read_receipt({"version": "KI-CR-v1.1.0"})
    with pytest.raises(ValidationFailed):
        receipts.read_receipt({"version": "something else", "events": []})
