"""Grants through the consent API: the consent token, the receipt code and receipt, the guardian rule, bad input."""

from __future__ import annotations

import hashlib
from datetime import UTC

import pytest

from services.consent import receipts
from services.consent.models import Grant
from shared.consent_tokens import verify_consent_token
from shared.errors import Unauthorized
from tests.unit.consent.conftest import BODY
from tests.unit.consent.platform_auditing import platform_auditor  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("platform_auditor")


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_a_grant_records_what_was_shown_and_returns_a_token_the_surveys_service_can_verify_offline(
    consent,
):
    cid = consent.open_consultation(languages=("en", "fr"))
    granted = consent.grant(
        cid, "p_alpha", purposes=["aggregate_reporting", "participate"], language="fr"
    )
    stored = Grant.objects.get(grant_id=granted["grant_id"])
    assert (stored.pseudonym, stored.consultation_id, stored.text_version, stored.language) == (
        "p_alpha",
        cid,
        1,
        "fr",
    )
    assert stored.text_sha256 == hashlib.sha256(BODY["fr"].encode("utf-8")).hexdigest()
    assert stored.collection_method == "self" and stored.purposes == [
        "participate",
        "aggregate_reporting",
    ]

    # Only the public key, as anyone can fetch it, is needed to check the token.
    claims = verify_consent_token(
        granted["consent_token"], consent.public_key_pem(), consultation_id=cid
    )
    assert (claims["sub"], claims["cid"], claims["gid"]) == ("p_alpha", cid, granted["grant_id"])
    assert claims["purposes"] == ["participate", "aggregate_reporting"]
    assert claims["exp"] - claims["iat"] == granted["expires_in"] == consent.context.token_ttl_s

    [event] = consent.events("consent.granted")
    assert event.key == "p_alpha" and event.payload["text_sha256"] == stored.text_sha256
    assert event.payload["granted_at"] == granted["receipt"]["events"][0]["eventTime"]


def test_the_token_fails_after_any_change_of_any_byte_and_after_expiry(consent):
    cid = consent.open_consultation()
    token = consent.grant(cid)["consent_token"]
    public_key = consent.public_key_pem()
    claims = verify_consent_token(token, public_key)
    for position, char in enumerate(token):
        if char == ".":
            continue
        replacement = B64URL[(B64URL.index(char) + 1) % len(B64URL)]
        forged = token[:position] + replacement + token[position + 1 :]
        with pytest.raises(Unauthorized):
            verify_consent_token(forged, public_key)
    assert verify_consent_token(token, public_key, now=claims["exp"] - 1)["sub"] == claims["sub"]
    with pytest.raises(Unauthorized) as expired:
        verify_consent_token(token, public_key, now=claims["exp"])
    assert expired.value.extra["reason"] == "expired"


def test_the_receipt_code_is_shown_once_stored_only_as_a_hash_and_brings_the_receipt_back(consent):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_bravo")
    code = granted["receipt_code"]
    assert len(code.replace("-", "")) == 28  # 140 bits
    stored = Grant.objects.get(grant_id=granted["grant_id"])
    assert code not in str(stored.to_mongo()) and code.replace("-", "") not in str(
        stored.to_mongo()
    )
    assert code not in str(consent.snapshot())
    # Typed back loosely (lower case, spaces for dashes) it still works; no account needed.
    receipt = consent.lookup(code.lower().replace("-", " "))
    assert receipt == granted["receipt"]
    assert receipt["version"] == receipts.RECEIPT_VERSION and receipt["piiPrincipalId"] == "p_bravo"
    assert receipt["consentText"] == {"version": 1, "language": "en", "sha256": stored.text_sha256}
    # Each purpose in the words of the consent text the participant read.
    assert [p["purpose"] for p in receipt["services"][0]["purposes"]] == [
        "Plain words about participate (en).",
        "Plain words about aggregate_reporting (en).",
    ]
    # The receipt's grant is exactly what went into the ledger.
    consent.settle()
    [entry] = [e for e in consent.ledger() if e["kind"] == "consent.granted"]
    assert receipts.read_receipt(receipt)["grant"] == entry["data"]
    assert "receipt_code" not in consent.lookup(code) and code not in str(consent.ledger())


def test_two_grants_for_one_participant_are_refused_and_the_first_stands(consent, unchanged):
    cid = consent.open_consultation()
    first = consent.grant(cid, "p_charlie")
    with unchanged():
        problem = consent.grant(cid, "p_charlie", purposes=["participate"], expect=409)
    assert "already" in problem["detail"]
    assert consent.lookup(first["receipt_code"])["purposeStatus"] == {
        "participate": "given",
        "aggregate_reporting": "given",
    }


# ---------------------------------------------------------------- minimum age and guardians


def test_under_the_minimum_age_a_grant_without_a_guardian_is_refused_clearly(consent, unchanged):
    cid = consent.open_consultation(min_age=16)
    with unchanged():
        problem = consent.grant(cid, age=14, expect=422)
        assert "parent, guardian or accountable adult" in problem["errors"]["collection_method"][0]
        problem = consent.grant(cid, age_band="13-15", expect=422)
        assert "collection_method" in problem["errors"]
        problem = consent.grant(cid, expect=422)  # no age given at all
        assert "minimum age of 16" in problem["errors"]["age"][0]
        problem = consent.grant(
            cid,
            age=14,
            collection_method="guardian",
            guardian={"relationship": "parent", "attested": True},
            expect=422,
        )
        assert "participant_assent" in problem["errors"]  # the young person's own agreement
        problem = consent.grant(
            cid,
            age=14,
            collection_method="guardian",
            participant_assent=True,
            guardian={"relationship": "parent", "attested": False},
            expect=422,
        )
        assert "guardian.attested" in problem["errors"]
        problem = consent.grant(
            cid,
            age=14,
            collection_method="guardian",
            participant_assent=True,
            guardian={"relationship": "parent", "attested": True, "name": "A. Person"},
            expect=422,
        )
        assert "guardian" in problem["errors"]  # a name would become permanent evidence


