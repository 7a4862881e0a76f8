"""The Kafka adapter against Apache Kafka over TCP."""

import json
import time

from kafka import KafkaConsumer
from pymongo.errors import AutoReconnect

from shared.bus import KafkaBus
from shared.consumer import KafkaConsumerLoop
from shared.errors import ValidationFailed
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


def test_a_handler_failing_on_an_outage_is_retried_not_skipped(bootstrap, new_topic):
    kafka = KafkaSettings(bootstrap_servers=bootstrap, handler_attempts=2)
    topic = new_topic()
    bus = KafkaBus(kafka, "test")
    for i in range(3):
        bus.publish(topic, erased(i))
    seen, failures = [], {"left": 3}

    def flaky(event):
        if event.payload["response_id"] == "r1" and failures["left"] > 0:
            failures["left"] -= 1
            raise AutoReconnect("store briefly unavailable")  # more tries than handler_attempts
        seen.append(event.payload["response_id"])

    loop = KafkaConsumerLoop(kafka, f"g-{topic}", [topic], flaky, MemoryOffsets(), bus)
    loop.start()
    try:
        assert wait_until(lambda: len(seen) == 3), seen
        # Stalled while the outage lasted (3 tries in a row), running again once through.
        assert loop.status["state"] == "running"
    finally:
        loop.stop()
    assert seen == ["r0", "r1", "r2"]  # order kept, nothing skipped
    assert loop.status["failures"] == 3 and loop.status["dead_lettered"] == 0
    bus.close()


def test_a_handler_poison_event_is_dead_lettered_and_the_consumer_goes_on(bootstrap, new_topic):
    kafka = KafkaSettings(bootstrap_servers=bootstrap, handler_attempts=2)
    topic = new_topic()
    bus = KafkaBus(kafka, "test")
    for i in range(4):
        bus.publish(topic, erased(i))
    seen, letters = [], []

    def refuse_r1_crash_on_r2(event):
        if event.payload["response_id"] == "r1":
            raise ValidationFailed("not for this consultation")
        if event.payload["response_id"] == "r2":
            raise TypeError("a handler bug")
        seen.append(event.payload["response_id"])

    class Letters:
        def record(self, letter):
            letters.append(letter)

    loop = KafkaConsumerLoop(
        kafka, f"g-{topic}", [topic], refuse_r1_crash_on_r2, MemoryOffsets(), bus, Letters()
    )
    loop.start()
    try:
        assert wait_until(lambda: len(seen) == 2), seen
    finally:
        loop.stop()
    assert seen == ["r0", "r3"] and loop.status["dead_lettered"] == 2
    assert [(x.kind, x.offset) for x in letters] == [("rejected", 1), ("handler_error", 2)]
    dead = read_all(bootstrap, f"{topic}.dlq", 2)
    assert [dict(r.headers)["kind"] for r in dead] == [b"rejected", b"handler_error"]
    assert json.loads(dead[0].value)["payload"]["response_id"] == "r1"  # the original event
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
