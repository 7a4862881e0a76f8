"""Fault suite: the platform under crashes, a paused broker, duplicates, poison and races.

Every scenario keeps its own ground truth (what each participant answered, who withdrew) and
compares the released aggregates with it exactly. The stack runs on a Kafka of its own (the
pause test stops that broker; the run's shared one must not be) and the run's document store.
VOICES_FAULT_SCALE sets the participants per scenario (default 12, at least 12 so every cell
stays at or above k=5 after withdrawals); `make fault` runs a larger size.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests

from deploy.servers import KafkaServer
from deploy.stack import Stack
from tests.e2e.conftest import Api, eventually, open_consultation, participate, staff_token

SCALE = max(12, int(os.environ.get("VOICES_FAULT_SCALE", "12")))
UNLIMITED = "1000000/60"


@dataclass
class FaultStack:
    stack: Stack
    kafka: KafkaServer
    mongodb_uri: str
    organiser: str
    policy: str

    def api(self) -> Api:
        return Api(self.stack.gateway_url)

    def readiness(self, service: str) -> tuple[int, dict]:
        response = requests.get(f"{self.stack.service_url(service)}/readyz", timeout=15)
        return response.status_code, response.json()

    def database(self, service: str):
        from pymongo import MongoClient

        client = MongoClient(self.mongodb_uri)
        return client, client[f"{self.stack.namespace}_voices_{service}"]

    def topic(self, name: str) -> str:
        return f"{self.stack.namespace}.{name}.events"


@pytest.fixture(scope="package")
def fault(servers, tmp_path_factory):
    root = tmp_path_factory.mktemp("fault")
    kafka = KafkaServer(root / "kafka", root / "logs").start()
    admin = "vt_admin_" + secrets.token_urlsafe(16)
    stack = Stack(
        kafka_bootstrap=kafka.bootstrap,
        mongodb_uri=servers.mongodb_uri,
        namespace=servers.namespace(),
        log_dir=root / "logs",
        extra_env={
            "VOICES_ADMIN_TOKEN": admin,
            **{
                f"VOICES_RATE_{kind}": UNLIMITED
                for kind in ("ANONYMOUS", "INVITATION", "PARTICIPANT", "STAFF", "CODE")
            },
            # Bounds small enough to see within a test: a silent broker (the default, which the
            # gateway's health must outwait), a stale outbox.
            "VOICES_BROKER_ACK_TIMEOUT_S": "2",
            "VOICES_OUTBOX_MAX_AGE_S": "3",
            "VOICES_LAG_INTERVAL_S": "1",
            # A killed consumer's partitions move to the others within seconds.
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        },
    )
    try:
        stack.start(timeout=120)
        api = Api(stack.gateway_url)
        organiser = staff_token(api, admin, "organiser")
        policy = staff_token(api, admin, "policy", organiser["organisation_id"])["token"]
        yield FaultStack(stack, kafka, servers.mongodb_uri, organiser["token"], policy)
    finally:
        stack.stop()
        kafka.stop()


@dataclass
class Truth:
    """What the test knows was answered and withdrawn, independently of the platform."""

    answers: dict[str, str] = field(default_factory=dict)  # pseudonym -> answer
    withdrawn: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, pseudonym: str, answer: str) -> None:
        with self.lock:
            self.answers[pseudonym] = answer

    def counts(self) -> dict[str, int]:
        kept = Counter(a for p, a in self.answers.items() if p not in self.withdrawn)
        return {"yes": kept["yes"], "no": kept["no"], "total": sum(kept.values())}


def answer_of(i: int) -> str:
    return "yes" if i % 2 == 0 else "no"


def new_consultation(fault: FaultStack) -> tuple[str, str]:
    return open_consultation(fault.api(), fault.organiser)


def take_part(fault: FaultStack, code: str, i: int, truth: Truth) -> dict:
    """One participant answers; recorded in the truth once the platform acknowledged it."""
    person = participate(Api(fault.stack.gateway_url), code, {"got_help": answer_of(i)})
    truth.answered(person["pseudonym"], answer_of(i))
    return person


def take_part_all(fault: FaultStack, code: str, indices, truth: Truth, workers: int = 4) -> list:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda i: take_part(fault, code, i, truth), indices))


def progress(fault: FaultStack, cid: str) -> int | None:
    try:
        r = requests.get(
            f"{fault.stack.gateway_url}/api/v1/insights/consultations/{cid}/progress",
            headers={"Authorization": f"Bearer {fault.organiser}"},
            timeout=10,
        )
    except requests.RequestException:
        return None
    return r.json()["responses_counted"] if r.status_code == 200 else None


def counted_exactly(fault: FaultStack, cid: str, truth: Truth, timeout: float = 90.0) -> None:
    expected = truth.counts()["total"]
    eventually(lambda: progress(fault, cid) == expected, timeout=timeout)


def released(fault: FaultStack, cid: str) -> dict[str, int]:
    """Release the consultation and read back what policy users see of the question."""
    api = fault.api()
    api.call("POST", "/api/v1/releases", fault.organiser, expect=201, json={"consultation_id": cid})
    result = api.call(
        "GET", f"/api/v1/insights/consultations/{cid}/questions/got_help", fault.policy
    )["result"]
    values = {c["category"]: c["value"] for c in result["categories"]}
    return {"yes": values.get("yes"), "no": values.get("no"), "total": result["total"]["value"]}
