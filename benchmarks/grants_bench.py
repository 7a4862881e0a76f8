"""Consent grants per second through the gateway, the ledger catching up, and the auditor's verifier.

    .venv/bin/python benchmarks/grants_bench.py [--grants 300] [--concurrency 8] [--time-limit 60]
                                                [--verify-entries 100000]

Starts Apache Kafka, the document store (or uses MONGODB_URI and
KAFKA_BOOTSTRAP_SERVERS) and the platform (``deploy.stack.Stack``: three
services and the gateway under gunicorn, two workers each, loopback only), creates an
organisation with an organiser and an auditor, opens a consultation with a
published consent text and a link invitation, and opens one invitation per
grant beforehand (each is a participant with a fresh pseudonym). Then:

1. POST /api/v1/consent/grants for every participant from a bounded thread
   pool: grants/s and latency (each grant stores the grant with its
   consent.granted event, signs a consent token and returns the receipt).
2. The ledger catching up: time from the last grant answered until the
   consent service's consumer has appended every grant (auditor API).
3. The auditor's path on that ledger: download the export through the
   gateway (a checkpoint over the tail is signed first), verify it, and
   time inclusion proofs (the service keeps its Merkle tree in memory).
4. The stand-alone verifier on a generated export of ``--verify-entries``
   entries (``verify_ledger_bench.build_export``), run as a new process,
   the way an auditor runs it.

Bounded in count (--grants) and time (--time-limit per phase). Client and
servers share the machine, so figures are for comparison, not capacity
planning; they belong in benchmarks/README.md, never in test asserts.

Measured on the 2-core development machine with other test suites running
beside it (benchmarks/README.md has the load averages and what limits each
figure). With the defaults (300 grants, 8 clients, load 1.9-2.2): 150.9
grants/s, p50 48 ms, p95 92 ms; the ledger held every grant 3.1 s after the
last one was answered; export of 321 entries via the gateway 34 ms,
verified in 6 ms; inclusion proofs 114/s, p50 69 ms; the verifier on a
100,000-entry export (54.8 MB) 1.6 s as a new process. With 3,000 grants
(load 1.7-3.5): 55.7 grants/s, p50 125 ms, p95 320 ms, ledger catch-up
184 s, proofs 21/s. Embedded mode: mongomock scans a whole collection for every
query, so each append and each proof costs more as the ledger grows.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

PURPOSES = ["participate", "aggregate_reporting", "quote_anonymised"]
SURVEY = {
    "languages": ["en"],
    "sections": [
        {
            "id": "s1",
            "title": {"en": "Support"},
            "questions": [
                {
                    "id": "got_help",
                    "type": "single_choice",
                    "label": {"en": "Did you get help when you needed it?"},
                    "options": [
                        {"code": "yes", "label": {"en": "Yes"}},
                        {"code": "no", "label": {"en": "No"}},
                    ],
                }
            ],
        }
    ],
}


class Client:
    """One keep-alive session per thread, as a browser would hold."""

    def __init__(self) -> None:
        self.local = threading.local()

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        return session.request(method, url, **({"timeout": 30} | kwargs))


def call(session, method: str, url: str, token: str | None = None, expect=(200, 201), **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = session.request(method, url, headers=headers, **({"timeout": 30} | kwargs))
    if response.status_code not in expect:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return (
        response.json()
        if response.content and response.headers.get("Content-Type", "").endswith("json")
        else response
    )


def wait_for(probe, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("the platform did not get there in time")


def staff_token(s, base: str, admin: str, role: str, organisation_id: str) -> str:
    account = call(
        s,
        "POST",
        f"{base}/api/v1/accounts",
        admin,
        json={
            "email": f"{role}-{secrets.token_hex(3)}@example.org",
            "role": role,
            "organisation_id": organisation_id,
        },
    )
    return call(
        s, "POST", f"{base}/api/v1/tokens", admin, json={"account_id": account["account_id"]}
    )["token"]


def prepare(base: str, admin: str, time_limit: float) -> tuple[str, str, str]:
    """(consultation id, link code, auditor token) for an open consultation with a published consent text."""
    s = requests.Session()
    org = call(s, "POST", f"{base}/api/v1/organisations", admin, json={"name": "Grants benchmark"})
    organiser = staff_token(s, base, admin, "organiser", org["organisation_id"])
    auditor = staff_token(s, base, admin, "auditor", org["organisation_id"])
    cid = call(
        s,
        "POST",
        f"{base}/api/v1/consultations",
        organiser,
        json={
            "title": "Grants benchmark",
            "languages": ["en"],
            "purposes": PURPOSES,
            "survey": SURVEY,
        },
    )["consultation_id"]
    text = {
        "version": 1,
        "language": "en",
        "title": "Your consent",
        "body": "We keep your answers safe. Skip anything; withdraw any time with your receipt code.",
        "purposes": {p: f"About {p}." for p in PURPOSES},
    }
    wait_for(
        lambda: (
            s.post(
                f"{base}/api/v1/consent/consultations/{cid}/texts",
                json=text,
                timeout=10,
                headers={"Authorization": f"Bearer {organiser}"},
            ).status_code
            == 201
        ),
        time_limit,
    )
    call(s, "POST", f"{base}/api/v1/consent/consultations/{cid}/texts/1/publish", organiser)
    # Publishing waits until the surveys service has seen the published consent text.
    wait_for(
        lambda: (
            s.post(
                f"{base}/api/v1/consultations/{cid}/publish",
                timeout=10,
                headers={"Authorization": f"Bearer {organiser}"},
            ).status_code
            == 200
        ),
        time_limit,
    )
    code = call(
        s,
        "POST",
        f"{base}/api/v1/consultations/{cid}/invitations",
        organiser,
        json={"kind": "link"},
    )["code"]
    return cid, code, auditor


def timed_pool(work, items: list, concurrency: int, time_limit: float) -> dict:
    """Run work(item) from `concurrency` threads, starting none after `time_limit`; latencies of successes."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    results: list = []
    done_at: list[float] = []  # when each success was answered, in order
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def one(item) -> None:
        if time.monotonic() > deadline:
            return
        started = time.perf_counter()
        try:
            result = work(item)
        except Exception as exc:  # noqa: BLE001 counted and reported, never hidden
            with lock:
                failures[str(exc)[:80]] = failures.get(str(exc)[:80], 0) + 1
            return
        with lock:
            latencies.append(time.perf_counter() - started)
            results.append(result)
            done_at.append(time.perf_counter())

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, items))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "ok": len(latencies),
        "failures": failures,
        "wall_s": wall,
        "results": results,
        "per_s": len(latencies) / wall if wall else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": 1000 * latencies[max(0, int(0.95 * len(latencies)) - 1)]
        if latencies
        else float("nan"),
        "max_ms": 1000 * latencies[-1] if latencies else float("nan"),
        "finished_at": time.monotonic(),
        "done_at": done_at,
    }


