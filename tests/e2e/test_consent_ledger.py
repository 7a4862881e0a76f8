"""The consent ledger end to end: concurrent grants, withdrawal and erasure, and an auditor's independent check.

Everything goes through the gateway of the running platform (real processes,
Kafka wire protocol); the auditor downloads the export and verifies it with
nothing but the public key the platform publishes, using the stand-alone
verifier as a separate process.
"""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from deploy.servers import REPO_ROOT
from services.consent import verify
from tests.e2e.conftest import eventually, open_consultation, participate

CONCURRENT_GRANTS = 20


@pytest.fixture(scope="module")
def auditor(api, stack) -> str:
    """A platform auditor (in no organisation): these tests read and export the whole ledger."""
    account = api.call(
        "POST",
        "/api/v1/accounts",
        stack.admin_token,
        json={
            "email": f"platform-auditor-{secrets.token_hex(3)}@example.org",
            "role": "platform_auditor",
        },
    )
    return api.call(
        "POST", "/api/v1/tokens", stack.admin_token, json={"account_id": account["account_id"]}
    )["token"]


def ledger_entries(api, token: str) -> list[dict]:
    """The whole ledger, read page by page through the auditor API."""
    entries: list[dict] = []
    while True:
        page = api.call("GET", f"/api/v1/ledger/entries?start={len(entries)}&limit=200", token)
        entries += page["entries"]
        if not page["entries"] or len(entries) >= page["size"]:
            return entries


