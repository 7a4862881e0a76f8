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
export took about 12 s.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from services.consent import ledger, tokens, verify  # noqa: E402

PURPOSES = ["participate", "aggregate_reporting", "quote_anonymised", "follow_up_contact"]


def synthetic_data(i: int, at: str) -> tuple[str, dict]:
    pseudonym = f"p-{i // 3:08x}"
    grant_id = f"g-{i // 3:08x}"
    consultation = f"c-{i % 17:04d}"
    choice = i % 50
    if choice == 0:
        return "consent_text.published", {"consultation_id": consultation, "text_version": 1 + i % 3,
                                          "language": "en", "text_sha256": f"{i:064x}"}
    if choice == 1:
        return "release.signed_off", {"release_id": f"r-{i:08x}", "consultation_id": consultation, "snapshot": i,
                                      "signed_off_by": f"u-{i % 7:04d}", "digest": f"{i * 7:064x}"}
    if choice in (2, 3):
        return "response.erased", {"response_id": f"resp-{i:08x}", "consultation_id": consultation,
                                   "pseudonym": pseudonym, "reason": "withdrawal", "erased_at": at}
    if choice % 5 == 4:
        return "consent.withdrawn", {"grant_id": grant_id, "pseudonym": pseudonym, "consultation_id": consultation,
                                     "purposes": ["quote_anonymised"],
                                     "remaining": ["participate", "aggregate_reporting"], "all": False,
                                     "withdrawn_at": at}
    return "consent.granted", {"grant_id": grant_id, "pseudonym": pseudonym, "consultation_id": consultation,
                               "purposes": PURPOSES[: 1 + i % 4], "text_version": 1, "language": "en",
                               "text_sha256": f"{i * 13:064x}", "collection_method": "self", "guardian": False,
                               "granted_at": at}


def build_export(n: int, every: int, key) -> tuple[list[str], float]:
    started = time.perf_counter()
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    entries, checkpoints, prev = [], [], None
    for i in range(n):
        at = ledger.format_timestamp(base + timedelta(seconds=i))
        kind, data = synthetic_data(i, at)
        prev = ledger.make_entry(prev, kind, data, at)
        entries.append(prev)
    tree = ledger.MerkleTree.from_entries(entries)
    sizes = sorted(set(range(every, n + 1, every)) | {n})
    for size in sizes:
        checkpoints.append(ledger.sign_checkpoint(tree, key, base + timedelta(seconds=size), tree_size=size))
    lines = list(ledger.export_lines(entries, checkpoints))
    return lines, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1000, help="entries between signed checkpoints")
    args = parser.parse_args()
    key = tokens.generate_signing_key()
    lines, build_seconds = build_export(args.entries, args.every, key)
    with tempfile.TemporaryDirectory() as tmp:
        export_path, key_path = os.path.join(tmp, "ledger.jsonl"), os.path.join(tmp, "ledger.pub.pem")
        with open(export_path, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        with open(key_path, "wb") as handle:
            handle.write(tokens.public_key_to_pem(key))
        size_mb = os.path.getsize(export_path) / 1e6

        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "services.consent.verify", export_path, key_path],
                              capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        cli_seconds = time.perf_counter() - started

        started = time.perf_counter()
        with open(export_path, "rb") as handle:
            report = verify.verify_export(handle, verify.load_public_keys(tokens.public_key_to_pem(key)))
        inproc_seconds = time.perf_counter() - started

    checkpoints = sum(1 for line in lines if line.startswith('{"key_id"'))
    print(f"export: {args.entries} entries, {checkpoints} checkpoints, {size_mb:.1f} MB, built in {build_seconds:.2f} s")
    print(f"verifier CLI (python -m services.consent.verify, new process): {cli_seconds:.2f} s, "
          f"exit {proc.returncode}: {proc.stdout.strip()} {proc.stderr.strip()}")
    print(f"verifier in-process (verify_export): {inproc_seconds:.2f} s, {report.message().splitlines()[0]}")
    if proc.returncode != 0 or not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