def rates_per_tenth(done_at: list[float], parts: int = 10) -> list[float]:
    """Successes per second within each tenth of them, by the times they were answered."""
    size = len(done_at) // parts
    rates = []
    for i in range(parts):
        chunk = done_at[i * size : (i + 1) * size]
        spent = chunk[-1] - chunk[0] if len(chunk) > 1 else 0.0
        rates.append((len(chunk) - 1) / spent if spent > 0 else float("nan"))
    return rates


def line(name: str, figures: dict, unit: str) -> str:
    failures = ", ".join(f"{why}: {n}" for why, n in sorted(figures["failures"].items())) or "none"
    return (
        f"{name:<32} {figures['ok']:>6} ok  {figures['per_s']:>7.1f} {unit}/s  p50 {figures['p50_ms']:>6.1f} ms  "
        f"p95 {figures['p95_ms']:>6.1f} ms  max {figures['max_ms']:>6.1f} ms  ({figures['wall_s']:.1f} s; "
        f"failures: {failures})"
    )


def append_rates(export_lines: list[bytes], first_seq: int, parts: int = 10) -> str:
    """The consumer's appends per second in each tenth of the measured grants, from the times the
    ledger stamped on its entries: a rate that falls as the ledger grows shows in one run."""
    stamps = []
    for raw in export_lines:
        line = json.loads(raw)
        if (
            line.get("type") == "entry"
            and line["kind"] == "consent.granted"
            and line["seq"] >= first_seq
        ):
            stamps.append(datetime.fromisoformat(line["at"]))
    rates = rates_per_tenth([t.timestamp() for t in stamps], parts)
    ratio = rates[-1] / rates[0] if rates and rates[0] else float("nan")
    return (
        f"{'ledger appends/s per tenth':<32} {' '.join(f'{r:.1f}' for r in rates)} "
        f"(last tenth {100 * ratio:.0f}% of the first)"
    )


