"""Auditor pages: the ledger paged and filtered by kind, entries with their hash and inclusion
proof, checkpoints, the erasure report, and the two downloads verified with the verifier."""

from __future__ import annotations

import re

from services.consent import verify


def test_ledger_entries_filtered_by_kind_with_hash_and_proof(staff_browser, released, platform):
    auditor = staff_browser("auditor")
    platform.call("POST", "/api/v1/ledger/checkpoints", auditor.token, expect=(200, 201))
    everything = auditor.get("/staff/ledger")
    assert everything.status_code == 200
    html = everything.get_data(as_text=True)
    hashes = re.findall(r'<td class="hash">([0-9a-f]{64})</td>', html)
    assert hashes
    granted = auditor.get("/staff/ledger?kind=consent.granted").get_data(as_text=True)
    kinds = re.findall(r"<td>(Consent [a-z ]+|Answers erased|Release signed off)</td>", granted)
    assert kinds and set(kinds) == {"Consent given"}
    seq = int(re.search(r"/staff/ledger/entries/(\d+)", granted).group(1))
    proof_page = auditor.get(f"/staff/ledger/entries/{seq}").get_data(as_text=True)
    proof = platform.call(
        "GET", f"/api/v1/ledger/proofs/inclusion/{seq}", auditor.token, expect=200
    ).get_json()
    assert proof["leaf_hash"] in proof_page and proof["root_hash"] in proof_page
    assert all(h in proof_page for h in proof["audit_path"])


def test_bad_filters_are_named_next_to_their_field(staff_browser, released):
    auditor = staff_browser("auditor")
    page = auditor.get("/staff/ledger?kind=nonsense&start=-3")
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert 'id="f-kind-error"' in html and 'id="f-start-error"' in html


def test_export_and_key_downloads_verify_and_a_kept_checkpoint_is_extended(
    staff_browser, released, tmp_path
):
    auditor = staff_browser("auditor")
    export = auditor.get("/staff/ledger/consent-ledger.jsonl")
    key = auditor.get("/staff/ledger/voices-ledger-key.pem")
    assert export.status_code == key.status_code == 200
    assert b"BEGIN PUBLIC KEY" in key.get_data()
    (tmp_path / "consent-ledger.jsonl").write_bytes(export.get_data())
    (tmp_path / "voices-ledger-key.pem").write_bytes(key.get_data())
    export_file, key_file = (
        str(tmp_path / "consent-ledger.jsonl"),
        str(tmp_path / "voices-ledger-key.pem"),
    )
    assert verify.main([export_file, key_file]) == 0

    checkpoints = auditor.get("/staff/ledger/checkpoints").get_data(as_text=True)
    size = int(re.search(r"/staff/ledger/checkpoints/(\d+)\.json", checkpoints).group(1))
    kept = auditor.get(f"/staff/ledger/checkpoints/{size}.json")
    (tmp_path / "kept.json").write_bytes(kept.get_data())
    assert verify.main([export_file, key_file, "--since", str(tmp_path / "kept.json")]) == 0

    # An export cut short fails: the verifier is strict by default.
    lines = export.get_data().splitlines(keepends=True)
    (tmp_path / "cut.jsonl").write_bytes(b"".join(lines[:-1]))
    assert verify.main([str(tmp_path / "cut.jsonl"), key_file]) == 1

    command = auditor.get("/staff/ledger/verify").get_data(as_text=True)
    assert "voices-verify-ledger consent-ledger.jsonl voices-ledger-key.pem" in command
    assert "--since" in command


def test_erasure_report_and_roles(staff_browser, released):
    auditor = staff_browser("auditor")
    report = auditor.get("/staff/ledger/erasures")
    assert report.status_code == 200 and "Erasure report" in report.get_data(as_text=True)
    policy = staff_browser("policy")
    assert policy.get("/staff/ledger").status_code == 403
    assert policy.get("/staff/ledger/consent-ledger.jsonl").status_code == 403
