"""The optional follow-up contact page: offered after sending only to those who agreed to be contacted, checked
in plain words, stored by the surveys service (sealed), removable, and refused once that consent is withdrawn."""

from __future__ import annotations

import re

import pytest

from services.surveys.models import FollowUpContact
from tests.unit.web.test_pages import code_on, page_kind

ANSWERS = {"shown": ["region", "age_band"], "q_region": "capital"}


def send_answers(browser, demo, purposes, lang="en") -> str:
    """Consent to `purposes`, answer the first part, send; returns the receipt code."""
    assert browser.post(f"/i/{demo.code}", data={"lang": lang}).status_code == 303
    browser.get("/consent")
    assert (
        browser.post(
            "/consent", data={"text_version": "1", "text_language": lang, "purpose": purposes}
        ).status_code
        == 303
    )
    receipt_code = code_on(browser.get("/consent/code"))
    browser.post("/survey/about", data=ANSWERS)
    browser.post("/survey/support/notice", data={"action": "skip"})
    assert browser.post("/finish").headers["Location"] == "/receipt"
    return receipt_code


@pytest.fixture
def contact_browser(demo, browser):
    send_answers(browser, demo, ["participate", "follow_up_contact"])
    return browser


def test_only_those_who_agreed_to_be_contacted_are_offered_the_page(platform, demo, browser):
    send_answers(browser, demo, ["participate", "aggregate_reporting"])
    assert "/contact" not in browser.get("/receipt").get_data(True)
    assert browser.get("/contact").headers["Location"] == "/receipt"
    assert (
        browser.post(
            "/contact", data={"method": "phone", "value": "+44 7700 900123", "safe": "no"}
        ).headers["Location"]
        == "/receipt"
    )
    assert FollowUpContact.objects.count() == 0


def test_the_page_is_optional_labelled_and_explains_how_details_are_kept(contact_browser):
    receipt = contact_browser.get("/receipt").get_data(True)
    assert 'href="/contact"' in receipt and "This is optional." in receipt
    page = contact_browser.get("/contact")
    html = page.get_data(True)
    assert page.status_code == 200 and page_kind(page) == "contact"
    assert "deleted when you withdraw" in html and 'href="/receipt"' in html  # skip it
    for control in ("method-phone", "method-email", "value", "best_time", "safe-yes", "safe-no"):
        assert f'<label for="{control}"' in html or f'for="{control}"' in html


def test_details_are_kept_changed_and_removed(platform, contact_browser):
    saved = contact_browser.post(
        "/contact",
        data={
            "method": "email",
            "value": " amal@example.org ",
            "best_time": "evenings",
            "safe": "yes",
        },
    )
    assert saved.status_code == 303 and saved.headers["Location"] == "/receipt"
    [record] = FollowUpContact.objects
    assert "amal@example.org" not in record.ciphertext
    receipt = contact_browser.get("/receipt").get_data(True)
    assert "Remove my contact details" in receipt and "amal@example.org" not in receipt

    contact_browser.post(
        "/contact", data={"method": "phone", "value": "+44 7700 900123", "safe": "no"}
    )
    assert FollowUpContact.objects.count() == 1
    assert contact_browser.post("/contact/delete").headers["Location"] == "/receipt"
    assert FollowUpContact.objects.count() == 0
    assert "Tell us how to contact you" in contact_browser.get("/receipt").get_data(True)


def test_problems_are_named_next_to_their_field_and_linked(contact_browser):
    empty = contact_browser.post("/contact", data={})
    html = empty.get_data(True)
    assert empty.status_code == 422
    for target in ("method-phone", "value", "safe-yes"):
        assert f'href="#{target}"' in html
    assert 'aria-describedby="value-hint value-problem"' in html
    assert re.search(r'aria-describedby="safe-hint safe-problem"', html)

    wrong = contact_browser.post(
        "/contact", data={"method": "email", "value": "not an address", "safe": "no"}
    )
    html = wrong.get_data(True)
    assert wrong.status_code == 422 and "It does not look right for the way you chose." in html
    assert (
        'value="not an address"' in html
        and 'id="method-email" name="method" value="email" checked' in html
    )
    assert FollowUpContact.objects.count() == 0


def test_the_page_speaks_the_participants_language(demo, browser):
    send_answers(browser, demo, ["participate", "follow_up_contact"], lang="ar")
    html = browser.get("/contact").get_data(True)
    assert "كيف يمكننا التواصل معك؟" in html and 'dir="rtl"' in html


def test_after_withdrawing_contact_consent_nothing_more_is_kept(platform, demo, browser):
    receipt_code = send_answers(browser, demo, ["participate", "follow_up_contact"])
    browser.post("/contact", data={"method": "phone", "value": "+44 7700 900123", "safe": "no"})
    assert FollowUpContact.objects.count() == 1
    other = platform.gateway.test_client()
    other.post(
        "/withdraw",
        data={
            "step": "confirmed",
            "receipt_code": receipt_code,
            "scope": "some",
            "purpose": ["participate"],
        },
    )
    platform.deliver()
    assert FollowUpContact.objects.count() == 0
    refused = browser.post(
        "/contact", data={"method": "phone", "value": "+44 7700 900123", "safe": "no"}
    )
    assert refused.status_code == 403 and FollowUpContact.objects.count() == 0
