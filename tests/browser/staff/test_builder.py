"""An organiser builds consultations in Chromium: two languages, a content warning, skip logic and
a dimension; an XLSForm instead; preview; consent texts; publish. Then every builder page passes
axe-core in the six languages.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, LANGUAGES, assert_reflows, screenshot
from tests.browser.staff.conftest import assert_staff_page_accessible, in_language
from tests.unit.surveys.workbooks import xlsx


def _at(page: Page, data_page: str) -> None:
    expect(page.locator("body")).to_have_attribute("data-page", data_page)


def _cid(page: Page) -> str:
    return re.search(r"/consultations/(c_[0-9a-f]+)", page.url).group(1)


def _create_with_the_keyboard(page: Page, title: str) -> str:
    """Start a consultation in English and French with the keyboard only."""
    page.locator("#f-title").focus()
    page.keyboard.type(title)
    for _ in range(7):  # from the title to the French box, whatever the order of the boxes
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.value") == "fr":
            break
    page.keyboard.press("Space")
    expect(page.locator("input[name=languages][value=fr]")).to_be_checked()
    page.keyboard.press("Enter")
    _at(page, "builder")
    return _cid(page)


def _fill_texts(page: Page, name: str, texts: dict[str, str]) -> None:
    for lang, text in texts.items():
        page.locator(f"[name='{name}.{lang}']").fill(text)


def _publish_when_ready(page: Page, origin: str, cid: str) -> None:
    """Publish once the checklist has nothing left: the surveys service learns of the published
    consent texts from events, so the page is read again until it shows them."""
    for _ in range(100):
        page.goto(f"{origin}/staff/consultations/{cid}/publish")
        if page.locator(".checklist .blocking").count() == 0:
            break
    assert page.locator(".checklist .blocking").count() == 0, page.locator(
        ".checklist"
    ).inner_text()
    page.click("form[action$='/publish'] button[type=submit]")
    _at(page, "builder")
    expect(page.locator(".consultation-name")).to_contain_text("Open")


@pytest.fixture(scope="module")
def built(web_stack, module_staff_page) -> dict:
    """The organiser's journey, once for the module, on the module's page at desktop width:
    {cid, xls_cid}."""
    origin = web_stack.origin
    page = module_staff_page("organiser")
    network = page.context.network
    before = page.viewport_size
    page.set_viewport_size(DESKTOP)
    try:
        page.goto(f"{origin}/staff/")
        _at(page, "consultations")
        cid = _create_with_the_keyboard(page, "Housing after leaving")

        # A first question in a new section with a content warning; a breakdown dimension.
        page.click("a[href$='/questions/new?section=new']")
        _at(page, "question")
        page.fill("#f-section_id", "home")
        _fill_texts(page, "section_title", {"en": "Your home", "fr": "Votre logement"})
        page.check("#f-has_warning")
        _fill_texts(
            page,
            "content_warning",
            {
                "en": "Some questions are about violence.",
                "fr": "Certaines questions parlent de violence.",
            },
        )
        page.fill("#f-id", "place")
        page.select_option("#f-type", "single_choice")
        _fill_texts(page, "label", {"en": "Where do you stay?", "fr": "Où logez-vous ?"})
        for row, (code, en, fr) in enumerate(
            [("shelter", "Shelter", "Foyer"), ("friends", "With friends", "Chez des amis")]
        ):
            page.fill(f"[name='options[{row}].code']", code)
            page.fill(f"[name='options[{row}].label.en']", en)
            page.fill(f"[name='options[{row}].label.fr']", fr)
        page.check("#f-dimension")
        page.click("form button.primary")
        _at(page, "builder")

        # A refused question keeps what was typed, with the service's message at the field.
        page.click("a[href$='/questions/new?section=home']")
        page.fill("#f-id", "bad id")
        page.select_option("#f-type", "rating")
        _fill_texts(page, "label", {"en": "How safe is it there?"})
        page.click("form button.primary")
        expect(page.locator("#f-id-error")).to_be_visible()
        expect(page.locator("[name='label.en']")).to_have_value("How safe is it there?")
        assert_staff_page_accessible(page, "question refused")
        # Skip logic chosen from the list of earlier questions and their options.
        page.fill("#f-id", "safe")
        page.select_option("#f-relevant", "chosen:place:shelter")
        page.check("#f-sensitive")
        page.click("form button.primary")
        _at(page, "builder")
        expect(page.locator("#item-safe")).to_contain_text("shown only when a condition holds")
        expect(page.locator(".translation-status")).to_contain_text("missing texts: 1")
        screenshot(page, "staff-builder-overview")

        # The missing French text, side by side, then the consultation's title in French.
        page.click(f"a[href='/staff/consultations/{cid}/translations/fr']")
        _at(page, "translations")
        expect(page.locator(".translation-row.missing")).to_have_count(2)
        screenshot(page, "staff-builder-translations")
        page.fill("[name='title']", "Le logement après le départ")
        page.fill("[name='t:sections[0].questions[1].label']", "Est-ce sûr là-bas ?")
        page.click("form button.primary")
        expect(page.locator(".translation-row.missing")).to_have_count(0)

        # Preview in French: the content warning first, then the questions; nothing stored.
        page.click(".builder-tabs a[href$='/preview']")
        page.click(".preview-languages a[lang=fr]")
        expect(page.locator(".preview-frame")).to_contain_text(
            "Certaines questions parlent de violence."
        )
        page.click(".preview-frame a")
        expect(page.locator(".preview-frame")).to_contain_text("Où logez-vous ?")

        # Consent texts in both languages, the consent screen preview, then publish the version.
        page.click(".builder-tabs a[href$='/consent']")
        _at(page, "consent")
        for lang, title in (("en", "Before you start"), ("fr", "Avant de commencer")):
            page.goto(f"{origin}/staff/consultations/{cid}/consent?in={lang}")
            page.fill("#f-title", title)
            page.fill("#f-body", f"{title}: we keep your answers for a year.")
            page.fill("[name='purpose.participate']", f"{title}: keep my answers")
            page.fill("[name='purpose.aggregate_reporting']", f"{title}: count them")
            page.click("form button.primary")
            _at(page, "consent")
        page.click("a[href$='/consent/preview?version=1&in=fr']")
        expect(page.locator(".preview-frame")).to_contain_text(
            "Avant de commencer: keep my answers"
        )
        page.goto(f"{origin}/staff/consultations/{cid}/consent")
        page.click("form[action$='/consent/publish'] button")
        expect(page.locator("table")).to_contain_text("published")
        # A description for the welcome page, written in English only for now.
        page.click(".builder-tabs a[href$='/settings']")
        _at(page, "settings")
        page.fill("[name='descriptions.en']", "About finding a safe place to stay.")
        page.click("form button.primary")
        _at(page, "builder")
        # The checklist blocks publishing and links to the place to fix each item: the
        # description is missing in French.
        page.click(".builder-tabs a[href$='/publish']")
        description_item = page.locator(".checklist li", has_text="description")
        expect(description_item.locator(".blocking")).to_be_visible()
        screenshot(page, "staff-builder-publish-checklist")
        description_item.locator("a").click()
        _at(page, "settings")
        page.fill("[name='descriptions.fr']", "Trouver un endroit sûr où loger.")
        page.click("form button.primary")
        _at(page, "builder")
        _publish_when_ready(page, origin, cid)

        # An XLSForm instead: first a file with rows to fix, listed by row, then a good one.
        page.goto(f"{origin}/staff/consultations")
        xls_cid = _create_with_the_keyboard(page, "Imported from a spreadsheet")
        broken = xlsx(
            [
                ["type", "name", "label::English (en)"],
                ["select_one nope", "q1", "Pick"],
                ["text", "", "No name"],
            ]
        )
        page.set_input_files(
            "#f-file",
            {"name": "form.xlsx", "mimeType": "application/octet-stream", "buffer": broken},
        )
        page.click("form[action$='/xlsform'] button")
        expect(page.locator(".import-problems")).to_contain_text("row 2")
        expect(page.locator(".import-problems")).to_contain_text("row 3")
        assert_staff_page_accessible(page, "XLSForm rows to fix")
        screenshot(page, "staff-builder-xlsform-problems")
        good = xlsx(
            [
                ["type", "name", "label::English (en)", "label::Français (fr)"],
                ["begin_group", "you", "About you", "À propos de vous"],
                ["select_one yn", "safe_now", "Are you safe now?", "Êtes-vous en sécurité ?"],
                ["end_group", "", "", ""],
            ],
            [
                ["list_name", "name", "label::English (en)", "label::Français (fr)"],
                ["yn", "yes", "Yes", "Oui"],
                ["yn", "no", "No", "Non"],
            ],
        )
        page.set_input_files(
            "#f-file", {"name": "form.xlsx", "mimeType": "application/octet-stream", "buffer": good}
        )
        page.click("form[action$='/xlsform'] button")
        expect(page.locator("#item-safe_now")).to_contain_text("Are you safe now?")
        assert network.refused == []
        return {"cid": cid, "xls_cid": xls_cid}
    finally:
        page.set_viewport_size(before)


def test_the_organiser_builds_previews_and_publishes(built, module_staff_page, web_stack):
    page = module_staff_page("organiser")
    in_language(page, web_stack.origin, "en")
    # Other modules on the shared stack build consultations too: find this one by its address.
    row = page.locator(f"tr:has(a[href='/staff/consultations/{built['cid']}'])")
    expect(row).to_contain_text("Housing after leaving")
    expect(row).to_contain_text("Open")


BUILDER_PAGES = (
    ("consultations", "/staff/consultations"),
    ("builder", "/staff/consultations/{cid}"),
    ("settings", "/staff/consultations/{cid}/settings"),
    ("question", "/staff/consultations/{xls_cid}/questions/new?section=new"),
    ("question", "/staff/consultations/{cid}/questions/safe"),
    ("section", "/staff/consultations/{cid}/sections/home"),
    ("translations", "/staff/consultations/{xls_cid}/translations/fr"),
    ("preview", "/staff/consultations/{cid}/preview?in=fr&warning=seen"),
    ("consent", "/staff/consultations/{xls_cid}/consent"),
    ("consent-preview", "/staff/consultations/{cid}/consent/preview?version=1&in=en"),
    ("publish", "/staff/consultations/{xls_cid}/publish"),
)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_builder_page_is_accessible(lang, built, module_staff_page, web_stack):
    page = module_staff_page("organiser")
    in_language(page, web_stack.origin, lang)
    for data_page, path in BUILDER_PAGES:
        page.goto(web_stack.origin + path.format(**built))
        _at(page, data_page)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        assert_staff_page_accessible(page, f"{path} [{lang}]")
        if lang == "ar" and data_page in ("builder", "question", "translations"):
            assert_reflows(page, f"{path} [{lang}]")
