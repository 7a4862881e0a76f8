"""Time the independent ledger verifier on a generated 100k-entry export.

    .venv/bin/python benchmarks/verify_ledger_bench.py [--entries 100000] [--every 1000]

Builds a realistic ledger (grants, withdrawals, erasures, text publications,
release sign-offs) with ``services.consent.ledger``, signs a checkpoint every
``--every`` entries and one at the end, writes the export to a temporary
file, then runs ``python -m services.consent.verify`` on it as a separate
process (what an auditor runs, interpreter start-up included) and, for
comparison, ``verify.main`` in-process. Prints the timings; figures belong
in benchmarks/README.md, never in unit-test asserts.

Measured on the 2-vCPU development container (Python 3.11, 100,000 entries,
54.8 MB, 100 checkpoints): the CLI verifier took 3.7-4.1 s, in-process
3.5-4.8 s (the machine was shared, so timings were noisy); building the
export took about 12 s. A later run at load 1.7-1.8: CLI 1.67 s, in-process
1.60 s, export built in 4.3 s.

``--api N`` also loads the first N entries into an in-process consent
service (mongomock) and times the auditor API's inclusion proof three ways:
the first request (the service reads every entry once and builds its Merkle
tree), later requests (the tree is kept and only extended), and, for
comparison, the earlier approach of re-reading and re-hashing the whole
ledger for each request. mongomock has no indexes (every query scans the
collection), so the API figures are embedded-mode figures; the pure tree
figures (hashing every leaf again vs. a proof from the kept tree) are
printed for the whole export as well.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from services.consent import ledger, tokens, verify

PURPOSES = ["participate", "aggregate_reporting", "quote_anonymised", "follow_up_contact"]


def synthetic_data(i: int, at: str) -> tuple[str, dict]:
    pseudonym = f"p-{i // 3:08x}"
    grant_id = f"g-{i // 3:08x}"
    consultation = f"c-{i % 17:04d}"
    choice = i % 50
    if choice == 0:
        return "consent_text.published", {
            "consultation_id": consultation,
            "text_version": 1 + i % 3,
            "language": "en",
            "text_sha256": f"{i:064x}",
        }
    if choice == 1:
        return "release.signed_off", {
            "release_id": f"r-{i:08x}",
            "consultation_id": consultation,
            "snapshot": i,
            "signed_off_by": f"u-{i % 7:04d}",
            "digest": f"{i * 7:064x}",
        }
    if choice in (2, 3):
        return "response.erased", {
            "response_id": f"resp-{i:08x}",
            "consultation_id": consultation,
            "pseudonym": pseudonym,
            "reason": "withdrawal",
            "erased_at": at,
        }
    if choice % 5 == 4:
        return "consent.withdrawn", {
            "grant_id": grant_id,
            "pseudonym": pseudonym,
            "consultation_id": consultation,
            "purposes": ["quote_anonymised"],
            "remaining": ["participate", "aggregate_reporting"],
            "all": False,
            "withdrawn_at": at,
        }
    return "consent.granted", {
        "grant_id": grant_id,
        "pseudonym": pseudonym,
        "consultation_id": consultation,
        "purposes": PURPOSES[: 1 + i % 4],
        "text_version": 1,
        "language": "en",
        "text_sha256": f"{i * 13:064x}",
        "collection_method": "self",
        "guardian": False,
        "granted_at": at,
    }


def build_export(n: int, every: int, key) -> tuple[list[str], float]:
    started = time.perf_counter()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    entries, checkpoints, prev = [], [], None
    for i in range(n):
        at = ledger.format_timestamp(base + timedelta(seconds=i))
        kind, data = synthetic_data(i, at)
        prev = ledger.make_entry(prev, kind, data, at)
        entries.append(prev)
    tree = ledger.MerkleTree.from_entries(entries)
    sizes = sorted(set(range(every, n + 1, every)) | {n})
    for size in sizes:
        checkpoints.append(
            ledger.sign_checkpoint(tree, key, base + timedelta(seconds=size), tree_size=size)
        )
    lines = list(ledger.export_lines(entries, checkpoints))
    return lines, time.perf_counter() - started


def tree_timings(lines: list[str]) -> list[str]:
    """What rebuilding the tree per request costs in hashing alone, against a proof from a kept tree."""
    import json

    entries = [json.loads(line) for line in lines if line.startswith('{"at"')]
    entries = [{k: e[k] for k in ledger.ENTRY_FIELDS} for e in entries]
    started = time.perf_counter()
    tree = ledger.MerkleTree.from_entries(entries)
    build_s = time.perf_counter() - started
    n = len(entries)
    started = time.perf_counter()
    for i in range(1000):
        tree.inclusion_proof((i * 7919) % n), tree.root(n)
    proof_s = (time.perf_counter() - started) / 1000
    started = time.perf_counter()
    tree.extend(bytes.fromhex(ledger.leaf_hash(e)) for e in entries[:100])
    extend_s = time.perf_counter() - started
    return [
        (
            f"Merkle tree over {n} entries: built (every leaf hashed) in {build_s:.2f} s; from the kept tree an "
            f"inclusion proof + root takes {proof_s * 1e6:.0f} us; appending 100 leaves {extend_s * 1000:.1f} ms"
        )
    ]


def auditor_api_timings(lines: list[str], limit: int, requests_warm: int = 20) -> list[str]:
    """Inclusion proofs through the consent API on the first `limit` entries (in-process, mongomock)."""
    import json
    import statistics

    from shared.embedded import generate_secrets

    from services.consent import ledger_store
    from services.consent.app import create_app
    from services.consent.models import LedgerEntry, ledger_key
    from shared.auth import Principal, encode_principal
    from shared.in_process_bus import InProcessBus
    from shared.settings import Settings

    secrets = generate_secrets()
    settings = Settings(
        service="consent",
        mode="embedded",
        mongodb_uri="mongomock://localhost/voices",
        run_background=False,
        extra={k[len("VOICES_") :]: v for k, v in secrets.items()},
        log_level="WARNING",
    )
    app = create_app(settings, bus=InProcessBus())
    context = app.extensions["voices_runtime"].context
    entries = [json.loads(line) for line in lines if line.startswith('{"at"')][:limit]
    LedgerEntry._get_collection().insert_many(
        [
            {
                "_id": ledger_key(e["seq"]),
                **{k: e[k] for k in ("seq", "kind", "at", "data", "prev_hash", "hash")},
            }
            for e in entries
        ]
    )
    n = len(entries)
    started = time.perf_counter()
    ledger_store.checkpoint(
        context.signing_key, ledger_store.LedgerTree()
    )  # a separate, throwaway tree
    sign_s = time.perf_counter() - started
    client = app.test_client()
    headers = encode_principal(
        Principal(kind="staff", role="platform_auditor", subject="bench"),
        secrets["VOICES_INTERNAL_TOKEN"].encode(),
    )

    def proof(seq: int) -> float:
        started = time.perf_counter()
        response = client.get(f"/api/v1/ledger/proofs/inclusion/{seq}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return time.perf_counter() - started

    cold = proof(n // 2)
    warm = [proof((i * 7919) % n) for i in range(requests_warm)]

    def rebuilt(seq: int) -> float:  # what each request did before the tree was kept
        started = time.perf_counter()
        leaves = [
            doc.as_entry() for doc in LedgerEntry.objects(seq__gte=0, seq__lt=n).order_by("seq")
        ]
        ledger.merkle_root(leaves), ledger.inclusion_proof(leaves, seq)
        return time.perf_counter() - started

    old = [rebuilt((i * 7919) % n) for i in range(3)]
    return [
        f"auditor API, {n} entries in mongomock: signing a checkpoint from scratch {sign_s:.2f} s",
        f"inclusion proof, first request (reads all entries, builds the tree): {cold * 1000:.0f} ms",
        (
            f"inclusion proof, later requests (tree kept): median {statistics.median(warm) * 1000:.1f} ms "
            f"over {requests_warm}"
        ),
        (
            f"inclusion proof, rebuilding from the store per request (before): median "
            f"{statistics.median(old) * 1000:.0f} ms over {len(old)}"
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument(
        "--every", type=int, default=1000, help="entries between signed checkpoints"
    )
    parser.add_argument(
        "--api",
        type=int,
        default=0,
        metavar="N",
        help="also time inclusion proofs through the consent API on the first N entries",
    )
    args = parser.parse_args()
    key = tokens.generate_signing_key()
    lines, build_seconds = build_export(args.entries, args.every, key)
    with tempfile.TemporaryDirectory() as tmp:
        export_path, key_path = (
            os.path.join(tmp, "ledger.jsonl"),
            os.path.join(tmp, "ledger.pub.pem"),
        )
        with open(export_path, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        with open(key_path, "wb") as handle:
            handle.write(tokens.public_key_to_pem(key))
        size_mb = os.path.getsize(export_path) / 1e6

        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "services.consent.verify", export_path, key_path],
            capture_output=True,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        cli_seconds = time.perf_counter() - started

        started = time.perf_counter()
        with open(export_path, "rb") as handle:
            report = verify.verify_export(
                handle, verify.load_public_keys(tokens.public_key_to_pem(key))
            )
        inproc_seconds = time.perf_counter() - started

    checkpoints = sum(1 for line in lines if line.startswith('{"key_id"'))
    print(
        f"export: {args.entries} entries, {checkpoints} checkpoints, {size_mb:.1f} MB, built in {build_seconds:.2f} s"
    )
    print(
        f"verifier CLI (python -m services.consent.verify, new process): {cli_seconds:.2f} s, "
        f"exit {proc.returncode}: {proc.stdout.strip()} {proc.stderr.strip()}"
    )
    print(
        f"verifier in-process (verify_export): {inproc_seconds:.2f} s, {report.message().splitlines()[0]}"
    )
    if proc.returncode != 0 or not report.ok:
        sys.exit(1)
    print("\n".join(tree_timings(lines)), flush=True)
    if args.api:
        print("\n".join(auditor_api_timings(lines, args.api)), flush=True)


if __name__ == "__main__":
    main()
