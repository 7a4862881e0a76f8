"""The Kafka adapter against Apache Kafka over TCP."""

import json
import time

from kafka import KafkaConsumer

from shared.bus import KafkaBus, KafkaConsumerLoop
from shared.events import Envelope
from shared.settings import KafkaSettings


class MemoryOffsets:
    def __init__(self):
        self.positions = {}

    def load(self, topic, partition):
        return self.positions.get((topic, partition))

    def save(self, topic, partition, offset):
        self.positions[(topic, partition)] = max(offset, self.positions.get((topic, partition), -1))


def erased(i: int) -> Envelope:
    return Envelope(
        type="response.erased",
        key="c",
        producer="test",
        payload={
            "response_id": f"r{i}",
            "consultation_id": "c",
            "pseudonym": "p",
            "reason": "withdrawal",
            "erased_at": "2026-01-01T00:00:00Z",
        },
    )


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def read_all(bootstrap: str, topic: str, expect: int) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=8000,
    )
    records = []
    for record in consumer:
        records.append(record)
        if len(records) >= expect:
            break
    consumer.close()
    return records


def test_invalid_events_go_to_the_dlq_and_the_consumer_keeps_going(bootstrap, new_topic):
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topic = new_topic()
    bus = KafkaBus(kafka, "test")
    bus.publish(topic, erased(1))
    bus.publish_raw(topic, b"garbage", key="c")
    bus.publish_raw(topic, json.dumps({**erased(2).to_dict(), "version": "one"}).encode(), key="c")
    bus.publish(topic, erased(3))

    seen = []
    loop = KafkaConsumerLoop(
        kafka,
        f"g-{topic}",
        [topic],
        lambda e: seen.append(e.payload["response_id"]),
        MemoryOffsets(),
        bus,
    )
    loop.start()
    try:
        assert wait_until(lambda: len(seen) == 2), seen
    finally:
        loop.stop()
    assert seen == ["r1", "r3"]
    dead = read_all(bootstrap, f"{topic}.dlq", 2)
    assert next(r.value for r in dead) == b"garbage"
    assert dict(dead[1].headers)["error"].startswith(b'{"version"')
    bus.close()


def test_a_failing_handler_is_retried_not_skipped(bootstrap, new_topic):
    kafka = KafkaSettings(bootstrap_servers=bootstrap, handler_attempts=2)
    topic = new_topic()
    bus = KafkaBus(kafka, "test")
    for i in range(3):
        bus.publish(topic, erased(i))
    seen, failures = [], {"left": 3}

    def flaky(event):
        if event.payload["response_id"] == "r1" and failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("store briefly unavailable")
        seen.append(event.payload["response_id"])

    loop = KafkaConsumerLoop(kafka, f"g-{topic}", [topic], flaky, MemoryOffsets(), bus)
    loop.start()
    try:
        assert wait_until(lambda: len(seen) == 3), seen
    finally:
        loop.stop()
    assert seen == ["r0", "r1", "r2"]  # order kept, nothing skipped
    assert loop.status["failures"] == 3
    bus.close()


def test_a_restarted_consumer_resumes_from_its_stored_positions(bootstrap, new_topic):
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topic = new_topic()
    bus = KafkaBus(kafka, "test")
    offsets = MemoryOffsets()
    for i in range(3):
        bus.publish(topic, erased(i))
    seen = []
    loop = KafkaConsumerLoop(
        kafka, f"g-{topic}", [topic], lambda e: seen.append(e.payload["response_id"]), offsets, bus
    )
    loop.start()
    assert wait_until(lambda: len(seen) == 3)
    loop.stop()
    for i in range(3, 5):
        bus.publish(topic, erased(i))
    loop = KafkaConsumerLoop(
        kafka, f"g-{topic}", [topic], lambda e: seen.append(e.payload["response_id"]), offsets, bus
    )
    loop.start()
    try:
        assert wait_until(lambda: len(seen) == 5), seen
        time.sleep(0.5)
    finally:
        loop.stop()
    assert seen == ["r0", "r1", "r2", "r3", "r4"]
    bus.close()
