"""Typing a printed invitation code, in each language: the page, its problem message, and on to welcome."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LANGUAGES, PHONE, assert_accessible, guard_network


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_typed_invitation_code_opens_the_consultation(lang, browser, in_process):
    _, origin, invitation_url = in_process
    code = invitation_url.rsplit("/", 1)[1]
    context = browser.new_context(viewport=PHONE)
    network = guard_network(context, origin)
    try:
        page = context.new_page()
        page.goto(f"{origin}/?lang={lang}")
        page.click("main a[href^='/code']")
        expect(page.locator("body")).to_have_attribute("data-page", "invitation-code")
        assert_accessible(page, f"invitation code [{lang}]")
        page.click("form[action='/code'] button[type=submit]")
        expect(page.locator("#invitation_code-problem")).to_be_visible()
        assert_accessible(page, f"invitation code problem [{lang}]")
        page.fill("#invitation_code", code)
        page.click("form[action='/code'] button[type=submit]")
        expect(page.locator("body")).to_have_attribute("data-page", "welcome")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        assert network.refused == []
    finally:
        context.close()
