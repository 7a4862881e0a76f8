"""Staff pages in Chromium, on the browser tests' shared stack (`web_stack`, with the demo loaded).

Fixtures for every staff page test:
- `staff_page(role, lang="en", viewport=PHONE)`: a page signed in as the demo account of `role`
  (organiser, policy, auditor, admin), opened at the staff home, in a fresh context behind the
  network guard. Each role signs in through the sign-in page once per run; later pages reuse its
  cookies, so a test that signs out or changes the password must sign in on its own
  (`sign_in_on(page, role)`).
- `module_staff_page(role)`: one signed-in page per role for the whole module (one context, one
  sign-in), for tests that only read pages: `in_language(page, origin, lang)` switches it to a
  language before a test's pages, so six languages cost six page loads, not six contexts.
- `assert_staff_page_accessible(page, where)`: axe-core finds nothing, and no request left the app.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import AXE_SOURCE, PHONE, guard_network

ROLES = ("organiser", "policy", "auditor", "admin")


def sign_in_on(page: Page, origin: str, email: str, password: str) -> None:
    """Sign in through the page, with the keyboard only (as a browser's password manager would not)."""
    page.goto(f"{origin}/staff/sign-in")
    page.locator("#f-email").fill(email)
    page.locator("#f-email").press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.locator("form.sign-out")).to_be_visible()


@pytest.fixture(scope="package")
def staff_accounts(web_stack) -> dict[str, dict[str, str]]:
    """{role: {email, password}} of the demo accounts."""
    return web_stack.demo["staff_accounts"]


@pytest.fixture(scope="package")
def staff_cookies(browser, web_stack, staff_accounts) -> Callable[[str], dict]:
    """The storage state (cookies) of a signed-in browser per role, signed in on first use."""
    states: dict[str, dict] = {}

    def of(role: str) -> dict:
        if role not in states:
            context = browser.new_context(viewport=PHONE)
            guard_network(context, web_stack.origin)
            try:
                page = context.new_page()
                person = staff_accounts[role]
                sign_in_on(page, web_stack.origin, person["email"], person["password"])
                states[role] = context.storage_state()
            finally:
                context.close()
        return states[role]

    return of


@pytest.fixture
def staff_page(browser, web_stack, staff_cookies) -> Callable[..., Page]:
    """A factory of signed-in pages: staff_page("organiser", lang="ar")."""
    made = []

    def make(role: str, lang: str = "en", viewport: dict | None = None) -> Page:
        context = browser.new_context(viewport=viewport or PHONE, storage_state=staff_cookies(role))
        context.network = guard_network(context, web_stack.origin)
        made.append(context)
        page = context.new_page()
        page.goto(f"{web_stack.origin}/staff/?lang={lang}")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        return page

    yield make
    for context in made:
        context.close()


@pytest.fixture(scope="module")
def module_staff_page(browser, web_stack, staff_cookies) -> Callable[[str], Page]:
    """A factory of signed-in pages kept for the module: one context per role."""
    made: dict[str, Page] = {}

    def make(role: str) -> Page:
        if role not in made:
            context = browser.new_context(viewport=PHONE, storage_state=staff_cookies(role))
            context.network = guard_network(context, web_stack.origin)
            made[role] = context.new_page()
        return made[role]

    yield make
    for page in made.values():
        page.context.close()


def in_language(page: Page, origin: str, lang: str) -> None:
    """Switch the page's interface language (kept in a cookie for the pages that follow)."""
    page.goto(f"{origin}/staff/?lang={lang}")
    expect(page.locator("html")).to_have_attribute("lang", lang)


# Only the violations are gathered in full: the same checks run, without detailing every pass.
_AXE_RUN = (
    "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
    " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
    " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
)


def assert_staff_page_accessible(page: Page, where: str) -> None:
    """axe-core reports no violation on the page, and the page asked nothing of another origin."""
    # Evaluated through the DevTools protocol, so the page's CSP (no inline scripts) stays on.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    violations = page.evaluate(_AXE_RUN)
    assert violations == [], f"axe on {where} ({page.url}): {violations}"
    network = getattr(page.context, "network", None)
    if network is not None:
        assert network.refused == [], f"{where} asked other origins: {network.refused}"
