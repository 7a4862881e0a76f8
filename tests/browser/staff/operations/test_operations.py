"""Running a consultation in Chromium: printing invitations, following progress while participants
answer, releasing with the survivor group's sign-off, approving a quote; every page accessible in
the six languages and usable with the keyboard alone."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, LANGUAGES, assert_reflows, screenshot
from tests.browser.staff.conftest import assert_staff_page_accessible

PAGES = ("invitations", "invitations/sheet", "progress", "releases", "quotes", "contacts", "close")


def figure(page: Page, figure_id: str) -> int:
    return int(page.locator(f"#{figure_id}").inner_text())


def scanned(page: Page, locator) -> list[str]:
    """What a phone would read from the QR code as Chromium draws it."""
    image = Image.open(io.BytesIO(locator.screenshot())).convert("L")
    return [result.text for result in zxingcpp.read_barcodes(np.asarray(image))]


def test_print_invitations_each_with_a_qr_code_and_download_them_as_csv(organiser_page, running):
    page = organiser_page(running, "invitations", viewport=DESKTOP)
    unused_before = figure(page, "count-unused")
    page.locator("#f-kind-single").check()
    page.locator("#f-count").fill("4")
    page.locator("#f-label").fill("Library drop-in")
    page.locator("main form[action$='/invitations'] button[type=submit]").click()
    expect(page.locator("body")).to_have_attribute("data-page", "operations-sheet")
    cards = page.locator(".ops-card")
    expect(cards).to_have_count(4)
    urls = [cards.nth(i).locator(".ops-url").inner_text() for i in range(4)]
    assert len(set(urls)) == 4 and all(f"{running.origin}/i/" in url for url in urls)
    for i in range(4):
        assert scanned(page, cards.nth(i).locator("svg.qr")) == [urls[i]]
    with page.expect_download() as download:
        page.locator("a[href$='/invitations/sheet.csv']").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    assert [row["url"] for row in rows] == urls
    assert {row["label"] for row in rows} == {"Library drop-in"}
    # Printed: only the invitations, two to a row, no navigation.
    page.emulate_media(media="print")
    expect(page.locator("nav.ops-nav")).to_be_hidden()
    expect(page.locator(".ops-no-print")).to_be_hidden()
    expect(cards.first).to_be_visible()
    page.emulate_media(media="screen")
    # A code printed is a code that opens the consultation.
    opened = running.api("POST", f"/api/v1/invitations/{rows[0]['code']}/open")
    assert opened["consultation_id"] == running.cid
    page.goto(running.url("invitations"))
    assert figure(page, "count-unused") == unused_before + 4


def test_follow_progress_while_participants_answer(organiser_page, running):
    page = organiser_page(running, "progress", viewport=DESKTOP)
    before = figure(page, "figure-submitted")
    running.answer({"region": "north", "got_help": "no", "what_would_help": "A quiet room."})
    running.answer({"region": "south", "got_help": "yes", "help_rating": 4})
    page.locator("#last-updated a").click()  # Refresh
    expect(page.locator("#figure-submitted")).to_have_text(str(before + 2))
    page.locator("#over-time-figures summary").click()
    expect(page.locator("#responses-table tbody tr").last).to_be_visible()
    expect(page.locator("#sections-table")).to_contain_text("Support you received")
    expect(page.locator("svg[aria-labelledby^='responses-chart-title']")).to_be_visible()
    assert "A quiet room." not in page.content()
    screenshot(page, "staff-progress-en")


def test_release_with_the_survivor_groups_sign_off(organiser_page, running):
    for region in ("north", "south", "capital"):
        running.answer({"region": region})
    page = organiser_page(running, "releases", viewport=DESKTOP)
    rows_before = page.locator("#history-table tbody tr").count()
    expect(page.locator("#figure-k")).to_have_text("5")
    page.locator("main form button[type=submit]").click()
    expect(page.locator(".error-summary")).to_be_focused()
    expect(page.locator("#f-signed_off-error")).to_be_visible()
    # With the keyboard: from the summary's link to the box, tick it, send.
    page.locator(".error-summary a").first.press("Enter")
    expect(page.locator("#f-signed_off")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#f-signed_off")).to_be_checked()
    page.locator("main form button[type=submit]").press("Enter")
    expect(page.locator("[role=status]")).to_contain_text("sign-off is recorded")
    expect(page.locator("#history-table tbody tr")).to_have_count(rows_before + 1)
    assert_staff_page_accessible(page, "releases after a release")


def test_approve_a_quote_word_for_word(organiser_page, running):
    answer = "The caseworker who spoke Tigrinya, at the office near the station."
    response_id = running.answer({"got_help": "partly", "what_would_help": answer})
    page = organiser_page(running, "quotes", viewport=DESKTOP)
    box = page.locator(f"textarea[id^='excerpt-{response_id}-']")
    expect(box).to_have_value(answer)
    box.fill("The caseworker who spoke Tigrinya, at the office")
    box.locator("xpath=ancestor::form").locator("button[type=submit]").click()
    expect(page.locator("#approved + ul.ops-quotes")).to_contain_text(
        "The caseworker who spoke Tigrinya, at the office"
    )
    # A rewritten excerpt is refused beside its box, with what was typed kept.
    box = page.locator(f"textarea[id^='excerpt-{response_id}-']")
    box.fill("A caseworker who spoke my language")
    box.locator("xpath=ancestor::form").locator("button[type=submit]").click()
    expect(page.locator(f"[id^='excerpt-{response_id}-'][id$='-error']")).to_be_visible()
    expect(page.locator(f"textarea[id^='excerpt-{response_id}-']")).to_have_value(
        "A caseworker who spoke my language"
    )
    assert_staff_page_accessible(page, "quotes refused")


def test_create_invitations_with_the_keyboard_alone(organiser_page, running):
    page = organiser_page(running, "invitations")
    page.locator("#f-kind-link").focus()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.locator("#f-count")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("0")
    page.keyboard.press("Enter")
    expect(page.locator(".error-summary")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the summary's link leads to the field
    expect(page.locator("#f-count")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    expect(page.locator("body")).to_have_attribute("data-page", "operations-sheet")
    expect(page.locator(".ops-card")).to_have_count(2)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_operations_page_is_accessible_in_each_language(organiser_page, running, lang):
    page = organiser_page(running, "invitations", lang)
    for name in PAGES:
        page.goto(running.url(name, lang))
        expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
        assert re.search(r"operations-", page.locator("body").get_attribute("data-page") or "")
        assert_staff_page_accessible(page, f"{name} [{lang}]")
        if lang in ("en", "ar") and name in ("progress", "invitations/sheet"):
            assert_reflows(page, f"{name} [{lang}]")
    if lang in ("en", "ar"):  # the contact list once read (each read is recorded)
        page.goto(running.url("contacts", lang))
        page.locator("main form button[type=submit]").click()
        expect(page.locator("#read-notice")).to_be_visible()
        assert_staff_page_accessible(page, f"contacts read [{lang}]")
