"""The auditor API over the ledger: entries, checkpoints, proofs, the export and the erasure report.

The consent fixture signs a checkpoint every 4 entries. Proofs are checked
with the independent verifier's own RFC 9162 functions and the public key
the API publishes, as an auditor would.
"""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest

from services.consent import verify
from services.consent.models import Checkpoint
from tests.unit.consent.platform_auditing import platform_auditor, platform_auditor_headers  # noqa: F401

pytestmark = pytest.mark.usefixtures("platform_auditor")


def populate(consent, participants: int = 5) -> tuple[str, list[dict]]:
    """A consultation in two languages, some grants, a partial and a full withdrawal; all in the ledger."""
    cid = consent.open_consultation(languages=("en", "fr"))
    granted = [
        consent.grant(cid, f"p_{i:03d}", purposes=["participate", "quote_anonymised"])
        for i in range(participants)
    ]
    consent.withdraw(granted[0]["receipt_code"], ["quote_anonymised"])
    consent.withdraw(granted[1]["receipt_code"])
    consent.settle()
    return cid, granted


def export_of(consent) -> list[bytes]:
    response = consent.client.get(
        "/api/v1/ledger/export", headers=platform_auditor_headers(consent)
    )
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    return response.get_data().splitlines(keepends=True)


def keys_of(consent) -> dict:
    return verify.load_public_keys(consent.public_key_pem().encode())


def test_every_grant_withdrawal_and_text_publication_is_one_chained_entry(consent):
    _cid, granted = populate(consent)
    entries = consent.ledger()
    kinds = [e["kind"] for e in entries]
    assert (
        sorted(kinds)
        == ["consent.granted"] * 5 + ["consent.withdrawn"] * 2 + ["consent_text.published"] * 2
    )
    # One participant's events stay in order (the relay publishes a grant's events in order, keyed by pseudonym).
    first = [e["kind"] for e in entries if e["data"].get("pseudonym") == "p_000"]
    assert first == ["consent.granted", "consent.withdrawn"]
    assert [e["seq"] for e in entries] == list(range(9))
    assert entries[0]["prev_hash"] == "0" * 64
    assert all(e["prev_hash"] == p["hash"] for p, e in itertools.pairwise(entries))
    page = consent.auditor("GET", "/api/v1/ledger/entries?start=3&limit=2")
    assert page["size"] == 9 and [e["seq"] for e in page["entries"]] == [3, 4]
    assert {e["data"]["grant_id"] for e in entries if e["kind"] == "consent.granted"} == {
        g["grant_id"] for g in granted
    }


def test_checkpoints_are_signed_every_n_entries_and_verify_with_the_published_key(consent):
    populate(consent)
    checkpoints = consent.auditor("GET", "/api/v1/ledger/checkpoints")
    assert [c["tree_size"] for c in checkpoints] == [4, 8]
    keys = keys_of(consent)
    assert all(verify.checkpoint_problem(c, keys) is None for c in checkpoints)
    # Asked for, one covers the whole ledger; asked again, the same one comes back.
    fresh = consent.auditor("POST", "/api/v1/ledger/checkpoints", 201)
    assert (
        fresh["tree_size"] == 9
        and consent.auditor("POST", "/api/v1/ledger/checkpoints", 201) == fresh
    )
    assert [c.previous_size for c in Checkpoint.objects.order_by("tree_size")] == [0, 4, 8]


def test_inclusion_proofs_place_every_entry_under_a_signed_root(consent):
    populate(consent)
    [_, latest] = consent.auditor("GET", "/api/v1/ledger/checkpoints")
    for seq in range(latest["tree_size"]):
        proof = consent.auditor("GET", f"/api/v1/ledger/proofs/inclusion/{seq}")
        assert (
            proof["tree_size"] == latest["tree_size"] and proof["root_hash"] == latest["root_hash"]
        )
        entry = proof["entry"]
        leaf = verify.leaf_hash(
            verify.canonical(entry).encode("utf-8")
        )  # hashed by the auditor, not the API
        assert leaf.hex() == proof["leaf_hash"]
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        assert verify.verify_inclusion(
            leaf, seq, proof["tree_size"], path, bytes.fromhex(latest["root_hash"])
        )
        assert not verify.verify_inclusion(
            leaf, (seq + 1) % 8, 8, path, bytes.fromhex(latest["root_hash"])
        )
    small = consent.auditor("GET", "/api/v1/ledger/proofs/inclusion/2?tree_size=4")
    assert (
        small["root_hash"] == consent.auditor("GET", "/api/v1/ledger/checkpoints")[0]["root_hash"]
    )
    consent.auditor("GET", "/api/v1/ledger/proofs/inclusion/8", 404)  # beyond the latest checkpoint
    consent.auditor("GET", "/api/v1/ledger/proofs/inclusion/0?tree_size=99", 404)


