"""The demo data that `make run` loads must be a publishable consultation."""

from deploy.demo import CONSENT_BODY, CONSENT_TITLE, LANGS, PURPOSE_TEXT, SURVEY, TITLE
from services.surveys import questionnaire
from shared.questionnaire import definition


def test_demo_survey_is_publishable_in_all_six_languages():
    questionnaire.publishable(SURVEY)
    assert set(SURVEY["languages"]) == set(LANGS) == set(definition.UN_LANGUAGES)


def test_demo_consent_text_and_purposes_exist_in_every_language():
    assert set(CONSENT_BODY) == set(LANGS)
    for titles in (
        TITLE,
        CONSENT_TITLE,
    ):  # Arabic and Chinese readers see them in their language too
        assert set(titles) == set(LANGS) and len(set(titles.values())) == len(LANGS)
    for texts in PURPOSE_TEXT.values():
        assert set(texts) == set(LANGS) and all(texts.values())


def test_the_demo_loads_through_the_gateway_and_opens_with_its_consent_text(
    secrets_env, monkeypatch
):
    """The loader waits for events between the steps: here each wait delivers them."""
    import time

    from deploy.demo import DemoLoader
    from tests.unit.gateway.conftest import WSGIAdapter, build_platform

    platform = build_platform(secrets_env)
    loader = DemoLoader("http://gateway.internal", platform.admin_token)
    loader.session.mount("http://gateway.internal", WSGIAdapter(platform.gateway))
    monkeypatch.setattr(time, "sleep", lambda _seconds: platform.deliver())
    demo = loader.load()
    platform.deliver()
    opened = platform.call(
        "POST", f"/api/v1/invitations/{demo['invitation_code']}/open", expect=201
    ).get_json()
    text = platform.call(
        "GET",
        f"/api/v1/consent/consultations/{demo['consultation_id']}/texts",
        query_string={"language": "ar"},
        expect=200,
    ).get_json()
    assert opened["consultation_id"] == demo["consultation_id"] and text["language"] == "ar"
    assert opened["titles"]["zh"] == TITLE["zh"] and text["title"] == CONSENT_TITLE["ar"]

    # Every demo account signs in with the email address and password the loader recorded.
    assert set(demo["staff_accounts"]) == {"organiser", "policy", "auditor", "admin"}
    for person in demo["staff_accounts"].values():
        platform.call(
            "POST",
            "/api/v1/sessions",
            json={"email": person["email"], "password": person["password"]},
            expect=201,
        )
    # Demo data recorded before the staff pages gets passwords for its accounts on the next start.
    older = {k: v for k, v in demo.items() if k != "staff_accounts"}
    completed = loader.staff_sign_ins(older)
    assert set(completed["staff_accounts"]) == set(demo["staff_accounts"])
    organiser = completed["staff_accounts"]["organiser"]
    assert organiser["password"] != demo["staff_accounts"]["organiser"]["password"]
    platform.call(
        "POST",
        "/api/v1/sessions",
        json={"email": organiser["email"], "password": organiser["password"]},
        expect=201,
    )
