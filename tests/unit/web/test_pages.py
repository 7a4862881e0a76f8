"""The participant pages through Flask's test client, against the real services in-process."""

from __future__ import annotations

import re

import mongoengine
import pytest

from gateway.web.sessions import COOKIE_NAME
from tests.unit.web.conftest import open_demo_consultation, publish_consent_text

FORM = {"text_version": "1", "text_language": "en"}


def page_kind(response) -> str:
    match = re.search(r'<body data-page="([^"]*)"', response.get_data(True))
    return match.group(1) if match else ""


def code_on(response) -> str:
    return re.search(
        r'<span dir="ltr" translate="no">([A-Z0-9-]+)</span>', response.get_data(True)
    ).group(1)


def start(browser, demo, lang: str = "en"):
    """Open the invitation and give consent to participate and aggregate reporting; returns the receipt page."""
    assert browser.post(f"/i/{demo.code}", data={"lang": lang}).status_code == 303
    assert browser.get("/consent").status_code == 200
    response = browser.post(
        "/consent",
        data={
            "text_version": "1",
            "text_language": lang,
            "purpose": ["participate", "aggregate_reporting"],
        },
    )
    assert response.status_code == 303, response.get_data(True)
    return browser.get("/consent/code")


def stored_sessions() -> list[dict]:
    return list(mongoengine.get_db("gateway")["participant_web_sessions"].find())


def test_opening_the_link_changes_nothing_until_start_is_pressed(platform, demo, browser):
    response = browser.get(f"/i/{demo.code}")
    assert response.status_code == 200 and page_kind(response) == "invitation"
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")
    uses = platform.call(
        "GET",
        f"/api/v1/consultations/{demo.consultation_id}/invitations",
        demo.organiser_token,
        expect=200,
    ).get_json()[0]["uses"]
    response = browser.post(f"/i/{demo.code}")
    assert response.status_code == 303 and response.headers["Location"] == "/welcome"
    assert (
        platform.call(
            "GET",
            f"/api/v1/consultations/{demo.consultation_id}/invitations",
            demo.organiser_token,
            expect=200,
        ).get_json()[0]["uses"]
        == uses + 1
    )


def test_a_wrong_invitation_says_so_in_plain_words(browser):
    response = browser.post("/i/NOT-A-REAL-CODE", data={"lang": "es"})
    assert response.status_code == 404 and page_kind(response) == "invitation"
    assert "Este enlace de invitación no funciona" in response.get_data(True)
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")


def test_the_one_cookie_is_httponly_strict_and_secure_behind_tls(demo, browser):
    cookie = browser.post(f"/i/{demo.code}").headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # gone when the browser closes
    secure = browser.post(f"/i/{demo.code}", base_url="https://localhost").headers["Set-Cookie"]
    assert "Secure" in secure


