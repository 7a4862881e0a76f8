"""Policy pages: released results read as words, charts with their tables, hidden figures said to
be hidden, downloads; before the first release a page that says so."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re

from tests.unit.web.oversight.conftest import answer


def test_before_the_first_release_the_page_says_not_released_yet(staff_browser, demo):
    policy = staff_browser("policy")
    page = policy.get(f"/staff/insights/{demo.consultation_id}")
    assert page.status_code == 409
    text = page.get_data(as_text=True)
    assert "Not released yet" in text and 'data-page="not-released"' in text


def test_a_release_reads_as_words_with_charts_tables_and_hidden_figures(
    staff_browser, released, platform
):
    policy = staff_browser("policy")
    listing = policy.get("/staff/insights").get_data(as_text=True)
    assert f"/staff/insights/{released.consultation_id}" in listing
    page = policy.get(f"/staff/insights/{released.consultation_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # Words, not ids: the question and option labels of the demo survey.
    assert "Where do you live now?" in html and "The capital" in html
    assert ">region<" not in html
    # Every chart is an inline SVG image labelled by its title and summary, with no script.
    svgs = re.findall(r"<svg\b[^>]*>", html)
    assert svgs and all('role="img"' in s and "aria-labelledby" in s for s in svgs)
    assert "<script" not in html.split("</head>", 1)[1]
    # The snapshot's own figures are in the table, and hidden ones say so.
    snapshot = platform.call(
        "GET",
        f"/api/v1/insights/consultations/{released.consultation_id}",
        policy.token,
        expect=200,
    ).get_json()["snapshot"]
    region = next(q for q in snapshot["questions"] if q["question_id"] == "region")
    for cell in region["categories"]:
        if not cell["suppressed"] and cell["category"] != "_skipped":
            assert f'<td class="num">{cell["value"]}</td>' in html
    hidden = sum(c["suppressed"] for q in snapshot["questions"] for c in q["categories"])
    assert html.count(f"fewer than {snapshot['k']} people") >= hidden
    assert "By How old are you?" in html  # a cross-tab by each breakdown

    arabic = policy.get(f"/staff/insights/{released.consultation_id}?lang=ar").get_data(
        as_text=True
    )
    assert "أين تعيش الآن؟" in arabic and 'dir="rtl"' in arabic


def test_downloads_carry_words_and_the_digest(staff_browser, released):
    policy = staff_browser("policy")
    got = policy.get(f"/staff/insights/{released.consultation_id}/export.csv?lang=fr")
    assert got.status_code == 200 and "attachment" in got.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(got.get_data(as_text=True))))
    north = next(r for r in rows if r["question_id"] == "region" and r["category"] == "north")
    assert north["question"] == "Où vivez-vous maintenant ?" and north["category_label"] == "Nord"
    assert {r["k"] for r in rows} == {"10"}
    exported = policy.get(f"/staff/insights/{released.consultation_id}/export.json")
    snapshot = json.loads(exported.get_data())
    body = {k: v for k, v in snapshot.items() if k != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == snapshot["digest"]


def test_other_roles_and_other_organisations_see_nothing(staff_browser, released):
    auditor = staff_browser("auditor")
    assert auditor.get(f"/staff/insights/{released.consultation_id}").status_code == 403
    assert auditor.get(f"/staff/insights/{released.consultation_id}/export.csv").status_code == 403


def test_a_later_answer_does_not_change_the_release_page(staff_browser, released, platform):
    policy = staff_browser("policy")
    before = policy.get(f"/staff/insights/{released.consultation_id}").get_data(as_text=True)
    answer(platform, released, {"region": "south", "age_band": "18-24", "got_help": "no"})
    platform.deliver()
    after = policy.get(f"/staff/insights/{released.consultation_id}").get_data(as_text=True)
    strip = re.compile(r'name="csrf_token" value="[^"]*"')
    assert strip.sub("", before) == strip.sub("", after)


def test_a_noisy_release_says_so_with_its_epsilon(platform, new_browser):
    from tests.unit.web.conftest import open_demo_consultation
    from tests.unit.web.staff.conftest import make_account

    noisy = open_demo_consultation(platform, epsilon_budget=2.0)
    for person in range(40):
        answer(
            platform,
            noisy,
            {
                "region": "north" if person % 2 else "capital",
                "age_band": "25-39",
                "got_help": "yes",
            },
        )
    platform.deliver()
    platform.call(
        "POST",
        "/api/v1/releases",
        noisy.organiser_token,
        expect=201,
        json={"consultation_id": noisy.consultation_id, "epsilon": 0.5},
    )
    organisation = platform.call(
        "GET", f"/api/v1/consultations/{noisy.consultation_id}", noisy.organiser_token, expect=200
    ).get_json()["organisation_id"]
    person = make_account(platform, "policy", organisation)
    policy = new_browser()
    policy.email = person["email"]
    policy.sign_in()
    html = policy.get(f"/staff/insights/{noisy.consultation_id}").get_data(as_text=True)
    assert "differential privacy, epsilon 0.5" in html
    rows = list(
        csv.DictReader(
            io.StringIO(
                policy.get(f"/staff/insights/{noisy.consultation_id}/export.csv").get_data(
                    as_text=True
                )
            )
        )
    )
    assert {r["noise_added"] for r in rows} == {"true"} and {r["epsilon"] for r in rows} == {"0.5"}