def test_a_guardian_grant_is_recorded_as_such_with_the_participants_assent(consent):
    cid = consent.open_consultation(min_age=16)
    granted = consent.grant(
        cid,
        "p_young",
        age=14,
        collection_method="guardian",
        participant_assent=True,
        guardian={"relationship": "legal_guardian", "attested": True},
    )
    stored = Grant.objects.get(grant_id=granted["grant_id"])
    assert stored.collection_method == "guardian" and stored.assent is True
    assert stored.guardian == {
        "relationship": "legal_guardian",
        "attested": True,
        "participant_assent": True,
        "under_min_age": True,
        "min_age": 16,
    }
    assert granted["receipt"]["guardianAttestation"] == {
        "relationship": "legal_guardian",
        "participantAssent": True,
    }
    assert granted["receipt"]["events"][0]["eventBy"] == "guardian with participant assent"
    consent.settle()
    [entry] = [e for e in consent.ledger() if e["kind"] == "consent.granted"]
    assert entry["data"]["guardian"] is True and entry["data"]["collection_method"] == "guardian"
    # Old enough: their own consent is enough.
    assert consent.grant(cid, age=17)["receipt"]["guardian"] is False


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "change, status, field",
    [
        ({"purposes": ["aggregate_reporting"]}, 422, "purposes"),  # participate is required
        ({"purposes": ["participate", "sell_data"]}, 422, "purposes"),
        ({"purposes": "participate"}, 422, "purposes"),
        ({"language": "de"}, 422, "language"),
        ({"language": "fr"}, 404, None),  # not published in that language
        ({"text_version": 2}, 404, None),  # no such published version
        ({"text_version": 0}, 422, "text_version"),
        ({"collection_method": "phone"}, 422, "collection_method"),
        ({"pseudonym": ""}, 422, "pseudonym"),
        ({"consultation_id": "c_missing"}, 404, None),
        ({"age": -1}, 422, "age"),
        ({"age_band": "teen"}, 422, "age_band"),
        (
            {"guardian": {"relationship": "parent", "attested": True}},
            422,
            "guardian",
        ),  # only with method guardian
        ({"email": "someone@example.org"}, 422, "email"),
    ],
)
def test_bad_grants_are_refused_as_problem_json_and_nothing_is_half_written(
    consent, unchanged, change, status, field
):
    cid = consent.open_consultation(min_age=None)
    consent.settle()
    body = {
        "pseudonym": "p_delta",
        "consultation_id": cid,
        "purposes": ["participate"],
        "language": "en",
        "text_version": 1,
        **change,
    }
    with unchanged():
        problem = consent.call("POST", "/api/v1/consent/grants", status, json=body)
        consent.settle()
    if field:
        assert field in problem["errors"]
    assert not consent.events("consent.granted")


def test_closed_or_unpublished_consultations_take_no_consent(consent, unchanged):
    draft = consent.consultation(publish=False)
    cid = consent.open_consultation()
    consent.status(cid, "closed")
    with unchanged():
        assert "not open" in consent.grant(cid, expect=409)["detail"]
        consent.grant(draft, expect=409)
    consent.status(cid, "open")
    consent.grant(cid)


def test_a_purpose_the_text_shown_never_explained_cannot_be_consented_to(consent, unchanged):
    cid = consent.open_consultation(purposes=["participate", "aggregate_reporting"])
    # The consultation's purposes grow after the text was published (announced again by the surveys service).
    consent.consultation(
        purposes=["participate", "aggregate_reporting", "follow_up_contact"], cid=cid
    )
    with unchanged():
        problem = consent.grant(cid, purposes=["participate", "follow_up_contact"], expect=422)
    assert problem["errors"]["purposes"] == ["not explained in text version 1: follow_up_contact"]
    consent.grant(cid, purposes=["participate", "aggregate_reporting"])


@pytest.mark.parametrize("microsecond", [0, 1500, 999999])
def test_the_receipt_spells_the_grant_time_exactly_as_the_ledger_does(
    consent, monkeypatch, microsecond
):
    """The store keeps milliseconds; a round second must not lose its '.000000' in the receipt."""
    from datetime import datetime

    from services.consent import consent_records

    moment = datetime(2030, 5, 1, 10, 0, 0, microsecond, tzinfo=UTC)
    monkeypatch.setattr(consent_records, "_now", lambda: moment)
    cid = consent.open_consultation()
    code = consent.grant(cid)["receipt_code"]
    consent.settle()
    [entry] = [e for e in consent.ledger() if e["kind"] == "consent.granted"]
    assert receipts.read_receipt(consent.lookup(code))["grant"] == entry["data"]
    assert entry["data"]["granted_at"] == f"2030-05-01T10:00:00.{microsecond // 1000 * 1000:06d}Z"
