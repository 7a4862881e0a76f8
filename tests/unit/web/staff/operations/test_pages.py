"""The pages an organiser runs a consultation with, in-process: what they show, what they change,
and that a refusal keeps what was typed and says why beside the field."""

from __future__ import annotations

import csv
import io
import re

import pytest

from deploy.demo import SURVEY
from gateway.web.staff.operations.sheets import InvitationSheetDocument
from tests.unit.web.conftest import publish_consent_text
from tests.unit.web.staff.operations.conftest import (
    answer,
    draft_consultation,
    open_consultation,
)
from tests.unit.web.staff.operations.qr import decoded


def html(response) -> str:
    return response.get_data(as_text=True)


@pytest.mark.parametrize(
    "name",
    ["invitations", "invitations/sheet", "progress", "releases", "quotes", "contacts", "close"],
)
def test_every_page_shows_for_the_organiser(running, name):
    response = running.organiser.get(running.page(name))
    assert response.status_code == 200, html(response)[:500]
    assert "After leaving" in html(response)


def test_other_roles_and_other_organisations_do_not_see_the_pages(platform, running, staff_browser):
    policy = staff_browser("policy")
    assert policy.get(running.page("progress")).status_code == 403
    other = open_consultation(platform, staff_browser("organiser"))
    # The same organisation's other organiser sees it; a consultation of no one's is a 404 page.
    assert other.organiser.get(running.page("progress")).status_code == 200
    assert running.organiser.get("/staff/consultations/c_missing/progress").status_code == 404


def test_a_batch_of_codes_prints_with_a_qr_code_per_invitation_and_downloads_as_csv(running):
    browser = running.organiser
    browser.get(running.page("invitations"))
    created = browser.post(
        running.page("invitations"), {"kind": "single", "count": "3", "label": "Tuesday group"}
    )
    assert created.status_code == 303 and created.location.endswith("/invitations/sheet")
    sheet = html(browser.get(running.page("invitations/sheet")))
    urls = re.findall(r'<p class="ops-url" dir="ltr" translate="no">([^<]+)</p>', sheet)
    svgs = re.findall(r"<svg .*?</svg>", sheet, flags=re.DOTALL)
    assert len(urls) == len(svgs) == 3 and len(set(urls)) == 3
    assert [decoded(svg) for svg in svgs] == [[url] for url in urls]
    download = browser.get(running.page("invitations/sheet.csv"))
    assert download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert [row["url"] for row in rows] == urls
    assert {row["label"] for row in rows} == {"Tuesday group"}
    # The sheet is kept sealed: the database holds none of its codes or links.
    with browser.platform.gateway.app_context():
        stored = b"".join(bytes(d.sealed) for d in InvitationSheetDocument.objects)
    assert stored and not any(row["code"].encode() in stored for row in rows)
    assert b"/i/" not in stored
    # Each code opens the consultation; the list counts them unused until answers are kept.
    code = rows[0]["code"]
    assert urls[0].endswith(f"/i/{code}")
    listed = html(browser.get(running.page("invitations")))
    assert re.search(r'id="count-unused">3<', listed)


def test_the_sheet_is_for_the_session_that_made_it(platform, running, new_browser):
    browser = running.organiser
    browser.get(running.page("invitations"))
    browser.post(running.page("invitations"), {"kind": "link", "count": "1"})
    again = new_browser()
    again.email = browser.email
    again.sign_in()
    sheet = html(again.get(running.page("invitations/sheet")))
    assert "ops-card" not in sheet and "There is no sheet to show" in sheet
    assert again.get(running.page("invitations/sheet.csv")).status_code == 303


@pytest.mark.parametrize(
    "typed,field,message",
    [
        ({"kind": "single", "count": "0"}, "count", "Give a whole number from 1 to 500."),
        ({"kind": "single", "count": "many"}, "count", "Give a whole number from 1 to 500."),
        ({"kind": "", "count": "2"}, "kind", "Choose single-use codes or anonymous links."),
        ({"kind": "single", "count": "2", "label": "x" * 101}, "label", "Longer than maximum"),
    ],
)
def test_a_refused_batch_says_why_beside_the_field_and_keeps_what_was_typed(
    platform, running, typed, field, message
):
    browser = running.organiser
    before = platform.call(
        "GET", f"/api/v1/consultations/{running.cid}/invitations", browser.token, expect=200
    ).get_json()
    browser.get(running.page("invitations"))
    response = browser.post(running.page("invitations"), typed)
    page = html(response)
    assert response.status_code == 400
    error = re.search(rf'id="f-{field}-error">(.*?)</p>', page, flags=re.DOTALL)
    assert error and message.lower() in error.group(1).lower(), page[:3000]
    if field != "kind":
        assert f'value="{typed[field]}"' in page
    after = platform.call(
        "GET", f"/api/v1/consultations/{running.cid}/invitations", browser.token, expect=200
    ).get_json()
    assert after == before


