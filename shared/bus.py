"""The event bus: one small interface, a Kafka adapter and an in-process one for unit tests.

Delivery is at least once. Every record ends in one of three ways (`handle_record`):
- handled;
- dead-lettered, when it can never be accepted: it breaks its contract, or its handler
  refuses it with a declared rejection (a `DomainError`), or the handler kept failing in a
  way that is not an outage (a bug: retried `handler_attempts` times first). The record goes to
  `<topic>.dlq` with the reason in a header and to the service's dead-letter store, and the
  consumer moves on to the next record;
- retried without end, with backoff, while the failure is transient (the store or the broker
  unavailable): the partition does not move on, so no valid event is ever skipped for an outage.
Dead letters are re-driven by the `dlq redrive` command once the cause is fixed.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from marshmallow import ValidationError

from shared.errors import DomainError
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
        self.headers: dict[str, list[list[tuple[str, bytes]]]] = defaultdict(list)
        self._subscribers: list[tuple[set[str], Dispatch, DeadLetterSink | None]] = []
        self._positions: dict[tuple[int, str], int] = defaultdict(int)
        self.fail_publish = False  # tests flip this to simulate a broker outage

    def publish(self, topic: str, event: Envelope) -> None:
        if self.fail_publish:
            raise PublishFailed("in-process bus is set to fail")
        self.topics[topic].append(encode(event))

    def publish_raw(
        self,
        topic: str,
        value: bytes,
        key: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.topics[topic].append(value)
        self.headers[topic].append(list(headers or ()))

    def subscribe(
        self,
        topics: Iterable[str],
        dispatch: Dispatch,
        dead_letters: DeadLetterSink | None = None,
    ) -> None:
        self._subscribers.append((set(topics), dispatch, dead_letters))

    def events(self, topic: str) -> list[Envelope]:
        return [decode(v) for v in self.topics[topic]]

    def deliver(self) -> int:
        """Deliver every not yet delivered record to each subscriber; returns how many were handled.

        What can never be accepted goes to the DLQ (and the subscriber's dead-letter store) as on
        Kafka; a transient failure is raised at once, with the record left to deliver again.
        """
        delivered = 0
        progress = True
        while progress:
            progress = False
            for index, (topics, dispatch, store) in enumerate(self._subscribers):
                for topic in sorted(topics):
                    records = self.topics[topic]
                    while self._positions[(index, topic)] < len(records):
                        offset = self._positions[(index, topic)]
                        value = records[offset]
                        outcome = handle_record(
                            value, dispatch, attempts=1, on_failure=_log_handler_failure
                        )
                        self._positions[(index, topic)] += 1
                        if isinstance(outcome, Rejection):
                            letter = DeadLetter.of(topic, 0, offset, None, value, outcome)
                            if store is not None:
                                store.record(letter)
                            self.publish_raw(Topics.dlq(topic), value, headers=letter.headers())
                            continue
                        delivered += 1
                        progress = True
        return delivered

    def close(self) -> None:
        pass


def _log_handler_failure(exc: BaseException, transient: bool) -> None:
    if not transient:  # called inside the except block: the traceback goes with it
        log.error("handler failed: %s", exc)


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


# ---- what becomes of a record ------------------------------------------------------------------

_replaying: contextvars.ContextVar[bool] = contextvars.ContextVar("replaying", default=False)


def is_replay() -> bool:
    """True while the event being handled is replayed (a rebuild, or a consumer starting from the
    beginning of a partition with no stored position) rather than arriving live."""
    return _replaying.get()


@contextmanager
def replaying(flag: bool = True) -> Iterator[None]:
    token = _replaying.set(flag)
    try:
        yield
    finally:
        _replaying.reset(token)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the store or the broker is unavailable right now.

    A duplicate key is not an outage: retrying the same write gives the same answer.
    """
    from kafka.errors import KafkaError
    from mongoengine.errors import NotUniqueError, OperationError
    from pymongo.errors import DuplicateKeyError, PyMongoError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (DuplicateKeyError, NotUniqueError)):
            return False
        if isinstance(current, (PyMongoError, OperationError, KafkaError, PublishFailed, OSError)):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True)
