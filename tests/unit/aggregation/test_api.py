"""Releases and the insights API in process: nothing before release, suppression, DP budget, exports, quotes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime

from services.aggregation import rebuild, releases
from services.aggregation.models import ContributionDocument, Release
from services.aggregation.snapshots import verify_snapshot_digest
from tests.unit.aggregation.conftest import (
    CID,
    ORG,
    QUESTIONS,
    answers_for,
    erased,
    published,
    quote_approved,
    quote_revoked,
    submitted,
    withdrawn,
)

BASE = f"/api/v1/insights/consultations/{CID}"


def fill(agg, n=40, epsilon_budget=None):
    agg.send(
        published(epsilon_budget=epsilon_budget), *[submitted(i, answers_for(i)) for i in range(n)]
    )


def test_nothing_is_visible_to_policy_users_before_a_release(agg):
    fill(agg)
    assert agg.call("GET", "/api/v1/insights/consultations", 200, role="policy")["releases"] == []
    # Its own organisation's readers learn why, in words; no figure comes with the answer.
    for path in (BASE, f"{BASE}/questions/region", f"{BASE}/export.csv", f"{BASE}/quotes"):
        body = agg.call("GET", path, 409, role="policy")
        assert body["detail"].startswith("not released yet") and body["status"] == 409
        assert body["release_state"] == "not_released"
        assert body["consultation_id"] == CID and "snapshot" not in body
    assert agg.call("GET", BASE, 409)["detail"].startswith("not released yet")
    # Another organisation's reader learns nothing, not even that it exists.
    agg.call("GET", BASE, 404, role="policy", org="org_b")


def test_a_release_is_stored_announced_and_served_with_its_date(agg):
    fill(agg, 200)
    created = agg.release()
    assert created["snapshot"] == 1 and created["contributors"] == {
        "value": 200,
        "suppressed": False,
        "reason": None,
    }
    [event] = agg.released_events()
    assert event.payload["digest"] == created["digest"] and event.payload["snapshot"] == 1
    assert event.payload["signed_off_by"] == "u_1"
    listed = agg.call("GET", "/api/v1/insights/consultations", 200, role="policy")["releases"]
    assert [r["consultation_id"] for r in listed] == [CID]
    latest = agg.call("GET", BASE, 200, role="policy")
    assert latest["release"]["released_at"] == created["released_at"]
    assert verify_snapshot_digest(latest["snapshot"])


def test_only_organisers_of_the_owning_organisation_release(agg):
    fill(agg)
    agg.call("POST", "/api/v1/releases", 404, org="org_b", json={"consultation_id": CID})
    agg.call("POST", "/api/v1/releases", 403, role="policy", json={"consultation_id": CID})
    agg.call("POST", "/api/v1/releases", 404, json={"consultation_id": "c_unknown"})
    agg.call("POST", "/api/v1/releases", 422, json={})
    with agg.app.app_context():
        assert Release.objects.count() == 0


def test_policy_users_read_their_own_and_partner_organisations_only(agg):
    fill(agg)
    agg.release()
    agg.call("GET", BASE, 404, role="policy", org="org_b")
    assert (
        agg.call("GET", "/api/v1/insights/consultations", 200, role="policy", org="org_b")[
            "releases"
        ]
        == []
    )
    agg.call("GET", BASE, 200, role="policy", org="org_b", readable=(ORG,))
    agg.call("GET", BASE, 404, role="organiser", org="org_b")


def test_a_withdrawal_after_release_changes_the_next_snapshot_only(agg):
    agg.send(
        published(), *[submitted(i, {"region": "north" if i % 2 else "south"}) for i in range(40)]
    )
    first = agg.release()
    stored_first = agg.call("GET", BASE, 200, role="policy")["snapshot"]
    agg.send(
        withdrawn("p0", ["aggregate_reporting"]),
        *[erased(i, "withdrawal") for i in (2, 4, 6, 8)],
        erased(1, "retention"),
    )
    second = agg.release()
    assert first["contributors"]["value"] == 40
    # Five withdrew (retention keeps p1): a change of k=5 may be published beside the first snapshot.
    assert second["contributors"]["value"] == 35
    latest = agg.call("GET", BASE, 200, role="policy")
    assert latest["release"]["snapshot"] == 2 and latest["snapshot"]["contributors"]["value"] == 35
    region = {c["category"]: c["value"] for c in latest["snapshot"]["questions"][0]["categories"]}
    assert region["south"] == 15 and region["north"] == 20
    with agg.app.app_context():
        assert Release.objects(snapshot=1).first().content == stored_first


def test_a_small_change_since_the_last_snapshot_is_not_published(agg):
    agg.send(
        published(), *[submitted(i, {"region": "north" if i % 2 else "south"}) for i in range(40)]
    )
    agg.release()
    agg.send(withdrawn("p0", ["aggregate_reporting"]))
    second = agg.release()
    # One withdrawal: the total and the south moved by one; subtracting snapshots must not show it.
    assert second["contributors"] == {"value": None, "suppressed": True, "reason": "suppressed"}
    south = agg.call("GET", f"{BASE}/questions/region", 200, role="policy")["result"]["categories"][
        1
    ]
    assert south["category"] == "south" and south["suppressed"]


def test_suppressed_cells_say_why_and_never_carry_a_value(agg):
    # 9 in the north, 3 in the south: the south (3 < k=5) and its complement must not show.
    agg.send(
        published(),
        *[
            submitted(i, {"region": "north" if i < 9 else "south", "age": "young"})
            for i in range(12)
        ],
    )
    agg.release()
    region = agg.call("GET", f"{BASE}/questions/region", 200, role="policy")["result"]
    cells = {c["category"]: c for c in region["categories"]}
    # One mark for every hidden figure: a reason per cause would tell the reader the range.
    assert cells["south"] == {
        "category": "south",
        "value": None,
        "suppressed": True,
        "reason": "suppressed",
        "percent": None,
    }
    assert cells["north"]["suppressed"] and cells["north"]["reason"] == "suppressed"
    assert cells["north"]["value"] is None
    crosstab = agg.call("GET", f"{BASE}/questions/region/crosstab?by=age", 200, role="policy")[
        "result"
    ]
    assert crosstab["dimensions"] == ["age"]
    published_values = [
        c["value"] for g in crosstab["groups"] for c in g["cells"] if not c["suppressed"]
    ]
    assert 3 not in published_values and 9 not in published_values
    rows = list(
        csv.DictReader(
            io.StringIO(agg.call("GET", f"{BASE}/export.csv", 200, role="policy").get_data(True))
        )
    )
    south = [
        r
        for r in rows
        if r["table"] == "question" and r["question_id"] == "region" and r["category"] == "south"
    ]
    assert (
        south[0]["value"] == ""
        and south[0]["suppressed"] == "true"
        and south[0]["reason"] == "suppressed"
    )


def test_percentages_are_of_everyone_who_answered(agg):
    fill(agg, 200)
    agg.release()
    needs = agg.call("GET", f"{BASE}/questions/age", 200, role="policy")["result"]
    shown = [c for c in needs["categories"] if not c["suppressed"] and c["category"] != "_skipped"]
    base = needs["contributors"]["value"]
    assert base > 0 and shown
    for c in shown:
        assert c["percent"] == round(100.0 * c["value"] / base, 1)


def test_unknown_question_or_dimension_is_a_clear_error(agg):
    fill(agg)
    agg.release()
    agg.call("GET", f"{BASE}/questions/nope", 404, role="policy")
    agg.call("GET", f"{BASE}/questions/story", 404, role="policy")  # free text is never tabulated
    agg.call("GET", f"{BASE}/questions/needs/crosstab?by=needs", 404, role="policy")
    agg.call("GET", f"{BASE}/questions/needs/crosstab?by=a,b,c", 422, role="policy")
    agg.call("GET", f"{BASE}/questions/needs/crosstab", 422, role="policy")
    two = agg.call("GET", f"{BASE}/questions/needs/crosstab?by=age,region", 200, role="policy")[
        "result"
    ]
    assert sorted(two["dimensions"]) == ["age", "region"]


def test_json_export_is_the_canonical_snapshot_whose_digest_verifies(agg):
    fill(agg)
    created = agg.release()
    r = agg.client.get(f"{BASE}/export.json", headers=agg.staff("policy"))
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    body = json.loads(r.get_data())
    assert r.headers["X-Snapshot-Digest"] == created["digest"] == body["digest"]
    without = {k: v for k, v in body.items() if k != "digest"}
    canonical = json.dumps(
        without, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert hashlib.sha256(canonical).hexdigest() == body["digest"]


def test_differential_privacy_spends_a_budget_and_refuses_to_overspend(agg):
    fill(agg, 40, epsilon_budget=3.0)
    first = agg.release(epsilon=2.0)
    assert first["privacy"]["epsilon"] == 2.0 and first["epsilon_remaining"] == 1.0
    problem = agg.release(epsilon=1.5, expect=409)
    assert "budget" in problem["detail"] and problem["remaining"] == 1.0
    with agg.app.app_context():
        assert Release.objects.count() == 1  # the refused release stored nothing
    agg.release(epsilon=1.0)
    agg.release(epsilon=0.1, expect=409)
    exact = agg.release(expect=409)  # with a budget there is no exact release
    assert "every release spends" in exact["detail"] and exact["remaining"] == 0.0
    agg.release(epsilon=-1, expect=422)


def test_quotes_only_after_release_and_only_while_consent_stands(agg):
    fill(agg)
    agg.send(
        quote_approved("q1", "p1", "Someone who spoke my language."),
        quote_approved("q2", "p2", "A safe place."),
        quote_approved("q3", "p3", "Revoked later."),
    )
    agg.call("GET", f"{BASE}/quotes", 409, role="policy")
    agg.release()
    texts = [q["text"] for q in agg.call("GET", f"{BASE}/quotes", 200, role="policy")["quotes"]]
    assert sorted(texts) == ["A safe place.", "Revoked later.", "Someone who spoke my language."]
    agg.send(withdrawn("p1", ["quote_anonymised"]), quote_revoked("q3"), erased(2, "withdrawal"))
    quotes = agg.call("GET", f"{BASE}/quotes", 200, role="policy")["quotes"]
    assert quotes == []
    assert all("pseudonym" not in q for q in quotes)
    # p1 withdrew quote consent only: the answers still count (only p2's are gone).
    with agg.app.app_context():
        assert releases.current_tables(CID).contributors == 39


def test_freshness_and_progress_for_the_owning_organisers(agg):
    fill(agg, 5)
    fresh = agg.call("GET", f"{BASE}/freshness", 200)
    assert (
        fresh["responses"] == 5
        and fresh["p50_seconds"] >= 0
        and fresh["p95_seconds"] >= fresh["p50_seconds"]
    )
    agg.call("GET", f"{BASE}/freshness", 404, org="org_b")
    agg.call("GET", f"{BASE}/freshness", 403, role="policy")
    progress = agg.call("GET", f"{BASE}/progress", 200)
    assert progress["responses_counted"] == 5
    latest = max(
        c.counted_at
        for c in ContributionDocument.objects(consultation_id=progress["consultation_id"])
    )
    shown = datetime.fromisoformat(progress["last_counted_at"])
    assert shown == latest.replace(tzinfo=UTC)


def test_rebuild_from_the_topics_gives_the_live_result(agg):
    fill(agg, 30)
    agg.send(
        withdrawn("p3", everything=True),
        erased(4, "withdrawal"),
        erased(5, "retention"),
        quote_approved("q1", "p6", "kept"),
        withdrawn("p7", ["quote_anonymised"]),
    )
    with agg.app.app_context():
        live = releases.current_tables(CID)
        records = [
            (topic, 0, offset, value)
            for topic in agg.runtime.subscriptions
            for offset, value in enumerate(agg.bus.topics[topic])
        ]
        records.append((agg.settings.topics.responses, 0, len(records), b"not json"))
        rebuild.clear_projection(agg.runtime.db, "voices-aggregation")
        assert agg.runtime.db["contributions"].count_documents({}) == 0
        report = rebuild.replay(records, agg.runtime.dispatcher)
        rebuilt = releases.current_tables(CID)
        assert report.invalid == 1 and report.handled == len(records) - 1
        assert rebuilt.counts == live.counts and rebuilt.counts[()] == 28
        assert [q["text"] for q in releases.approved_quotes(CID)] == ["kept"]


WORDED = [
    {
        **QUESTIONS[0],
        "label": {"en": "Where do you live?", "ar": "أين تعيش؟"},
        "option_labels": {
            "north": {"en": "North", "ar": "الشمال"},
            "south": {"en": "South", "ar": "الجنوب"},
        },
    },
    *QUESTIONS[1:],
]


def test_a_release_freezes_its_words_a_later_survey_version_does_not_change_them(agg):
    agg.send(published(questions=WORDED), *[submitted(i, answers_for(i)) for i in range(60)])
    agg.release()
    first = agg.call("GET", BASE, 200, role="policy")["snapshot"]
    region = first["wording"]["questions"]["region"]
    assert region["label"] == {"en": "Where do you live?", "ar": "أين تعيش؟"}
    assert region["options"]["south"] == {"en": "South", "ar": "الجنوب"}
    assert first["wording"]["title"] == {"en": "After leaving"}
    assert verify_snapshot_digest(first)  # the words are under the digest

    reworded = [
        {
            **WORDED[0],
            "label": {"en": "Which region?", "ar": "أي منطقة؟"},
            "option_labels": {"north": {"en": "Up north"}, "south": {"en": "Down south"}},
        },
        *QUESTIONS[1:],
    ]
    agg.send(published(questions=reworded, version=2))
    again = agg.call("GET", BASE, 200, role="policy")["snapshot"]
    assert again == first
    rows = list(
        csv.DictReader(
            io.StringIO(
                agg.call("GET", f"{BASE}/export.csv", 200, role="policy").get_data(as_text=True)
            )
        )
    )
    south = next(r for r in rows if r["question_id"] == "region" and r["category"] == "south")
    assert south["question"] == "Where do you live?" and south["category_label"] == "South"

    agg.release()
    second = agg.call("GET", BASE, 200, role="policy")["snapshot"]
    assert second["snapshot"] == 2
    assert second["wording"]["questions"]["region"]["label"]["en"] == "Which region?"


def test_csv_states_k_date_noise_and_the_meaning_of_each_mark(agg):
    agg.send(published(questions=WORDED), *[submitted(i, answers_for(i)) for i in range(60)])
    created = agg.release()
    text = agg.call("GET", f"{BASE}/export.csv?lang=ar", 200, role="policy").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["k"] for r in rows} == {"5"}
    assert {r["released_at"] for r in rows} == {created["released_at"]}
    assert {r["noise_added"] for r in rows} == {"false"} and {r["epsilon"] for r in rows} == {""}
    north = next(r for r in rows if r["question_id"] == "region" and r["category"] == "north")
    assert north["question"] == "أين تعيش؟" and north["category_label"] == "الشمال"
    for row in rows:
        if row["suppressed"] == "true":
            assert "hidden: either 1 to 4 people" in row["meaning"]
        if row["percent"]:
            assert float(row["percent"]) == round(
                100 * int(row["value"]) / int(row["percent_base"]), 1
            )
    skipped = [r for r in rows if r["category"] == "_skipped"]
    assert skipped and all("did not answer" in r["meaning"] for r in skipped)
