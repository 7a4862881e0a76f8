"""A reader whose language the consultation does not offer is told which language the consent text is in."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ONE_QUESTION_SURVEY
from tests.unit.web.conftest import open_demo_consultation
from tests.unit.web.test_pages import page_kind


@pytest.fixture(scope="module")
def english_only(platform) -> str:
    """The link code of an open consultation in English only."""
    return open_demo_consultation(platform, survey=ONE_QUESTION_SURVEY).code


@pytest.mark.parametrize(
    "lang, note",
    [
        ("ar", "لا تقدّم هذه الاستشارة نص الموافقة باللغة العربية، لذلك يظهر باللغة الإنجليزية"),
        ("zh", "本次咨询没有提供中文的同意书，因此以英语显示"),
        (
            "fr",
            "ne propose pas son texte de consentement en français : il est donc affiché en anglais",
        ),
    ],
)
def test_the_consent_text_in_another_language_says_which_and_why(
    platform, english_only, lang, note
):
    browser = platform.gateway.test_client()
    browser.post(f"/i/{english_only}", data={"lang": lang})
    page = browser.get("/consent")
    html = page.get_data(True)
    assert page_kind(page) == "consent" and note in html
    assert '<section class="consent-text" lang="en"' in html


def test_no_note_when_the_text_is_in_the_readers_language(platform, english_only):
    browser = platform.gateway.test_client()
    browser.post(f"/i/{english_only}", data={"lang": "en"})
    assert 'id="text-language-note"' not in browser.get("/consent").get_data(True)


def test_the_consultation_title_and_description_are_shown_in_the_readers_language(platform):
    from deploy.demo import TITLE

    consultation = open_demo_consultation(
        platform, titles=TITLE, descriptions={lang: f"{TITLE[lang]} (desc)" for lang in TITLE}
    )
    for lang in ("ar", "zh"):
        browser = platform.gateway.test_client()
        browser.post(f"/i/{consultation.code}", data={"lang": lang})
        welcome = browser.get("/welcome").get_data(True)
        assert (
            f'<p class="lead">{TITLE[lang]}</p>' in welcome and f"{TITLE[lang]} (desc)" in welcome
        )
        assert "After leaving" not in welcome
    # Without translations, the organisers' one title shows, as before.
    untranslated = open_demo_consultation(platform)
    browser = platform.gateway.test_client()
    browser.post(f"/i/{untranslated.code}", data={"lang": "ar"})
    assert '<p class="lead">After leaving</p>' in browser.get("/welcome").get_data(True)
