"""The Kafka consumer: one consumer group member's loop, and where it keeps its positions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from shared.bus import Dispatch, KafkaBus
from shared.delivery import (
    DeadLetter,
    DeadLetterSink,
    Rejection,
    TransientFailure,
    handle_record,
    replaying,
)
from shared.settings import KafkaSettings, Topics

log = logging.getLogger("voices.bus")


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