def download_export(api, token: str, directory) -> tuple:
    """The export and the public key as an auditor saves them: two files."""
    response = api.session.get(
        f"{api.base}/api/v1/ledger/export", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    key = api.call("GET", "/api/v1/consent/public-key")
    export_path, key_path = directory / "consent-ledger.jsonl", directory / "consent.pub.pem"
    export_path.write_bytes(response.content)
    key_path.write_text(key["public_key_pem"])
    return export_path, key_path


def run_verifier(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.consent.verify", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _open_and_grant(base_url: str, code: str) -> dict:
    """One participant, on their own connection: open the invitation, read the text, consent."""
    with requests.Session() as session:
        opened = session.post(f"{base_url}/api/v1/invitations/{code}/open", timeout=30)
        assert opened.status_code == 201, opened.text
        cid, pseudonym = opened.json()["consultation_id"], opened.json()["pseudonym"]
        text = session.get(
            f"{base_url}/api/v1/consent/consultations/{cid}/texts",
            params={"language": "en"},
            timeout=30,
        )
        assert text.status_code == 200, text.text
        granted = session.post(
            f"{base_url}/api/v1/consent/grants",
            timeout=30,
            json={
                "pseudonym": pseudonym,
                "consultation_id": cid,
                "purposes": ["participate", "aggregate_reporting"],
                "language": "en",
                "text_version": text.json()["version"],
            },
            headers={"Authorization": f"Bearer {opened.json()['participant_session']}"},
        )
        assert granted.status_code == 201, granted.text
        return {"pseudonym": pseudonym, **granted.json()}


def test_twenty_concurrent_grants_leave_one_chain_without_gap_fork_or_duplicate(
    api, organiser, auditor, stack, tmp_path
):
    cid, code = open_consultation(api, organiser["token"])
    eventually(
        lambda: (
            api.session.get(
                f"{api.base}/api/v1/consent/consultations/{cid}/texts",
                params={"language": "en"},
                timeout=10,
            ).status_code
            == 200
        )
    )
    with ThreadPoolExecutor(max_workers=CONCURRENT_GRANTS) as pool:
        granted = list(
            pool.map(lambda _: _open_and_grant(stack.gateway_url, code), range(CONCURRENT_GRANTS))
        )
    grant_ids = {g["grant_id"] for g in granted}
    assert len(grant_ids) == CONCURRENT_GRANTS

    def all_appended():
        entries = ledger_entries(api, auditor)
        found = [
            e
            for e in entries
            if e["kind"] == "consent.granted" and e["data"]["grant_id"] in grant_ids
        ]
        return entries if len(found) >= CONCURRENT_GRANTS else None

    entries = eventually(all_appended, timeout=60)
    assert [e["seq"] for e in entries] == list(
        range(len(entries))
    )  # no gap, no duplicate sequence number
    assert entries[0]["prev_hash"] == "0" * 64
    for previous, entry in itertools.pairwise(entries):
        assert entry["prev_hash"] == previous["hash"], f"fork at seq {entry['seq']}"
    for entry in entries:
        body = {k: entry[k] for k in ("seq", "kind", "at", "data", "prev_hash")}
        assert verify.sha256(verify.canonical(body).encode("utf-8")).hex() == entry["hash"]
    ours = [
        e["data"]["grant_id"]
        for e in entries
        if e["kind"] == "consent.granted" and e["data"]["grant_id"] in grant_ids
    ]
    assert sorted(ours) == sorted(grant_ids)  # each grant exactly once
    export_path, key_path = download_export(api, auditor, tmp_path)
    result = run_verifier(export_path, key_path, "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    exported = sum(1 for line in export_path.read_bytes().splitlines() if b'"type":"entry"' in line)
    assert exported >= len(entries) and result.stdout.startswith(f"OK: {exported} entries")


def test_an_auditor_verifies_the_export_and_sees_erasures_follow_withdrawals(
    api, organiser, auditor, tmp_path
):
    cid, code = open_consultation(api, organiser["token"])
    answered = participate(api, code, {"got_help": "yes"})
    stays = participate(api, code, {"got_help": "no"})
    # Withdraws everything after answering: the answer must be erased and the erasure confirmed.
    withdrawn = api.call(
        "POST",
        "/api/v1/consent/withdrawals",
        json={"receipt_code": answered["grant"]["receipt_code"]},
    )
    assert withdrawn["all"] is True and withdrawn["changed"] is True

    def confirmed():
        # Confirmed by the surveys service's withdrawal.processed, with the erasure it reports.
        report = api.call("GET", f"/api/v1/ledger/erasure-report?consultation_id={cid}", auditor)
        done = report["confirmed"] == 1 and all(
            w["processing"] and w["erasures"] for w in report["withdrawals"]
        )
        return report if done else None

    report = eventually(confirmed, timeout=60)
    [item] = report["withdrawals"]
    assert (
        item["pseudonym"] == answered["pseudonym"]
        and item["grant_id"] == answered["grant"]["grant_id"]
    )
    assert [e["response_id"] for e in item["erasures"]] == [answered["response"]["response_id"]]
    assert (item["confirmed"], item["responses_erased"], item["key_shredded"]) == (True, 1, True)
    assert report["unconfirmed"] == 0
    assert stays["pseudonym"] not in str(report)

    def receipt_confirmed():
        # The receipt takes the confirmation in the same handler that appended its ledger entry.
        receipt = api.call(
            "POST",
            "/api/v1/consent/receipts/lookup",
            json={"receipt_code": answered["grant"]["receipt_code"]},
        )
        return receipt if receipt["events"][-1]["eventType"] == "erasure_confirmed" else None

    receipt = eventually(receipt_confirmed, timeout=30)
    assert [e["eventType"] for e in receipt["events"]] == [
        "granted",
        "withdrawn",
        "answers_erased",
        "erasure_confirmed",
    ]
    assert receipt["events"][1]["erasureStatus"] == "confirmed"
    assert (receipt["events"][-1]["responsesErased"], receipt["events"][-1]["keyShredded"]) == (
        1,
        True,
    )

    # The export, checked offline with the published key only; its tail is covered by a signature.
    export_path, key_path = download_export(api, auditor, tmp_path)
    result = run_verifier(export_path, key_path, "--strict")
    assert result.returncode == 0 and result.stdout.startswith("OK: "), (
        result.stdout + result.stderr
    )
    lines = export_path.read_bytes().splitlines(keepends=True)
    kinds = {json.loads(line).get("kind") for line in lines}
    assert {
        "consent_text.published",
        "consent.granted",
        "consent.withdrawn",
        "response.erased",
        "withdrawal.processed",
    } <= kinds
    # One altered byte in the erasure entry and the verifier names the line.
    index = next(
        i for i, line in enumerate(lines) if answered["response"]["response_id"].encode() in line
    )
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(
        b"".join(
            lines[:index] + [lines[index].replace(b"withdrawal", b"retention")] + lines[index + 1 :]
        )
    )
    failed = run_verifier(tampered, key_path)
    assert failed.returncode == 1 and f"line {index + 1}" in failed.stdout, failed.stdout

    # A participant who withdraws before answering: nothing to erase, and the withdrawal is still confirmed.
    silent = _open_and_grant(api.base, code)
    api.call("POST", "/api/v1/consent/withdrawals", json={"receipt_code": silent["receipt_code"]})

    def silent_confirmed():
        report = api.call(
            "GET", f"/api/v1/ledger/erasure-report?consultation_id={cid}&status=confirmed", auditor
        )
        return [w for w in report["withdrawals"] if w["pseudonym"] == silent["pseudonym"]]

    [quiet] = eventually(silent_confirmed, timeout=60)
    assert (quiet["responses_erased"], quiet["key_shredded"], quiet["erasures"]) == (0, True, [])
    final = api.call("GET", f"/api/v1/ledger/erasure-report?consultation_id={cid}", auditor)
    assert (final["confirmed"], final["unconfirmed"]) == (2, 0)
