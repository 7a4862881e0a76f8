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
from typing import Iterable

import mongoengine
from pymongo.collection import Collection

from shared.bus import Bus, PublishFailed
from shared.events import Envelope

log = logging.getLogger("voices.outbox")

class OutboxDocument(mongoengine.Document):
    """Abstract base for documents that carry their own pending events."""

    meta = {"abstract": True}
    pending_events = mongoengine.ListField(mongoengine.DictField())

    def stage(self, topic: str, event: Envelope) -> Envelope:
        """Queue `event` for `topic`; it is stored by the next save of this document."""
        self.pending_events.append({"topic": topic, "envelope": event.to_dict()})
        return event

class OutboxRelay:
    """Publishes pending events from the given document classes, oldest document first."""

    def __init__(self, bus: Bus, models: Iterable[type[OutboxDocument]], interval_s: float = 0.2,
                 batch: int = 200) -> None:
        self.bus = bus
        self.models = list(models)
        self.interval_s = interval_s
        self.batch = batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def _collections(self) -> list[Collection]:
        return [model._get_collection() for model in self.models]

    def backlog(self) -> int:
        """Number of documents still holding unpublished events."""
        return sum(c.count_documents({"pending_events.0": {"$exists": True}}) for c in self._collections())

    def relay_once(self) -> int:
        """Publish what is pending now; returns how many events were sent. Raises PublishFailed."""
        sent = 0
        for collection in self._collections():
            docs = collection.find({"pending_events.0": {"$exists": True}}, {"pending_events": 1}).limit(self.batch)
            for doc in docs:
                for pending in doc["pending_events"]:
                    event = Envelope(**pending["envelope"])
                    self.bus.publish(pending["topic"], event)
                    # The element exactly as stored: a $pull by whole value means the same on
                    # every MongoDB-protocol server, a $pull by a condition on a field does not.
                    collection.update_one({"_id": doc["_id"]}, {"$pull": {"pending_events": pending}})
                    sent += 1
        return sent

    def nudge(self) -> None:
        """Ask the relay thread to run now instead of at its next tick."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.interval_s
        while not self._stop.is_set():
            try:
                self.relay_once()
                self.last_error = None
                delay = self.interval_s
            except PublishFailed as exc:
                # Keep the events; back off so a down broker is not hammered.
                self.last_error = str(exc)
                delay = min(max(delay * 2, 0.5), 5.0)
                log.warning("outbox relay could not publish, will retry: %s", exc)
            except Exception as exc:
                self.last_error = str(exc)
                delay = min(max(delay * 2, 0.5), 5.0)
                log.exception("outbox relay failed, will retry")
            self._wake.wait(delay)
            self._wake.clear()
