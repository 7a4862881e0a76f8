"""After withdrawing everything, the check and withdraw pages say whether the answers are deleted yet."""

from __future__ import annotations

import re

from tests.unit.web.test_pages import code_on, page_kind, start


def send_answers(browser) -> None:
    browser.post("/survey/about", data={"shown": ["region", "age_band"], "q_region": "capital"})
    browser.post("/survey/support/notice", data={"action": "continue"})
    browser.post(
        "/survey/support",
        data={
            "shown": ["got_help", "help_rating", "what_would_help"],
            "q_got_help": "partly",
            "q_help_rating": "3",
        },
    )
    assert browser.post("/finish").headers["Location"] == "/receipt"


def answers_status(page: str) -> str | None:
    """The state the 'Your answers' part of the page shows, or None when it is not there."""
    match = re.search(r'<div id="answers-status" data-erasure="(\w+)">', page)
    return match.group(1) if match else None


def check(platform, code: str, lang: str = "en") -> str:
    response = platform.gateway.test_client().post(
        f"/check?lang={lang}", data={"receipt_code": code}
    )
    assert response.status_code == 200 and page_kind(response) == "check-result"
    return response.get_data(True)


def test_sent_answers_are_shown_as_being_deleted_then_deleted_with_how_many(
    platform, demo, browser
):
    code = code_on(start(browser, demo))
    send_answers(browser)
    platform.deliver()
    assert answers_status(check(platform, code)) is None  # nothing withdrawn: nothing to say

    done = (
        platform.gateway.test_client()
        .post("/withdraw", data={"receipt_code": code, "step": "confirmed", "scope": "all"})
        .get_data(True)
    )
    # The surveys service has not had the withdrawal yet: the answers are still being deleted.
    for page in (done, check(platform, code)):
        assert answers_status(page) == "pending"
        assert "We are deleting your answers." in page and "Sets of answers deleted" not in page

    platform.deliver()  # the withdrawal reaches the surveys service, its confirmation the consent service
    page = check(platform, code)
    assert answers_status(page) == "deleted"
    assert (
        "We are deleting your answers." not in page and "We held no answers from you." not in page
    )
    status = page[
        page.index('id="answers-status"') : page.index("</div>", page.index('id="answers-status"'))
    ]
    assert "Your answers were deleted." in status and "Sets of answers deleted: 1" in status
    assert "We confirmed that your answers are deleted." in page  # in what happened, too

    arabic = check(platform, code, "ar")
    assert "عدد مجموعات الإجابات المحذوفة: 1" in arabic and "أكّدنا أن إجاباتك قد حُذفت." in arabic


def test_withdrawing_before_sending_anything_says_no_answers_were_held(platform, demo, browser):
    code = code_on(start(browser, demo))
    other = platform.gateway.test_client()
    other.post(
        "/withdraw",
        data={
            "receipt_code": code,
            "step": "confirmed",
            "scope": "some",
            "purpose": ["participate"],
        },
    )  # withdrawing participate withdraws everything
    assert "Nous sommes en train de supprimer vos réponses." in check(platform, code, "fr")
    platform.deliver()
    page = check(platform, code)
    assert answers_status(page) == "deleted"
    assert "We held no answers from you." in page and "Sets of answers deleted" not in page
    assert "Nous ne gardions aucune réponse de votre part." in check(platform, code, "fr")
    # The withdraw page, asked again, shows the same state.
    again = other.post("/withdraw", data={"receipt_code": code, "step": "choose"}).get_data(True)
    assert answers_status(again) == "deleted" and "We held no answers from you." in again


def test_withdrawing_only_some_uses_says_nothing_about_deleting(platform, demo, browser):
    code = code_on(start(browser, demo))
    send_answers(browser)
    done = platform.gateway.test_client().post(
        "/withdraw",
        data={
            "receipt_code": code,
            "step": "confirm",
            "scope": "some",
            "purpose": ["aggregate_reporting"],
        },
    )
    assert page_kind(done) == "withdraw-done" and answers_status(done.get_data(True)) is None
    platform.deliver()
    page = check(platform, code)
    assert answers_status(page) is None and "We are deleting your answers." not in page
