"""The staff shell: sign-in and out, CSRF, sessions and their idle timeout, passwords, layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.models import StaffSession
from gateway.ratelimit import Rate
from gateway.web.staff import csrf
from gateway.web.staff.pages import SESSION_COOKIE
from tests.unit.web.staff.conftest import PASSWORD, make_account


def test_signing_in_opens_the_home_page_with_a_strict_cookie_of_its_own(
    platform, organisation, new_browser
):
    person = make_account(platform, "policy", organisation)
    browser = new_browser()
    page = browser.get("/staff/sign-in")
    assert page.status_code == 200
    assert 'name="csrf_token"' in page.get_data(as_text=True)
    answer = browser.post("/staff/sign-in", {"email": person["email"], "password": PASSWORD})
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/staff" in cookie
    home = browser.get("/staff/")
    assert home.status_code == 200
    assert person["email"] in home.get_data(as_text=True)
    # The page session is not an API session: the API's cookie is another one.
    assert browser.client.get("/api/v1/me").status_code == 401


def test_pages_ask_to_sign_in_and_come_back_after(platform, organisation, new_browser):
    person = make_account(platform, "organiser", organisation)
    browser = new_browser()
    answer = browser.get("/staff/password")
    assert answer.status_code == 303
    assert "/staff/sign-in?next=/staff/password" in answer.headers["Location"]
    browser.get(answer.headers["Location"])
    back = browser.post(
        "/staff/sign-in",
        {"email": person["email"], "password": PASSWORD, "next": "/staff/password"},
    )
    assert back.headers["Location"].endswith("/staff/password")


def test_sign_in_never_leads_to_another_site(platform, organisation, new_browser):
    person = make_account(platform, "organiser", organisation)
    for target in ("https://evil.example/staff/x", "//evil.example/staff/", "/api/v1/me"):
        browser = new_browser()
        browser.get("/staff/sign-in")
        answer = browser.post(
            "/staff/sign-in", {"email": person["email"], "password": PASSWORD, "next": target}
        )
        assert answer.status_code == 303
        assert answer.headers["Location"].endswith("/staff/"), target


def test_a_wrong_password_is_said_next_to_the_field_and_the_email_stays(
    platform, organisation, new_browser
):
    person = make_account(platform, "organiser", organisation)
    browser = new_browser()
    browser.get("/staff/sign-in")
    answer = browser.post("/staff/sign-in", {"email": person["email"], "password": "not it at all"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 401
    assert 'id="f-password-error"' in html
    assert "The email address or password is not correct." in html
    assert f'value="{person["email"]}"' in html
    assert "not it at all" not in html  # a password is never sent back
    empty = browser.post("/staff/sign-in", {"email": "", "password": ""})
    assert empty.status_code == 400
    assert 'id="f-email-error"' in empty.get_data(as_text=True)


def test_sign_in_attempts_on_the_page_are_limited_per_address(platform, organisation, new_browser):
    person = make_account(platform, "organiser", organisation)
    limits = platform.gateway.extensions["voices_limits"]
    before = limits.rates["sign_in"]
    limits.rates["sign_in"] = Rate.parse("3/300")
    try:
        browser = new_browser()
        browser.get("/staff/sign-in")
        statuses = [
            browser.post(
                "/staff/sign-in", {"email": person["email"], "password": "wrong" * 3}
            ).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        html = browser.last.get_data(as_text=True)
        assert "Too many sign-in attempts" in html
        # Even the right password waits now, from a browser the owner never used.
        right = browser.post("/staff/sign-in", {"email": person["email"], "password": PASSWORD})
        assert right.status_code == 429
    finally:
        limits.rates["sign_in"] = before


def test_every_form_needs_the_csrf_token_of_its_browser(platform, staff_browser, new_browser):
    browser = staff_browser("organiser")
    browser.get("/staff/password")
    forged = browser.post(
        "/staff/password",
        {
            "csrf_token": "0" * 64,
            "current_password": PASSWORD,
            "new_password": "x" * 20,
            "confirm_password": "x" * 20,
        },
    )
    assert forged.status_code == 400
    missing = browser.post("/staff/sign-out", csrf=False)
    assert missing.status_code == 400
    assert browser.get("/staff/password").status_code == 200  # still signed in: nothing happened
    # Another browser's token does not fit this one.
    other = new_browser()
    other.get("/staff/sign-in")
    assert browser.post("/staff/sign-out", {"csrf_token": other.csrf}).status_code == 400
    # The sign-in form is protected too (before any session).
    assert other.post("/staff/sign-in", {"email": browser.email}, csrf=False).status_code == 400


def test_a_form_sent_from_another_site_is_refused(staff_browser):
    browser = staff_browser("organiser")
    browser.get("/staff/password")
    answer = browser.post("/staff/sign-out", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 400
    answer = browser.post("/staff/sign-out", headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 400
    assert browser.get("/staff/password").status_code == 200


def test_csrf_tokens_are_bound_to_what_the_browser_holds():
    secret = b"k" * 32
    token = csrf.token_for(secret, "session-a")
    assert csrf.token_matches(secret, "session-a", token)
    assert not csrf.token_matches(secret, "session-b", token)
    assert not csrf.token_matches(b"other" * 8, "session-a", token)
    assert not csrf.token_matches(secret, "", token)
    assert not csrf.token_matches(secret, "session-a", None)


def test_signing_out_ends_the_session_on_the_server(staff_browser):
    browser = staff_browser("organiser")
    browser.get("/staff/password")
    value = browser.client.get_cookie(SESSION_COOKIE, path="/staff").value
    answer = browser.post("/staff/sign-out")
    assert answer.status_code == 303
    page = browser.get(answer.headers["Location"])
    assert "You are signed out." in page.get_data(as_text=True)
    from gateway.accounts import _hash

    assert StaffSession.objects(session_hash=_hash(value)).get().revoked
    # The old cookie value opens nothing any more.
    browser.client.set_cookie(SESSION_COOKIE, value, path="/staff")
    assert browser.get("/staff/password").status_code == 303


def test_a_session_unused_for_its_idle_time_ends(platform, staff_browser):
    browser = staff_browser("organiser")
    idle = platform.gateway.extensions["voices_staff_web"].idle
    value = browser.client.get_cookie(SESSION_COOKIE, path="/staff").value
    from gateway.accounts import _hash

    StaffSession.objects(session_hash=_hash(value)).update_one(
        set__last_seen_at=datetime.now(UTC) - idle + timedelta(minutes=2)
    )
    assert browser.get("/staff/password").status_code == 200  # used in time: it goes on
    StaffSession.objects(session_hash=_hash(value)).update_one(
        set__last_seen_at=datetime.now(UTC) - idle - timedelta(seconds=1)
    )
    answer = browser.get("/staff/password")
    assert answer.status_code == 303
    assert "next=/staff/password" in answer.headers["Location"]
    page = browser.get(answer.headers["Location"])
    assert "signed out after a time without activity" in page.get_data(as_text=True)
    assert StaffSession.objects(session_hash=_hash(value)).get().revoked


def test_a_form_of_a_session_that_ended_asks_to_sign_in_and_changes_nothing(staff_browser):
    browser = staff_browser("organiser")
    browser.get("/staff/password")
    value = browser.client.get_cookie(SESSION_COOKIE, path="/staff").value
    from gateway.accounts import _hash

    StaffSession.objects(session_hash=_hash(value)).update_one(set__revoked=True)
    answer = browser.post(
        "/staff/password",
        {"current_password": PASSWORD, "new_password": "y" * 16, "confirm_password": "y" * 16},
    )
    assert answer.status_code == 303 and "/staff/sign-in" in answer.headers["Location"]
    assert browser.sign_in().status_code == 303  # the old password still works


def test_changing_the_password_maps_each_problem_to_its_field(staff_browser):
    browser = staff_browser("organiser")
    browser.get("/staff/password")
    wrong = browser.post(
        "/staff/password",
        {"current_password": "nope", "new_password": "z" * 16, "confirm_password": "z" * 16},
    )
    assert wrong.status_code == 400
    assert 'id="f-current_password-error"' in wrong.get_data(as_text=True)
    weak = browser.post(
        "/staff/password",
        {"current_password": PASSWORD, "new_password": "short", "confirm_password": "short"},
    )
    html = weak.get_data(as_text=True)
    assert weak.status_code == 400
    assert 'id="f-new_password-error"' in html and "between 12 and 256 characters" in html
    differ = browser.post(
        "/staff/password",
        {"current_password": PASSWORD, "new_password": "a" * 16, "confirm_password": "b" * 16},
    )
    assert 'id="f-confirm_password-error"' in differ.get_data(as_text=True)
    done = browser.post(
        "/staff/password",
        {"current_password": PASSWORD, "new_password": "n" * 16, "confirm_password": "n" * 16},
    )
    assert done.status_code == 303
    assert browser.get("/staff/").status_code == 303  # every session ended
    assert browser.sign_in(password="n" * 16).status_code == 303


def test_a_password_link_sets_the_first_password_once(platform, organisation, new_browser):
    person = platform.staff("auditor", organisation)
    link = platform.call(
        "POST",
        f"/api/v1/accounts/{person['account_id']}/password-links",
        platform.admin_token,
        expect=201,
    ).get_json()
    code = link["code"]
    # The API hands out the page's full address with the code.
    assert link["url"] == f"http://localhost/staff/set-password/{code}"
    browser = new_browser()
    page = browser.get(f"/staff/set-password/{code}")
    assert page.status_code == 200
    weak = browser.post(
        f"/staff/set-password/{code}", {"new_password": "short", "confirm_password": "short"}
    )
    assert weak.status_code == 400
    assert 'id="f-new_password-error"' in weak.get_data(as_text=True)
    done = browser.post(
        f"/staff/set-password/{code}", {"new_password": PASSWORD, "confirm_password": PASSWORD}
    )
    assert done.status_code == 303
    assert "/staff/sign-in?email=" in done.headers["Location"]
    assert browser.sign_in(person["email"]).status_code == 303
    again = new_browser()
    again.get(f"/staff/set-password/{code}")
    used = again.post(
        f"/staff/set-password/{code}", {"new_password": "q" * 16, "confirm_password": "q" * 16}
    )
    assert used.status_code == 400
    assert "not valid any more" in used.get_data(as_text=True)


def test_the_layout_has_a_skip_link_languages_and_navigation_by_role(staff_browser):
    browser = staff_browser("auditor")
    html = browser.get("/staff/?lang=ar").get_data(as_text=True)
    assert 'lang="ar" dir="rtl"' in html
    assert 'class="skip-link" href="#main"' in html
    assert html.count('hreflang="') == 6
    assert "/staff/password" in html
    # The language is remembered for the next page.
    assert 'lang="ar"' in browser.get("/staff/password").get_data(as_text=True)
