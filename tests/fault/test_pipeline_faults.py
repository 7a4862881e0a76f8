"""Nothing lost, nothing counted twice, nothing released past a withdrawal: under faults.

The scenarios share one stack and run in order; the last one replays every topic from the
beginning, so it checks the earlier consultations once more.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid

import requests
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared.events import Envelope, isoformat, utcnow
from tests.e2e.conftest import Api, _grant, eventually
from tests.fault.conftest import (
    SCALE,
    FaultStack,
    Truth,
    counted_exactly,
    new_consultation,
    progress,
    released,
    take_part,
    take_part_all,
)

DONE: dict[str, Truth] = {}  # consultation id -> its truth, for the replay at the end


def readiness_where(fault: FaultStack, service: str, predicate, timeout: float = 60.0) -> dict:
    def probe():
        try:
            status, body = fault.readiness(service)
        except requests.RequestException:  # the service is restarting
            return None
        return body if predicate(status, body["checks"]) else None

    return eventually(probe, timeout=timeout)


def dlq(fault: FaultStack, service: str, *args: str) -> subprocess.CompletedProcess:
    """`flask --app services.<service>.app:create_app dlq ...` against the stack's database."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            f"services.{service}.app:create_app",
            "dlq",
            *args,
        ],
        env={**fault.stack.env, "VOICES_SERVICE": service, "RUN_BACKGROUND": "false"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_killing_aggregation_under_load_loses_and_doubles_nothing(fault):
    cid, code = new_consultation(fault)
    truth = Truth()
    half = SCALE // 2
    take_part_all(fault, code, range(half), truth)
    load = threading.Thread(target=take_part_all, args=(fault, code, range(half, SCALE), truth))
    load.start()
    fault.stack.kill("aggregation")  # SIGKILL to the whole process group, mid-load
    fault.stack.start_process("aggregation")
    load.join()
    fault.stack.wait_ready(timeout=120, names=("aggregation",))
    counted_exactly(fault, cid, truth)
    assert released(fault, cid) == truth.counts()
    DONE[cid] = truth


def test_a_paused_broker_is_reported_and_everything_arrives_after_it(fault):
    cid, code = new_consultation(fault)
    truth = Truth()
    take_part_all(fault, code, range(SCALE // 2), truth)
    counted_exactly(fault, cid, truth)
    os.kill(fault.kafka.process.pid, signal.SIGSTOP)
    try:
        # Connections still open (the kernel completes handshakes), but nothing answers.
        body = readiness_where(
            fault, "surveys", lambda s, c: s == 503 and c["kafka"].startswith("no answer")
        )
        assert body["status"] == "not_ready"
        # The gateway's health, which gathers the services' readiness, says so too: each service
        # answered "not ready" (none is reported unreachable), and no circuit opened over it.
        gateway = requests.get(f"{fault.stack.gateway_url}/healthz", timeout=30)
        assert gateway.status_code == 503
        services = gateway.json()["services"]
        assert services["surveys"]["checks"]["kafka"].startswith("no answer")
        assert {s["status"] for s in services.values()} <= {"ready", "not_ready"}
        assert {s["circuit"] for s in services.values()} == {"closed"}
        # Participants still answer, the first right after that health call: their events wait
        # in the outbox, which says how long.
        take_part(fault, code, SCALE // 2, truth)
        take_part_all(fault, code, range(SCALE // 2 + 1, SCALE), truth)
        body = readiness_where(
            fault, "surveys", lambda s, c: c["outbox"].startswith("oldest event waiting")
        )
        assert body["checks"]["outbox_oldest_age_s"] > 3
        # The lag cannot be read from a silent broker: unknown, never a stale 0.
        readiness_where(
            fault, "aggregation", lambda s, c: s == 503 and c["consumer_lag"]["state"] == "unknown"
        )
        assert progress(fault, cid) == SCALE // 2  # nothing arrived meanwhile
    finally:
        os.kill(fault.kafka.process.pid, signal.SIGCONT)
    for service in ("surveys", "consent", "aggregation"):
        readiness_where(fault, service, lambda s, c: s == 200, timeout=120)
    counted_exactly(fault, cid, truth, timeout=120)
    # The group's lag, from its committed offsets against the log ends, drains to nothing.
    readiness_where(
        fault,
        "aggregation",
        lambda s, c: c["consumer_lag"]["state"] == "measured" and c["consumer_lag"]["total"] == 0,
    )
    assert released(fault, cid) == truth.counts()
    DONE[cid] = truth


def _records_with_key(fault: FaultStack, topic: str, key: str) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=fault.kafka.bootstrap, enable_auto_commit=False, group_id=None
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        records = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(r for r in batch if r.key == key.encode())
        return records
    finally:
        consumer.close()


def test_duplicates_poison_and_handler_poison_change_no_count(fault):
    cid, code = new_consultation(fault)
    truth = Truth()
    take_part_all(fault, code, range(SCALE), truth)
    counted_exactly(fault, cid, truth)
    responses, surveys, releases = (fault.topic(t) for t in ("responses", "surveys", "releases"))
    producer = KafkaProducer(bootstrap_servers=fault.kafka.bootstrap, acks="all")
    # Every response event of the consultation once more: same ids, a redelivery.
    duplicates = _records_with_key(fault, responses, cid)
    assert len(duplicates) >= SCALE
    for record in duplicates:
        producer.send(responses, key=record.key, value=record.value)
    # Poison: not JSON, and a response whose id is empty (the contract refuses it).
    producer.send(responses, key=cid.encode(), value=b"\x00 not an event")
    empty_id = json.loads(duplicates[0].value)
    empty_id.update(id=str(uuid.uuid4()))
    empty_id["payload"]["response_id"] = ""
    producer.send(responses, key=cid.encode(), value=json.dumps(empty_id).encode())
    # Handler poison: valid contracts their handlers refuse. A survey naming a question twice
    # (aggregation), and a second, different sign-off of one snapshot (the consent ledger).
    other = f"c_poison{uuid.uuid4().hex[:8]}"
    question = {"id": "q", "type": "single_choice", "options": ["a"], "dimension": False}
    published = Envelope(
        type="consultation.published",
        key=other,
        producer="fault-test",
        payload={
            "consultation_id": other,
            "organisation_id": "org_fault",
            "survey_version": 1,
            "title": "Poison",
            "languages": ["en"],
            "min_cell_size": 5,
            "min_age": None,
            "purposes": ["participate"],
            "questions": [question, question],
            "published_at": isoformat(utcnow()),
        },
    )
    producer.send(surveys, key=other.encode(), value=json.dumps(published.to_dict()).encode())
    for digest in ("ab" * 32, "cd" * 32):
        sign_off = Envelope(
            type="release.published",
            key=other,
            producer="fault-test",
            payload={
                "release_id": f"rel_{digest[:2]}",
                "consultation_id": other,
                "snapshot": 1,
                "signed_off_by": "u_fault",
                "released_at": isoformat(utcnow()),
                "digest": digest,
            },
        )
        producer.send(releases, key=other.encode(), value=json.dumps(sign_off.to_dict()).encode())
    producer.flush()
    producer.close()
    # A participant after the poison is counted: nothing stalls.
    take_part(fault, code, SCALE, truth)
    counted_exactly(fault, cid, truth)

    body = readiness_where(
        fault, "aggregation", lambda s, c: s == 200 and c["dead_letters"]["open"] >= 3
    )
    assert body["checks"]["dead_letters"]["blocking_releases"] == 0
    listed = dlq(fault, "aggregation", "list", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    kinds = {(x["event_type"], x["kind"]) for x in letters}
    assert {(None, "contract"), ("response.submitted", "contract")} <= kinds
    assert ("consultation.published", "rejected") in kinds
    consent_letters = [
        json.loads(line) for line in dlq(fault, "consent", "list", "--json").stdout.splitlines()
    ]
    assert any(
        x["event_type"] == "release.published" and "already signed off" in x["reason"]
        for x in consent_letters
    )
    # Re-driving what is still wrong changes nothing and says so.
    again = dlq(fault, "aggregation", "redrive", "--all")
    assert again.returncode == 1 and "redriven 0" in again.stderr
    assert progress(fault, cid) == truth.counts()["total"]
    assert released(fault, cid) == truth.counts()
    DONE[cid] = truth


def test_withdrawals_racing_their_responses_never_reach_a_release(fault):
    cid, code = new_consultation(fault)
    truth = Truth()
    # As many yes as no leave, and every released cell keeps at least k=5 people.
    leaving = set(range(max(2, min(SCALE - 10, SCALE // 3) // 2 * 2)))
    api = Api(fault.stack.gateway_url)

    def withdraw_while_answering(i: int) -> None:
        answer = "yes" if i % 2 == 0 else "no"
        opened = api.call("POST", f"/api/v1/invitations/{code}/open")
        text = api.call(
            "GET", f"/api/v1/consent/consultations/{cid}/texts", params={"language": "en"}
        )
        grant = eventually(
            lambda: _grant(
                api, opened, cid, text["version"], ("participate", "aggregate_reporting")
            )
        )
        own = Api(fault.stack.gateway_url)
        answering = threading.Thread(
            target=lambda: own.call(
                "POST",
                "/api/v1/responses",
                json={"consent_token": grant["consent_token"], "answers": {"got_help": answer}},
                expect=(201, 400, 401, 403, 409, 410, 422),  # the withdrawal may win
            )
        )
        answering.start()
        Api(fault.stack.gateway_url).call(
            "POST", "/api/v1/consent/withdrawals", json={"receipt_code": grant["receipt_code"]}
        )
        answering.join()
        truth.answered(opened["pseudonym"], answer)
        truth.withdrawn.add(opened["pseudonym"])

    others = [i for i in range(SCALE) if i not in leaving]
    racing = threading.Thread(target=lambda: [withdraw_while_answering(i) for i in leaving])
    racing.start()
    take_part_all(fault, code, others, truth)
    racing.join()
    counted_exactly(fault, cid, truth)
    assert released(fault, cid) == truth.counts()
    assert truth.counts()["total"] == SCALE - len(leaving)
    DONE[cid] = truth


def test_a_replay_from_the_beginning_counts_the_same_and_is_not_reported_as_freshness(fault):
    assert DONE, "the earlier scenarios keep their truths here"
    fault.stack.kill("aggregation")
    client, db = fault.database("aggregation")
    try:  # what aggregation derives from events, and its positions: as after a lost database
        for name in (
            "contributions",
            "participant_contributions",
            "tombstones",
            "consultations",
            "quotes",
        ):
            db[name].delete_many({})
        db["processed_events"].delete_many({})
        db["consumer_offsets"].delete_many({})
    finally:
        client.close()
    fault.stack.start_process("aggregation")
    fault.stack.wait_ready(timeout=120, names=("aggregation",))
    for cid, truth in DONE.items():
        counted_exactly(fault, cid, truth, timeout=120)
    api = fault.api()
    cid = next(iter(DONE))
    fresh = api.call("GET", f"/api/v1/insights/consultations/{cid}/freshness", fault.organiser)
    assert fresh["responses"] == 0 and fresh["replayed"] == DONE[cid].counts()["total"]
    assert fresh["p50_seconds"] is None  # replay time is not freshness
    body = readiness_where(fault, "aggregation", lambda s, c: s == 200 and c["replay"] is None)
    assert body["checks"]["kafka_consumer"] == "running"