def test_revoking_an_invitation_stops_it(platform, running):
    browser = running.organiser
    [invitation] = platform.call(
        "GET", f"/api/v1/consultations/{running.cid}/invitations", browser.token, expect=200
    ).get_json()
    browser.get(running.page("invitations"))
    response = browser.post(running.page(f"invitations/{invitation['invitation_id']}/revoke"))
    assert response.status_code == 303
    platform.call("POST", f"/api/v1/invitations/{running.code}/open", expect=410)


def test_progress_counts_responses_and_sections_and_says_when(platform, running):
    answer(platform, running, {"region": "north", "got_help": "no", "what_would_help": "Rest."})
    answer(platform, running, {"region": "south"})
    page = html(running.organiser.get(running.page("progress")))
    assert re.search(r'id="figure-submitted">2<', page)
    assert re.search(r'id="figure-opened">2<', page)
    assert "Last updated" in page and 'id="figure-not-sent">0<' in page
    # Until the results service has counted its event, the last response is on its way.
    with_results = html(running.organiser.get(running.page("progress?results=1")))
    assert "Responses still on their way to the results: 1." in with_results
    platform.deliver()
    with_results = html(running.organiser.get(running.page("progress?results=1")))
    assert "Every response sent is counted in the results." in with_results
    assert 'id="responses-chart-title"' in page  # the chart beside its table
    table = re.search(r'<table class="ops-table" id="responses-table">.*?</table>', page, re.DOTALL)
    assert table and re.search(r"<td>2</td><td>2</td>", table.group(0))
    sections = re.search(
        r'<table class="ops-table" id="sections-table">.*?</table>', page, re.DOTALL
    )
    figures = {
        re.search(r'<th scope="row">(.*?)</th>', row).group(1): re.findall(r"<td>(.*?)</td>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", sections.group(0), re.DOTALL)
        if '<th scope="row">' in row
    }
    assert figures["About you"][:3] == ["2", "2", "0"]
    assert figures["Support you received"][:2] == ["2", "1"]
    assert "Rest." not in page  # counts only, never an answer


def test_a_release_needs_the_sign_off_and_then_is_in_the_history(platform, running):
    browser = running.organiser
    for region in ["north"] * 6 + ["south"] * 6:
        answer(platform, running, {"region": region})
    browser.get(running.page("releases"))
    refused = browser.post(running.page("releases"), {})
    assert refused.status_code == 400
    assert "sign-off is needed" in html(refused)
    history = platform.call(
        "GET", f"/api/v1/insights/consultations/{running.cid}/releases", browser.token, expect=200
    ).get_json()
    assert history["releases"] == []
    released = browser.post(running.page("releases"), {"signed_off": "on"})
    assert released.status_code == 303
    page = html(browser.get(released.location))
    assert "The snapshot was released" in page
    table = re.search(r'<table class="ops-table" id="history-table">.*?</table>', page, re.DOTALL)
    assert table and browser.account_id in table.group(0)
    platform.deliver()
    ledger_kinds = [e["kind"] for e in _ledger(platform, running)]
    assert "release.signed_off" in ledger_kinds


def _ledger(platform, running) -> list[dict]:
    auditor = platform.staff("auditor", _organisation_of(platform, running))["token"]
    return platform.call("GET", "/api/v1/ledger/entries", auditor, expect=200).get_json()["entries"]


def _organisation_of(platform, running) -> str:
    return platform.call(
        "GET", f"/api/v1/consultations/{running.cid}", running.organiser.token, expect=200
    ).get_json()["organisation_id"]


def test_a_release_with_a_budget_asks_for_epsilon_and_shows_the_service_refusal(
    platform, staff_browser
):
    running = open_consultation(platform, staff_browser("organiser"), epsilon_budget=1.0)
    browser = running.organiser
    for region in ["north"] * 6:
        answer(platform, running, {"region": region})
    page = html(browser.get(running.page("releases")))
    assert 'id="f-epsilon"' in page and 'id="figure-remaining"' in page
    refused = browser.post(running.page("releases"), {"signed_off": "on", "epsilon": "5"})
    error = re.search(r'id="f-epsilon-error">(.*?)</p>', html(refused), re.DOTALL)
    assert refused.status_code == 400
    assert error and "budget" in error.group(1).lower(), html(refused)[-3000:]
    assert 'value="5"' in html(refused)
    released = browser.post(running.page("releases"), {"signed_off": "on", "epsilon": "0.5"})
    assert released.status_code == 303


