"""Who reads which part of the ledger: an auditor their own organisation's consultations' entries, a
platform auditor (in no organisation, created by an admin) every entry. Scoped entries still verify:
each has an inclusion proof under the signed root of the whole ledger."""

from __future__ import annotations

import json
import re

from services.consent import ledger, verify
from tests.unit.consent.platform_auditing import platform_auditor_headers


def two_organisations(consent) -> dict[str, str]:
    """A consultation of org_a and one of org_b, each with a grant and a full withdrawal, in the ledger."""
    cids = {}
    for organisation in ("org_a", "org_b"):
        cid = consent.consultation(organisation_id=organisation)
        consent.text(cid, organisation_id=organisation)
        consent.publish_text(cid, organisation_id=organisation)
        code = consent.grant(cid, f"p_{organisation}")["receipt_code"]
        consent.withdraw(code)
        cids[organisation] = cid
    consent.settle()
    consent.call(
        "POST", "/api/v1/ledger/checkpoints", 201, headers=consent.staff("auditor", "org_a")
    )
    return cids


def public_keys(consent) -> dict:
    return verify.load_public_keys(consent.public_key_pem().encode())


def as_auditor_of(consent, organisation: str, method: str, path: str, expect: int = 200):
    return consent.call(method, path, expect, headers=consent.staff("auditor", organisation))


def test_an_auditor_reads_only_their_organisations_entries(consent):
    cids = two_organisations(consent)
    everything = consent.call(
        "GET", "/api/v1/ledger/entries?limit=1000", 200, headers=platform_auditor_headers(consent)
    )
    mine = as_auditor_of(consent, "org_a", "GET", "/api/v1/ledger/entries?limit=1000")
    assert {e["data"]["consultation_id"] for e in everything["entries"]} == set(cids.values())
    assert mine["entries"] == [
        e for e in everything["entries"] if e["data"]["consultation_id"] == cids["org_a"]
    ]
    assert mine["size"] == everything["size"]  # the size checkpoints sign: of the whole ledger
    text = json.dumps(mine)
    assert cids["org_b"] not in text and "p_org_b" not in text and "org_b" not in text
    # An auditor of an organisation with no consultation reads nothing at all.
    assert (
        as_auditor_of(consent, "org_none", "GET", "/api/v1/ledger/entries?limit=1000")["entries"]
        == []
    )


def test_an_auditors_entries_verify_under_the_signed_root_of_the_whole_ledger(consent):
    cids = two_organisations(consent)
    latest = as_auditor_of(consent, "org_a", "GET", "/api/v1/ledger/checkpoints")[-1]
    assert (
        verify.checkpoint_problem(latest, public_keys(consent)) is None
    )  # signed over the whole ledger
    mine = as_auditor_of(consent, "org_a", "GET", "/api/v1/ledger/entries?limit=1000")["entries"]
    assert mine
    for entry in mine:
        proof = as_auditor_of(
            consent, "org_a", "GET", f"/api/v1/ledger/proofs/inclusion/{entry['seq']}"
        )
        leaf = verify.leaf_hash(
            verify.canonical(entry).encode("utf-8")
        )  # hashed here, not by the API
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        assert (
            proof["root_hash"] == latest["root_hash"] and proof["tree_size"] == latest["tree_size"]
        )
        assert verify.verify_inclusion(
            leaf, entry["seq"], proof["tree_size"], path, bytes.fromhex(latest["root_hash"])
        )
    assert {e["data"]["consultation_id"] for e in mine} == {cids["org_a"]}


