"""Resuming a day later, when the consent token has expired, in a real browser in each language.

Token expiry cannot be staged in the shared stack of real processes without waiting a day, so
this test serves the gateway and the services in this process (as the page tests do) and moves
the token clocks forward; the browser, the network guard and the axe checks are the same.
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
from tests.unit.web.conftest import a_day_later  # noqa: F401  (a fixture)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_resuming_after_the_token_expired_goes_on_with_the_receipt_code(
    lang, browser, in_process, a_day_later
):
    _, origin, invitation_url = in_process
    context = browser.new_context(viewport=PHONE)
    network = guard_network(context, origin)
    try:
        page = context.new_page()
        audited = set()

        def audit(page, name):
            if name not in audited and name.startswith("renew-consent"):
                audited.add(name)
                assert_accessible(page, f"{name} [{lang}]")
                if lang in ("en", "ar") and name == "renew-consent":
                    assert_reflows(page, f"{name} [{lang}]")
                    screenshot(page, f"{lang}-{name}")

        journey = Journey(page, origin, invitation_url, lang, audit=audit, explore_problems=True)
        journey.open_invitation(from_earlier_page=False)
        journey.consent(("participate", "aggregate_reporting"), try_without_participate=False)
        journey.first_section_skipping_age()
        journey.content_warning()
        journey.support_then_save()
        a_day_later()
        page.goto(f"{origin}/resume?lang={lang}")
        journey.at(r"/resume\?lang=\w+$", "resume")
        page.fill("#resume_code", journey.result.resume_code)
        journey.click("form[action='/resume'] button[type=submit]")
        journey.renew_consent()
        journey.content_warning("content-warning-after-resume")
        journey.at(r"/survey/support$", "section-support-resumed", "section")
        expect(
            page.locator("input[name=q_got_help][value=yes]")
        ).to_be_checked()  # nothing was lost
        page.check("input[name=q_help_rating][value='4']")
        journey.click("button[name=action][value=next]")
        journey.submit()
        assert audited == {"renew-consent", "renew-consent-problem"}
        assert network.refused == []
    finally:
        context.close()
