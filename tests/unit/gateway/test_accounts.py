"""Staff accounts: API tokens, passwords (argon2), sign-in sessions, set-password links."""

from __future__ import annotations

import contextlib

import pytest

from gateway.models import Account, ApiToken, PasswordLink, StaffSession
from gateway.ratelimit import Rate

PASSWORD = "correct horse battery staple"


@contextlib.contextmanager
def rate(platform, kind: str, text: str):
    limits = platform.gateway.extensions["voices_limits"]
    before = limits.rates[kind]
    limits.rates[kind] = Rate.parse(text)
    try:
        yield
    finally:
        limits.rates[kind] = before


@pytest.fixture
def organiser(platform):
    person = platform.staff("organiser", platform.organisation())
    platform.call(
        "PUT",
        f"/api/v1/accounts/{person['account_id']}/password",
        platform.admin_token,
        expect=204,
        json={"password": PASSWORD},
    )
    return person


def sign_in(platform, email, password=PASSWORD, **kwargs):
    return platform.call(
        "POST", "/api/v1/sessions", json={"email": email, "password": password}, **kwargs
    )


def test_tokens_are_stored_only_as_hashes_and_listed_without_the_secret(platform, organiser):
    stored = list(ApiToken._get_collection().find({"account_id": organiser["account_id"]}))
    assert stored and all(organiser["token"] not in str(doc) for doc in stored)
    listed = platform.call("GET", "/api/v1/tokens", organiser["token"], expect=200).get_json()
    assert [t["token_id"] for t in listed] == [organiser["token_id"]]
    assert "token" not in listed[0]


def test_a_revoked_token_stops_working_at_once(platform, organiser):
    extra = platform.call(
        "POST", "/api/v1/tokens", organiser["token"], expect=201, json={"ttl_days": 1}
    ).get_json()
    platform.call("GET", "/api/v1/me", extra["token"], expect=200)
    platform.call(
        "POST", f"/api/v1/tokens/{extra['token_id']}/revoke", organiser["token"], expect=200
    )
    assert platform.call("GET", "/api/v1/me", extra["token"]).status_code == 401


def test_only_admins_see_or_issue_other_accounts_tokens(platform, organiser):
    other = platform.staff("organiser", platform.organisation())
    platform.call(
        "GET", f"/api/v1/tokens?account_id={other['account_id']}", organiser["token"], expect=403
    )
    platform.call(
        "POST",
        "/api/v1/tokens",
        organiser["token"],
        expect=403,
        json={"account_id": other["account_id"]},
    )
    listed = platform.call(
        "GET", f"/api/v1/tokens?account_id={other['account_id']}", platform.admin_token, expect=200
    ).get_json()
    assert [t["token_id"] for t in listed] == [other["token_id"]]


def test_sign_in_sets_a_strict_httponly_cookie_that_authenticates(platform, organiser):
    response = sign_in(platform, organiser["email"], expect=201)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert response.get_json()["role"] == "organiser"
    me = platform.call(
        "GET", "/api/v1/me", expect=200
    ).get_json()  # the test client keeps the cookie
    assert me["subject"] == organiser["account_id"]
    platform.call("DELETE", "/api/v1/sessions/current", expect=204)
    assert platform.call("GET", "/api/v1/me").status_code == 401
    platform.client.delete_cookie("voices_session")


def test_the_session_cookie_is_secure_behind_tls(platform, organiser):
    response = sign_in(platform, organiser["email"], expect=201, base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]
    platform.client.delete_cookie("voices_session")


def test_wrong_password_and_unknown_email_get_the_same_answer(platform, organiser):
    wrong = sign_in(platform, organiser["email"], "not the right password")
    unknown = sign_in(platform, "nobody@example.org")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json()["detail"] == unknown.get_json()["detail"]
    assert "voices_session" not in wrong.headers.get("Set-Cookie", "")


