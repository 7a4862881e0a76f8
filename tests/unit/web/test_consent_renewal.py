"""An expired consent token is not a dead end: the receipt code brings a fresh one and the answers go on.

Consent tokens live a day while saved answers keep for three, so these tests move the clocks of
token signing and checking a day and more forward (`a_day_later` in conftest.py).
"""

from __future__ import annotations

import pytest

from tests.unit.web.test_pages import code_on, page_kind, start


def answer_first_part_and_open_support(browser, demo):
    code = code_on(start(browser, demo))
    browser.post("/survey/about", data={"shown": ["region", "age_band"], "q_region": "capital"})
    browser.post("/survey/support/notice", data={"action": "continue"})
    return code


def save_support(browser) -> str:
    saved = browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "what_would_help"],
            "q_got_help": "partly",
            "q_what_would_help": "Someone who listens",
            "action": "save",
        },
    )
    assert saved.headers["Location"] == "/saved"
    return code_on(browser.get("/saved"))


def withdraw(platform, receipt_code: str, purposes=None) -> None:
    body = (
        {"receipt_code": receipt_code}
        if purposes is None
        else {"receipt_code": receipt_code, "purposes": purposes}
    )
    platform.call("POST", "/api/v1/consent/withdrawals", expect=200, json=body)


def test_resuming_after_the_token_expired_asks_for_the_receipt_code_then_goes_on(
    platform, demo, browser, a_day_later
):
    receipt_code = answer_first_part_and_open_support(browser, demo)
    resume_code = save_support(browser)
    withdraw(platform, receipt_code, ["aggregate_reporting"])  # the new token must not carry it
    a_day_later()

    later = platform.gateway.test_client()
    resumed = later.post("/resume", data={"resume_code": resume_code})
    assert resumed.status_code == 303 and resumed.headers["Location"] == "/consent/renew"
    # Nothing else opens before the code is given.
    for path in ("/survey", "/survey/support", "/finish", "/consent/code"):
        assert later.get(path).headers["Location"] == "/consent/renew", path
    page = later.get("/consent/renew")
    assert page.status_code == 200 and page_kind(page) == "renew-consent"
    body = page.get_data(True)
    assert "Enter your receipt code to continue" in body and 'action="/consent/renew"' in body
    assert 'aria-describedby="receipt_code-hint"' in body

    renewed = later.post("/consent/renew", data={"receipt_code": receipt_code.lower()})
    assert renewed.status_code == 303 and renewed.headers["Location"] == "/survey/support/notice"
    later.post("/survey/support/notice", data={"action": "continue"})
    page = later.get("/survey/support").get_data(True)
    assert 'value="partly" checked' in page and "Someone who listens" in page  # nothing was lost
    assert (
        later.post(
            "/survey/support",
            data={
                "shown": ["got_help", "help_rating", "what_would_help"],
                "q_got_help": "partly",
                "q_help_rating": "3",
                "q_what_would_help": "Someone who listens",
            },
        ).headers["Location"]
        == "/finish"
    )
    assert later.post("/finish").headers["Location"] == "/receipt"
    receipt = later.get("/receipt").get_data(True)
    assert "Keep my answers for this consultation" in receipt
    assert "Count my answers in group totals" not in receipt  # withdrawn before the renewal
    assert (
        receipt_code.lower() in receipt
    )  # the code they typed is shown again, as after a first consent
    assert later.get("/consent/renew").headers["Location"] == "/survey"  # nothing to renew any more


def test_a_submit_refused_for_an_expired_token_keeps_the_answers_and_sends_them_after_the_code(
    platform, demo, browser, a_day_later
):
    receipt_code = answer_first_part_and_open_support(browser, demo)
    browser.post(
        "/survey/support", data={"shown": ["got_help", "what_would_help"], "q_got_help": "no"}
    )
    a_day_later()
    refused = browser.post("/finish")
    assert refused.status_code == 303 and refused.headers["Location"] == "/consent/renew"
    assert browser.get("/finish").headers["Location"] == "/consent/renew"
    assert (
        browser.post("/finish").headers["Location"] == "/consent/renew"
    )  # no token: nothing is sent
    renewed = browser.post("/consent/renew", data={"receipt_code": receipt_code})
    assert renewed.headers["Location"] == "/finish"
    assert "Questions you answered: 2" in browser.get("/finish").get_data(True)
    assert browser.post("/finish").headers["Location"] == "/receipt"
    receipt = browser.get("/receipt").get_data(True)
    assert receipt_code in receipt and "Count my answers in group totals" in receipt


