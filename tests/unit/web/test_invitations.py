"""Single-use invitations on the pages: leaving before any answer is kept does not use one up."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.web.test_pages import page_kind, start


@pytest.fixture
def single(platform, demo):
    """A fresh single-use invitation of the demo consultation, as (code, what organisers see of it)."""

    def listed():
        return next(
            i
            for i in platform.call(
                "GET",
                f"/api/v1/consultations/{demo.consultation_id}/invitations",
                demo.organiser_token,
                expect=200,
            ).get_json()
            if i["invitation_id"] == created["invitation_id"]
        )

    created = platform.call(
        "POST",
        f"/api/v1/consultations/{demo.consultation_id}/invitations",
        demo.organiser_token,
        expect=201,
        json={"kind": "single"},
    ).get_json()
    return created["code"], listed


def test_a_single_use_invitation_survives_saying_no_and_quick_exit(platform, demo, browser, single):
    code, listed = single
    assert browser.post(f"/i/{code}").headers["Location"] == "/welcome"
    assert browser.post("/stop").status_code == 303  # "I do not want to take part"
    # Reconsidered: the same link still works, and a quick exit after consent does not spend it either.
    start(browser, replace(demo, code=code))
    assert browser.get("/exit").status_code == 303
    assert listed()["uses"] == 0
    back = platform.gateway.test_client()
    receipt_page = start(back, replace(demo, code=code))
    assert page_kind(receipt_page) == "consent-code"

    # Once answers are kept the invitation is spent, for any other visit too.
    saved = back.post(
        "/survey/about",
        data={"shown": ["region", "age_band"], "q_region": "north", "action": "save"},
    )
    assert saved.headers["Location"] == "/saved"
    assert listed()["uses"] == 1
    third = platform.gateway.test_client()
    used = third.post(f"/i/{code}", data={"lang": "fr"})
    assert used.status_code == 410 and "Cette invitation a déjà été utilisée" in used.get_data(True)


def test_a_second_visit_of_one_invitation_cannot_add_answers_once_the_first_kept_some(
    platform, demo, single
):
    code, listed = single
    first, second = platform.gateway.test_client(), platform.gateway.test_client()
    invitation = replace(demo, code=code)
    start(first, invitation)
    start(second, invitation)
    first.post("/survey/about", data={"shown": ["region"], "q_region": "north", "action": "save"})
    second.post("/survey/about", data={"shown": ["region"], "q_region": "south"})
    second.post("/survey/support/notice", data={"action": "skip"})
    refused = second.post("/finish", data={"lang": "es"})
    assert (
        refused.status_code == 410
        and "Ya se guardaron respuestas de esta invitación" in refused.get_data(True)
    )
    assert listed()["uses"] == 1


def test_a_printed_code_can_be_typed_in(platform, demo, single):
    code, listed = single
    browser = platform.gateway.test_client()
    start_page = browser.get("/?lang=ru").get_data(True)
    assert 'href="/code?lang=ru"' in start_page
    form = browser.get("/code?lang=ru")
    assert form.status_code == 200 and page_kind(form) == "invitation-code"
    assert "Ваш код приглашения" in form.get_data(True)

    empty = browser.post("/code", data={"invitation_code": "  ", "lang": "ru"})
    assert empty.status_code == 422 and 'id="invitation_code-problem"' in empty.get_data(True)
    typo = browser.post(
        "/code",
        data={"invitation_code": code[:-1] + ("0" if code[-1] != "0" else "1"), "lang": "ru"},
    )
    html = typo.get_data(True)
    assert typo.status_code in (404, 422) and "Этот код не работает" in html
    assert (
        'id="invitation_code-problem"' in html and 'href="#invitation_code"' in html
    )  # by the field and listed

    # Typed as people type: small letters, spaces for dashes.
    opened = browser.post(
        "/code", data={"invitation_code": code.lower().replace("-", " "), "lang": "ru"}
    )
    assert opened.status_code == 303 and opened.headers["Location"] == "/welcome"
    assert browser.get("/consent").status_code == 200 and listed()["uses"] == 0
