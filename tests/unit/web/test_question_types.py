"""Every question type, on the pages, in every language: shown, answered, sent and stored as given."""

from __future__ import annotations

import pytest

from deploy.demo import LANGS
from services.surveys.models import Response
from tests.every_question_type import EVERY_TYPE_ANSWERS, EVERY_TYPE_SURVEY
from tests.unit.web.conftest import open_demo_consultation
from tests.unit.web.test_pages import page_kind

FORM = {
    "shown": [q["id"] for q in EVERY_TYPE_SURVEY["sections"][0]["questions"]],
    "q_place": "shelter",
    "q_needs": ["housing", "papers"],
    "q_safety": "4",
    "q_nights": "3",
    "q_since": "2026-01-15",
    "q_note": "Kind people.",
}


@pytest.fixture(scope="module")
def every_type(platform):
    return open_demo_consultation(platform, survey=EVERY_TYPE_SURVEY)


def _consent(browser, consultation, lang: str) -> None:
    assert browser.post(f"/i/{consultation.code}", data={"lang": lang}).status_code == 303
    assert browser.get("/consent").status_code == 200
    assert (
        browser.post(
            "/consent",
            data={"text_version": "1", "text_language": lang, "purpose": ["participate"]},
        ).status_code
        == 303
    )


@pytest.mark.parametrize("lang", LANGS)
def test_every_question_type_is_shown_answered_and_stored(platform, every_type, browser, lang):
    _consent(browser, every_type, lang)
    page = browser.get("/survey/everything")
    html = page.get_data(True)
    assert page.status_code == 200 and page_kind(page) == "section", html
    for question in EVERY_TYPE_SURVEY["sections"][0]["questions"]:
        assert question["label"][lang] in html
    for option in EVERY_TYPE_SURVEY["sections"][0]["questions"][1]["options"]:
        assert 'type="checkbox"' in html and option["label"][lang] in html

    # A problem elsewhere on the page keeps the ticked boxes ticked.
    again = browser.post("/survey/everything", data={**FORM, "q_nights": "9"})
    assert again.status_code == 422
    kept = again.get_data(True)
    assert (
        'value="housing" checked' in kept
        and 'value="papers" checked' in kept
        and 'value="work">' in kept
    )

    assert browser.post("/survey/everything", data=FORM).headers["Location"] == "/finish"
    assert browser.post("/finish").headers["Location"] == "/receipt"
    stored = (
        Response.objects(consultation_id=every_type.consultation_id)
        .order_by("-submitted_at")
        .first()
    )
    assert {**stored.answers, "note": EVERY_TYPE_ANSWERS["note"]} == EVERY_TYPE_ANSWERS
    assert "note" not in stored.answers and set(stored.free_text) == {"note"}  # sealed, not plain