@pytest.mark.parametrize(
    "path",
    ["/", "/i/abc", "/resume", "/check", "/withdraw", "/assets/voices.css", "/assets/voices.js"],
)
def test_pages_and_their_files_are_never_cached(browser, path):
    response = browser.get(path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


def test_language_comes_from_the_switcher_or_the_browser(browser):
    arabic = browser.get("/check?lang=ar").get_data(True)
    assert '<html lang="ar" dir="rtl">' in arabic and "التحقق من موافقتي" in arabic
    french = browser.get(
        "/check", headers={"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.5"}
    ).get_data(True)
    assert '<html lang="fr" dir="ltr">' in french and "Vérifier mon accord" in french
    unknown = browser.get("/check?lang=de", headers={"Accept-Language": "de"}).get_data(True)
    assert '<html lang="en" dir="ltr">' in unknown


def test_the_chosen_language_stays_with_the_session(demo, browser):
    browser.post(f"/i/{demo.code}", data={"lang": "zh"})
    assert '<html lang="zh"' in browser.get("/welcome").get_data(True)
    browser.get("/welcome?lang=ru")
    page = browser.get("/consent").get_data(True)
    assert '<html lang="ru"' in page and 'name="text_language" value="ru"' in page


def test_pages_need_their_step_first(demo, browser):
    assert (
        browser.get("/survey").headers["Location"] == "https://neutral.example/weather"
    )  # no cookie
    browser.post(f"/i/{demo.code}")
    assert browser.get("/survey").headers["Location"] == "/consent"
    assert browser.get("/finish").headers["Location"] == "/consent"


def test_consent_offers_each_purpose_unticked_and_requires_participate(demo, browser):
    browser.post(f"/i/{demo.code}")
    page = browser.get("/consent").get_data(True)
    boxes = re.findall(r'<input type="checkbox" id="purpose-(\w+)"[^>]*>', page)
    assert boxes == ["participate", "aggregate_reporting", "quote_anonymised", "follow_up_contact"]
    assert " checked" not in "".join(re.findall(r'<input type="checkbox"[^>]*>', page))
    assert "Survivor Voices Network runs this consultation." in page  # the organisers' exact text
    refused = browser.post("/consent", data={**FORM, "purpose": ["aggregate_reporting"]})
    assert refused.status_code == 422
    body = refused.get_data(True)
    assert 'href="#purpose-participate"' in body
    assert re.search(r'id="purpose-aggregate_reporting"[^>]* checked', body)  # their choice is kept
    assert browser.get("/survey").headers["Location"] == "/consent"  # nothing was granted


def test_the_grant_records_the_text_version_and_language_that_were_shown(
    platform, secrets_env, browser
):
    demo = open_demo_consultation(platform)
    browser.post(f"/i/{demo.code}", data={"lang": "fr"})
    assert 'name="text_version" value="1"' in browser.get("/consent").get_data(True)
    # The organisers publish version 2 while the participant is reading version 1.
    publish_consent_text(
        platform, demo.consultation_id, demo.organiser_token, version=2, note=" (v2)"
    )
    stale = browser.post(
        "/consent", data={"text_version": "1", "text_language": "fr", "purpose": ["participate"]}
    )
    assert stale.status_code == 409
    assert 'name="text_version" value="2"' in stale.get_data(True) and "(v2)" in stale.get_data(
        True
    )
    granted = browser.post(
        "/consent", data={"text_version": "2", "text_language": "fr", "purpose": ["participate"]}
    )
    assert granted.status_code == 303
    receipt = platform.call(
        "POST",
        "/api/v1/consent/receipts/lookup",
        expect=200,
        json={"receipt_code": code_on(browser.get("/consent/code"))},
    ).get_json()
    assert receipt["consentText"]["version"] == 2 and receipt["consentText"]["language"] == "fr"
    assert receipt["purposeStatus"] == {"participate": "given"}


def test_under_the_minimum_age_an_adult_agrees_too(platform, browser):
    young = open_demo_consultation(platform, min_age=16)
    browser.post(f"/i/{young.code}")
    page = browser.get("/consent").get_data(True)
    assert "I am 16 or older" in page and "I am younger than 16" in page
    unanswered = browser.post("/consent", data={**FORM, "purpose": ["participate"]})
    assert unanswered.status_code == 422 and 'href="#age-over"' in unanswered.get_data(True)
    alone = browser.post("/consent", data={**FORM, "purpose": ["participate"], "age": "under"})
    assert alone.status_code == 422
    assert "Please choose who the adult with you is." in alone.get_data(True)
    assert "The adult with you must agree too." in alone.get_data(True)
    together = browser.post(
        "/consent",
        data={
            **FORM,
            "purpose": ["participate"],
            "age": "under",
            "guardian_relationship": "foster_carer",
            "guardian_agrees": "1",
        },
    )
    assert together.status_code == 303, together.get_data(True)
    receipt = platform.call(
        "POST",
        "/api/v1/consent/receipts/lookup",
        expect=200,
        json={"receipt_code": code_on(browser.get("/consent/code"))},
    ).get_json()
    assert receipt["collectionMethodCode"] == "guardian"
    assert receipt["guardianAttestation"] == {
        "relationship": "foster_carer",
        "participantAssent": True,
    }


def test_a_content_warning_comes_before_its_section_and_the_section_can_be_skipped(demo, browser):
    start(browser, demo)
    assert browser.get("/survey").headers["Location"] == "/survey/about"
    moved = browser.post(
        "/survey/about", data={"shown": ["region", "age_band"], "q_region": "south"}
    )
    assert moved.headers["Location"] == "/survey/support/notice"
    assert browser.get("/survey/support").headers["Location"] == "/survey/support/notice"
    notice = browser.get("/survey/support/notice").get_data(True)
    assert "The next questions ask about the time after you left." in notice
    skipped = browser.post("/survey/support/notice", data={"action": "skip"})
    assert skipped.headers["Location"] == "/finish"
    assert "Questions you left empty: 3" in browser.get("/finish").get_data(True)


def test_every_question_offers_prefer_not_to_say_and_a_clash_is_asked_about(demo, browser):
    start(browser, demo)
    page = browser.get("/survey/about").get_data(True)
    assert page.count("Prefer not to say") == 2 + 1  # two questions, plus the hint above them
    clash = browser.post(
        "/survey/about",
        data={"shown": ["region", "age_band"], "q_region": "north", "q_age_band": "__declined__"},
    )
    assert clash.status_code == 303  # a radio group holds one value: declining replaces the answer
    browser.post("/survey/support/notice", data={"action": "continue"})
    both = browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "what_would_help"],
            "q_what_would_help": "A place to stay",
            "q_what_would_help__decline": "1",
        },
    )
    assert both.status_code == 422
    body = both.get_data(True)
    assert "Please keep only one." in body and "A place to stay" in body  # nothing typed is lost


