"""Response intake through the gateway, beside a bare Flask + mongoengine endpoint doing one insert.

    .venv/bin/python benchmarks/intake_bench.py [--responses 400] [--concurrency 8] [--time-limit 60]

Starts Apache Kafka and the document store (or uses KAFKA_BOOTSTRAP_SERVERS
and MONGODB_URI) and the platform (``deploy.stack.Stack``: three services
and the gateway under gunicorn, two workers each), creates a consultation with a
consent text and a link invitation, and prepares one consent token per
response through the real participant path (open the link, give consent).
Then it submits the responses concurrently from a bounded thread pool and
measures each POST /api/v1/responses. For comparison it serves a bare Flask
app whose one route stores the request body with a single mongoengine insert
into the same document store (same gunicorn configuration: two workers,
threads) and sends it the same bodies the same way.

Bounded in count (--responses) and time (--time-limit per phase); loopback
only. Client and servers share the machine, so the figures are relative:
compare them with each other, not with a production deployment. Figures
belong in benchmarks/README.md, never in test asserts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.process_profile import CpuMeter, Profiler, report_cpu  # noqa: E402

SURVEY = {
    "languages": ["en"],
    "sections": [
        {
            "id": "support",
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
                    "dimension": True,
                },
                {
                    "id": "needs",
                    "type": "multiple_choice",
                    "label": {"en": "What did you need?"},
                    "options": [
                        {"code": c, "label": {"en": c.title()}}
                        for c in ("food", "shelter", "health", "legal")
                    ],
                },
                {"id": "rating", "type": "rating", "label": {"en": "How good was the support?"}},
                {
                    "id": "age",
                    "type": "number",
                    "label": {"en": "How old are you?"},
                    "min": 16,
                    "max": 100,
                    "integer": True,
                },
                {
                    "id": "what_helped",
                    "type": "free_text",
                    "label": {"en": "What helped most?"},
                    "max_length": 500,
                },
            ],
        }
    ],
}
PURPOSES = ["participate", "aggregate_reporting", "quote_anonymised"]


def answers(i: int) -> dict:
    return {
        "got_help": "yes" if i % 3 else "no",
        "needs": ["food", "health"] if i % 2 else ["legal"],
        "rating": 1 + i % 5,
        "age": 18 + i % 60,
        "what_helped": "Someone listened to me and spoke my language. " * (1 + i % 3),
    }


# ---------------------------------------------------------------- the bare comparison app


def baseline_app():
    """A Flask app whose POST /responses stores the JSON body with one mongoengine insert (MONGODB_URI)."""
    import mongoengine as me
    from flask import Flask, jsonify, request

    me.connect(db="intake_bench_baseline", alias="baseline", host=os.environ["MONGODB_URI"])

    class Stored(me.Document):
        meta = {"db_alias": "baseline", "collection": "responses"}
        body = me.DictField()

    app = Flask("baseline")

    @app.post("/responses")
    def store():
        document = Stored(body=request.get_json()).save()
        return jsonify(response_id=str(document.id)), 201

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app


def start_baseline(port: int, log_dir: Path, mongodb_uri: str) -> subprocess.Popen:
    env = {**os.environ, "MONGODB_URI": mongodb_uri, "PYTHONUNBUFFERED": "1"}  # same gunicorn shape
    log = open(log_dir / "baseline.log", "ab")  # noqa: SIM115 the child writes to it all its life
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(REPO_ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "benchmarks.intake_bench:baseline_app()",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


# ---------------------------------------------------------------- load


class Client:
    """One keep-alive session per thread, as a browser would hold."""

    def __init__(self) -> None:
        self.local = threading.local()

    def post(self, url: str, **kwargs) -> requests.Response:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        return session.post(url, timeout=30, **kwargs)


def run_load(
    url: str, bodies: list[dict], concurrency: int, time_limit: float, expect: int = 201
) -> dict:
    """POST every body to `url` from `concurrency` threads, stopping new requests after `time_limit` seconds."""
    client = Client()
    latencies: list[float] = []
    failures: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def one(body: dict) -> None:
        if time.monotonic() > deadline:
            return
        started = time.perf_counter()
        response = client.post(url, json=body)
        elapsed = time.perf_counter() - started
        with lock:
            if response.status_code == expect:
                latencies.append(elapsed)
            else:
                failures[response.status_code] = failures.get(response.status_code, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, bodies))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "ok": len(latencies),
        "failures": failures,
        "wall_s": wall,
        "per_s": len(latencies) / wall if wall else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": 1000 * latencies[max(0, int(0.95 * len(latencies)) - 1)]
        if latencies
        else float("nan"),
    }


# ---------------------------------------------------------------- the platform side


def call(
    session: requests.Session,
    method: str,
    url: str,
    token: str | None = None,
    expect=(200, 201),
    **kwargs,
):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = session.request(method, url, headers=headers, timeout=30, **kwargs)
    if response.status_code not in expect:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


def wait_for(probe, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("the platform did not get there in time")


def prepare_consultation(base: str, admin: str) -> tuple[str, str, str]:
    """An open consultation with a published consent text; returns (consultation id, link code,
    the organiser's API token)."""
    s = requests.Session()
    org = call(s, "POST", f"{base}/api/v1/organisations", admin, json={"name": "Benchmark org"})
    account = call(
        s,
        "POST",
        f"{base}/api/v1/accounts",
        admin,
        json={
            "email": f"bench-{secrets.token_hex(3)}@example.org",
            "role": "organiser",
            "organisation_id": org["organisation_id"],
        },
    )
    token = call(
        s, "POST", f"{base}/api/v1/tokens", admin, json={"account_id": account["account_id"]}
    )["token"]
    cid = call(
        s,
        "POST",
        f"{base}/api/v1/consultations",
        token,
        json={
            "title": "Intake benchmark",
            "languages": ["en"],
            "purposes": PURPOSES,
            "survey": SURVEY,
        },
    )["consultation_id"]

    def text_saved():
        r = s.post(
            f"{base}/api/v1/consent/consultations/{cid}/texts",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            json={
                "version": 1,
                "language": "en",
                "title": "Your consent",
                "body": "We keep your answers safe. Skip anything; withdraw any time.",
                "purposes": {p: f"About {p}." for p in PURPOSES},
            },
        )
        return r.status_code == 201

    wait_for(text_saved)  # consent learns of the consultation from an event
    call(s, "POST", f"{base}/api/v1/consent/consultations/{cid}/texts/1/publish", token)
    # Publishing waits until the surveys service has seen the published consent text.
    wait_for(
        lambda: (
            s.post(
                f"{base}/api/v1/consultations/{cid}/publish",
                timeout=10,
                headers={"Authorization": f"Bearer {token}"},
            ).status_code
            == 200
        )
    )
    code = call(
        s, "POST", f"{base}/api/v1/consultations/{cid}/invitations", token, json={"kind": "link"}
    )["code"]
    return cid, code, token


def consent_tokens(base: str, cid: str, code: str, count: int, concurrency: int) -> list[str]:
    """One consent token per future response, each through open-the-link and give-consent."""
    client = Client()

    def one(_i: int) -> str:
        opened = client.post(f"{base}/api/v1/invitations/{code}/open")
        if opened.status_code != 201:
            raise RuntimeError(f"open: {opened.status_code} {opened.text[:200]}")
        for _attempt in range(100):
            grant = client.post(
                f"{base}/api/v1/consent/grants",
                json={
                    "pseudonym": opened.json()["pseudonym"],
                    "consultation_id": cid,
                    "purposes": PURPOSES,
                    "language": "en",
                    "text_version": 1,
                },
                headers={"Authorization": f"Bearer {opened.json()['participant_session']}"},
            )
            if grant.status_code == 201:
                return grant.json()["consent_token"]
            if grant.status_code != 409:  # 409 until consent has seen the consultation open
                raise RuntimeError(f"grant: {grant.status_code} {grant.text[:200]}")
            time.sleep(0.1)
        raise RuntimeError("consent never saw the consultation open")

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(count)))


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def freshness_after(base: str, cid: str, token: str, expected: int, timeout: float) -> dict:
    """The aggregation's freshness figures once it has counted `expected` responses (or after
    `timeout` seconds): each response's time from submission until it was counted, p50 and p95.
    Asked every 2 s: the answer reads every counted contribution, which slows the counting."""
    session = requests.Session()
    figures: dict = {}

    def counted_all() -> bool:
        nonlocal figures
        figures = call(
            session, "GET", f"{base}/api/v1/insights/consultations/{cid}/freshness", token
        )
        return (figures.get("responses") or 0) >= expected

    try:
        wait_for(counted_all, timeout=timeout, interval=2.0)
    except TimeoutError:
        pass  # report what was counted by then
    return figures


