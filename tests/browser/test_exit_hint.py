"""The Shift-key way out is offered where a keyboard is likely, and not on a touch phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE, guard_network


@pytest.mark.parametrize(
    "device, shown",
    [
        ({"viewport": PHONE, "is_mobile": True, "has_touch": True}, False),
        ({"viewport": DESKTOP}, True),
    ],
)
def test_the_shift_key_hint_shows_only_with_a_keyboard(browser, in_process, device, shown):
    _, origin, invitation_url = in_process
    context = browser.new_context(**device)
    guard_network(context, origin)
    try:
        page = context.new_page()
        page.goto(f"{invitation_url}?lang=fr")
        hint = page.locator(".exit-hint")
        expect(hint).to_have_count(1)
        if shown:
            expect(hint).to_be_visible()
        else:
            expect(hint).to_be_hidden()
        expect(page.locator("#quick-exit")).to_be_visible()  # the button is there on every device
    finally:
        context.close()