def test_a_follow_up_appears_on_the_same_page_and_is_cleared_when_it_no_longer_applies(
    demo, browser
):
    start(browser, demo)
    browser.post("/survey/about", data={"shown": ["region"], "q_region": "north"})
    browser.post("/survey/support/notice", data={"action": "continue"})
    first = browser.post(
        "/survey/support", data={"shown": ["got_help", "what_would_help"], "q_got_help": "yes"}
    )
    assert first.headers["Location"] == "/survey/support?added=1"
    page = browser.get("/survey/support?added=1").get_data(True)
    assert 'name="q_help_rating"' in page and "one more question" in page
    rated = browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "help_rating", "what_would_help"],
            "q_got_help": "yes",
            "q_help_rating": "4",
        },
    )
    assert rated.headers["Location"] == "/finish"
    # Going back and answering "no" hides the rating, and the rating is forgotten.
    changed = browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "help_rating", "what_would_help"],
            "q_got_help": "no",
            "q_help_rating": "4",
        },
    )
    assert changed.headers["Location"] == "/finish"
    assert "Questions you answered: 2" in browser.get("/finish").get_data(True)


def test_an_answer_that_does_not_fit_is_explained(demo, browser):
    start(browser, demo)
    browser.post("/survey/about", data={"shown": ["region"], "q_region": "north"})
    browser.post("/survey/support/notice", data={"action": "continue"})
    browser.post(
        "/survey/support", data={"shown": ["got_help", "what_would_help"], "q_got_help": "yes"}
    )
    wrong = browser.post(
        "/survey/support?lang=ar",
        data={"shown": ["got_help", "help_rating"], "q_got_help": "yes", "q_help_rating": "9"},
    )
    assert wrong.status_code == 422
    assert "اختر رقمًا من 1 إلى 5." in wrong.get_data(True)


def test_save_resume_submit_and_receipt(platform, demo, browser):
    receipt_code = code_on(start(browser, demo))
    browser.post("/survey/about", data={"shown": ["region", "age_band"], "q_region": "capital"})
    browser.post("/survey/support/notice", data={"action": "continue"})
    saved = browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "what_would_help"],
            "q_got_help": "partly",
            "q_what_would_help": "Someone who listens",
            "action": "save",
        },
    )
    assert saved.headers["Location"] == "/saved"
    resume_code = code_on(browser.get("/saved"))
    assert "This code works for 3 days." in browser.get("/saved").get_data(True)

    later = platform.gateway.test_client()  # another day, another browser
    assert later.post("/resume", data={"resume_code": "ABCD"}).status_code == 422
    resumed = later.post("/resume", data={"resume_code": resume_code})
    assert (
        resumed.headers["Location"] == "/survey/support/notice"
    )  # the warning again, in a new visit
    later.post("/survey/support/notice", data={"action": "continue"})
    page = later.get("/survey/support").get_data(True)
    assert re.search(r'value="partly" checked', page) and "Someone who listens" in page
    assert (
        later.post(
            "/survey/support",
            data={
                "shown": ["got_help", "help_rating", "what_would_help"],
                "q_got_help": "partly",
                "q_help_rating": "3",
                "q_what_would_help": "Someone who listens",
            },
        ).headers["Location"]
        == "/finish"
    )
    assert later.post("/finish").headers["Location"] == "/receipt"
    receipt = later.get("/receipt").get_data(True)
    assert (
        "Keep my answers for this consultation" in receipt
        and "Count my answers in group totals" in receipt
    )
    # Shown again after resuming: it was saved, sealed, with the answers.
    assert (
        code_on(later.get("/receipt")) == receipt_code
        and "you were given when you agreed" not in receipt
    )
    assert later.get("/survey").headers["Location"] == "/receipt"  # sent: no second submission
    assert later.post("/resume", data={"resume_code": resume_code}).status_code == 404

    checked = later.post("/check", data={"receipt_code": receipt_code}).get_data(True)
    assert 'id="still-given"' in checked and 'data-purpose="aggregate_reporting"' in checked


