"""Page load of the organiser's consultation home and progress page with 10,000 responses.

    .venv/bin/python benchmarks/staff_pages_bench.py [--responses 10000] [--requests 60]
        [--time-limit 120] [--screenshot docs/staff-progress-en.png]

Starts Apache Kafka and the document store (or uses KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI) and
the platform (``deploy.stack.Stack``: three services and the gateway under gunicorn), loads the
demo (organisation, accounts with passwords, the six-language consultation), sends a few dozen
responses through the real participant path (open the link, consent, answer) and waits until the
results service has counted them. Those stored documents are then copied, with new ids and
sending times spread over the last 60 days, to --responses in all: the responses (surveys) and
their counted contributions (aggregation), as the services themselves wrote them, so each page
reads as many documents as it would after 10,000 participants. Then one signed-in browser
(requests, the staff session cookie) loads each page --requests times, one after the other, and
the figures are each page's p50 and p95 (server work plus loopback).

The progress page reads the consultation's running tally (surveys) in one document; the copies
bypass intake, so the script counts them into the tally as intake would have. The consultation
home is the builder's page of one consultation (/staff/consultations/<cid>)
and the organisation's list of consultations (/staff/consultations); a page the installed
gateway does not serve is reported as such. Bounded in count and time; loopback only; figures
belong in benchmarks/README.md, never in test asserts.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

REAL_RESPONSES = 40
SPREAD = timedelta(days=60)
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def real_answers(i: int) -> dict:
    """Varied answers to the demo survey, skip logic and free text included."""
    answers: dict = {
        "region": ("north", "south", "capital")[i % 3],
        "age_band": ("18-24", "25-39", "40_plus")[i % 3],
    }
    if i % 4:
        answers["got_help"] = ("yes", "partly", "no")[i % 3]
    if i % 4 and i % 3 != 2:
        answers["help_rating"] = 1 + i % 5
    if i % 2:
        answers["what_would_help"] = f"Someone to talk to, answer {i}."
    return answers


def answer(loader, origin: str, cid: str, code: str, answers: dict) -> None:
    opened = loader.call("POST", f"/api/v1/invitations/{code}/open")
    grants: list[dict] = []
    loader.retrying(
        lambda: grants.append(
            loader.call(
                "POST",
                "/api/v1/consent/grants",
                opened["participant_session"],
                json={
                    "pseudonym": opened["pseudonym"],
                    "consultation_id": cid,
                    "purposes": ["participate", "aggregate_reporting", "quote_anonymised"],
                    "language": "en",
                    "text_version": 1,
                },
            )
        ),
        "-> 4",
    )
    loader.call(
        "POST",
        "/api/v1/responses",
        json={"consent_token": grants[-1]["consent_token"], "answers": answers},
    )


def wait_until(probe, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.5)


def copy_documents(mongodb_uri: str, namespace: str, cid: str, total: int) -> None:
    """Copy the real responses, their participants and counted contributions up to `total`."""
    import pymongo

    client = pymongo.MongoClient(mongodb_uri)
    surveys = client[f"{namespace}_voices_surveys"]
    aggregation = client[f"{namespace}_voices_aggregation"]
    responses = list(surveys.responses.find({"consultation_id": cid}))
    contributions = {d["_id"]: d for d in aggregation.contributions.find({"consultation_id": cid})}
    participants = {d["_id"]: d for d in surveys.participants.find({"consultation_id": cid})}
    now = datetime.now(UTC)
    new_responses, new_contributions, new_participants = [], [], []
    for i in range(total - len(responses)):
        source = responses[i % len(responses)]
        response_id = f"r_{uuid.uuid4().hex}"
        pseudonym = f"p_{uuid.uuid4().hex}"
        # Sending times spread over the period, more of them recently, as a consultation grows.
        sent = now - SPREAD * (1 - ((i + 1) / total) ** 0.5)
        response = copy.deepcopy(source)
        response.update(_id=response_id, pseudonym=pseudonym, submitted_at=sent, pending_events=[])
        new_responses.append(response)
        if source["_id"] in contributions:
            contribution = copy.deepcopy(contributions[source["_id"]])
            contribution.update(
                _id=response_id,
                pseudonym=pseudonym,
                submitted_at=sent.isoformat().replace("+00:00", "Z"),
                counted_at=sent + timedelta(seconds=1),
            )
            new_contributions.append(contribution)
        if source["pseudonym"] in participants:
            participant = copy.deepcopy(participants[source["pseudonym"]])
            participant.update(_id=pseudonym, created_at=sent)
            new_participants.append(participant)
    for collection, documents in (
        (surveys.responses, new_responses),
        (aggregation.contributions, new_contributions),
        (surveys.participants, new_participants),
    ):
        for start in range(0, len(documents), 1000):
            collection.insert_many(documents[start : start + 1000], ordered=False)
    # Copies bypass intake, which keeps the progress tally: count them in as intake would have.
    from services.surveys import progress, tallies

    consultation = surveys.consultations.find_one({"_id": cid})
    definitions = {v["number"]: v["definition"] for v in consultation["versions"]}
    counted = progress.tally_of(
        definitions,
        ((d["survey_version"], tallies.stored_response(d)) for d in responses + new_responses),
    )
    surveys.progress_tallies.replace_one(
        {"_id": cid},
        {
            "_id": cid,
            "opened": len(participants) + len(new_participants),
            "submitted": counted["submitted"],
            "erased": 0,
            "hours": counted["hours"],
            "sections": counted["sections"],
        },
        upsert=True,
    )
    print(
        f"copied {len(new_responses)} responses, {len(new_contributions)} contributions, "
        f"{len(new_participants)} participants",
        flush=True,
    )


def signed_in(origin: str, email: str, password: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{origin}/staff/sign-in", timeout=30)
    token = _CSRF.search(page.text).group(1)
    done = browser.post(
        f"{origin}/staff/sign-in",
        data={"email": email, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    if done.status_code != 303:
        raise SystemExit(f"sign-in refused: {done.status_code}")
    return browser


def measure(browser: requests.Session, url: str, count: int, time_limit: float) -> dict | None:
    started = time.perf_counter()
    first = browser.get(url, timeout=300)  # warm-up (the first chart)
    print(f"first load of {url}: {time.perf_counter() - started:.1f} s", flush=True)
    if first.status_code == 404:
        return None
    first.raise_for_status()
    timings = []
    deadline = time.monotonic() + time_limit
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        response = browser.get(url, timeout=120)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    timings.sort()
    return {
        "count": len(timings),
        "p50_ms": statistics.median(timings),
        "p95_ms": timings[max(0, math.ceil(0.95 * len(timings)) - 1)],  # nearest rank
        "bytes": len(first.content),
    }


def take_screenshot(origin: str, browser: requests.Session, url: str, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    cookies = [
        {"name": c.name, "value": c.value, "url": origin}
        for c in browser.cookies
        if c.name.startswith("voices_staff")
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        context = chromium.new_context(viewport={"width": 1100, "height": 900})
        context.add_cookies(cookies)
        page = context.new_page()
        page.goto(url)
        page.screenshot(path=str(path), full_page=True)
        chromium.close()
    print(f"screenshot of {url} in {path}", flush=True)


def main() -> None:
    from deploy.demo import DemoLoader
    from deploy.servers import local_servers
    from deploy.stack import Stack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=60, help="loads of each page")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per page")
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="voices-staff-pages-bench-"))
    admin = "vt_admin_" + secrets.token_urlsafe(16)
    namespace = "staff_pages_bench"
    servers = local_servers(
        log_dir, os.environ.get("MONGODB_URI"), os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    )
    bootstrap, mongodb_uri = servers.__enter__()
    stack = Stack(
        kafka_bootstrap=bootstrap,
        mongodb_uri=mongodb_uri,
        namespace=namespace,
        log_dir=log_dir,
        extra_env={
            "VOICES_ADMIN_TOKEN": admin,
            "VOICES_RATE_ANONYMOUS": "1000000/60",
            "VOICES_RATE_INVITATION": "1000000/60",
            "VOICES_RATE_PARTICIPANT": "1000000/60",
            "VOICES_RATE_STAFF": "1000000/60",
        },
    )
    try:
        print(f"starting Kafka, the document store and the platform (logs in {log_dir}) ...")
        stack.start(timeout=120)
        origin = stack.gateway_url
        loader = DemoLoader(origin, admin)
        demo = loader.load()
        cid, code = demo["consultation_id"], demo["invitation_code"]
        organiser = demo["organiser_token"]
        for i in range(REAL_RESPONSES):
            answer(loader, origin, cid, code, real_answers(i))

        def counted() -> bool:
            progress = loader.call(
                "GET", f"/api/v1/insights/consultations/{cid}/progress", organiser
            )
            return progress["responses_counted"] >= REAL_RESPONSES

        wait_until(counted, 120, "the results service to count the responses")
        copy_documents(mongodb_uri, namespace, cid, args.responses)
        account = demo["staff_accounts"]["organiser"]
        browser = signed_in(origin, account["email"], account["password"])
        pages = {
            "consultation home": f"/staff/consultations/{cid}",
            "organisation's consultations": "/staff/consultations",
            "progress": f"/staff/consultations/{cid}/progress",
        }
        figures = {
            name: measure(browser, origin + path, args.requests, args.time_limit)
            for name, path in pages.items()
        }
        if args.screenshot:
            take_screenshot(
                origin, browser, f"{origin}{pages['progress']}?lang=en", args.screenshot
            )
    finally:
        stack.stop()
        servers.__exit__(None, None, None)

    print(
        f"\n{args.responses} responses, {os.cpu_count()} CPUs, one browser on loopback, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    for name, result in figures.items():
        if result is None:
            print(f"{name:<30} not served by this gateway")
            continue
        print(
            f"{name:<30} {result['count']:>4} loads  p50 {result['p50_ms']:>7.1f} ms  "
            f"p95 {result['p95_ms']:>7.1f} ms  ({result['bytes'] / 1024:.0f} KiB)"
        )


if __name__ == "__main__":
    main()