def test_consistency_proofs_show_each_checkpoint_extends_the_one_before(consent):
    populate(consent)
    first, second = consent.auditor("GET", "/api/v1/ledger/checkpoints")
    proof = consent.auditor(
        "GET",
        f"/api/v1/ledger/proofs/consistency?first={first['tree_size']}"
        f"&second={second['tree_size']}",
    )
    assert (proof["first_root"], proof["second_root"]) == (first["root_hash"], second["root_hash"])
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert verify.verify_consistency(
        4, 8, bytes.fromhex(first["root_hash"]), bytes.fromhex(second["root_hash"]), path
    )
    assert not verify.verify_consistency(
        4, 8, hashlib.sha256(b"another history").digest(), bytes.fromhex(second["root_hash"]), path
    )
    consent.auditor("GET", "/api/v1/ledger/proofs/consistency?first=8&second=4", 422)
    consent.auditor("GET", "/api/v1/ledger/proofs/consistency?first=4&second=99", 404)
    consent.auditor("GET", "/api/v1/ledger/proofs/consistency?first=0&second=4", 422)


def test_the_export_ends_on_a_fresh_signed_checkpoint_and_verifies_independently(consent):
    populate(consent)
    lines = export_of(consent)
    report = verify.verify_export(
        lines, keys_of(consent), strict=True
    )  # strict: the tail must be signed
    assert report.ok, report.message()
    assert (report.entries, report.checkpoints) == (9, 3)
    last = json.loads(lines[-1])
    assert last["type"] == "checkpoint" and last["tree_size"] == 9
    # Nothing new: the next export reuses that checkpoint instead of signing another.
    assert export_of(consent) == lines
    # One changed byte in any entry and the export no longer verifies.
    tampered = list(lines)
    tampered[3] = tampered[3].replace(b'"participate"', b'"participata"', 1)
    assert not verify.verify_export(tampered, keys_of(consent)).ok


def test_the_export_never_includes_entries_or_checkpoints_beyond_what_it_signed(
    consent, monkeypatch
):
    """An append landing while the export is read waits for the next export."""
    from services.consent import ledger_store

    cid, _granted = populate(consent)
    real_checkpoints = ledger_store.checkpoints

    def checkpoints_after_a_race(up_to=None):
        consent.grant(cid, "p_late")
        consent.settle()  # entry 10 is appended after the export signed its checkpoint over 9 entries ...
        assert (
            consent.auditor("POST", "/api/v1/ledger/checkpoints", 201)["tree_size"] == 10
        )  # ... and signed
        return real_checkpoints(up_to)

    monkeypatch.setattr(ledger_store, "checkpoints", checkpoints_after_a_race)
    lines = export_of(consent)
    monkeypatch.undo()
    report = verify.verify_export(lines, keys_of(consent), strict=True)
    assert report.ok and report.entries == 9, report.message()
    assert len(consent.ledger()) == 10


def test_an_empty_ledger_exports_nothing(consent):
    assert export_of(consent) == []
    consent.auditor("POST", "/api/v1/ledger/checkpoints", 422)


def test_proofs_follow_the_ledger_as_it_grows(consent):
    """The in-memory tree is extended, not rebuilt, and agrees with a tree built from scratch."""
    from services.consent import ledger

    cid, _ = populate(consent)
    consent.auditor("GET", "/api/v1/ledger/proofs/inclusion/3")
    for i in range(7):
        consent.grant(cid, f"p_more_{i}")
    consent.settle()
    entries = consent.ledger()
    scratch = ledger.MerkleTree.from_entries(entries)
    latest = consent.auditor("GET", "/api/v1/ledger/checkpoints")[-1]
    assert latest["tree_size"] == 16 and latest["root_hash"] == scratch.root(16).hex()
    proof = consent.auditor("GET", "/api/v1/ledger/proofs/inclusion/14")
    assert proof["audit_path"] == [h.hex() for h in scratch.inclusion_proof(14, 16)]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/ledger/entries",
        "/api/v1/ledger/checkpoints",
        "/api/v1/ledger/proofs/inclusion/0",
        "/api/v1/ledger/proofs/consistency?first=1&second=1",
        "/api/v1/ledger/export",
        "/api/v1/ledger/erasure-report",
    ],
)
def test_only_auditors_read_the_ledger(consent, path):
    consent.call("GET", path, 401)
    consent.call("GET", path, 403, headers=consent.staff("organiser", "org_a"))
    consent.call("GET", path, 403, headers=consent.staff("policy", "org_a"))


