"""The dead letters a service's consumers sent, kept in the service's own database.

`<topic>.dlq` on Kafka carries every dead letter for any tool that reads topics; this store is
what the service itself answers from: how many are open and how old the oldest is (readiness
and metrics), which releases they hold back, and what `dlq list` and `dlq redrive` act on.

A dead letter is one document per event id (per record position when the record names no
event), so a redelivered or duplicated poison event stays one letter. States: `open`,
`redriven` (handled after a fix), `discarded` (an operator checked it and dropped it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from shared.bus import Dispatch
from shared.delivery import WITHDRAWAL_TYPES, DeadLetter, Rejection, handle_record
from shared.events import Envelope

OPEN, REDRIVEN, DISCARDED = "open", "redriven", "discarded"


def blocks_releases(letter: DeadLetter, consent_topic: str | None) -> bool:
    """A letter that may be a withdrawal holds back releases until it is resolved.

    A withdrawal or an erasure that could not be applied would leave a withdrawn person in the
    counts. A record on the consent topic whose type cannot even be read might be one as well.
    """
    if letter.event_type in WITHDRAWAL_TYPES:
        return True
    return letter.event_type is None and letter.topic == consent_topic


class MongoDeadLetters:
    """The `dead_letters` collection of one service's database."""

    def __init__(self, db: Database, consent_topic: str | None = None) -> None:
        self.collection = db["dead_letters"]
        self.consent_topic = consent_topic

    def record(self, letter: DeadLetter) -> None:
        """Store (or count again) a dead letter; idempotent per event id."""
        now = datetime.now(UTC)
        self.collection.update_one(
            {"_id": letter.event_id or letter.source},
            {
                "$setOnInsert": {
                    "topic": letter.topic,
                    "partition": letter.partition,
                    "offset": letter.offset,
                    "key": letter.key,
                    "value": letter.value,
                    "event_type": letter.event_type,
                    "consultation_id": letter.consultation_id,
                    "blocks_releases": blocks_releases(letter, self.consent_topic),
                    "first_at": now,
                },
                "$set": {"state": OPEN, "kind": letter.kind, "reason": letter.reason, "at": now},
                "$inc": {"deliveries": 1},
            },
            upsert=True,
        )

    def letters(self, state: str | None = OPEN) -> list[dict[str, Any]]:
        """Dead letters in `state` (every state with None), oldest first."""
        query = {} if state is None else {"state": state}
        docs = list(self.collection.find(query))
        return sorted(
            docs,
            key=lambda d: (
                _aware(d.get("first_at")),
                str(d.get("topic")),
                d.get("partition") or 0,
                d.get("offset") or 0,
            ),
        )

    def summary(self) -> dict[str, Any]:
        """{"open", "oldest" (ISO time or None), "oldest_age_s", "blocking_releases"}."""
        open_letters = list(
            self.collection.find({"state": OPEN}, {"first_at": 1, "blocks_releases": 1})
        )
        oldest = min((_aware(d.get("first_at")) for d in open_letters), default=None)
        return {
            "open": len(open_letters),
            "oldest": oldest.isoformat().replace("+00:00", "Z") if oldest else None,
            "oldest_age_s": (
                round((datetime.now(UTC) - oldest).total_seconds(), 1) if oldest else None
            ),
            "blocking_releases": sum(1 for d in open_letters if d.get("blocks_releases")),
        }

    def blocking(self, consultation_id: str) -> list[str]:
        """Ids of the open letters that hold back releases of `consultation_id`: those of that
        consultation and those whose consultation cannot be read."""
        return [
            str(d["_id"])
            for d in self.collection.find(
                {"state": OPEN, "blocks_releases": True}, {"consultation_id": 1}
            )
            if d.get("consultation_id") in (None, consultation_id)
        ]

    def redrive(
        self,
        dispatch: Dispatch,
        ids: list[str] | None = None,
        on_result: Callable[[str, str, str], None] | None = None,
    ) -> dict[str, int]:
        """Hand the open letters (all, or those of `ids`) to `dispatch` again, oldest first.

        Handled ones become `redriven`; refused ones stay open with the new reason. Letters
        already resolved are left alone, and the dispatcher drops an event it already handled, so
        running it twice changes nothing. A transient failure (store or broker away) raises
        `TransientFailure` and leaves the rest open. Returns counts per outcome;
        `on_result(id, outcome, reason)` is told of each letter.
        """
        counts = {"redriven": 0, "still_failing": 0, "skipped": 0}
        wanted = None if ids is None else set(ids)
        letters = self.letters(None if wanted else OPEN)
        for doc in letters:
            letter_id = str(doc["_id"])
            if wanted is not None and letter_id not in wanted:
                continue
            if doc.get("state") != OPEN:
                counts["skipped"] += 1
                if on_result:
                    on_result(letter_id, "skipped", f"already {doc.get('state')}")
                continue
            outcome = handle_record(bytes(doc["value"]), dispatch, attempts=1)
            now = datetime.now(UTC)
            if isinstance(outcome, Rejection):
                self.collection.update_one(
                    {"_id": doc["_id"], "state": OPEN},
                    {"$set": {"kind": outcome.kind, "reason": outcome.reason, "at": now}},
                )
                counts["still_failing"] += 1
                if on_result:
                    on_result(letter_id, "still_failing", outcome.reason)
                continue
            self.resolve(letter_id, REDRIVEN, f"handled as {_describe(outcome)}")
            counts["redriven"] += 1
            if on_result:
                on_result(letter_id, "redriven", "")
        return counts

    def resolve(self, letter_id: str, state: str, note: str) -> bool:
        """Mark an open letter redriven or discarded; False when it is not open."""
        result = self.collection.update_one(
            {"_id": letter_id, "state": OPEN},
            {"$set": {"state": state, "note": note, "resolved_at": datetime.now(UTC)}},
        )
        return result.modified_count == 1


def _describe(event: Envelope) -> str:
    return f"{event.type} {event.id}"


def _aware(moment: Any) -> datetime:
    if not isinstance(moment, datetime):
        return datetime.max.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
