"""The staff shell in Chromium: signing in and out with the keyboard, the layout in six languages."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LANGUAGES, PHONE, assert_reflows, guard_network
from tests.browser.staff.conftest import (
    ROLES,
    assert_staff_page_accessible,
    in_language,
    sign_in_on,
)


def test_sign_in_refusal_then_sign_in_and_out_with_the_keyboard(browser, web_stack, staff_accounts):
    context = browser.new_context(viewport=PHONE)
    context.network = guard_network(context, web_stack.origin)
    try:
        page = context.new_page()
        page.goto(f"{web_stack.origin}/staff/sign-in")
        assert_staff_page_accessible(page, "sign-in")
        person = staff_accounts["auditor"]
        page.locator("#f-email").fill(person["email"])
        page.locator("#f-password").fill("not the password at all")
        page.keyboard.press("Enter")
        expect(page.locator("#f-password-error")).to_be_visible()
        expect(page.locator(".error-summary")).to_be_focused()
        expect(page.locator("#f-email")).to_have_value(person["email"])
        assert_staff_page_accessible(page, "sign-in refused")
        sign_in_on(page, web_stack.origin, person["email"], person["password"])
        expect(page.locator("main")).to_contain_text(person["email"])
        # Out with the keyboard: Tab from the skip link reaches the sign-out button.
        page.keyboard.press("Tab")
        expect(page.locator(".skip-link")).to_be_focused()
        for _ in range(3):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.closest('form.sign-out') !== null"):
                break
        page.keyboard.press("Enter")
        expect(page.locator("body")).to_have_attribute("data-page", "sign-in")
        expect(page.locator(".flash")).to_be_visible()
        page.goto(f"{web_stack.origin}/staff/")
        expect(page.locator("body")).to_have_attribute("data-page", "sign-in")
    finally:
        context.close()


@pytest.fixture(scope="module")
def signed_out(browser, web_stack):
    """One page without a staff session, for the module."""
    context = browser.new_context(viewport=PHONE)
    context.network = guard_network(context, web_stack.origin)
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_staff_layout_is_accessible_in_each_language(
    lang, signed_out, module_staff_page, web_stack
):
    signed_out.goto(f"{web_stack.origin}/staff/sign-in?lang={lang}")
    expect(signed_out.locator("html")).to_have_attribute("lang", lang)
    assert_staff_page_accessible(signed_out, f"sign-in [{lang}]")
    signed_out.goto(f"{web_stack.origin}/staff/set-password/not-a-real-code")
    assert_staff_page_accessible(signed_out, f"set password [{lang}]")
    signed_out.click("form button.primary")  # empty and not a real link: said on the page
    expect(signed_out.locator(".error-summary")).to_be_visible()
    assert_staff_page_accessible(signed_out, f"set password refused [{lang}]")
    page = module_staff_page("auditor")
    in_language(page, web_stack.origin, lang)
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    assert_staff_page_accessible(page, f"staff home [{lang}]")
    page.click("nav.staff-nav a[href='/staff/password']")
    assert_staff_page_accessible(page, f"change password [{lang}]")
    if lang in ("en", "ar"):
        assert_reflows(page, f"change password [{lang}]")


@pytest.mark.parametrize("role", ROLES)
def test_every_demo_role_signs_in(role, module_staff_page, web_stack):
    page = module_staff_page(role)
    page.goto(f"{web_stack.origin}/staff/")
    expect(page.locator("form.sign-out")).to_be_visible()
