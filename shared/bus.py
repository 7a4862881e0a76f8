"""The event bus: one small interface, a Kafka adapter and an in-process one for unit tests.

Delivery is at least once. Consumers validate each envelope; what fails
validation goes to `<topic>.dlq` with the reason in a header. A handler that
raises is retried with backoff and the partition does not move on: a lost
withdrawal is worse than a late one, so we never skip a valid event.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from marshmallow import ValidationError

from shared.events import Envelope
from shared.log import trace_id_var
from shared.settings import KafkaSettings, Topics

log = logging.getLogger("voices.bus")

Dispatch = Callable[[Envelope], None]


class PublishFailed(Exception):
    """The broker did not acknowledge the event; the caller keeps it and retries later."""


class Bus(Protocol):
    def publish(self, topic: str, event: Envelope) -> None: ...

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


class InProcessBus:
    """Keeps published events in memory; `deliver` hands them to subscribers. Unit tests only."""

    def __init__(self) -> None:
        self.topics: dict[str, list[bytes]] = defaultdict(list)
        self._subscribers: list[tuple[set[str], Dispatch]] = []
        self._positions: dict[tuple[int, str], int] = defaultdict(int)
        self.fail_publish = False  # tests flip this to simulate a broker outage

    def publish(self, topic: str, event: Envelope) -> None:
        if self.fail_publish:
            raise PublishFailed("in-process bus is set to fail")
        self.topics[topic].append(encode(event))

    def publish_raw(self, topic: str, value: bytes) -> None:
        self.topics[topic].append(value)

    def subscribe(self, topics: Iterable[str], dispatch: Dispatch) -> None:
        self._subscribers.append((set(topics), dispatch))

    def events(self, topic: str) -> list[Envelope]:
        return [decode(v) for v in self.topics[topic]]

    def deliver(self) -> int:
        """Deliver every not yet delivered record to each subscriber; invalid ones go to the DLQ."""
        delivered = 0
        progress = True
        while progress:
            progress = False
            for index, (topics, dispatch) in enumerate(self._subscribers):
                for topic in sorted(topics):
                    records = self.topics[topic]
                    while self._positions[(index, topic)] < len(records):
                        value = records[self._positions[(index, topic)]]
                        self._positions[(index, topic)] += 1
                        try:
                            event = decode(value)
                        except ValidationError as exc:
                            self.topics[Topics.dlq(topic)].append(value)
                            log.warning(
                                "dead-lettered invalid event",
                                extra={"topic": topic, "status": str(exc.messages)},
                            )
                            continue
                        dispatch(event)
                        delivered += 1
                        progress = True
        return delivered

    def close(self) -> None:
        pass


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


class OffsetStore(Protocol):
    """Where a consumer keeps its position next to the state it derives (see KafkaConsumerLoop)."""

    def load(self, topic: str, partition: int) -> int | None: ...

    def save(self, topic: str, partition: int, offset: int) -> None: ...


class KafkaConsumerLoop:
    """One consumer group member: poll, validate, dispatch, then record the position (per batch).

    Positions are kept in the service's own database (OffsetStore) and the
    consumer seeks to them on assignment; an empty store therefore replays
    from the beginning, which rebuilds derived state after a fresh start.
    Kafka's committed offsets are still written (after the handler) so lag
    can be watched with the usual tools.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topics: list[str],
        dispatch: Dispatch,
        offsets: OffsetStore,
        dead_letters: KafkaBus,
    ) -> None:
        """`dead_letters` is the process's Kafka bus: records that never validate go to its DLQ."""
        self.kafka = kafka
        self.group_id = group_id
        self.topics = topics
        self.dispatch = dispatch
        self.offsets = offsets
        self.dead_letters = dead_letters
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status: dict[str, Any] = {
            "state": "starting",
            "failures": 0,
            "processed": 0,
            "lag": {},
        }

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"consumer-{self.group_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    @property
    def healthy(self) -> bool:
        return self.status["state"] == "running"

    # -- loop ----------------------------------------------------------------
    def _make_consumer(self):
        from kafka import KafkaConsumer

        return KafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap_servers.split(","),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.kafka.session_timeout_ms,
            heartbeat_interval_ms=self.kafka.heartbeat_interval_ms,
            max_poll_records=self.kafka.max_poll_records,
            request_timeout_ms=max(
                self.kafka.request_timeout_ms, self.kafka.session_timeout_ms + 5000
            ),
        )

    def _run(self) -> None:
        from kafka import ConsumerRebalanceListener
        from kafka.errors import KafkaError

        loop = self

        class SeekToStoredPositions(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                pass

            def on_partitions_assigned(self, assigned):
                if consumer is None:  # only the consumer created below calls this
                    return
                for tp in assigned:
                    stored = loop.offsets.load(tp.topic, tp.partition)
                    if stored is None:
                        consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, stored + 1)

        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._make_consumer()
                    consumer.subscribe(self.topics, listener=SeekToStoredPositions())
                    self.status["state"] = "running"
                batches = consumer.poll(timeout_ms=self.kafka.poll_timeout_ms)
                for tp, records in batches.items():
                    handled = None
                    for record in records:
                        if self._stop.is_set():
                            break
                        self._handle(record)
                        handled = record.offset
                    # Once per batch, not per record: a write less per event while a backlog is
                    # worked off. A crash mid-batch replays its handled events, which the
                    # dispatcher drops by id.
                    if handled is not None:
                        from kafka.structs import OffsetAndMetadata

                        self._save_position(tp.topic, tp.partition, handled)
                        consumer.commit({tp: OffsetAndMetadata(handled + 1, "", -1)})
                self._measure_lag(consumer)
            except _Stopping:
                break
            except (
                Exception
            ) as exc:  # broker or store trouble: rebuild the client, resume from stored positions
                self.status["state"] = (
                    "broker_unavailable" if isinstance(exc, KafkaError) else "error"
                )
                log.warning(
                    "consumer loop failed, reconnecting: %s",
                    exc,
                    exc_info=not isinstance(exc, KafkaError),
                )
                if consumer is not None:
                    try:
                        consumer.close(autocommit=False)
                    except Exception as close_exc:  # noqa: BLE001 closing a broken client must not stop the loop
                        log.debug("closing the broken consumer failed: %s", close_exc)
                    consumer = None
                self._stop.wait(1.0)
        if consumer is not None:
            consumer.close(autocommit=False)
        self.status["state"] = "stopped"

    def _handle(self, record: Any) -> None:
        try:
            event = decode(record.value)
        except ValidationError as exc:
            self._dead_letter(record, exc.messages)
            return
        attempts = 0
        while not self._stop.is_set():
            token = trace_id_var.set(event.trace_id)
            try:
                self.dispatch(event)
                self.status["processed"] += 1
                if self.status["state"] == "stalled":
                    self.status["state"] = "running"
                return
            except Exception:
                attempts += 1
                self.status["failures"] += 1
                log.exception(
                    "handler failed, will retry",
                    extra={"event_id": event.id, "event_type": event.type},
                )
                if attempts >= self.kafka.handler_attempts:
                    self.status["state"] = "stalled"
                self._stop.wait(min(0.2 * 2**attempts, 5.0))
            finally:
                trace_id_var.reset(token)
        # Stopped mid-retry: the position is not saved, so the event is redelivered next time.
        raise _Stopping()

    def _save_position(self, topic: str, partition: int, offset: int) -> None:
        """Record the position, retrying while the store is away: the Kafka client is kept (a new
        one would rejoin the group and make every member wait for a rebalance)."""
        delay = 0.2
        while True:
            try:
                self.offsets.save(topic, partition, offset)
                return
            except Exception:
                log.warning("could not store the consumer position, will retry", exc_info=True)
                if self._stop.wait(delay):
                    raise _Stopping() from None  # not saved: the event is handled again next time
                delay = min(delay * 2, 5.0)

    def _measure_lag(self, consumer: Any) -> None:
        try:
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                position = self.offsets.load(tp.topic, tp.partition)
                if high is not None:
                    self.status["lag"][f"{tp.topic}/{tp.partition}"] = max(
                        0, high - (position + 1 if position is not None else 0)
                    )
        except Exception as exc:  # noqa: BLE001 the store is away: the lag waits; the loop and its client go on
            log.debug("consumer lag not measured: %s", exc)

    def _dead_letter(self, record: Any, messages: Any) -> None:
        reason = json.dumps(messages, ensure_ascii=False)[:1000]
        log.warning("dead-lettered invalid event", extra={"topic": record.topic, "status": reason})
        self.dead_letters.publish_raw(
            Topics.dlq(record.topic),
            record.value or b"",
            key=record.key.decode() if record.key else None,
            headers=[
                ("error", reason.encode()),
                ("source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ],
        )


class _Stopping(Exception):
    pass