# ---------------------------------------------------------------- erasures confirmed after withdrawals


def test_the_erasure_report_pairs_full_withdrawals_with_the_erasures_that_followed(consent):
    cid, granted = populate(consent)  # p_001 withdrew everything, p_000 only one purpose
    report = consent.auditor("GET", "/api/v1/ledger/erasure-report")
    assert (report["confirmed"], report["unconfirmed"]) == (0, 1)
    [pending] = report["withdrawals"]
    assert (pending["pseudonym"], pending["grant_id"], pending["confirmed"]) == (
        "p_001",
        granted[1]["grant_id"],
        False,
    )
    consent.erased(cid, "p_001", "r_1")
    consent.erased(cid, "p_001", "r_2")
    consent.erased(cid, "p_002", "r_3", reason="retention")  # no withdrawal: not part of the report
    report = consent.auditor("GET", "/api/v1/ledger/erasure-report")
    assert (report["confirmed"], report["unconfirmed"], report["tree_size"]) == (1, 0, 12)
    [done] = report["withdrawals"]
    assert [(e["response_id"], e["after_withdrawal"]) for e in done["erasures"]] == [
        ("r_1", True),
        ("r_2", True),
    ]
    # The erasure also reaches the participant's receipt.
    receipt = consent.lookup(granted[1]["receipt_code"])
    assert [e["responseId"] for e in receipt["events"] if e["eventType"] == "answers_erased"] == [
        "r_1",
        "r_2",
    ]
    # As of an earlier tree size (a checkpoint the auditor holds) the withdrawal was still open.
    earlier = consent.auditor("GET", "/api/v1/ledger/erasure-report?tree_size=9")
    assert (earlier["confirmed"], earlier["unconfirmed"]) == (0, 1)
    consent.auditor("GET", "/api/v1/ledger/erasure-report?tree_size=99", 404)


def test_the_erasure_report_filters_by_status_and_consultation(consent):
    _cid, _granted = populate(consent)
    other = consent.open_consultation()
    code = consent.grant(other, "p_other")["receipt_code"]
    consent.withdraw(code)
    consent.settle()
    consent.erased(other, "p_other", "r_9")
    unconfirmed = consent.auditor("GET", "/api/v1/ledger/erasure-report?status=unconfirmed")
    assert [w["pseudonym"] for w in unconfirmed["withdrawals"]] == ["p_001"]
    assert (unconfirmed["confirmed"], unconfirmed["unconfirmed"]) == (1, 1)
    confirmed = consent.auditor("GET", "/api/v1/ledger/erasure-report?status=confirmed")
    assert [w["pseudonym"] for w in confirmed["withdrawals"]] == ["p_other"]
    mine = consent.auditor("GET", f"/api/v1/ledger/erasure-report?consultation_id={other}")
    assert (mine["confirmed"], mine["unconfirmed"]) == (1, 0)
    consent.auditor("GET", "/api/v1/ledger/erasure-report?status=maybe", 422)


def test_entries_filtered_by_kind_are_paged_by_what_matches(consent):
    populate(consent)
    everything = consent.ledger()
    granted = [e for e in everything if e["kind"] == "consent.granted"]
    first = consent.auditor("GET", "/api/v1/ledger/entries?kind=consent.granted&limit=3")
    assert first["entries"] == granted[:3] and first["next_start"] == granted[3]["seq"]
    rest = consent.auditor(
        "GET", f"/api/v1/ledger/entries?kind=consent.granted&limit=3&start={first['next_start']}"
    )
    assert rest["entries"] == granted[3:] and rest["next_start"] is None
    consent.auditor("GET", "/api/v1/ledger/entries?kind=nothing", 422)