def test_withdraw_some_purposes_then_everything(platform, demo, browser):
    receipt_code = code_on(start(browser, demo))
    other = platform.gateway.test_client()
    choose = other.post("/withdraw", data={"receipt_code": receipt_code, "step": "choose"})
    assert page_kind(choose) == "withdraw-choose"
    nothing = other.post(
        "/withdraw", data={"receipt_code": receipt_code, "step": "confirm", "scope": "some"}
    )
    assert nothing.status_code == 422
    some = other.post(
        "/withdraw",
        data={
            "receipt_code": receipt_code,
            "step": "confirm",
            "scope": "some",
            "purpose": ["aggregate_reporting"],
        },
    )
    assert page_kind(some) == "withdraw-done" and "Your choice is saved." in some.get_data(True)
    asked = other.post(
        "/withdraw", data={"receipt_code": receipt_code, "step": "confirm", "scope": "all"}
    )
    assert page_kind(asked) == "withdraw-confirm" and "It cannot be undone." in asked.get_data(True)
    everything = other.post(
        "/withdraw", data={"receipt_code": receipt_code, "step": "confirmed", "scope": "all"}
    )
    assert "You have withdrawn everything." in everything.get_data(True)
    receipt = platform.call(
        "POST", "/api/v1/consent/receipts/lookup", expect=200, json={"receipt_code": receipt_code}
    ).get_json()
    assert receipt["consentStatus"] == "withdrawn"
    wrong = other.post("/withdraw", data={"receipt_code": "WXYZ-WXYZ-WXYZ", "step": "choose"})
    assert wrong.status_code == 422 and page_kind(wrong) == "withdraw-code"


def test_the_withdraw_page_says_ticking_stops_a_use_and_deleting_answers_asks_first(
    platform, demo, browser
):
    receipt_code = code_on(start(browser, demo))
    other = platform.gateway.test_client()
    choose = other.post(
        "/withdraw", data={"receipt_code": receipt_code, "step": "choose"}
    ).get_data(True)
    assert "Uses you still allow" not in choose
    assert "Uses to withdraw" in choose and "The uses you do not tick stay allowed." in choose
    assert "Stop: Count my answers in group totals" in choose

    def given() -> dict:
        return platform.call(
            "POST",
            "/api/v1/consent/receipts/lookup",
            expect=200,
            json={"receipt_code": receipt_code},
        ).get_json()["purposeStatus"]

    before = given()
    # Everything, or "participate" alone, deletes the answers: a confirmation page comes first.
    for choice in ({"scope": "all"}, {"scope": "some", "purpose": ["participate"]}):
        asked = other.post(
            "/withdraw?lang=ar", data={"receipt_code": receipt_code, "step": "confirm", **choice}
        )
        html = asked.get_data(True)
        assert asked.status_code == 200 and page_kind(asked) == "withdraw-confirm"
        assert "هل تريد حذف إجاباتك؟" in html and 'name="step" value="confirmed"' in html
        assert given() == before
    kept = other.post("/withdraw", data={"receipt_code": receipt_code, "step": "choose"})
    assert page_kind(kept) == "withdraw-choose" and given() == before  # "No, keep my answers"
    # Withdrawing a use that deletes nothing needs no second step.
    some = other.post(
        "/withdraw",
        data={
            "receipt_code": receipt_code,
            "step": "confirm",
            "scope": "some",
            "purpose": ["aggregate_reporting"],
        },
    )
    assert page_kind(some) == "withdraw-done" and given()["aggregate_reporting"] == "withdrawn"