def main() -> None:
    from deploy.servers import local_servers
    from deploy.stack import Stack
    from services.consent import verify

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--grants",
        type=int,
        default=int(os.environ.get("BENCH_GRANTS", "300")),
        help="grants measured (env BENCH_GRANTS; 3000 for the larger figure)",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=float(os.environ.get("BENCH_TIME_LIMIT", "60")),
        help="seconds per measured phase (env BENCH_TIME_LIMIT)",
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--verify-entries",
        type=int,
        default=100_000,
        help="size of the generated export for the verifier (0 skips it)",
    )
    args = parser.parse_args()
    total = args.grants + args.warmup
    figures: list[str] = []

    log_dir = Path(tempfile.mkdtemp(prefix="voices-grants-bench-"))
    admin = "vt_admin_" + secrets.token_urlsafe(16)
    # The gateway's anonymous rate limit guards the public routes; this run measures throughput, not it.
    servers = local_servers(
        log_dir, os.environ.get("MONGODB_URI"), os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    )
    bootstrap, mongodb_uri = servers.__enter__()
    stack = Stack(
        kafka_bootstrap=bootstrap,
        mongodb_uri=mongodb_uri,
        namespace="grants_bench",
        log_dir=log_dir,
        extra_env={
            "VOICES_ADMIN_TOKEN": admin,
            "VOICES_RATE_ANONYMOUS": "1000000/60",
            "VOICES_RATE_INVITATION": "1000000/60",
            "VOICES_RATE_STAFF": "1000000/60",
        },
    )
    try:
        print(
            f"starting Kafka, the document store and the platform (logs in {log_dir}) ...",
            flush=True,
        )
        stack.start(timeout=120)
        base = stack.gateway_url
        cid, code, auditor = prepare(base, admin, args.time_limit)
        client = Client()
        auth = {"Authorization": f"Bearer {auditor}"}

        def open_invitation(_i: int) -> tuple[str, str]:
            opened = client.request("POST", f"{base}/api/v1/invitations/{code}/open")
            if opened.status_code != 201:
                raise RuntimeError(f"open {opened.status_code}")
            return opened.json()["pseudonym"], opened.json()["participant_session"]

        opened = timed_pool(open_invitation, list(range(total)), args.concurrency, args.time_limit)
        figures.append(line("open invitation (setup)", opened, "opens"))
        admitted = opened["results"]

        def grant(admitted: tuple[str, str]) -> str:
            pseudonym, session = (
                admitted  # consent is granted only within the participant's session
            )
            response = client.request(
                "POST",
                f"{base}/api/v1/consent/grants",
                json={
                    "pseudonym": pseudonym,
                    "consultation_id": cid,
                    "purposes": PURPOSES,
                    "language": "en",
                    "text_version": 1,
                },
                headers={"Authorization": f"Bearer {session}"},
            )
            if response.status_code != 201:
                raise RuntimeError(f"grant {response.status_code}")
            return response.json()["grant_id"]

        def ledger_size() -> int:
            return call(requests, "GET", f"{base}/api/v1/ledger/entries?limit=1", auditor)["size"]

        size_before_warmup = ledger_size()

        def first_grant() -> bool:
            # Refused (409) until the consent service has seen the consultation open.
            pseudonym, session = admitted[0]
            return (
                client.request(
                    "POST",
                    f"{base}/api/v1/consent/grants",
                    json={
                        "pseudonym": pseudonym,
                        "consultation_id": cid,
                        "purposes": PURPOSES,
                        "language": "en",
                        "text_version": 1,
                    },
                    headers={"Authorization": f"Bearer {session}"},
                ).status_code
                == 201
            )

        wait_for(first_grant, args.time_limit)
        warm = timed_pool(grant, admitted[1 : args.warmup], args.concurrency, args.time_limit)
        warm["ok"] += 1
        # The warm-up grants must be in the ledger before the baseline is taken, or the catch-up
        # below would count them in place of measured grants still on their way.
        # Once a second: reading the ledger's size costs the store a read of the ledger, which
        # would slow the catch-up being measured.
        wait_for(
            lambda: ledger_size() >= size_before_warmup + warm["ok"], args.time_limit, interval=1.0
        )
        ledger_before = ledger_size()
        granted = timed_pool(grant, admitted[args.warmup :], args.concurrency, args.time_limit)
        figures.append(line("grant via gateway -> consent", granted, "grants"))
        tenths = rates_per_tenth(granted["done_at"])
        figures.append(
            f"{'grants/s per tenth':<32} {' '.join(f'{r:.1f}' for r in tenths)} "
            f"(last tenth {100 * tenths[-1] / tenths[0]:.0f}% of the first)"
        )

        # The consumer appends each consent.granted event once the relay has published it.
        expected = ledger_before + granted["ok"]

        try:
            wait_for(lambda: ledger_size() >= expected, args.time_limit, interval=1.0)
        except TimeoutError:
            # Reported rather than raised: how far the ledger got is the figure.
            waited = time.monotonic() - granted["finished_at"]
            figures.append(
                f"{'ledger NOT caught up':<32} {ledger_size() - ledger_before} of {granted['ok']} grants "
                f"appended {waited:.1f} s after the last grant answered (--time-limit {args.time_limit:g})"
            )
        else:
            caught_up = time.monotonic() - granted["finished_at"]
            figures.append(
                f"{'ledger caught up':<32} {expected} entries, {caught_up:.2f} s after the last grant "
                "answered"
            )
        expected = ledger_size()

        started = time.perf_counter()
        export = requests.get(f"{base}/api/v1/ledger/export", headers=auth, timeout=60)
        export_s = time.perf_counter() - started
        key = call(requests, "GET", f"{base}/api/v1/consent/public-key")["public_key_pem"]
        started = time.perf_counter()
        report = verify.verify_export(
            export.content.splitlines(keepends=True),
            verify.load_public_keys(key.encode()),
            strict=True,
        )
        verify_s = time.perf_counter() - started
        figures.append(
            f"{'export via gateway':<32} {len(export.content) / 1e3:.0f} kB in {export_s * 1000:.0f} ms; "
            f"verified (strict) in {verify_s * 1000:.0f} ms: {report.message().splitlines()[0]}"
        )
        if not report.ok:
            raise SystemExit(f"the platform's own export does not verify: {report.message()}")
        figures.append(append_rates(export.content.splitlines(), ledger_before))

        size = expected

        def inclusion(seq: int) -> None:
            call(client, "GET", f"{base}/api/v1/ledger/proofs/inclusion/{seq}", auditor)

        proofs = timed_pool(
            inclusion, [i * 7919 % size for i in range(200)], args.concurrency, args.time_limit
        )
        figures.append(line(f"inclusion proof (ledger of {size})", proofs, "proofs"))
    finally:
        stack.stop()
        servers.__exit__(None, None, None)

    if args.verify_entries:
        from benchmarks.verify_ledger_bench import build_export
        from services.consent import tokens

        signing = tokens.generate_signing_key()
        lines, build_s = build_export(args.verify_entries, 1000, signing)
        with tempfile.TemporaryDirectory() as tmp:
            export_path, key_path = Path(tmp) / "ledger.jsonl", Path(tmp) / "ledger.pub.pem"
            export_path.write_text("".join(lines), encoding="utf-8")
            key_path.write_bytes(tokens.public_key_to_pem(signing))
            started = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "services.consent.verify",
                    str(export_path),
                    str(key_path),
                    "--strict",
                ],
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
                timeout=600,
            )
            cli_s = time.perf_counter() - started
            megabytes = export_path.stat().st_size / 1e6
        figures.append(
            f"{'verifier, generated export':<32} {args.verify_entries} entries ({megabytes:.1f} MB, "
            f"built in {build_s:.1f} s): {cli_s:.2f} s as a new process, exit {proc.returncode}: "
            f"{proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else proc.stderr.strip()}"
        )
        if proc.returncode != 0:
            print("\n".join(figures))
            raise SystemExit("the verifier rejected the generated export")

    print(
        f"\n{args.grants} grants, {args.concurrency} concurrent clients, {os.cpu_count()} CPUs, client and "
        f"servers on one machine (loopback): Apache Kafka and {mongodb_uri.split('@')[-1]} "
        f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    print("\n".join(figures))


if __name__ == "__main__":
    main()
