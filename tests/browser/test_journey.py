"""A whole participant journey in a real browser, in each of the six languages.

Consent with three purposes, two questions skipped, progress saved, resumed with the code after a
quick exit, answers sent, receipt shown, contact details left on the optional page, one purpose
withdrawn with the receipt code; on the way,
the mistakes people make (consent without the required choice, a wrong code, an answer given and
declined at once, a missing page). Every page on the way is checked with axe-core; in English and
Arabic the main pages are also photographed at phone and desktop width.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    EARLIER_PAGE,
    LANGUAGES,
    NEUTRAL_SITE,
    assert_accessible,
    assert_reflows,
    screenshot,
)
from tests.browser.journey import Journey

PHOTOGRAPHED = {
    "welcome",
    "consent",
    "content-warning",
    "section-support-follow-up",
    "saved",
    "receipt",
    "withdraw-choose",
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_whole_journey(lang, web_stack, new_context):
    context = new_context()
    page = context.new_page()
    audited = set()

    def audit(page, name):
        if name in audited:
            return
        audited.add(name)
        assert_accessible(page, f"{name} [{lang}]")
        if lang in ("en", "ar") and name in PHOTOGRAPHED:
            assert_reflows(page, f"{name} [{lang}]")
            screenshot(page, f"{lang}-{name}")

    journey = Journey(
        page, web_stack.origin, web_stack.invitation_url, lang, audit=audit, explore_problems=True
    )
    journey.open_invitation()
    journey.consent(("participate", "aggregate_reporting", "follow_up_contact"))
    journey.first_section_skipping_age()
    journey.content_warning()
    journey.support_then_save()
    journey.leave_by_button()
    journey.resume()
    journey.submit()
    journey.leave_contact()
    journey.withdraw("aggregate_reporting")
    expect(page.locator("#withdrawn li[data-purpose=aggregate_reporting]")).to_have_count(1)
    expect(page.locator("#still-given li[data-purpose=participate]")).to_have_count(1)
    journey.check_consent()
    expect(page.locator("#withdrawn li")).to_have_count(1)
    expect(page.locator("#still-given li")).to_have_count(2)

    # Nothing on the device but the one session cookie, HttpOnly and SameSite=Strict.
    cookies = context.cookies()
    assert [c["name"] for c in cookies] == ["voices_participant"], cookies
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    assert page.evaluate("async () => (await indexedDB.databases()).length") == 0
    # Every kind of page was seen (and checked) in this language.
    assert {
        "invitation",
        "welcome",
        "consent",
        "consent-needs-participate",
        "consent-code",
        "problem",
        "section-about",
        "content-warning",
        "section-support-follow-up",
        "saved",
        "start",
        "resume",
        "resume-problem",
        "section-problem",
        "finish",
        "receipt",
        "contact",
        "contact-problem",
        "receipt-contact-kept",
        "withdraw-code",
        "withdraw-choose",
        "withdraw-done",
        "check",
        "check-problem",
        "check-result",
    } <= audited
    # The only requests elsewhere were the page before the invitation and the neutral site, both
    # answered inside the browser; nothing was refused.
    elsewhere = {
        url for url in context.network.requests if not url.startswith(web_stack.origin + "/")
    }
    assert elsewhere <= {EARLIER_PAGE, NEUTRAL_SITE}, elsewhere
    assert context.network.refused == []


def test_every_request_of_the_journey_goes_to_the_app(web_stack, new_context):
    """From the invitation to the withdrawal, the browser asks nothing of any other origin (no
    fonts, scripts, images or analytics from elsewhere), and no log keeps a code or the browser."""
    user_agent = "VoicesPrivacyProbe/1.0 (participant browser)"
    context = new_context(user_agent=user_agent)
    page = context.new_page()
    journey = Journey(page, web_stack.origin, web_stack.invitation_url, "en")
    journey.open_invitation(from_earlier_page=False)
    journey.consent(("participate", "quote_anonymised"), try_without_participate=False)
    journey.first_section_skipping_age()
    journey.content_warning()
    journey.support_then_save()
    page.goto(f"{web_stack.origin}/resume")
    journey.resume(from_start_page=False)
    journey.submit()
    journey.withdraw("quote_anonymised")
    requests = context.network.requests
    assert len(requests) > 20  # pages, form posts, the stylesheet and the script
    assert [url for url in requests if not url.startswith(web_stack.origin + "/")] == []
    assert context.network.refused == []

    logs = "".join(
        path.read_text(errors="replace") for path in Path(web_stack.stack.log_dir).glob("*.log")
    )
    assert "/i/<code>" in logs  # the pages' requests are logged, by route pattern only
    for what, value in {
        "invitation code": web_stack.demo["invitation_code"],
        "user agent": user_agent,
        "receipt code": journey.result.receipt_code,
        "resume code": journey.result.resume_code,
        "session cookie": context.cookies()[0]["value"],
    }.items():
        assert value not in logs, f"the {what} is in a log"