def test_sign_in_attempts_are_limited_per_email_address(platform, organiser):
    with rate(platform, "sign_in", "3/3600"):
        for _ in range(3):
            assert sign_in(platform, organiser["email"], "wrong password!").status_code == 401
        limited = sign_in(platform, organiser["email"])  # even the right password waits now
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.mimetype == "application/problem+json"
        other = platform.staff("auditor", platform.organisation())
        assert (
            sign_in(platform, other["email"], "wrong password!").status_code == 401
        )  # its own bucket


def _sign_in_from(client, email, password=PASSWORD):
    return client.post("/api/v1/sessions", json={"email": email, "password": password})


def test_wrong_passwords_from_elsewhere_never_lock_the_owner_out_of_a_browser_they_used(
    platform, organiser
):
    owners_browser, attacker = platform.gateway.test_client(), platform.gateway.test_client()
    assert _sign_in_from(owners_browser, organiser["email"]).status_code == 201
    device = owners_browser.get_cookie("voices_device", path="/api/v1/sessions")
    assert device is not None and device.http_only and device.same_site == "Strict"
    with rate(platform, "sign_in", "3/3600"), rate(platform, "anonymous", "6/3600"):
        flood = [
            _sign_in_from(attacker, organiser["email"], "wrong password!").status_code
            for _ in range(10)
        ]
        assert flood[:3] == [401] * 3 and set(flood[3:]) == {429}
        assert _sign_in_from(attacker, organiser["email"]).status_code == 429  # a new browser waits
        for _ in range(2):
            assert _sign_in_from(owners_browser, organiser["email"]).status_code == 201
        # The owner's browser has a budget of its own, not an unlimited one.
        assert (
            _sign_in_from(owners_browser, organiser["email"], "wrong password!").status_code == 401
        )
        assert _sign_in_from(owners_browser, organiser["email"]).status_code == 429


def test_a_device_cookie_counts_only_for_its_own_account(platform, organiser):
    browser = platform.gateway.test_client()
    assert _sign_in_from(browser, organiser["email"]).status_code == 201
    other = platform.staff("organiser", platform.organisation())
    with rate(platform, "sign_in", "2/3600"):
        statuses = [
            _sign_in_from(browser, other["email"], "wrong password!").status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 429]
        assert _sign_in_from(browser, organiser["email"]).status_code == 201


def test_a_set_password_link_lets_a_locked_out_owner_in_from_a_new_browser(platform, organiser):
    attacker, new_browser = platform.gateway.test_client(), platform.gateway.test_client()
    with rate(platform, "sign_in", "3/3600"):
        for _ in range(5):
            _sign_in_from(attacker, organiser["email"], "wrong password!")
        assert _sign_in_from(new_browser, organiser["email"]).status_code == 429
        link = platform.call(
            "POST",
            f"/api/v1/accounts/{organiser['account_id']}/password-links",
            platform.admin_token,
            expect=201,
        ).get_json()
        redeemed = new_browser.post(
            "/api/v1/password-links/redeem",
            json={"code": link["code"], "password": "a fresh passphrase here"},
        )
        assert redeemed.status_code == 204
        assert (
            _sign_in_from(new_browser, organiser["email"], "a fresh passphrase here").status_code
            == 201
        )


def test_a_flood_of_made_up_set_password_links_never_blocks_a_real_one(platform, organiser):
    link = platform.call(
        "POST",
        f"/api/v1/accounts/{organiser['account_id']}/password-links",
        platform.admin_token,
        expect=201,
    ).get_json()
    with rate(platform, "anonymous", "5/3600"):
        for i in range(20):
            made_up = platform.call(
                "POST",
                "/api/v1/password-links/redeem",
                json={"code": f"made-up-{i}", "password": PASSWORD},
            )
            assert made_up.status_code == 401
        platform.call(
            "POST",
            "/api/v1/password-links/redeem",
            expect=204,
            json={"code": link["code"], "password": "a fresh passphrase here"},
        )


