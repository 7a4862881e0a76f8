"""Every question type rendered and answered in a real browser, in each of the six languages.

The consultation is the one-section survey with one question of each type; it runs on the
in-process platform (the same gateway and services as the page tests) so it needs no demo change.
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
from tests.every_question_type import EVERY_TYPE_ANSWERS, EVERY_TYPE_SURVEY
from tests.unit.web.conftest import open_demo_consultation


@pytest.fixture(scope="module")
def every_type_url(in_process) -> str:
    platform, origin, _ = in_process
    return f"{origin}/i/{open_demo_consultation(platform, survey=EVERY_TYPE_SURVEY).code}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_question_type_is_shown_and_answered(lang, browser, in_process, every_type_url):
    _, origin, _ = in_process
    context = browser.new_context(viewport=PHONE)
    network = guard_network(context, origin)
    try:
        page = context.new_page()
        journey = Journey(page, origin, every_type_url, lang)
        journey.open_invitation(from_earlier_page=False)
        journey.consent(("participate",), try_without_participate=False)
        journey.at(r"/survey/everything$", "section-every-type", "section")
        for question in EVERY_TYPE_SURVEY["sections"][0]["questions"]:
            expect(page.locator(f"#q-{question['id']}-block")).to_contain_text(
                question["label"][lang]
            )
        expect(page.locator("input[type=checkbox][name=q_needs]")).to_have_count(3)
        assert_accessible(page, f"every question type [{lang}]")
        if lang in ("en", "ar"):
            assert_reflows(page, f"every question type [{lang}]")
            screenshot(page, f"{lang}-section-every-type")

        page.check("input[name=q_place][value=shelter]")
        for code in EVERY_TYPE_ANSWERS["needs"]:
            page.check(f"input[name=q_needs][value={code}]")
        page.check("input[name=q_safety][value='4']")
        page.fill(
            "input[name=q_nights]", "9"
        )  # out of range first: the page says so and keeps the rest
        page.fill("input[name=q_since]", EVERY_TYPE_ANSWERS["since"])
        page.fill("textarea[name=q_note]", EVERY_TYPE_ANSWERS["note"])
        journey.click("button[name=action][value=next]")
        expect(page.locator(".error-summary a[href='#q-nights']")).to_be_visible()
        journey.at(r"/survey/everything$", "section-every-type-problem", "section")
        assert_accessible(page, f"every question type with a problem [{lang}]")
        for code in EVERY_TYPE_ANSWERS["needs"]:
            expect(page.locator(f"input[name=q_needs][value={code}]")).to_be_checked()
        page.fill("input[name=q_nights]", str(EVERY_TYPE_ANSWERS["nights"]))
        journey.click("button[name=action][value=next]")

        journey.at(r"/finish$", "finish")
        expect(page.locator("main ul.plain-list li").nth(0)).to_contain_text("6")
        journey.click("form[action='/finish'] button[type=submit]")
        journey.at(r"/receipt$", "receipt")
        assert network.refused == []
    finally:
        context.close()
