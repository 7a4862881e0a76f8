"""Oversight pages in Chromium: a policy analyst reads a release (chart, table, CSV), an auditor goes
from the ledger to a verified export, an admin creates an organisation and an organiser and hands
over a set-password link; axe-core on every page in all six languages."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from deploy.demo import SURVEY, TITLE, DemoLoader
from services.consent import verify
from tests.browser.conftest import DESKTOP, LANGUAGES
from tests.browser.staff.conftest import assert_staff_page_accessible
from tests.e2e.conftest import Api, eventually, participate

DOCS = Path(__file__).resolve().parents[3] / "docs"
PEOPLE = 40


@pytest.fixture(scope="module")
def released(web_stack) -> str:
    """A consultation of the demo organisation with the demo survey, answered by 40 people and
    released (exact counts, k = 10); its id."""
    api = Api(web_stack.origin)
    organiser = web_stack.demo["organiser_token"]
    cid = api.call(
        "POST",
        "/api/v1/consultations",
        organiser,
        json={
            "title": TITLE["en"],
            "titles": TITLE,
            "languages": list(SURVEY["languages"]),
            # The demo's consent text explains these four.
            "purposes": [
                "participate",
                "aggregate_reporting",
                "quote_anonymised",
                "follow_up_contact",
            ],
            "min_cell_size": 10,
            "survey": SURVEY,
        },
    )["consultation_id"]
    loader = DemoLoader(web_stack.origin, "unused")
    loader.publish_consent_text(cid, organiser)
    loader.retrying(
        lambda: loader.call("POST", f"/api/v1/consultations/{cid}/publish", organiser),
        "consent_text_missing",
    )
    code = api.call(
        "POST", f"/api/v1/consultations/{cid}/invitations", organiser, json={"kind": "link"}
    )["code"]
    # Two regions and two age bands only, so that the margins hold at least k people each.
    for person in range(PEOPLE):
        participate(
            api,
            code,
            {
                "region": "north" if person % 5 < 3 else "capital",
                "age_band": "25-39" if person % 2 else "40_plus",
                "got_help": "no" if person % 3 == 0 else "yes",
            },
        )

    def counted() -> bool:
        progress = api.call("GET", f"/api/v1/insights/consultations/{cid}/progress", organiser)
        return progress["responses_counted"] == PEOPLE

    eventually(counted, timeout=60)
    api.call("POST", "/api/v1/releases", organiser, json={"consultation_id": cid})
    return cid


def test_policy_analyst_finds_a_release_reads_a_chart_and_its_table_and_downloads_csv(
    staff_page, web_stack, released, tmp_path
):
    page = staff_page("policy")
    page.get_by_role("link", name="Released results").first.click()
    expect(page.locator("body")).to_have_attribute("data-page", "insights")
    page.get_by_role("link", name=TITLE["en"]).first.click()
    expect(page.locator("body")).to_have_attribute("data-page", "release")
    question = page.locator("section.question").filter(
        has=page.get_by_role("heading", name="Where do you live now?")
    )
    chart = question.locator("figure.chart svg[role=img]").first
    expect(chart).to_be_visible()
    expect(chart).to_have_accessible_name("Where do you live now?")
    expect(chart).to_have_accessible_description(re.compile("North: "))
    table = question.locator("table.figures").first
    expect(table.get_by_role("rowheader", name="North")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "release.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(saved.open(encoding="utf-8")))
    assert {r["k"] for r in rows} == {"10"}
    assert any(r["question"] == "Where do you live now?" for r in rows)


def test_auditor_browses_downloads_and_verifies_with_the_command(
    staff_page, web_stack, released, tmp_path
):
    page = staff_page("auditor")
    page.get_by_role("link", name="Consent ledger").first.click()
    expect(page.locator("body")).to_have_attribute("data-page", "ledger")
    page.get_by_label("Kind of entry").select_option("consent.granted")
    page.get_by_role("button", name="Show").click()
    kinds = page.locator("table tbody tr td:nth-child(2)")
    expect(kinds.first).to_have_text("Consent given")
    files = {}
    for name in ("Download the export", "Download the public key (.pem)"):
        with page.expect_download() as download:
            page.get_by_role("link", name=name).click()
        target = tmp_path / download.value.suggested_filename
        download.value.save_as(target)
        files[name] = target
    page.locator("table tbody a").first.click()
    expect(page.locator("body")).to_have_attribute("data-page", "ledger-entry")
    expect(page.get_by_role("heading", name="Inclusion proof")).to_be_visible()
    page.get_by_role("link", name="Verify an export").first.click()
    command = page.locator("pre.command code").nth(1).inner_text()
    program, *arguments = command.split()
    assert program == "voices-verify-ledger"
    assert arguments == [p.name for p in files.values()]
    assert verify.main([str(tmp_path / name) for name in arguments]) == 0


def test_admin_creates_an_organisation_and_an_organiser_and_hands_over_a_password_link(
    staff_page, browser, web_stack
):
    page = staff_page("admin")
    page.get_by_role("link", name="Organisations").first.click()
    name = f"Survivors North {random.randrange(10**6)}"
    page.get_by_label("Name of the organisation").fill(name)
    page.get_by_role("button", name="Add organisation").click()
    expect(page.locator(".flash")).to_contain_text(name)
    page.get_by_role("link", name="Staff accounts").first.click()
    email = f"organiser-{random.randrange(10**6)}@example.org"
    page.get_by_label("Email").fill(email)
    page.get_by_label("Role").select_option("organiser")
    page.get_by_label("Organisation").select_option(label=name)
    page.get_by_role("button", name="Add account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(email)
    page.get_by_role("button", name="Make a set-password link").click()
    link = page.locator("#password-link-url").inner_text()
    assert link.startswith(web_stack.origin + "/staff/")
    holder = browser.new_context()
    try:
        opened = holder.new_page()
        opened.goto(link)
        expect(opened.locator("input[type=password]").first).to_be_visible()
    finally:
        holder.close()


def _pages(released: str, seq: int, account_id: str) -> dict[str, list[str]]:
    return {
        "policy": ["/staff/insights", f"/staff/insights/{released}"],
        "auditor": [
            "/staff/ledger",
            f"/staff/ledger/entries/{seq}",
            "/staff/ledger/checkpoints",
            "/staff/ledger/erasures",
            "/staff/ledger/verify",
        ],
        "admin": [
            "/staff/admin/organisations",
            "/staff/admin/accounts",
            f"/staff/admin/accounts/{account_id}",
        ],
    }


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_oversight_page_passes_axe_in_every_language(staff_page, web_stack, released, lang):
    api = Api(web_stack.origin)
    auditor = web_stack.demo["auditor_token"]
    api.call("POST", "/api/v1/ledger/checkpoints", auditor)
    seq = api.call("GET", "/api/v1/ledger/entries", auditor, params={"limit": 1})["entries"][0][
        "seq"
    ]
    account_id = api.call("GET", "/api/v1/me", auditor)["subject"]
    for role, paths in _pages(released, seq, account_id).items():
        page = staff_page(role, lang)
        for path in paths:
            page.goto(f"{web_stack.origin}{path}?lang={lang}")
            expect(page.locator("html")).to_have_attribute("lang", lang)
            assert_staff_page_accessible(page, f"{path} [{lang}]")


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_screenshot_of_a_chart_page(staff_page, web_stack, released, lang):
    page = staff_page("policy", lang, viewport=DESKTOP)
    page.goto(f"{web_stack.origin}/staff/insights/{released}?lang={lang}")
    section = page.locator("section.question").first
    expect(section.locator("svg[role=img]").first).to_be_visible()
    DOCS.mkdir(exist_ok=True)
    section.screenshot(path=str(DOCS / f"policy-chart-{lang}.png"))
