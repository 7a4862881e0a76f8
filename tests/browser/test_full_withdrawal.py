"""Withdrawing everything after sending answers, in a real browser in each language: the pages say the
answers are being deleted, then (once the surveys service confirmed it) that they were deleted.

The moment between the withdrawal and its confirmation cannot be held still in the shared stack of
real processes, so this test serves the gateway and the services in this process (as the page tests
do) and delivers the events itself; the browser, the network guard and the axe checks are the same.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    LANGUAGES,
    PHONE,
    assert_accessible,
    assert_reflows,
    guard_network,
    screenshot,
)
from tests.browser.journey import Journey


@pytest.mark.parametrize("lang", LANGUAGES)
def test_withdrawing_everything_shows_the_answers_being_deleted_then_deleted(
    lang, browser, in_process
):
    platform, origin, invitation_url = in_process
    context = browser.new_context(viewport=PHONE)
    network = guard_network(context, origin)
    try:
        page = context.new_page()
        audited = set()

        def audit(page, name):
            if name not in audited and name.startswith(
                ("withdraw-confirm", "withdraw-done", "check-result")
            ):
                audited.add(name)
                assert_accessible(page, f"{name} [{lang}]")
                if lang in ("en", "ar"):
                    assert_reflows(page, f"{name} [{lang}]")
                    screenshot(page, f"{lang}-{name}")

        journey = Journey(page, origin, invitation_url, lang, audit=audit)
        journey.open_invitation(from_earlier_page=False)
        journey.consent(("participate", "aggregate_reporting"), try_without_participate=False)
        journey.first_section_skipping_age()
        journey.content_warning()
        journey.at(r"/survey/support$", "section-support", "section")
        page.check("input[name=q_got_help][value=yes]")
        journey.click("button[name=action][value=next]")
        journey.at(r"/survey/support\?added=1$", "section-support-follow-up", "section")
        page.check("input[name=q_help_rating][value='4']")
        journey.click("button[name=action][value=next]")
        journey.submit()

        journey.click("main a[href^='/withdraw']")
        journey.at(r"/withdraw(\?lang=\w+)?$", "withdraw-code")
        page.fill("#receipt_code", journey.result.receipt_code)
        journey.click("form[action='/withdraw'] button[type=submit]")
        journey.at(r"/withdraw$", "withdraw-choose")
        page.check("#scope-all")
        journey.click("form[action='/withdraw'] button[type=submit]")
        journey.at(r"/withdraw$", "withdraw-confirm")
        journey.click("#confirm-withdrawal")
        journey.at(r"/withdraw$", "withdraw-done-pending", "withdraw-done")
        expect(page.locator("#answers-status")).to_have_attribute("data-erasure", "pending")

        platform.deliver()  # the surveys service erases the answers and confirms it to the consent service
        journey.check_consent()
        expect(page.locator("#answers-status")).to_have_attribute("data-erasure", "deleted")
        expect(page.locator("#answers-status p")).to_have_count(2)  # deleted, and how many sets
        expect(page.locator("#answers-status")).to_contain_text("1")
        assert audited == {"withdraw-confirm", "withdraw-done-pending", "check-result"}
        assert network.refused == []
    finally:
        context.close()
