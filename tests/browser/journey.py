"""A participant's whole path through the pages, step by step, in any of the six languages.

Selectors use ids, names and form actions, never visible words, so the same steps run in every
language. Each step waits for its page, then hands it to `audit` (accessibility checks and
screenshots) when one is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from playwright.sync_api import Page, expect

from tests.browser.conftest import EARLIER_PAGE, NEUTRAL_SITE


@dataclass
class JourneyResult:
    receipt_code: str = ""
    resume_code: str = ""
    purposes: tuple[str, ...] = ()
    visited: list[str] = field(default_factory=list)


class Journey:
    def __init__(
        self,
        page: Page,
        origin: str,
        invitation_url: str,
        lang: str,
        audit: Callable[[Page, str], None] | None = None,
        explore_problems: bool = False,
    ) -> None:
        self.page = page
        self.origin = origin
        self.invitation_url = invitation_url
        self.lang = lang
        self.audit = audit
        # Also make the mistakes a person makes, to check the pages that answer them.
        self.explore_problems = explore_problems
        self.result = JourneyResult()

    # ---------------------------------------------------------------- plumbing

    def at(self, path_pattern: str, name: str, kind: str | None = None) -> None:
        """Wait until page `kind` (its body's data-page; `name` by default) is shown at `path_pattern`
        (a regex on the path), then audit it."""
        expect(self.page.locator("body")).to_have_attribute("data-page", kind or name)
        expect(self.page).to_have_url(re.compile(re.escape(self.origin) + path_pattern))
        self.page.wait_for_load_state("load")
        expect(self.page.locator("html")).to_have_attribute("lang", self.lang)
        expect(self.page.locator("html")).to_have_attribute(
            "dir", "rtl" if self.lang == "ar" else "ltr"
        )
        self.result.visited.append(name)
        if self.audit:
            self.audit(self.page, name)

    def click(self, selector: str) -> None:
        self.page.locator(selector).first.click()

    # ---------------------------------------------------------------- steps

    def enter_code(
        self,
        form: str,
        field: str,
        code: str,
        wrong: str,
        problem_name: str,
        kind: str,
        error_link: str = ".error-summary",
    ) -> None:
        """Send `code` in `field` of the form posting to `form`; when exploring, a wrong code first,
        whose page (`problem_name`) must show the error summary."""
        page = self.page
        if self.explore_problems:
            page.fill(f"#{field}", wrong)
            self.click(f"form[action='{form}'] button[type=submit]")
            expect(page.locator(error_link)).to_be_visible()
            self.at(f"{form}$", problem_name, kind)
        page.fill(f"#{field}", code)
        self.click(f"form[action='{form}'] button[type=submit]")

    def open_invitation(self, from_earlier_page: bool = True) -> None:
        if from_earlier_page:
            self.page.goto(EARLIER_PAGE)
        self.page.goto(f"{self.invitation_url}?lang={self.lang}")
        self.at(r"/i/[^/?]+", "invitation")
        self.click("form[action^='/i/'] button[type=submit]")
        self.at(r"/welcome$", "welcome")
        self.click("main a[href='/consent']")
        self.at(r"/consent$", "consent")

    def consent(self, purposes: tuple[str, ...], try_without_participate: bool = True) -> None:
        page = self.page
        expect(page.locator("input[name=purpose]")).to_have_count(4)
        assert page.locator("input[name=purpose]:checked").count() == 0, (
            "a purpose was ticked for the participant"
        )
        expect(page.locator("input[name=text_version]")).to_have_value("1")
        expect(page.locator("input[name=text_language]")).to_have_value(self.lang)
        if try_without_participate:
            page.check("#purpose-aggregate_reporting")
            self.click("form[action='/consent'] button[type=submit]")
            expect(page.locator(".error-summary a[href='#purpose-participate']")).to_be_visible()
            self.at(r"/consent$", "consent-needs-participate", "consent")
            expect(page.locator("#purpose-aggregate_reporting")).to_be_checked()
            page.uncheck("#purpose-aggregate_reporting")
        for purpose in purposes:
            page.check(f"#purpose-{purpose}")
        self.click("form[action='/consent'] button[type=submit]")
        self.result.purposes = tuple(purposes)
        self.at(r"/consent/code$", "consent-code")
        self.result.receipt_code = page.locator(".code span").inner_text().strip()
        assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4})+", self.result.receipt_code), (
            self.result.receipt_code
        )
        if self.explore_problems:
            page.goto(f"{self.origin}/survey/no-such-part")
            self.at(r"/survey/no-such-part$", "problem")
            page.goto(f"{self.origin}/consent/code")
            self.at(r"/consent/code$", "consent-code")
        self.click("main a[href='/survey']")

    def first_section_skipping_age(self) -> None:
        page = self.page
        self.at(r"/survey/about$", "section-about", "section")
        expect(page.locator("progress")).to_have_attribute("value", "1")
        page.check("input[name=q_region][value=north]")  # age_band is left empty: skipped
        self.click("button[name=action][value=next]")

    def content_warning(self, name: str = "content-warning") -> None:
        self.at(r"/survey/support/notice$", name, "notice")
        expect(self.page.locator(".warning-box")).to_be_visible()
        self.click("button[name=action][value=continue]")

    def support_then_save(self) -> None:
        page = self.page
        self.at(r"/survey/support$", "section-support", "section")
        page.check("input[name=q_got_help][value=yes]")
        self.click("button[name=action][value=next]")
        # "yes" brings up the follow-up rating on the same page.
        self.at(r"/survey/support\?added=1$", "section-support-follow-up", "section")
        expect(page.locator("input[name=q_help_rating]").first).to_be_visible()
        expect(page.locator("input[name=q_got_help][value=yes]")).to_be_checked()
        self.click("button[name=action][value=save]")
        self.at(r"/saved$", "saved")
        self.result.resume_code = page.locator(".code span").inner_text().strip()
        assert self.result.resume_code

    def leave_by_button(self, selector: str = "main a[data-quick-exit]") -> None:
        self.click(selector)
        expect(self.page).to_have_url(NEUTRAL_SITE)

    def resume(self, from_start_page: bool = True) -> None:
        page = self.page
        if from_start_page:
            page.goto(f"{self.origin}/?lang={self.lang}")
            self.at(r"/\?lang=\w+$", "start")
            self.click("main a[href^='/resume']")
        self.at(r"/resume(\?lang=\w+)?$", "resume")
        self.enter_code(
            "/resume",
            "resume_code",
            self.result.resume_code,
            "ABCD-EFGH",
            "resume-problem",
            "resume",
        )
        # A new visit: the content warning comes again before the sensitive part.
        self.content_warning("content-warning-after-resume")
        self.at(r"/survey/support$", "section-support-resumed", "section")
        expect(page.locator("input[name=q_got_help][value=yes]")).to_be_checked()
        if self.explore_problems:
            page.fill("textarea[name=q_what_would_help]", "Someone to talk to.")
            page.check("#q_what_would_help__decline")
            self.click("button[name=action][value=next]")
            expect(page.locator(".error-summary a[href='#q-what_would_help']")).to_be_visible()
            self.at(r"/survey/support$", "section-problem", "section")
            page.fill("textarea[name=q_what_would_help]", "")
            page.uncheck("#q_what_would_help__decline")
        page.check("input[name=q_help_rating][value='4']")  # what_would_help is left empty: skipped
        self.click("button[name=action][value=next]")

    def renew_consent(self) -> None:
        """The consent token expired: the receipt code brings a fresh one (after a wrong code, when exploring)."""
        self.at(r"/consent/renew$", "renew-consent")
        self.enter_code(
            "/consent/renew",
            "receipt_code",
            self.result.receipt_code,
            "WXYZ-WXYZ-WXYZ",
            "renew-consent-problem",
            "renew-consent",
            ".error-summary a[href='#receipt_code']",
        )

    def submit(self) -> None:
        page = self.page
        self.at(r"/finish$", "finish")
        counts = page.locator("main ul.plain-list li")
        expect(counts.nth(0)).to_contain_text("3")  # region, got_help, help_rating
        expect(counts.nth(1)).to_contain_text("0")  # nothing marked "prefer not to say"
        expect(counts.nth(2)).to_contain_text("2")  # age_band and what_would_help skipped
        self.click("form[action='/finish'] button[type=submit]")
        self.at(r"/receipt$", "receipt")
        expect(page.locator("main ul.plain-list li")).to_have_count(len(self.result.purposes))

    def leave_contact(self) -> None:
        """From the receipt, the optional contact page (offered after consent to be contacted again)."""
        page = self.page
        self.click("main a[href='/contact']")
        self.at(r"/contact$", "contact")
        if self.explore_problems:
            self.click("form[action='/contact'] button[type=submit]")
            expect(page.locator(".error-summary a[href='#value']")).to_be_visible()
            self.at(r"/contact$", "contact-problem", "contact")
        page.check("#method-phone")
        page.fill("#value", "+44 7700 900123")
        page.fill("#best_time", "09:00-12:00")
        page.check("#safe-no")
        self.click("form[action='/contact'] button[type=submit]")
        self.at(r"/receipt$", "receipt-contact-kept", "receipt")
        expect(page.locator("form[action='/contact/delete']")).to_have_count(1)

    def withdraw(self, purpose: str) -> None:
        page = self.page
        self.click("main a[href^='/withdraw']")
        self.at(r"/withdraw(\?lang=\w+)?$", "withdraw-code")
        page.fill("#receipt_code", self.result.receipt_code)
        self.click("form[action='/withdraw'] button[type=submit]")
        self.at(r"/withdraw$", "withdraw-choose")
        expect(page.locator("input[name=purpose]")).to_have_count(len(self.result.purposes))
        page.check("#scope-some")
        page.check(f"#purpose-{purpose}")
        self.click("form[action='/withdraw'] button[type=submit]")
        self.at(r"/withdraw$", "withdraw-done")
        expect(page.locator("main [role=status]")).to_be_visible()

    def check_consent(self) -> None:
        self.click("footer a[href^='/check']")
        self.at(r"/check(\?lang=\w+)?$", "check")
        self.enter_code(
            "/check",
            "receipt_code",
            self.result.receipt_code,
            "WXYZ-WXYZ-WXYZ",
            "check-problem",
            "check",
        )
        self.at(r"/check$", "check-result")
