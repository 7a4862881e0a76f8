"""The event bus: one small interface, a Kafka producer adapter, and the wire format of events.

The in-process bus for unit tests is in `shared.in_process_bus`; what becomes of a consumed record
in `shared.delivery`; the Kafka consumer in `shared.consumer`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from marshmallow import ValidationError

from shared.events import Envelope
from shared.settings import KafkaSettings

Dispatch = Callable[[Envelope], None]


class PublishFailed(Exception):
    """The broker did not acknowledge the event; the caller keeps it and retries later.

    `acknowledged`: of several events sent together, how many from the first were acknowledged
    before the one that failed (the caller may forget those)."""

    def __init__(self, message: str, acknowledged: int = 0) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


class Bus(Protocol):
    def publish(self, topic: str, event: Envelope) -> None: ...

    def publish_many(self, messages: Sequence[tuple[str, Envelope]]) -> None:
        """Publish (topic, event) pairs in order; raises PublishFailed with `acknowledged`."""

    def close(self) -> None: ...


def encode(event: Envelope) -> bytes:
    return json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()


def decode(value: bytes) -> Envelope:
    """Parse and validate one record value; raises ValidationError for anything unusable."""
    try:
        raw = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError({"_schema": [f"not JSON: {exc}"]}) from exc
    return Envelope.parse(raw)


class KafkaBus:
    """kafka-python producer: acks=all with idempotence; created lazily so a down broker is not fatal."""

    def __init__(self, kafka: KafkaSettings, client_id: str) -> None:
        self.kafka = kafka
        self.client_id = client_id
        self._producer = None
        self._lock = threading.Lock()

    def _get_producer(self):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        with self._lock:
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.kafka.bootstrap_servers.split(","),
                        client_id=self.client_id,
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=self.kafka.linger_ms,
                        request_timeout_ms=self.kafka.request_timeout_ms,
                        max_block_ms=5000,
                        retries=5,
                    )
                except KafkaError as exc:
                    raise PublishFailed(f"cannot reach Kafka: {exc}") from exc
            return self._producer

    def publish(self, topic: str, event: Envelope) -> None:
        self.publish_raw(topic, encode(event), key=event.key)

    def publish_many(self, messages: Sequence[tuple[str, Envelope]]) -> None:
        """Send every event, then wait for the acknowledgements in order: one round trip to the
        broker for the lot instead of one per event. The producer is idempotent, so what it
        retries keeps its order within a partition."""
        from kafka.errors import KafkaError

        producer = self._get_producer()
        futures = []
        try:
            for topic, event in messages:
                key = event.key.encode() if event.key else None
                futures.append(producer.send(topic, value=encode(event), key=key))
        except KafkaError as exc:  # the rest was never sent; what was sent is awaited below
            failure: KafkaError | None = exc
        else:
            failure = None
        for acknowledged, future in enumerate(futures):
            try:
                future.get(timeout=self.kafka.request_timeout_ms / 1000)
            except KafkaError as exc:
                raise PublishFailed(f"Kafka did not acknowledge: {exc}", acknowledged) from exc
        if failure is not None:
            raise PublishFailed(f"Kafka did not take the event: {failure}", len(futures))

    def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        from kafka.errors import KafkaError

        producer = self._get_producer()
        try:
            future = producer.send(
                topic, value=value, key=key.encode() if key else None, headers=headers or []
            )
            future.get(timeout=self.kafka.request_timeout_ms / 1000)
        except KafkaError as exc:
            raise PublishFailed(f"Kafka did not acknowledge: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