def test_sign_ins_for_unknown_addresses_cost_no_password_hashing(platform, organiser, monkeypatch):
    from gateway import accounts

    assert (
        sign_in(platform, "warm-up@example.org").status_code == 401
    )  # measures one verification, once
    verified = []

    class CountingHasher:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def verify(self, stored, password):
            verified.append(1)
            return self.real.verify(stored, password)

    monkeypatch.setattr(accounts, "_hasher", CountingHasher(accounts._hasher))
    made_up = [sign_in(platform, f"nobody-{i}@example.org") for i in range(30)]
    assert {r.status_code for r in made_up} == {401} and verified == []
    wrong = sign_in(platform, organiser["email"], "not the right password")
    assert wrong.status_code == 401 and len(verified) == 1
    assert wrong.get_json()["detail"] == made_up[0].get_json()["detail"]


def test_a_cookie_session_refuses_cross_site_writes(platform, organiser):
    sign_in(platform, organiser["email"], expect=201)
    try:
        refused = platform.call(
            "POST", "/api/v1/tokens", json={}, headers={"Origin": "https://elsewhere.example"}
        )
        assert refused.status_code == 403
        platform.call(
            "POST", "/api/v1/tokens", json={}, headers={"Origin": "http://localhost"}, expect=201
        )
    finally:
        platform.call("DELETE", "/api/v1/sessions/current", expect=204)
        platform.client.delete_cookie("voices_session")


def test_a_stale_cookie_does_not_block_signing_in(platform, organiser):
    platform.client.set_cookie("voices_session", "vs_not-a-session")
    try:
        assert platform.call("GET", "/api/v1/me").status_code == 401
        sign_in(platform, organiser["email"], expect=201)
    finally:
        platform.client.delete_cookie("voices_session")


def test_a_set_password_link_works_once(platform):
    person = platform.staff("auditor", platform.organisation())
    link = platform.call(
        "POST",
        f"/api/v1/accounts/{person['account_id']}/password-links",
        platform.admin_token,
        expect=201,
    ).get_json()
    assert PasswordLink.objects(account_id=person["account_id"]).first().code_hash != link["code"]
    weak = platform.call(
        "POST", "/api/v1/password-links/redeem", json={"code": link["code"], "password": "short"}
    )
    assert weak.status_code == 422
    platform.call(
        "POST",
        "/api/v1/password-links/redeem",
        expect=204,
        json={"code": link["code"], "password": PASSWORD},
    )
    again = platform.call(
        "POST", "/api/v1/password-links/redeem", json={"code": link["code"], "password": PASSWORD}
    )
    assert again.status_code == 401
    sign_in(platform, person["email"], expect=201)
    platform.client.delete_cookie("voices_session")


def test_passwords_are_stored_as_argon2_hashes(platform, organiser):
    stored = Account.objects(account_id=organiser["account_id"]).first().password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_changing_your_password_ends_your_sessions(platform, organiser):
    sign_in(platform, organiser["email"], expect=201)
    try:
        platform.call(
            "PUT",
            "/api/v1/me/password",
            expect=401,
            json={"current_password": "not my password", "new_password": "a brand new passphrase"},
        )
        platform.call(
            "PUT",
            "/api/v1/me/password",
            expect=204,
            json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        )
        assert platform.call("GET", "/api/v1/me").status_code == 401
        assert not StaffSession.objects(account_id=organiser["account_id"], revoked=False).count()
        sign_in(platform, organiser["email"], "a brand new passphrase", expect=201)
    finally:
        platform.client.delete_cookie("voices_session")


def test_a_disabled_account_loses_tokens_and_sessions(platform, organiser):
    platform.call(
        "PATCH",
        f"/api/v1/accounts/{organiser['account_id']}",
        platform.admin_token,
        expect=200,
        json={"disabled": True},
    )
    assert platform.call("GET", "/api/v1/me", organiser["token"]).status_code == 401
    assert sign_in(platform, organiser["email"]).status_code == 401


