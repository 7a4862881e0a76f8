"""A fresh consent token by receipt code: current purposes only, verifiable offline, nothing recorded."""

from __future__ import annotations

import pytest

from services.consent import grants
from shared.consent_tokens import verify_consent_token
from shared.errors import Unauthorized

TOKENS = "/api/v1/consent/tokens"


def _without_request_id(problem: dict) -> dict:
    return {k: v for k, v in problem.items() if k != "request_id"}


def reissue(consent, code: str, expect: int = 201) -> dict:
    return consent.call("POST", TOKENS, expect, json={"receipt_code": code})


def test_a_reissued_token_verifies_with_the_public_key_and_names_the_same_grant(consent):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_alpha", purposes=["participate", "aggregate_reporting"])
    first = verify_consent_token(
        granted["consent_token"], consent.public_key_pem(), consultation_id=cid
    )
    issued = reissue(consent, granted["receipt_code"])
    assert issued["expires_in"] == consent.context.token_ttl_s
    assert issued["purposes"] == ["participate", "aggregate_reporting"]
    assert (issued["consultation_id"], issued["pseudonym"]) == (cid, "p_alpha")
    claims = verify_consent_token(
        issued["consent_token"], consent.public_key_pem(), consultation_id=cid
    )
    assert (claims["sub"], claims["cid"], claims["gid"]) == (
        first["sub"],
        first["cid"],
        first["gid"],
    )
    assert claims["purposes"] == ["participate", "aggregate_reporting"]
    assert claims["exp"] - claims["iat"] == consent.context.token_ttl_s


def test_a_code_typed_with_lowercase_and_spaces_still_works(consent):
    cid = consent.open_consultation()
    code = consent.grant(cid)["receipt_code"]
    assert reissue(consent, code.lower().replace("-", " "))["purposes"]


def test_withdrawn_purposes_are_left_out_of_the_new_token(consent):
    cid = consent.open_consultation()
    code = consent.grant(cid, purposes=["participate", "aggregate_reporting", "quote_anonymised"])[
        "receipt_code"
    ]
    consent.withdraw(code, ["quote_anonymised"])
    issued = reissue(consent, code)
    assert issued["purposes"] == ["participate", "aggregate_reporting"]
    claims = verify_consent_token(issued["consent_token"], consent.public_key_pem())
    assert claims["purposes"] == ["participate", "aggregate_reporting"]
    with pytest.raises(Unauthorized):
        verify_consent_token(
            issued["consent_token"], consent.public_key_pem(), required_purpose="quote_anonymised"
        )


def test_a_reissue_records_nothing_no_event_and_no_ledger_entry(consent, unchanged):
    cid = consent.open_consultation()
    code = consent.grant(cid)["receipt_code"]
    consent.settle()
    ledger_before = consent.ledger()
    with unchanged():
        reissue(consent, code)
        reissue(consent, code)
    consent.settle()
    assert consent.ledger() == ledger_before
    assert len(consent.events("consent.granted")) == 1


def test_a_wrong_code_gets_exactly_the_withdrawal_404(consent, unchanged):
    cid = consent.open_consultation()
    code = consent.grant(cid, "p_bravo")["receipt_code"]
    unknown = grants.new_receipt_code()  # well formed, issued to nobody
    one_symbol_off = code[:-1] + ("0" if code[-1] != "0" else "1")
    with unchanged():
        answers = [
            reissue(consent, c, expect=404)
            for c in (unknown, one_symbol_off, "not-a-code", "", "🙂" * 28)
        ]
        withdrawal = consent.withdraw(unknown, expect=404)
    bodies = [_without_request_id(a) for a in answers]
    assert all(body == _without_request_id(withdrawal) for body in bodies), (bodies, withdrawal)
    assert "p_bravo" not in str(bodies) and cid not in str(bodies)


@pytest.mark.parametrize("withdrawn", [None, ["participate"]])
def test_after_withdrawing_participate_no_token_is_issued(consent, unchanged, withdrawn):
    cid = consent.open_consultation()
    code = consent.grant(cid, purposes=["participate", "aggregate_reporting"])["receipt_code"]
    consent.withdraw(code, withdrawn)
    with unchanged():
        problem = reissue(consent, code, expect=409)
    assert "withdrawn" in problem["detail"] and problem["reason"] == "consent_withdrawn"
    assert "consent_token" not in problem


@pytest.mark.parametrize("status", ["closed", "archived"])
def test_no_token_once_the_consultation_is_no_longer_open(consent, status):
    cid = consent.open_consultation()
    code = consent.grant(cid)["receipt_code"]
    consent.status(cid, status)
    problem = reissue(consent, code, expect=409)
    assert "no longer open" in problem["detail"] and problem["reason"] == "consultation_not_open"
    consent.status(cid, "open")  # reopened: tokens again
    assert reissue(consent, code)["purposes"] == ["participate", "aggregate_reporting"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "receipt_code"),
        ({"receipt_code": 12345}, "receipt_code"),
        ({"receipt_code": None}, "receipt_code"),
        ({"receipt_code": "x" * 201}, "receipt_code"),
        (
            {"receipt_code": "ABCD", "purposes": ["participate"]},
            "purposes",
        ),  # nothing beyond the code is taken
    ],
)
def test_a_malformed_body_is_a_422_problem(consent, unchanged, body, field):
    cid = consent.open_consultation()
    consent.grant(cid)
    with unchanged():
        problem = consent.call("POST", TOKENS, 422, json=body)
    assert field in problem["errors"]


def test_a_body_that_is_not_json_is_a_problem_too(consent):
    response = consent.client.post(
        TOKENS,
        data="receipt_code=ABCD",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= response.status_code < 500
    assert response.mimetype == "application/problem+json"


def test_the_route_is_in_the_service_openapi_document(consent):
    spec = consent.call("GET", "/openapi.json", 200)
    operation = spec["paths"]["/api/v1/consent/tokens"]["post"]
    assert {"201", "404", "409", "422"} <= set(operation["responses"])
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ReceiptCode"
    )