def test_another_organisations_entry_has_no_proof_and_answers_like_a_missing_one(consent):
    cids = two_organisations(consent)
    everything = consent.call(
        "GET", "/api/v1/ledger/entries?limit=1000", 200, headers=platform_auditor_headers(consent)
    )
    theirs = next(
        e["seq"] for e in everything["entries"] if e["data"]["consultation_id"] == cids["org_b"]
    )
    beyond = everything["size"] + 5
    foreign = as_auditor_of(
        consent, "org_a", "GET", f"/api/v1/ledger/proofs/inclusion/{theirs}", 404
    )
    missing = as_auditor_of(
        consent, "org_a", "GET", f"/api/v1/ledger/proofs/inclusion/{beyond}", 404
    )

    def without_seq(problem):
        return {
            k: re.sub(r"\b\d+\b", "N", v) if k == "detail" else v
            for k, v in problem.items()
            if k != "request_id"
        }

    assert without_seq(foreign) == without_seq(missing)
    consent.call(
        "GET",
        f"/api/v1/ledger/proofs/inclusion/{theirs}",
        200,
        headers=platform_auditor_headers(consent),
    )


def test_the_erasure_report_covers_the_auditors_organisation_only(consent):
    cids = two_organisations(consent)
    mine = as_auditor_of(consent, "org_a", "GET", "/api/v1/ledger/erasure-report")
    assert [w["pseudonym"] for w in mine["withdrawals"]] == ["p_org_a"]
    theirs = as_auditor_of(
        consent, "org_a", "GET", f"/api/v1/ledger/erasure-report?consultation_id={cids['org_b']}"
    )
    nowhere = as_auditor_of(
        consent, "org_a", "GET", "/api/v1/ledger/erasure-report?consultation_id=c_missing"
    )
    assert theirs == {**nowhere, "tree_size": theirs["tree_size"]} and theirs["withdrawals"] == []
    every = consent.call(
        "GET", "/api/v1/ledger/erasure-report", 200, headers=platform_auditor_headers(consent)
    )
    assert sorted(w["pseudonym"] for w in every["withdrawals"]) == ["p_org_a", "p_org_b"]


def export_of(consent, headers: dict) -> list[bytes]:
    response = consent.client.get("/api/v1/ledger/export", headers=headers)
    assert response.status_code == 200, response.get_data(True)
    return response.get_data().splitlines(keepends=True)


def test_an_auditor_exports_their_part_and_it_verifies_with_the_public_key_alone(consent):
    cids = two_organisations(consent)
    lines = export_of(consent, consent.staff("auditor", "org_a"))
    report = verify.verify_export(lines, public_keys(consent))
    assert report.ok, report.message()
    mine = as_auditor_of(consent, "org_a", "GET", "/api/v1/ledger/entries?limit=1000")["entries"]
    assert (
        report.entries == len(mine)
        and lines[0].decode().strip() == ledger.PARTIAL_MARK == verify.PARTIAL_MARK
    )
    assert cids["org_b"].encode() not in b"".join(lines) and b"p_org_b" not in b"".join(lines)
    # The whole ledger's export stays the platform auditors' and verifies as a whole.
    whole = verify.verify_export(
        export_of(consent, platform_auditor_headers(consent)), public_keys(consent), strict=True
    )
    assert whole.ok and whole.entries > report.entries


def other_first_digit(line: bytes, before: bytes) -> bytes:
    """`line` with the hex digit right after `before` changed (to another digit, whatever it was)."""
    at = line.index(before) + len(before)
    return line[:at] + (b"1" if line[at : at + 1] == b"0" else b"0") + line[at + 1 :]


def test_a_partial_export_fails_when_anything_in_it_changes(consent):
    two_organisations(consent)
    lines = export_of(consent, consent.staff("auditor", "org_a"))
    keys = public_keys(consent)
    first_entry = next(i for i, line in enumerate(lines) if b'"type":"entry"' in line)
    changed = {
        "an entry's content": {
            first_entry: lines[first_entry].replace(
                b'"consultation_id":"c', b'"consultation_id":"x', 1
            )
        },
        "an audit path": {
            first_entry + 1: other_first_digit(lines[first_entry + 1], b'"audit_path":["')
        },
        "the signed root": {1: other_first_digit(lines[1], b'"root_hash":"')},
        "a proof taken away": {first_entry + 1: b""},
    }
    for what, replacements in changed.items():
        tampered = [replacements.get(i, line) for i, line in enumerate(lines)]
        assert tampered != lines, what
        assert not verify.verify_export([line for line in tampered if line], keys).ok, what