def test_a_platform_auditor_is_an_account_in_no_organisation(platform):
    auditor = platform.staff("platform_auditor", None)
    me = platform.call("GET", "/api/v1/me", auditor["token"], expect=200).get_json()
    assert (me["role"], me["organisation_id"]) == ("platform_auditor", None)
    home = platform.organisation()
    in_one = platform.call(
        "POST",
        "/api/v1/accounts",
        platform.admin_token,
        json={"email": "pa@example.org", "role": "platform_auditor", "organisation_id": home},
    )
    assert in_one.status_code == 422 and "organisation_id" in in_one.get_json()["errors"]
    # An organisation's auditor never becomes one: that would widen what an existing account reads.
    auditor_of_one = platform.staff("auditor", home)
    promoted = platform.call(
        "PATCH",
        f"/api/v1/accounts/{auditor_of_one['account_id']}",
        platform.admin_token,
        json={"role": "platform_auditor"},
    )
    assert promoted.status_code == 422


def test_read_access_to_other_organisations_is_granted_to_policy_accounts_only(platform):
    home, other = platform.organisation(), platform.organisation()
    analyst = platform.staff("policy", home)
    granted = platform.call(
        "PATCH",
        f"/api/v1/accounts/{analyst['account_id']}",
        platform.admin_token,
        expect=200,
        json={"readable_organisations": [other]},
    ).get_json()
    assert granted["readable_organisations"] == [other]
    assert platform.call("GET", "/api/v1/me", analyst["token"], expect=200).get_json()[
        "readable_organisations"
    ] == [other]
    organiser = platform.staff("organiser", home)
    refused = platform.call(
        "PATCH",
        f"/api/v1/accounts/{organiser['account_id']}",
        platform.admin_token,
        json={"readable_organisations": [other]},
    )
    assert refused.status_code == 422
    unknown = platform.call(
        "PATCH",
        f"/api/v1/accounts/{analyst['account_id']}",
        platform.admin_token,
        json={"readable_organisations": ["o_nope"]},
    )
    assert unknown.status_code == 422


def test_a_missing_body_is_refused_where_the_document_requires_one(platform, organiser):
    missing = platform.call("POST", "/api/v1/tokens", organiser["token"])
    assert missing.status_code == 422 and missing.get_json()["errors"] == {"body": ["missing"]}
    assert platform.call("POST", "/api/v1/tokens", organiser["token"], json={}).status_code == 201
    path = f"/api/v1/accounts/{organiser['account_id']}"
    assert platform.call("PATCH", path, platform.admin_token).status_code == 422
    assert platform.call("PATCH", path, platform.admin_token, json={}).status_code == 200


def test_password_checks_run_a_few_at_a_time_and_new_browsers_never_take_the_known_ones_turn(
    monkeypatch,
):
    import threading
    import time

    from gateway import accounts
    from shared.errors import ServiceUnavailable

    running, most = [], []
    lock = threading.Lock()

    class SlowHasher:
        def verify(self, stored, password):
            with lock:
                running.append(1)
                most.append(len(running))
            time.sleep(0.02)
            with lock:
                running.pop()
            return False

    monkeypatch.setattr(accounts, "_hasher", SlowHasher())
    checks = [
        threading.Thread(target=accounts._verify_quietly, args=("h", "p", "new")) for _ in range(8)
    ]
    for check in checks:
        check.start()
    for check in checks:
        check.join()
    assert max(most) <= accounts.HASHING_AT_ONCE  # a flood of sign-ins cannot take every core
    # Every turn of the new browsers' pool taken: a known browser's check still runs at once ...
    new_pool = accounts._hashing["new"]
    for _ in range(accounts.HASHING_AT_ONCE):
        new_pool.acquire()
    monkeypatch.setattr(accounts, "HASHING_WAIT_S", 0.05)
    try:
        assert accounts._verify_quietly("h", "p", "known") is False
        # ... and a new browser's waits its turn, then is told to come back (503 problem+json).
        with pytest.raises(ServiceUnavailable):
            accounts._verify_quietly("h", "p", "new")
    finally:
        for _ in range(accounts.HASHING_AT_ONCE):
            new_pool.release()
