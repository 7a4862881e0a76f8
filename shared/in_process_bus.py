"""The in-process bus: keeps published events in memory and delivers them. Unit tests only."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence

from shared.bus import Dispatch, PublishFailed, decode, encode
from shared.delivery import DeadLetter, DeadLetterSink, Rejection, handle_records
from shared.events import Envelope
from shared.settings import Topics

log = logging.getLogger("voices.bus")


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

    def publish_many(self, messages: Sequence[tuple[str, Envelope]]) -> None:
        for acknowledged, (topic, event) in enumerate(messages):
            try:
                self.publish(topic, event)
            except PublishFailed as exc:
                raise PublishFailed(str(exc), acknowledged) from exc

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
                    # What one poll would return: every record not yet delivered, in order.
                    start = self._positions[(index, topic)]
                    for at, outcome in handle_records(
                        records[start:], dispatch, attempts=1, on_failure=_log_handler_failure
                    ):
                        offset, value = start + at, records[start + at]
                        self._positions[(index, topic)] = offset + 1
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