def test_saving_with_an_expired_token_keeps_what_was_typed(demo, browser, a_day_later):
    receipt_code = answer_first_part_and_open_support(browser, demo)
    a_day_later()
    refused = browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "what_would_help"],
            "q_what_would_help": "A quiet room",
            "action": "save",
        },
    )
    assert refused.headers["Location"] == "/consent/renew"
    renewed = browser.post("/consent/renew", data={"receipt_code": receipt_code})
    assert renewed.headers["Location"] == "/survey/support"
    assert "A quiet room" in browser.get("/survey/support").get_data(True)
    saved = browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "what_would_help"],
            "q_what_would_help": "A quiet room",
            "action": "save",
        },
    )
    assert saved.headers["Location"] == "/saved"


def test_wrong_codes_are_explained_and_another_consent_s_code_is_refused(
    platform, demo, browser, a_day_later
):
    receipt_code = answer_first_part_and_open_support(browser, demo)
    someone_else = platform.gateway.test_client()
    other_code = code_on(start(someone_else, demo))
    a_day_later()
    assert browser.post("/finish").headers["Location"] == "/consent/renew"

    empty = browser.post("/consent/renew", data={"receipt_code": "  "})
    assert empty.status_code == 422 and "Please write your receipt code." in empty.get_data(True)
    assert 'href="#receipt_code"' in empty.get_data(True)
    unknown = browser.post("/consent/renew", data={"receipt_code": "WXYZ-WXYZ-WXYZ"})
    assert unknown.status_code == 422 and page_kind(unknown) == "renew-consent"
    assert "No consent matches this code." in unknown.get_data(True)
    assert 'value="WXYZ-WXYZ-WXYZ"' in unknown.get_data(True)  # kept, to correct the typo
    foreign = browser.post("/consent/renew", data={"receipt_code": other_code})
    assert foreign.status_code == 422 and "This code is for other answers." in foreign.get_data(
        True
    )
    assert browser.get("/finish").headers["Location"] == "/consent/renew"  # still no token
    assert (
        browser.post("/consent/renew", data={"receipt_code": receipt_code}).headers["Location"]
        == "/finish"
    )


def test_after_withdrawing_consent_to_take_part_the_answers_cannot_go_on(
    platform, demo, browser, a_day_later
):
    receipt_code = answer_first_part_and_open_support(browser, demo)
    a_day_later()
    assert browser.post("/finish").headers["Location"] == "/consent/renew"
    withdraw(platform, receipt_code)  # in another tab, before the code is typed here
    refused = browser.post("/consent/renew", data={"receipt_code": receipt_code, "lang": "es"})
    assert refused.status_code == 409 and page_kind(refused) == "problem"
    assert "Usted retiró su consentimiento para participar" in refused.get_data(True)
    assert browser.get("/finish").headers["Location"] == "/consent/renew"


def test_a_closed_consultation_says_so(platform, browser, a_day_later):
    from tests.unit.web.conftest import open_demo_consultation

    closing = open_demo_consultation(platform)
    receipt_code = answer_first_part_and_open_support(browser, closing)
    platform.call(
        "POST",
        f"/api/v1/consultations/{closing.consultation_id}/status",
        closing.organiser_token,
        expect=200,
        json={"status": "closed"},
    )
    platform.deliver()
    a_day_later()
    browser.post("/finish")
    refused = browser.post("/consent/renew", data={"receipt_code": receipt_code})
    assert refused.status_code == 409 and "The consultation has closed." in refused.get_data(True)


def test_the_page_needs_a_session_and_an_expired_consent(demo, browser):
    assert (
        browser.get("/consent/renew").headers["Location"] == "https://neutral.example/weather"
    )  # no cookie
    browser.post(f"/i/{demo.code}")
    assert browser.get("/consent/renew").headers["Location"] == "/consent"  # no consent given yet
    start(browser, demo)
    assert browser.get("/consent/renew").headers["Location"] == "/survey"  # the token is still good
    assert (
        browser.post("/consent/renew", data={"receipt_code": "x"}).headers["Location"] == "/survey"
    )


@pytest.mark.parametrize(
    "lang, heading",
    [
        ("ar", "اكتب رمز الإيصال للمتابعة"),
        ("zh", "请输入回执码以继续"),
        ("fr", "Écrivez votre code de reçu pour continuer"),
        ("ru", "Введите код квитанции, чтобы продолжить"),
        ("es", "Escriba su código de recibo para continuar"),
    ],
)
def test_the_page_speaks_the_participant_s_language(demo, browser, a_day_later, lang, heading):
    answer_first_part_and_open_support(browser, demo)
    a_day_later()
    browser.post("/finish")
    page = browser.get(f"/consent/renew?lang={lang}").get_data(True)
    assert f'<html lang="{lang}"' in page and heading in page
