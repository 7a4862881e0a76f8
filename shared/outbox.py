"""Transactional outbox: events are stored in the same document as the state change.

`stage` appends an event to a document's `pending_events` before it is saved,
so the change and its events commit together (single-document atomicity, the
same on MongoDB and in tests). `OutboxRelay` publishes pending events and
removes each one only after the broker acknowledged it: a broker outage means
"published later", and a crash between publish and removal means a duplicate
that consumers drop by event id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

import mongoengine
from pymongo.collection import Collection

from shared.bus import Bus, PublishFailed
from shared.events import Envelope

log = logging.getLogger("voices.outbox")

# Documents whose events this process stored, per document class, for the relay's fast path.
# Bounded: an entry dropped or lost (a crash) is still found by the relay's periodic sweep.
_stored: dict[type, deque] = defaultdict(lambda: deque(maxlen=10_000))


class _Key:
    __slots__ = ("pk",)

    def __init__(self, pk: Any) -> None:
        self.pk = pk


def remember(model: type, pk: Any) -> None:
    """Register a document whose events a query update stored (`push__pending_events`), after the
    update: the relay's fast path then publishes them without waiting for a sweep."""
    _stored[model].append(_Key(pk))


class OutboxDocument(mongoengine.Document):
    """Abstract base for documents that carry their own pending events."""

    meta: dict[str, Any] = {"abstract": True}
    pending_events = mongoengine.ListField(mongoengine.DictField())

    def stage(self, topic: str, event: Envelope) -> Envelope:
        """Queue `event` for `topic`; it is stored by the next save of this document."""
        self.pending_events.append({"topic": topic, "envelope": event.to_dict()})
        return event

    def save(self, *args, **kwargs):
        saved = super().save(*args, **kwargs)
        if self.pending_events:  # registered once stored: the relay must not look before the write
            _stored[type(self)].append(self)
        return saved