class Rejection:
    """Why a record can never be accepted as it is. `kind`: contract (does not validate),
    rejected (the handler's declared refusal) or handler_error (kept failing, not an outage)."""

    kind: str
    reason: str


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        text = json.dumps(exc.messages, ensure_ascii=False, default=str)
    elif isinstance(exc, DomainError):
        errors = exc.extra.get("errors")
        text = exc.detail + (
            " " + json.dumps(errors, ensure_ascii=False, default=str) if errors else ""
        )
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:1000]


class TransientFailure(Exception):
    """A handler failed because the store or the broker is unavailable; the record is kept."""


def handle_record(
    value: bytes,
    dispatch: Dispatch,
    *,
    attempts: int,
    wait: Callable[[float], bool] | None = None,
    on_failure: Callable[[BaseException, bool], None] | None = None,
) -> Envelope | Rejection:
    """Validate `value` and hand it to `dispatch`; returns the event once handled, or the
    Rejection when it must be dead-lettered.

    Declared rejections are final at once; other errors get `attempts` tries. Transient failures
    are retried for as long as `wait(delay)` returns False (it returns True to stop, and then
    TransientFailure is raised); without `wait` the first transient failure raises.
    `on_failure(exc, transient)` is told of every failed try.
    """
    try:
        event = decode(value)
    except ValidationError as exc:
        return Rejection("contract", _reason(exc))
    failures = 0
    while True:
        token = trace_id_var.set(event.trace_id)
        try:
            dispatch(event)
            return event
        except (DomainError, ValidationError) as exc:
            if on_failure is not None:
                on_failure(exc, False)
            return Rejection("rejected", _reason(exc))
        except Exception as exc:
            transient = is_transient(exc)
            failures += 1
            if on_failure is not None:
                on_failure(exc, transient)
            if not transient and failures >= attempts:
                return Rejection("handler_error", _reason(exc))
            if wait is None:
                if transient:
                    raise TransientFailure(_reason(exc)) from exc
            elif wait(min(0.2 * 2**failures, 5.0)):
                raise TransientFailure(_reason(exc)) from exc
        finally:
            trace_id_var.reset(token)


# Event types that take data out of aggregates: one that cannot be applied holds back releases.
WITHDRAWAL_TYPES = frozenset({"consent.withdrawn", "response.erased"})