def report(name: str, figures: dict) -> None:
    failures = (
        ", ".join(f"{status}: {n}" for status, n in sorted(figures["failures"].items())) or "none"
    )
    print(
        f"{name:<34} {figures['ok']:>6} ok  {figures['per_s']:>8.1f} responses/s  "
        f"p50 {figures['p50_ms']:>7.1f} ms  p95 {figures['p95_ms']:>7.1f} ms  "
        f"({figures['wall_s']:.1f} s; failures: {failures})",
        flush=True,
    )


def main() -> None:
    from deploy.servers import free_port, local_servers, wait_for_port
    from deploy.stack import Stack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--responses",
        type=int,
        default=int(os.environ.get("BENCH_INTAKE_RESPONSES", "400")),
        help="responses measured (env BENCH_INTAKE_RESPONSES; 3000 for the larger figure)",
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
        "--profile",
        type=Path,
        default=Path(os.environ["BENCH_PROFILE_DIR"])
        if os.environ.get("BENCH_PROFILE_DIR")
        else None,
        help="directory for py-spy profiles of the gateway and surveys during the measured intake",
    )
    args = parser.parse_args()
    total = args.responses + args.warmup

    log_dir = Path(tempfile.mkdtemp(prefix="voices-intake-bench-"))
    admin = "vt_admin_" + secrets.token_urlsafe(16)
    # The gateway's anonymous rate limit guards the public routes; this run measures throughput, not it.
    servers = local_servers(
        log_dir, os.environ.get("MONGODB_URI"), os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    )
    bootstrap, mongodb_uri = servers.__enter__()
    stack = Stack(
        kafka_bootstrap=bootstrap,
        mongodb_uri=mongodb_uri,
        namespace="intake_bench",
        log_dir=log_dir,
        extra_env={
            "VOICES_ADMIN_TOKEN": admin,
            "VOICES_RATE_ANONYMOUS": "1000000/60",
            "VOICES_RATE_INVITATION": "1000000/60",
            "VOICES_RATE_PARTICIPANT": "1000000/60",
        },
    )
    baseline = None
    try:
        print(
            f"starting Kafka, the document store and the platform (logs in {log_dir}) ...",
            flush=True,
        )
        stack.start(timeout=120)
        base = stack.gateway_url
        cid, code, organiser = prepare_consultation(base, admin)
        started = time.perf_counter()
        tokens = consent_tokens(base, cid, code, total, args.concurrency)
        print(
            f"prepared {len(tokens)} participants with consent tokens in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        bodies = [{"consent_token": token, "answers": answers(i)} for i, token in enumerate(tokens)]
        run_load(
            f"{base}/api/v1/responses", bodies[: args.warmup], args.concurrency, args.time_limit
        )
        profiler = Profiler(args.profile)
        profiler.start({name: stack.processes[name].pid for name in ("gateway", "surveys")})
        print(f"load average before the measured intake: {_load()}", flush=True)
        intake_cpu = CpuMeter()
        intake_cpu.start()
        try:
            intake = run_load(
                f"{base}/api/v1/responses", bodies[args.warmup :], args.concurrency, args.time_limit
            )
        finally:
            intake_cpu.stop()
            profiler.stop()

        fresh = freshness_after(base, cid, organiser, intake["ok"] + args.warmup, args.time_limit)

        port = free_port()
        baseline = start_baseline(port, log_dir, mongodb_uri)
        wait_for_port(port, timeout=30)

        def baseline_up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).ok
            except requests.RequestException:
                return False  # still starting (a loaded machine starts slowly)

        wait_for(baseline_up, timeout=60)
        run_load(
            f"http://127.0.0.1:{port}/responses",
            bodies[: args.warmup],
            args.concurrency,
            args.time_limit,
        )
        print(f"load average before the measured bare inserts: {_load()}", flush=True)
        bare_cpu = CpuMeter()
        bare_cpu.start()
        bare = run_load(
            f"http://127.0.0.1:{port}/responses",
            bodies[args.warmup :],
            args.concurrency,
            args.time_limit,
        )
        bare_cpu.stop()
    finally:
        if baseline is not None and baseline.poll() is None:
            baseline.terminate()
            try:
                baseline.wait(10)
            except subprocess.TimeoutExpired:
                baseline.kill()
        stack.stop()
        servers.__exit__(None, None, None)

    print(
        f"\n{args.responses} responses, {args.concurrency} concurrent clients, {os.cpu_count()} CPUs, "
        f"client and servers on one machine (loopback), load average {_load()}"
    )
    report("intake via gateway -> surveys", intake)
    report("bare Flask + mongoengine insert", bare)
    report_cpu("intake", intake_cpu.spent, intake["ok"])
    report_cpu("bare insert", bare_cpu.spent, bare["ok"])
    print(
        f"freshness while intake ran (submitted -> counted by aggregation, {fresh.get('responses')} "
        f"responses): p50 {fresh.get('p50_seconds')} s, p95 {fresh.get('p95_seconds')} s"
    )
    if intake["per_s"]:
        print(
            f"ratio: the bare insert serves {bare['per_s'] / intake['per_s']:.1f}x the responses/s; "
            f"intake p50 is {intake['p50_ms'] / bare['p50_ms']:.1f}x, p95 {intake['p95_ms'] / bare['p95_ms']:.1f}x "
            "the bare insert's"
        )


if __name__ == "__main__":
    main()