def test_a_quote_is_approved_word_for_word_and_revoked(platform, running):
    browser = running.organiser
    answer(
        platform,
        running,
        {"got_help": "no", "what_would_help": "Someone who spoke my language, in Hull."},
    )
    page = html(browser.get(running.page("quotes")))
    assert "Someone who spoke my language, in Hull." in page
    response_id = re.search(r'name="response_id" value="([^"]+)"', page).group(1)
    rewritten = browser.post(
        running.page("quotes"),
        {"response_id": response_id, "question_id": "what_would_help", "excerpt": "Someone kind"},
    )
    assert rewritten.status_code == 400
    assert re.search(r'-error">.*?</p>', html(rewritten), re.DOTALL)
    assert ">Someone kind</textarea>" in html(rewritten)  # what was typed stays
    approved = browser.post(
        running.page("quotes"),
        {
            "response_id": response_id,
            "question_id": "what_would_help",
            "excerpt": "Someone who spoke my language",
        },
    )
    assert approved.status_code == 303
    page = html(browser.get(running.page("quotes")))
    quote_id = re.search(r'name="quote_id" value="([^"]+)"', page).group(1)
    browser.post(running.page("quotes/revoke"), {"quote_id": quote_id})
    quotes = platform.call(
        "GET", f"/api/v1/consultations/{running.cid}/quotes", browser.token, expect=200
    ).get_json()
    assert [q["revoked"] for q in quotes] == [True]


def test_contacts_are_read_only_when_asked_and_each_read_is_recorded(platform, running):
    browser = running.organiser
    page = html(browser.get(running.page("contacts")))
    assert "consent ledger records" in page and "contacts-table" not in page
    platform.deliver()
    before = [e for e in _ledger(platform, running) if e["kind"] == "contacts.accessed"]
    assert before == []
    browser.post(running.page("contacts"), {})
    platform.deliver()
    after = [e for e in _ledger(platform, running) if e["kind"] == "contacts.accessed"]
    assert len(after) == 1


def test_closing_needs_a_tick_then_shows_when_answers_are_erased(platform, running):
    browser = running.organiser
    browser.get(running.page("close"))
    refused = browser.post(running.page("close"), {"status": "closed"})
    assert refused.status_code == 400 and "Tick the box to confirm." in html(refused)
    closed = browser.post(running.page("close"), {"status": "closed", "confirm-closed": "on"})
    assert closed.status_code == 303
    page = html(browser.get(running.page("close")))
    assert 'id="figure-erase-from"' in page and "Archive the consultation" in page
    browser.post(running.page("close"), {"status": "archived", "confirm-archived": "on"})
    status = platform.call(
        "GET", f"/api/v1/consultations/{running.cid}", browser.token, expect=200
    ).get_json()["status"]
    assert status == "archived"
    # The service's own refusal (an archived consultation never reopens), at the top of the page
    # since it offers no such change any more.
    refused = browser.post(running.page("close"), {"status": "open", "confirm-open": "on"})
    assert refused.status_code == 400
    summary = re.search(r'class="error-summary".*?</div>', html(refused), re.DOTALL).group(0)
    assert "archived to open" in summary


def test_the_home_counts_responses_kept_and_the_latest_one_as_last_activity(platform, running):
    answer(platform, running, {"region": "north"})
    answer(platform, running, {"region": "south"})
    progress = platform.call(
        "GET", f"/api/v1/consultations/{running.cid}/progress", running.organiser.token
    ).get_json()
    assert progress["submitted"] == 2 and progress["last_submitted_at"]
    page = html(running.organiser.get("/staff/consultations"))
    row = next(r for r in page.split("<tr") if running.cid in r)
    cells = [c.strip() for c in re.findall(r"<td>(.*?)</td>", row, flags=re.DOTALL)]
    assert "2" in cells
    # The last activity is the minute the latest response was stored.
    assert progress["last_submitted_at"][:16].replace("T", " ") in row


def test_invitations_of_a_draft_are_made_with_a_warning_and_open_once_it_is_published(
    platform, staff_browser
):
    browser = staff_browser("organiser")
    token = browser.token
    cid = draft_consultation(platform, browser)
    page = f"/staff/consultations/{cid}/invitations"
    assert 'id="not-open-yet"' in html(browser.get(page))
    # Organisers print invitations ahead: allowed, and the sheet says so too (not on paper).
    created = browser.post(page, {"kind": "single", "count": "1"})
    assert created.status_code == 303
    sheet = html(browser.get(f"{page}/sheet"))
    assert 'id="not-open-yet"' in sheet
    assert sheet.index("ops-no-print") < sheet.index('id="not-open-yet"') < sheet.index("ops-sheet")
    code = re.search(r'<span class="ops-code" dir="ltr" translate="no">([^<]+)</span>', sheet)[1]
    # A participant with that card before the launch is told it has not opened yet, not that
    # the invitation is used or closed: through the API and on the invitation page alike.
    refused = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=409).get_json()
    assert refused["reason"] == "not_open_yet"
    visitor = platform.gateway.test_client()
    opened_page = visitor.post(f"/i/{code}", data={"lang": "fr"})
    assert opened_page.status_code == 409
    assert "Cette consultation n'a pas encore ouvert" in html(opened_page).replace("&#39;", "'")
    # Once published, the same card opens and the warning is gone.
    platform.deliver()
    publish_consent_text(platform, cid, token, version=1, languages=SURVEY["languages"])
    platform.call("POST", f"/api/v1/consultations/{cid}/publish", token, expect=200)
    platform.deliver()
    assert 'id="not-open-yet"' not in html(browser.get(page))
    platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201)
