"""Quick exit: by the button, by Shift pressed three times, and without JavaScript.

After leaving, Back must not show any page of the app: with JavaScript every page of the app
shares one history entry, which the exit replaces; without it, a page of the ended session
sends the browser on to the neutral site, because the session it belonged to is gone.
"""

from __future__ import annotations

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.browser.conftest import EARLIER_PAGE, NEUTRAL_SITE
from tests.browser.journey import Journey
from tests.e2e.conftest import eventually

COOKIE = "voices_participant"


def _into_the_survey(page, web_stack) -> int:
    """Open the invitation from an earlier page and go eight pages in; returns the history length
    the earlier page had."""
    page.goto(EARLIER_PAGE)
    before = page.evaluate("history.length")
    journey = Journey(page, web_stack.origin, web_stack.invitation_url, "en")
    journey.open_invitation(from_earlier_page=False)
    journey.consent(("participate",), try_without_participate=False)
    journey.first_section_skipping_age()
    journey.at(r"/survey/support/notice$", "content-warning", "notice")
    return before


def _session_cookies(context) -> list[dict]:
    return [c for c in context.cookies() if c["name"] == COOKIE]


def _assert_left(page, context, web_stack, before: int) -> None:
    expect(page).to_have_url(NEUTRAL_SITE)
    # The app's one history entry became the neutral site's: nothing of the app is left in it.
    assert page.evaluate("history.length") == before + 1
    page.go_back()
    expect(page).to_have_url(EARLIER_PAGE)
    page.go_forward()
    expect(page).to_have_url(NEUTRAL_SITE)
    # The session ended on the server and its cookie is gone from the browser.
    eventually(lambda: not _session_cookies(context), timeout=10)
    # A page of the ended session shows nothing of this site: it sends the browser to the neutral site.
    ended = context.request.get(f"{web_stack.origin}/survey", max_redirects=0)
    assert ended.status == 303 and ended.headers["location"] == NEUTRAL_SITE


def test_the_button_leaves_and_back_does_not_return(web_stack, new_context):
    context = new_context()
    page = context.new_page()
    before = _into_the_survey(page, web_stack)
    assert len(_session_cookies(context)) == 1
    # Eight pages in, the app still has one history entry after the earlier page.
    assert page.evaluate("history.length") == before + 1
    page.focus(".skip-link")  # an in-page link adds no history entry either
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    assert page.evaluate("history.length") == before + 1
    page.click("#quick-exit")
    _assert_left(page, context, web_stack, before)


def test_shift_three_times_leaves(web_stack, new_context):
    context = new_context()
    page = context.new_page()
    before = _into_the_survey(page, web_stack)
    page.keyboard.press("Shift")
    page.keyboard.press("Shift")
    page.keyboard.press("KeyA")  # another key in between starts the count again
    page.keyboard.press("Shift")
    # The exit starts synchronously in the key handler, so not leaving is visible at once.
    assert page.evaluate("document.documentElement.classList.contains('leaving')") is False
    page.keyboard.press("Shift")
    page.keyboard.press("Shift")
    _assert_left(page, context, web_stack, before)


def test_everything_works_without_javascript(web_stack, new_context):
    """Plain forms and links: open, consent, answer, skip a sensitive part, send, then quick exit."""
    context = new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{web_stack.invitation_url}?lang=ar")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.click("form[action^='/i/'] button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-page", "welcome")
    page.click("main a[href='/consent']")
    page.check("#purpose-participate")
    page.click("form[action='/consent'] button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-page", "consent-code")
    page.click("main a[href='/survey']")
    expect(page).to_have_url(f"{web_stack.origin}/survey/about")
    page.check("#q_region__decline")  # "prefer not to say"
    page.click("button[name=action][value=next]")
    expect(page.locator("body")).to_have_attribute("data-page", "notice")
    page.click("button[name=action][value=skip]")  # skip the whole sensitive part
    expect(page.locator("body")).to_have_attribute("data-page", "finish")
    counts = page.locator("main ul.plain-list li")
    expect(counts.nth(0)).to_contain_text("0")
    expect(counts.nth(1)).to_contain_text("1")
    expect(counts.nth(2)).to_contain_text("3")  # age, and the skipped part's two shown questions
    page.click("form[action='/finish'] button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-page", "receipt")
    receipt_code = page.locator(".code span").inner_text()
    assert receipt_code

    page.click("#quick-exit")  # a link to /exit, answered with a redirect to the neutral site
    expect(page).to_have_url(NEUTRAL_SITE)
    assert _session_cookies(context) == []
    # Without JavaScript the app's pages stay in history, but they hold nothing any more:
    # every page is no-store, so Back asks the server, the session is gone, and it sends the
    # browser on to the neutral site again rather than show any page of its own.
    with page.expect_response(lambda r: r.url.startswith(web_stack.origin)) as back:
        try:
            page.go_back()
        except PlaywrightError:
            pass  # the browser follows the redirect to the neutral site, which is not reachable from here
    assert back.value.status == 303 and back.value.headers["location"] == NEUTRAL_SITE
