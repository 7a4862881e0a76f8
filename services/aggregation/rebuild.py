"""Rebuilding the projection by replaying the event topics from the beginning (service layer).

What is derived from events (contributions, tombstones, consultation metadata,
quotes, processed event ids, consumer positions) is dropped and rebuilt by the
same handlers the live consumer uses, so a rebuild ends in the same state as
live consumption. Releases and privacy budgets are not derived from events
and are kept. Stop the service's consumers before rebuilding: a live consumer
writing at the same time would make the result depend on timing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pymongo.database import Database

from services.aggregation.models import (
    ConsultationMeta,
    Contribution,
    ParticipantContributions,
    Quote,
    Tombstone,
)
from shared.delivery import DeadLetter, DeadLetterSink, Rejection, handle_record, replaying
from shared.runtime import MongoOffsetStore
from shared.settings import KafkaSettings

# (topic, partition, offset, value)
Record = tuple[str, int, int, bytes]


@dataclass
class RebuildReport:
    handled: int = 0
    invalid: int = 0  # broke their contract
    rejected: int = 0  # refused by their handler (dead letters of the live consumer)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)


def clear_projection(db: Database, group_id: str) -> None:
    """Drop everything derived from events, including processed ids and stored consumer positions."""
    for model in (Contribution, ParticipantContributions, Tombstone, ConsultationMeta, Quote):
        model.objects.delete()
    db["processed_events"].delete_many({})
    db["consumer_offsets"].delete_many({"_id": {"$regex": f"^{group_id}:"}})


def replay(
    records: Iterable[Record],
    dispatch: Callable,
    *,
    offsets: MongoOffsetStore | None = None,
    on_record: Callable[[], None] | None = None,
    dead_letters: DeadLetterSink | None = None,
    attempts: int = 3,
) -> RebuildReport:
    """Hand every record to `dispatch` in order, as replayed events (`shared.delivery.is_replay`).

    What can never be accepted (contract or handler rejection) is counted, recorded in
    `dead_letters` when given, and skipped, as live consumption dead-letters it: one bad event
    never stops a rebuild. A transient failure (store away) raises TransientFailure; run the
    rebuild again. Stores the last position per partition in `offsets` at the end, so the live
    consumer goes on from where the replay stopped.
    """
    report = RebuildReport()
    with replaying():
        for topic, partition, offset, value in records:
            outcome = handle_record(value, dispatch, attempts=attempts)
            if isinstance(outcome, Rejection):
                if outcome.kind == "contract":
                    report.invalid += 1
                else:
                    report.rejected += 1
                if dead_letters is not None:
                    dead_letters.record(
                        DeadLetter.of(topic, partition, offset, None, value, outcome)
                    )
            else:
                report.handled += 1
            report.positions[(topic, partition)] = offset
            if on_record is not None:
                on_record()
    if offsets is not None:
        for (topic, partition), offset in report.positions.items():
            offsets.save(topic, partition, offset)
    return report


class TopicsFromBeginning:
    """Every record of `topics`, from the first offset up to the end offsets seen at the start.

    A fresh consumer without a group (nothing committed, nothing rebalanced), partitions assigned
    by hand and seeked to the beginning; records appended after the start wait for the consumer.
    """

    def __init__(self, kafka: KafkaSettings, topics: list[str], poll_ms: int = 500) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers.split(","),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max(kafka.max_poll_records, 1000),
            request_timeout_ms=max(kafka.request_timeout_ms, 30000),
        )
        self.poll_ms = poll_ms
        parts = []
        for topic in topics:
            for p in sorted(self.consumer.partitions_for_topic(topic) or ()):
                parts.append(TopicPartition(topic, p))
        self.partitions = parts
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.start = {tp: self.consumer.position(tp) for tp in parts}
        self.end = self.consumer.end_offsets(parts)

    @property
    def total(self) -> int:
        return sum(max(0, self.end[tp] - self.start[tp]) for tp in self.partitions)

    def __iter__(self) -> Iterator[Record]:
        from kafka import TopicPartition

        pending: list = []
        done = {tp for tp in self.partitions if self.start[tp] >= self.end[tp]}
        while True:
            for r in pending:
                tp = TopicPartition(r.topic, r.partition)
                if r.offset < self.end[tp]:
                    yield r.topic, r.partition, r.offset, r.value or b""
                if r.offset >= self.end[tp] - 1:
                    done.add(tp)
            if len(done) == len(self.partitions):
                return
            pending = [
                r for recs in self.consumer.poll(timeout_ms=self.poll_ms).values() for r in recs
            ]

    def close(self) -> None:
        self.consumer.close(autocommit=False)
