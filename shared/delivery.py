"""What becomes of a consumed record.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from marshmallow import ValidationError

from shared.bus import Dispatch, PublishFailed, decode
from shared.errors import DomainError
from shared.events import Envelope
from shared.log import trace_id_var

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