class OutboxRelay:
    """Publishes pending events from the given document classes.

    Two ways to find them: the documents this process stored events on are looked up by
    primary key (`relay_stored`, on every nudge), and a sweep reads every document holding
    pending events (`relay_once`) at start, after any failure and every `sweep_interval_s`,
    which catches what other processes (a command, a worker that crashed) left behind. The
    fast path keeps the cost of a request's events independent of the collection's size: a
    query on anything but `_id` reads the whole collection on some MongoDB-protocol servers,
    so the sweep is kept rare.
    """

    def __init__(
        self,
        bus: Bus,
        models: Iterable[type[OutboxDocument]],
        interval_s: float = 0.2,
        batch: int = 200,
        sweep_interval_s: float = 60.0,
    ) -> None:
        self.bus = bus
        self.models = list(models)
        self.interval_s = interval_s
        self.sweep_interval_s = sweep_interval_s
        self.batch = batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        # Documents holding pending events at the last sweep (readiness and metrics read this
        # rather than counting on every request).
        self.last_backlog: int | None = None
        # When the oldest event the last sweep found waiting was stored (None: none waits), and
        # since when the publish in progress has been waiting for the broker's acknowledgement.
        self.oldest_pending_at: datetime | None = None
        self.publishing_since: float | None = None
        # While the relay runs in its own thread, acknowledged events are taken off their
        # documents by a second one, so the next events go out without waiting for those writes
        # (one per event, queued behind every other write on some servers). Called directly
        # (commands, tests), the relay takes them off before it returns.
        self._marker: ThreadPoolExecutor | None = None
        self._last_marks: Future[None] | None = None

    def _collections(self) -> list[Collection]:
        return [model._get_collection() for model in self.models]

    def backlog(self) -> int:
        """Number of documents still holding unpublished events."""
        return sum(
            c.count_documents({"pending_events.0": {"$exists": True}}) for c in self._collections()
        )

    def oldest_pending_age(self) -> float | None:
        """Seconds the oldest waiting event has waited, as far as this relay knows (the last
        sweep, or the publish stuck waiting for an acknowledgement); None when nothing waits."""
        ages = []
        if self.oldest_pending_at is not None:
            ages.append((datetime.now(UTC) - self.oldest_pending_at).total_seconds())
        since = self.publishing_since
        if since is not None:
            ages.append(time.monotonic() - since)
        return max(ages) if ages else None

    def _publish(self, collection: Collection, docs: Sequence[dict]) -> int:
        """Publish the pending events of `docs` together, then take each acknowledged one off its
        document; returns how many were sent. One wait for the broker covers them all, which is
        what lets the relay keep up with intake. On a failure, what was acknowledged before it
        is taken off and PublishFailed is raised: the rest stays stored for the next try."""
        pending = [(doc["_id"], item) for doc in docs for item in doc.get("pending_events") or ()]
        if not pending:
            return 0
        acknowledged = len(pending)
        failure: PublishFailed | None = None
        self.publishing_since = time.monotonic()
        try:
            self.bus.publish_many(
                [(item["topic"], Envelope(**item["envelope"])) for _, item in pending]
            )
        except PublishFailed as exc:
            acknowledged, failure = exc.acknowledged, exc
        finally:
            self.publishing_since = None
        sent = pending[:acknowledged]
        if self._marker is None:
            _take_off(collection, sent)
        else:
            self._last_marks = self._marker.submit(_take_off_or_log, collection, sent)
        if failure is not None:
            raise failure
        return acknowledged

    def relay_stored(self) -> int:
        """Publish the pending events of the documents this process stored events on, up to
        `batch` documents at a time."""
        sent = 0
        for model in self.models:
            queue = _stored[model]
            collection = model._get_collection()
            id_field = model._fields[model._meta["id_field"]]
            while queue:
                taken: list[Any] = []
                while queue and len(taken) < self.batch:
                    try:
                        taken.append(queue.popleft())
                    except IndexError:
                        break
                try:
                    stored = [
                        doc
                        for doc in (
                            collection.find_one(
                                {"_id": id_field.to_mongo(document.pk)}, {"pending_events": 1}
                            )
                            for document in taken
                        )
                        if doc is not None
                    ]
                    sent += self._publish(collection, stored)
                except Exception:
                    # First in line next time; those already sent hold no pending events now.
                    queue.extendleft(reversed(taken))
                    raise
        return sent

    def relay_once(self) -> int:
        """Sweep: publish every pending event stored now; returns how many were sent. Raises PublishFailed."""
        if self._last_marks is not None:
            # What was sent is taken off first, or the sweep would find it and send it again.
            wait([self._last_marks], timeout=60)
        sent = 0
        left = 0  # documents found with events that this sweep did not (yet) clear
        found_oldest: datetime | None = None
        try:
            for collection in self._collections():
                docs = list(
                    collection.find(
                        {"pending_events.0": {"$exists": True}}, {"pending_events": 1}
                    ).limit(self.batch)
                )
                left += len(docs)
                for moment in filter(None, (_stored_at(doc) for doc in docs)):
                    found_oldest = moment if found_oldest is None else min(found_oldest, moment)
                sent += self._publish(collection, docs)
                left -= len(docs)
                if len(docs) == self.batch:
                    left += 1  # the batch was full: there may be more
        finally:
            self.last_backlog = left
            self.oldest_pending_at = found_oldest if left else None
        return sent

    def nudge(self) -> None:
        """Ask the relay thread to run now instead of at its next tick."""
        self._wake.set()

    def start(self) -> None:
        self._marker = ThreadPoolExecutor(1, thread_name_prefix="outbox-marks")
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        if self._marker is not None:
            # Bounded like the thread: a store that stopped answering must not hold the shutdown;
            # what is not taken off stays stored, and the next sweep sends it again.
            if self._last_marks is not None:
                wait([self._last_marks], timeout=timeout)
            self._marker.shutdown(wait=False)

    def _run(self) -> None:
        delay = self.interval_s
        next_sweep = 0.0
        while not self._stop.is_set():
            try:
                self.relay_stored()
                if time.monotonic() >= next_sweep:
                    self.relay_once()
                    next_sweep = time.monotonic() + self.sweep_interval_s
                self.last_error = None
                delay = self.interval_s
            except PublishFailed as exc:
                # Keep the events; back off so a down broker is not hammered; sweep once it is back.
                self.last_error = str(exc)
                next_sweep = 0.0
                delay = min(max(delay * 2, 0.5), 5.0)
                log.warning("outbox relay could not publish, will retry: %s", exc)
            except Exception as exc:
                self.last_error = str(exc)
                next_sweep = 0.0
                delay = min(max(delay * 2, 0.5), 5.0)
                log.exception("outbox relay failed, will retry")
            self._wake.wait(delay)
            self._wake.clear()


def _take_off(collection: Collection, sent: Sequence[tuple[Any, dict]]) -> None:
    """Remove published events from their documents, one update per event."""
    for doc_id, item in sent:
        # The element exactly as stored: a $pull by whole value means the same on every
        # MongoDB-protocol server, a $pull by a condition on a field does not. One update per
        # event: FerretDB 1.24 can stall on an update command of several statements.
        collection.update_one({"_id": doc_id}, {"$pull": {"pending_events": item}})


def _take_off_or_log(collection: Collection, sent: Sequence[tuple[Any, dict]]) -> None:
    try:
        _take_off(collection, sent)
    except Exception:  # the events stay stored; the next sweep sends them again
        log.exception("outbox relay could not take published events off their documents")


def _stored_at(doc: dict) -> datetime | None:
    """When the first of a document's pending events occurred (they are stored as they occur)."""
    for pending in doc.get("pending_events") or ():
        try:
            moment = datetime.fromisoformat(str(pending["envelope"]["occurred_at"]))
        except (KeyError, TypeError, ValueError):
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None