def test_quick_exit_ends_the_session_and_its_cookie(demo, browser):
    start(browser, demo)
    assert len(stored_sessions()) >= 1
    before = {s["_id"] for s in stored_sessions()}
    response = browser.get("/exit")
    assert (
        response.status_code == 303
        and response.headers["Location"] == "https://neutral.example/weather"
    )
    assert re.search(rf"{COOKIE_NAME}=;.*Expires=Thu, 01 Jan 1970", response.headers["Set-Cookie"])
    assert response.headers["Cache-Control"] == "no-store"
    assert len(before - {s["_id"] for s in stored_sessions()}) == 1
    # Back to a page of the session, without JavaScript: nothing of this site, the neutral site again.
    for path in ("/survey", "/survey/about", "/consent/code", "/receipt", "/welcome"):
        back = browser.get(path, headers={"Accept-Language": "ar"})
        assert (
            back.status_code == 303
            and back.headers["Location"] == "https://neutral.example/weather"
        )
    # The script's background call ends it the same way, without a redirect to follow.
    start(browser, demo)
    assert browser.post("/exit").status_code == 204
    assert browser.get("/welcome").status_code == 303


def test_a_session_that_ended_while_idle_says_so_and_drops_its_cookie(platform, demo, browser):
    start(browser, demo, lang="fr")
    cookie = browser.get_cookie(COOKIE_NAME)
    platform.gateway.extensions["voices_web"].sessions.end(
        cookie.value
    )  # as if it had been idle too long
    ended = browser.get("/survey", headers={"Accept-Language": "fr"})
    assert ended.headers["Location"] == "/?ended=1&lang=fr"
    assert re.search(rf"{COOKIE_NAME}=;.*Expires=Thu, 01 Jan 1970", ended.headers["Set-Cookie"])


def test_quick_exit_is_on_every_page(demo, browser):
    pages = [browser.get(path).get_data(True) for path in ("/", "/resume", "/check", "/withdraw")]
    pages += [
        browser.post(f"/i/{demo.code}", follow_redirects=True).get_data(True),
        browser.get("/consent").get_data(True),
    ]
    for page in pages:
        assert (
            'id="quick-exit" class="quick-exit" href="/exit" data-exit-url="https://neutral.example/weather"'
            in page
        )


def test_the_stored_session_holds_no_readable_answer(demo, browser):
    start(browser, demo)
    browser.post("/survey/about", data={"shown": ["region"], "q_region": "north"})
    browser.post("/survey/support/notice", data={"action": "continue"})
    browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "what_would_help"],
            "q_what_would_help": "My sister's flat in Leeds",
        },
    )
    for document in stored_sessions():
        dumped = repr(document)
        assert "Leeds" not in dumped and "pseudonym" not in dumped and "consent" not in dumped


def test_a_form_sent_from_another_site_is_refused(demo, browser):
    response = browser.post(f"/i/{demo.code}", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and page_kind(response) == "problem"
    response = browser.post(
        "/check", data={"receipt_code": "x" * 12}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


def test_unknown_section_and_service_trouble_are_pages_not_errors(platform, demo, browser):
    start(browser, demo)
    missing = browser.get("/survey/nope")
    assert missing.status_code == 404 and page_kind(missing) == "problem"
    platform.adapters["consent"].down = True
    try:
        down = browser.post("/check", data={"receipt_code": "ABCD-EFGH-IJKL"})
    finally:
        platform.adapters["consent"].down = False
    assert down.status_code == 503 and page_kind(down) == "problem" and down.headers["Retry-After"]


def test_too_many_tries_get_a_calm_page(secrets_env):
    from tests.unit.gateway.conftest import build_platform

    limited = build_platform(secrets_env, RATE_CODE="2/60")
    client = limited.gateway.test_client()
    statuses = [
        client.post("/check", data={"receipt_code": "ABCD-EFGH-IJKL"}).status_code for _ in range(3)
    ]
    assert statuses[:2] == [422, 422] and statuses[2] == 429
    page = client.post("/check", data={"receipt_code": "ABCD-EFGH-IJKL"})
    assert "Please wait a moment" in page.get_data(True) and page.headers["Retry-After"]
