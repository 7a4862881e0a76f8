"""The demo data that `make run` loads must be a publishable consultation."""
from deploy.demo import CONSENT_BODY, LANGS, PURPOSE_TEXT, SURVEY
from services.surveys import questionnaire


def test_demo_survey_is_publishable_in_all_six_languages():
    questionnaire.publishable(SURVEY)
    assert set(SURVEY["languages"]) == set(LANGS) == set(questionnaire.UN_LANGUAGES)


def test_demo_consent_text_and_purposes_exist_in_every_language():
    assert set(CONSENT_BODY) == set(LANGS)
    for texts in PURPOSE_TEXT.values():
        assert set(texts) == set(LANGS) and all(texts.values())
