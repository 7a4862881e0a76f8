"""Withdrawal through the real processes: counted, withdrawn by receipt code, gone from the next release."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import eventually, open_consultation, participate

ANSWERS = ["yes"] * 7 + ["no"] * 6  # 13 participants, every cell at least k=5


def progress(api, token, cid):
    r = api.session.get(
        f"{api.base}/api/v1/insights/consultations/{cid}/progress",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return r.json()["responses_counted"] if r.status_code == 200 else None


def got_help(api, token, cid) -> dict:
    result = api.call("GET", f"/api/v1/insights/consultations/{cid}/questions/got_help", token)
    return {
        "snapshot": result["release"]["snapshot"],
        "released_at": result["release"]["released_at"],
        **{c["category"]: c["value"] for c in result["result"]["categories"]},
        "total": result["result"]["total"],
    }


@pytest.fixture(scope="module")
def answered(api, organiser):
    cid, code = open_consultation(api, organiser["token"])
    people = [participate(api, code, {"got_help": answer}) for answer in ANSWERS]
    assert eventually(lambda: progress(api, organiser["token"], cid) == len(ANSWERS), timeout=60)
    return cid, people


def test_a_withdrawn_answer_is_gone_from_the_next_released_snapshot(
    api, organiser, policy, answered
):
    cid, people = answered
    before = api.call("GET", f"/api/v1/insights/consultations/{cid}", policy, expect=409)
    assert before["detail"].startswith("not released yet")  # nothing before release, and why
    api.call(
        "POST", "/api/v1/releases", organiser["token"], expect=201, json={"consultation_id": cid}
    )
    first = got_help(api, policy, cid)
    assert (first["snapshot"], first["yes"], first["no"], first["total"]["value"]) == (1, 7, 6, 13)

    leaving = people[-1]  # answered "no"
    api.call(
        "POST",
        "/api/v1/consent/withdrawals",
        json={"receipt_code": leaving["grant"]["receipt_code"]},
    )
    assert eventually(
        lambda: progress(api, organiser["token"], cid) == len(ANSWERS) - 1, timeout=60
    )
    # Released figures do not move until the organisers release again.
    assert got_help(api, policy, cid)["no"] == 6

    api.call(
        "POST", "/api/v1/releases", organiser["token"], expect=201, json={"consultation_id": cid}
    )
    second = got_help(api, policy, cid)
    # The old 6 is gone, and the change of one person is not readable by subtraction: the figures
    # that moved by less than k since the first snapshot are hidden; the unchanged one is published.
    assert (second["snapshot"], second["yes"], second["no"], second["total"]["value"]) == (
        2,
        7,
        None,
        None,
    )
    assert second["released_at"] >= first["released_at"]
    listed = api.call("GET", "/api/v1/insights/consultations", policy)["releases"]
    assert [r["snapshot"] for r in listed if r["consultation_id"] == cid] == [2]


def test_rebuild_from_the_topics_gives_the_live_count(api, organiser, stack, answered):
    cid, _ = answered
    live = eventually(lambda: progress(api, organiser["token"], cid))
    # The command runs in its own process with a database of its own (another namespace), so it
    # does not disturb the running service: it replays every topic of the stack into that one.
    topics = {
        f"TOPIC_{name.upper()}": f"{stack.namespace}.{name}.events"
        for name in ("surveys", "consent", "responses", "releases")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "services.aggregation.app:create_app",
            "aggregation",
            "rebuild",
            "--yes",
            "--show",
            cid,
        ],
        env={
            **stack.env,
            "VOICES_SERVICE": "aggregation",
            "RUN_BACKGROUND": "false",
            "VOICES_NAMESPACE": f"{stack.namespace}_rebuild",
            **topics,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "replaying" in done.stderr and "rebuilt from" in done.stderr
    rebuilt = json.loads(done.stdout.strip().splitlines()[-1])
    assert rebuilt == {"consultation_id": cid, "responses_counted": live}


def test_a_noisy_release_spends_the_budget_set_by_the_organiser(api, organiser, policy):
    """The budget travels from the surveys service to aggregation in consultation.published."""
    cid, code = open_consultation(api, organiser["token"], epsilon_budget=1.0)
    for answer in ANSWERS:
        participate(api, code, {"got_help": answer})
    assert eventually(lambda: progress(api, organiser["token"], cid) == len(ANSWERS), timeout=60)

    noisy = api.call(
        "POST",
        "/api/v1/releases",
        organiser["token"],
        expect=201,
        json={"consultation_id": cid, "epsilon": 0.75},
    )
    assert noisy["privacy"]["epsilon"] == 0.75 and noisy["epsilon_remaining"] == 0.25
    over = api.call(
        "POST",
        "/api/v1/releases",
        organiser["token"],
        expect=409,
        json={"consultation_id": cid, "epsilon": 0.5},
    )
    assert (over["remaining"], over["requested"], over["epsilon_total"]) == (0.25, 0.5, 1.0)
    budget = api.call(
        "GET", f"/api/v1/insights/consultations/{cid}/privacy-budget", organiser["token"]
    )
    assert (budget["epsilon_total"], budget["remaining"]) == (1.0, 0.25)
    assert [spend["snapshot"] for spend in budget["spent"]] == [1]
    # Policy users see the noisy snapshot, and that it is one; the refused release left no snapshot 2.
    seen = api.call("GET", f"/api/v1/insights/consultations/{cid}", policy)
    assert seen["release"]["snapshot"] == 1
    assert seen["snapshot"]["disclosure"]["differential_privacy"]["epsilon"] == 0.75
    api.call("GET", f"/api/v1/insights/consultations/{cid}/privacy-budget", policy, expect=403)