@dataclass(frozen=True)
class DeadLetter:
    """One record that can never be accepted as it is, with where it came from and why."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    kind: str
    reason: str
    event_id: str | None = None
    event_type: str | None = None
    consultation_id: str | None = None

    @classmethod
    def of(
        cls,
        topic: str,
        partition: int,
        offset: int,
        key: str | None,
        value: bytes,
        rejection: Rejection,
    ) -> DeadLetter:
        """Reads what it can of the record (it may not even be JSON) to name the event."""
        event_id = event_type = consultation_id = None
        try:
            raw = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            raw = None
        if isinstance(raw, dict):
            event_id = _short_text(raw.get("id"))
            event_type = _short_text(raw.get("type"))
            payload = raw.get("payload")
            if isinstance(payload, dict):
                consultation_id = _short_text(payload.get("consultation_id"))
        return cls(
            topic,
            partition,
            offset,
            key,
            value,
            rejection.kind,
            rejection.reason,
            event_id,
            event_type,
            consultation_id,
        )

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("error", self.reason.encode()),
            ("kind", self.kind.encode()),
            ("source", self.source.encode()),
        ]


def _short_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= 200 else None


class DeadLetterSink(Protocol):
    """Where a consumer records the dead letters it sends (the service's own store)."""

    def record(self, letter: DeadLetter) -> None: ...


# ---- the Kafka consumer ------------------------------------------------------------------------


class OffsetStore(Protocol):
    """Where a consumer keeps its position next to the state it derives (see KafkaConsumerLoop)."""

    def load(self, topic: str, partition: int) -> int | None: ...

    def save(self, topic: str, partition: int, offset: int) -> None: ...


class KafkaConsumerLoop:
    """One consumer group member: poll, validate, dispatch, then record the position (per batch).

    Positions are kept in the service's own database (OffsetStore) and the
    consumer seeks to them on assignment; an empty store therefore replays
    from the beginning, which rebuilds derived state after a fresh start: those
    records are handled as replayed (`is_replay()`), up to the log end seen at assignment,
    and `status["replay"]` says how far the replay got. Kafka's committed offsets are
    written after the handler, and the service's lag is measured from them.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topics: list[str],
        dispatch: Dispatch,
        offsets: OffsetStore,
        dead_letters: KafkaBus,
        dead_letter_store: DeadLetterSink | None = None,
    ) -> None:
        """`dead_letters` is the process's Kafka bus: what can never be accepted goes to its DLQ;
        `dead_letter_store` keeps it for `dlq list` and `dlq redrive`."""
        self.kafka = kafka
        self.group_id = group_id
        self.topics = topics
        self.dispatch = dispatch
        self.offsets = offsets
        self.dead_letters = dead_letters
        self.dead_letter_store = dead_letter_store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Per partition "topic/partition": the offset a replay runs to, and the next to handle.
        self._replay_until: dict[str, int] = {}
        self._replay_next: dict[str, int] = {}
        self._fresh: list = []  # partitions assigned without a stored position, not yet measured
        self._outage_tries = 0  # transient failures in a row of the event being handled
        self.status: dict[str, Any] = {
            "state": "starting",
            "failures": 0,
            "processed": 0,
            "dead_lettered": 0,
            "last_error": None,
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

    def replay_progress(self) -> dict[str, int] | None:
        """{"handled", "total"} over the partitions this member is replaying; None when none is."""
        total = handled = 0
        for key, until in list(self._replay_until.items()):
            start = self._replay_next.get(f"{key}:start", 0)
            total += max(0, until - start)
            handled += max(0, min(self._replay_next.get(key, start), until) - start)
        if total == 0 or handled >= total:
            return None
        return {"handled": handled, "total": total}

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
                for tp in revoked:
                    loop._forget_replay(f"{tp.topic}/{tp.partition}")

            def on_partitions_assigned(self, assigned):
                if consumer is None:  # only the consumer created below calls this
                    return
                fresh = []
                for tp in assigned:
                    stored = loop.offsets.load(tp.topic, tp.partition)
                    if stored is None:
                        consumer.seek_to_beginning(tp)
                        fresh.append(tp)
                    else:
                        consumer.seek(tp, stored + 1)
                # No stored position: what the log holds now is a replay. Its end is read after
                # the poll (a rebalance callback runs on the client's IO thread and must not block).
                loop._fresh.extend(fresh)

        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._make_consumer()
                    consumer.subscribe(self.topics, listener=SeekToStoredPositions())
                    self.status["state"] = "running"
                batches = consumer.poll(timeout_ms=self.kafka.poll_timeout_ms)
                if self._fresh:
                    self._note_replay(consumer, self._fresh)
                    self._fresh = []
                for tp, records in batches.items():
                    handled = None
                    for record in records:
                        if self._stop.is_set():
                            break
                        self._handle(record)
                        handled = record.offset
                        key = f"{tp.topic}/{tp.partition}"
                        if key in self._replay_until:
                            self._replay_next[key] = record.offset + 1
                    # Once per batch, not per record: a write less per event while a backlog is
                    # worked off. A crash mid-batch replays its handled events, which the
                    # dispatcher drops by id.
                    if handled is not None:
                        from kafka.structs import OffsetAndMetadata

                        self._save_position(tp.topic, tp.partition, handled)
                        consumer.commit({tp: OffsetAndMetadata(handled + 1, "", -1)})
                if self.status["state"] != "running":
                    self.status["state"] = "running"
            except _Stopping:
                break
            except (
                Exception
            ) as exc:  # broker or store trouble: rebuild the client, resume from stored positions
                self.status["state"] = (
                    "broker_unavailable" if isinstance(exc, KafkaError) else "error"
                )
                self.status["last_error"] = str(exc)[:300]
                self._fresh = []  # the next client is assigned its partitions afresh
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

    def _note_replay(self, consumer: Any, partitions: list) -> None:
        """Remember where the log of each freshly assigned partition ends now: records before it
        are replayed. Raises KafkaError when the broker cannot say (the loop reconnects)."""
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        for tp in partitions:
            key = f"{tp.topic}/{tp.partition}"
            if ends.get(tp, 0) > starts.get(tp, 0):
                self._replay_until[key] = ends[tp]
                self._replay_next[key] = self._replay_next[f"{key}:start"] = starts.get(tp, 0)

    def _forget_replay(self, key: str) -> None:
        self._replay_until.pop(key, None)
        self._replay_next.pop(key, None)
        self._replay_next.pop(f"{key}:start", None)

    def _on_failure(self, event_type: str | None) -> Callable[[BaseException, bool], None]:
        def note(exc: BaseException, transient: bool) -> None:
            self.status["failures"] += 1
            self.status["last_error"] = f"{type(exc).__name__}: {exc}"[:300]
            if transient:
                # After a few tries in a row, not ready: no event moves on this partition until
                # the store or the broker is back (one blip does not flip readiness).
                self._outage_tries += 1
                if self._outage_tries >= self.kafka.handler_attempts:
                    self.status["state"] = "stalled"
                log.warning("handler failed on an outage, will retry: %s", exc)
            else:
                log.error("handler failed", extra={"event_type": event_type})

        return note

    def _handle(self, record: Any) -> None:
        self._outage_tries = 0
        key = f"{record.topic}/{record.partition}"
        replay = record.offset < self._replay_until.get(key, -1)
        try:
            with replaying(replay):
                outcome = handle_record(
                    record.value or b"",
                    self.dispatch,
                    attempts=self.kafka.handler_attempts,
                    wait=self._stop.wait,
                    on_failure=self._on_failure(None),
                )
        except TransientFailure:
            # Stopped mid-retry: the position is not saved, so the event is redelivered next time.
            raise _Stopping() from None
        if self.status["state"] == "stalled":  # the outage is over: this event got an answer
            self.status["state"] = "running"
        if isinstance(outcome, Rejection):
            self._dead_letter(record, outcome)
            return
        self.status["processed"] += 1

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

    def _dead_letter(self, record: Any, rejection: Rejection) -> None:
        letter = DeadLetter.of(
            record.topic,
            record.partition,
            record.offset,
            record.key.decode(errors="replace") if record.key else None,
            record.value or b"",
            rejection,
        )
        log.warning(
            "dead-lettered %s event",
            rejection.kind,
            extra={"topic": record.topic, "status": rejection.reason, "event_id": letter.event_id},
        )
        if self.dead_letter_store is not None:
            delay = 0.2
            while True:  # the store is where operators find it: never skip it for an outage
                try:
                    self.dead_letter_store.record(letter)
                    break
                except Exception:
                    log.warning("could not store the dead letter, will retry", exc_info=True)
                    if self._stop.wait(delay):
                        raise _Stopping() from None
                    delay = min(delay * 2, 5.0)
        self.dead_letters.publish_raw(
            Topics.dlq(record.topic),
            letter.value,
            key=letter.key,
            headers=[*letter.headers(), ("group", self.group_id.encode())],
        )
        self.status["dead_lettered"] += 1


class _Stopping(Exception):
    pass
