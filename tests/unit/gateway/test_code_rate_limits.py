"""Rate limits on routes that take a receipt or resume code: a flood of wrong codes slows the flood,
never the person holding a real code, on the API and on the web pages."""

from __future__ import annotations

import pytest

from gateway.ratelimit import code_key
from services.consent.grants import new_receipt_code
from tests.unit.gateway.test_accounts import rate
from tests.unit.gateway.test_participant_sessions import _open_consultation

FLOOD = 60


@pytest.fixture(scope="module")
def opened(platform):
    return _open_consultation(platform)


def _receipt_code(platform, opened) -> str:
    cid, code = opened
    body = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()
    return platform.call(
        "POST",
        "/api/v1/consent/grants",
        body["participant_session"],
        expect=201,
        json={
            "pseudonym": body["pseudonym"],
            "consultation_id": cid,
            "purposes": ["participate"],
            "language": "en",
            "text_version": 1,
        },
    ).get_json()["receipt_code"]


def test_genuine_withdrawals_go_through_a_flood_of_wrong_codes(platform, opened):
    codes = [_receipt_code(platform, opened) for _ in range(5)]
    with rate(platform, "anonymous", "10/3600"), rate(platform, "code", "3/3600"):
        flood = [
            platform.call(
                "POST", "/api/v1/consent/withdrawals", json={"receipt_code": new_receipt_code()}
            )
            for _ in range(FLOOD)
        ]
        assert {r.status_code for r in flood} == {404}
        for code in codes:
            platform.call(
                "POST", "/api/v1/consent/receipts/lookup", expect=200, json={"receipt_code": code}
            )
            platform.call(
                "POST", "/api/v1/consent/withdrawals", expect=200, json={"receipt_code": code}
            )


def test_one_code_cannot_be_tried_more_often_than_the_code_rate(platform, opened):
    code = _receipt_code(platform, opened)
    variants = [code, code.lower(), code.replace("-", " "), code.replace("-", "")]
    with rate(platform, "code", "3/3600"):
        statuses = [
            platform.call(
                "POST", "/api/v1/consent/receipts/lookup", json={"receipt_code": v}
            ).status_code
            for v in variants
        ]
    assert statuses == [
        200,
        200,
        200,
        429,
    ]  # every way of writing one code spends from its one bucket


def test_genuine_withdrawals_on_the_web_page_go_through_a_flood(platform, opened):
    codes = [_receipt_code(platform, opened) for _ in range(5)]
    web = platform.gateway.test_client()
    with rate(platform, "anonymous", "10/3600"), rate(platform, "code", "3/3600"):
        for _ in range(FLOOD):
            assert (
                web.post("/withdraw", data={"receipt_code": new_receipt_code()}).status_code == 422
            )
        for code in codes:
            done = web.post(
                "/withdraw", data={"receipt_code": code, "step": "confirm", "scope": "all"}
            )
            assert done.status_code == 200, done.get_data(True)[:300]


def test_a_code_key_is_the_same_for_every_way_of_writing_the_code():
    assert code_key("k7qf-9mzx o1l") == code_key("K7QF 9MZX 011") == code_key("K7QF9MZX0I1")
    assert code_key("K7QF-9MZX-٠١") == code_key("K7QF-9MZX-01")  # Arabic-Indic digits
    assert code_key("K7QF-9MZX-01") != code_key("K7QF-9MZX-02")
    assert "K7QF" not in code_key("K7QF-9MZX-01")


def test_a_flood_of_made_up_invitations_never_stops_a_real_one_from_opening(platform, opened):
    _cid, code = opened
    web = platform.gateway.test_client()
    with rate(platform, "anonymous", "10/3600"), rate(platform, "invitation", "3/3600"):
        for _ in range(FLOOD // 2):
            assert (
                platform.call("POST", f"/api/v1/invitations/{new_receipt_code()}/open").status_code
                == 404
            )
            assert web.post(f"/i/{new_receipt_code()}").status_code == 404
        platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201)
        assert web.post(f"/i/{code}").status_code == 303  # on to the welcome page
        # One link has a budget of its own (a crowd's, by default): it cannot be hammered either.
        statuses = [
            platform.call("POST", f"/api/v1/invitations/{code}/open").status_code for _ in range(2)
        ]
        assert statuses == [201, 429]
