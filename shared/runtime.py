"""What every service process wires the same way: store, bus, outbox relay, consumer, health.

A service's `create_app` builds a `ServiceRuntime` and calls `init_app`; the
background threads start from gunicorn's `post_worker_init` (deploy/) or
explicitly in tests, never at import time.
"""

from __future__ import annotations

import http
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from flask_smorest import Page
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from werkzeug.routing import IntegerConverter

from shared import mongo
from shared.bus import Bus, KafkaBus
from shared.consumer import KafkaConsumerLoop
from shared.dead_letter_cli import dead_letter_commands
from shared.dead_letters import MongoDeadLetters
from shared.errors import PROBLEM_MIME
from shared.events import Envelope
from shared.health import ConsumerLag, HealthBounds, health_blueprint, kafka_answers
from shared.in_process_bus import InProcessBus
from shared.log import configure_logging
from shared.metrics import GaugeCollector, metrics_of
from shared.outbox import OutboxDocument, OutboxRelay
from shared.problems import ProblemSchema, register_problem_handlers
from shared.request_context import install_request_context
from shared.settings import Settings

log = logging.getLogger("voices.runtime")

Handler = Callable[[Envelope, Any], None]
# Takes a run of consecutive events of one type at once (see EventDispatcher.dispatch_run).
BatchHandler = Callable[[Sequence[Envelope], Any], None]


class MongoOffsetStore:
    """Consumer positions kept in the service's own database, beside the state they produced."""

    def __init__(self, db: Database, group_id: str) -> None:
        self.collection = db["consumer_offsets"]
        self.group_id = group_id

    def load(self, topic: str, partition: int) -> int | None:
        doc = self.collection.find_one({"_id": f"{self.group_id}:{topic}:{partition}"})
        return None if doc is None else doc["offset"]

    def save(self, topic: str, partition: int, offset: int) -> None:
        self.collection.update_one(
            {"_id": f"{self.group_id}:{topic}:{partition}"},
            {"$max": {"offset": offset}},
            upsert=True,
        )


class EventDispatcher:
    """Routes an event to its handler once: duplicates (same event id) are dropped.

    The id is recorded after the handler succeeded, so a crash in between
    replays the event; handlers are written to be idempotent for that case.
    Event types with a batch handler can also be handed over as a run (`dispatch_run`,
    see `shared.delivery.handle_records`).
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        context: Any,
        db: Database,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
    ) -> None:
        self.handlers = dict(handlers)
        self.batch_handlers = dict(batch_handlers or {})
        self.context = context
        self.processed = db["processed_events"]

    def __call__(self, event: Envelope) -> None:
        handler = self.handlers.get(event.type)
        if handler is None:
            return
        if self.processed.find_one({"_id": event.id}, {"_id": 1}) is not None:
            return
        handler(event, self.context)
        try:
            self.processed.insert_one(
                {"_id": event.id, "type": event.type, "at": datetime.now(UTC)}
            )
        except DuplicateKeyError:
            pass
        self._log_handled(event)

    def takes_runs(self, event_type: str) -> bool:
        return event_type in self.batch_handlers

    def dispatch_run(self, events: Sequence[Envelope]) -> None:
        """Consecutive events of one type with a batch handler, handled in one call: the same end
        state as calling the dispatcher on each in turn, with one write for their processed ids.

        Duplicates are dropped by id as one at a time would drop them (each id is read by key:
        FerretDB answers only an equality on `_id` from its index). The ids are recorded after
        the handler succeeded, so a crash in between hands the whole run over again.
        Raises ValueError for events of different types.
        """
        types = {event.type for event in events}
        if len(types) != 1:
            raise ValueError(f"a run holds events of one type, not {sorted(types)}")
        fresh: dict[str, Envelope] = {}
        for event in events:
            if (
                event.id not in fresh
                and self.processed.find_one({"_id": event.id}, {"_id": 1}) is None
            ):
                fresh[event.id] = event
        if not fresh:
            return
        self.batch_handlers[types.pop()](list(fresh.values()), self.context)
        now = datetime.now(UTC)
        mongo.insert_new(
            self.processed, [{"_id": e.id, "type": e.type, "at": now} for e in fresh.values()]
        )
        for event in fresh.values():
            self._log_handled(event)

    @staticmethod
    def _log_handled(event: Envelope) -> None:
        # One line per handled event, carrying the trace id of the request that caused it.
        log.info(
            "handled %s",
            event.type,
            extra={"event_id": event.id, "event_type": event.type, "trace_id": event.trace_id},
        )


class ServiceRuntime:
    def __init__(
        self,
        settings: Settings,
        *,
        handlers: Mapping[str, Handler],
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        subscriptions: Iterable[str],
        outbox_models: Iterable[type[OutboxDocument]],
        context: Any = None,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self.db = mongo.connect(settings, alias=settings.service)
        self.bus: Bus = (
            bus if bus is not None else KafkaBus(settings.kafka, client_id=settings.service)
        )
        self.relay = OutboxRelay(self.bus, outbox_models, interval_s=settings.relay_interval_s)
        self.context = context
        self.dispatcher = EventDispatcher(handlers, context, self.db, batch_handlers)
        self.dead_letters = MongoDeadLetters(self.db, settings.topics.consent)
        self.subscriptions = list(subscriptions)
        self.consumer: KafkaConsumerLoop | None = None
        self.lag = ConsumerLag(settings, self.subscriptions)
        self.health = HealthBounds.from_settings(settings)
        self._broker_probe: tuple[float, str] | None = None
        self.started = False
        self.topics_ready = True  # only a Kafka bus has topics to wait for (start_background)
        self.topics_error: str | None = None
        self._stopping = threading.Event()
        if isinstance(self.bus, InProcessBus) and self.subscriptions:
            self.bus.subscribe(self.subscriptions, self.dispatcher, self.dead_letters)

    # -- Flask wiring --------------------------------------------------------
    def init_app(self, app: Flask) -> None:
        app.extensions["voices_runtime"] = self
        register_problem_handlers(app)
        install_request_context(app, self.settings.service)
        app.register_blueprint(
            health_blueprint(self.settings.service, self.readiness, self.serving)
        )
        metrics = metrics_of(app)
        if metrics is not None:
            metrics.register(
                GaugeCollector(
                    "voices_outbox_backlog",
                    "Documents holding unpublished events",
                    ["service"],
                    self._backlog_sample,
                )
            )
            metrics.register(
                GaugeCollector(
                    "voices_consumer_lag",
                    "Records not yet handled per partition: log end minus the group's committed offset",
                    ["service", "topic", "partition"],
                    self._lag_samples,
                )
            )
            metrics.register(
                GaugeCollector(
                    "voices_outbox_oldest_age_seconds",
                    "How long the oldest unpublished event has waited (0: none waits)",
                    ["service"],
                    lambda: [((self.settings.service,), self.relay.oldest_pending_age() or 0.0)],
                )
            )
            metrics.register(
                GaugeCollector(
                    "voices_dead_letters",
                    "Open dead letters (events this service could not accept)",
                    ["service"],
                    lambda: self._dead_letter_samples("open"),
                )
            )
            metrics.register(
                GaugeCollector(
                    "voices_dead_letter_oldest_age_seconds",
                    "Age of the oldest open dead letter (0: none)",
                    ["service"],
                    lambda: self._dead_letter_samples("oldest_age_s"),
                )
            )
            metrics.register(
                GaugeCollector(
                    "voices_replay_remaining",
                    "Records this process still has to replay from the beginning of a partition",
                    ["service"],
                    self._replay_samples,
                )
            )
        app.cli.add_command(dead_letter_commands(self.dead_letters, self.dispatcher))
        # gunicorn's post_worker_init and worker_exit hooks find this runtime in app.extensions
        # and call start_background and stop (deploy/gunicorn.conf.py).

    # -- background work ---------------------------------------------------
    def start_background(self) -> None:
        """Start the outbox relay and, when the bus is Kafka, the consumer loop once the topics exist."""
        if self.started:
            return
        self.started = True
        self.relay.start()
        if isinstance(self.bus, KafkaBus):
            self.topics_ready = False
            threading.Thread(target=self._start_consuming, name="topics", daemon=True).start()

    def _start_consuming(self) -> None:
        """Create the topics (retrying while Kafka is away), then join the consumer group.

        The broker never creates a topic on first use, and a consumer subscribed to a topic that
        does not exist yet would only notice it at its next metadata refresh, minutes later.
        """
        delay = 0.5
        while not self._stopping.is_set():
            try:
                ensure_topics(self.settings)
                break
            except Exception as exc:  # noqa: BLE001 Kafka down or refusing: say so on /readyz and try again
                self.topics_error = str(exc)
                log.warning("could not create the Kafka topics, will retry: %s", exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
        if self._stopping.is_set():
            return
        self.topics_ready, self.topics_error = True, None
        if self.subscriptions and isinstance(self.bus, KafkaBus):
            group = self.settings.consumer_group
            self.consumer = KafkaConsumerLoop(
                self.settings.kafka,
                group,
                self.subscriptions,
                self.dispatcher,
                MongoOffsetStore(self.db, group),
                self.bus,
                self.dead_letters,
            )
            self.consumer.start()
            self.lag.start()

    def stop(self) -> None:
        self._stopping.set()
        if self.consumer:
            self.consumer.stop()
        self.lag.stop()
        self.relay.stop()
        self.bus.close()

    def after_commit(self) -> None:
        """Called after a request stored pending events, so they leave promptly."""
        self.relay.nudge()

    def _backlog_sample(self):
        try:
            yield (self.settings.service,), float(self._backlog())
        except Exception:  # noqa: BLE001 store down: no sample rather than a failed scrape
            return

    def _lag_samples(self) -> Iterator[tuple[tuple[str, ...], float]]:
        for (topic, partition), lag in sorted(self.lag.partitions().items()):
            yield (self.settings.service, topic, str(partition)), float(lag)

    def _dead_letter_samples(self, field: str) -> Iterator[tuple[tuple[str, ...], float]]:
        try:
            value = self.dead_letters.summary()[field]
        except Exception:  # noqa: BLE001 store down: no sample rather than a failed scrape
            return
        yield (self.settings.service,), float(value or 0)

    def _replay_samples(self) -> Iterator[tuple[tuple[str, ...], float]]:
        progress = self.consumer.replay_progress() if self.consumer is not None else None
        remaining = progress["total"] - progress["handled"] if progress else 0
        yield (self.settings.service,), float(remaining)

    def broker_check(self) -> str:
        """ "ok", "unreachable", or "no answer within Ns": a broker that accepts connections but
        does not answer (paused, overloaded) is as unusable as one that is gone. Cached for a
        second, so a burst of probes asks the broker once."""
        cached = self._broker_probe
        if cached is not None and time.monotonic() - cached[0] < 1.0:
            return cached[1]
        result = kafka_answers(self.settings.kafka.bootstrap_servers, self.health.broker_ack_s)
        self._broker_probe = (time.monotonic(), result)
        return result

    def serving(self) -> tuple[bool, dict[str, Any]]:
        """(ready, checks) for answering requests: the store answers. The broker is left out on
        purpose: while it is away requests are still served and their events wait in the outbox."""
        try:
            mongo.ping(self.settings.service)
        except Exception as exc:  # noqa: BLE001 any failure means not ready; say which
            return False, {"mongodb": f"unavailable: {type(exc).__name__}"}
        return True, {"mongodb": "ok"}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, checks). Not ready when the store or the broker does not answer within its
        bound, the topics are missing, the consumer is stalled on an outage, or the oldest event
        waiting in the outbox is older than its bound. Dead letters, lag and a replay in progress
        are reported without making the service unready: it goes on with everything else."""
        checks: dict[str, Any] = {}
        try:
            mongo.ping(self.settings.service)
            checks["mongodb"] = "ok"
        except Exception as exc:  # noqa: BLE001 any failure means not ready; say which
            checks["mongodb"] = f"unavailable: {type(exc).__name__}"
        age = self.relay.oldest_pending_age()
        bound = self.health.outbox_max_age_s
        checks["outbox"] = (
            "ok"
            if age is None or age <= bound
            else f"oldest event waiting {age:.0f}s (bound {bound:g}s)"
        )
        checks["outbox_oldest_age_s"] = None if age is None else round(age, 1)
        if isinstance(self.bus, KafkaBus):
            checks["kafka"] = self.broker_check()
            if not self.topics_ready:
                checks["kafka_topics"] = f"not created yet: {self.topics_error or 'starting'}"
            if self.consumer is not None:
                checks["kafka_consumer"] = self.consumer.status["state"]
                if (
                    self.consumer.status["state"] != "running"
                    and self.consumer.status["last_error"]
                ):
                    checks["kafka_consumer_error"] = self.consumer.status["last_error"]
                checks["replay"] = self.consumer.replay_progress()
            checks["kafka_producer"] = (
                "ok" if not self.relay.last_error else f"unavailable: {self.relay.last_error[:200]}"
            )
            checks["consumer_lag"] = self.lag.report()
        else:
            checks["bus"] = "in-process"
        ok = (
            checks.get("mongodb") == "ok"
            and checks.get("kafka", "ok") == "ok"
            and "kafka_topics" not in checks
            and checks.get("kafka_producer", "ok") == "ok"
            and checks.get("kafka_consumer", "running") == "running"
            and checks["outbox"] == "ok"
        )
        if checks["mongodb"] == "ok":
            checks["outbox_backlog"] = self._backlog()
            checks["dead_letters"] = self.dead_letters.summary()
        else:
            checks["outbox_backlog"] = checks["dead_letters"] = None
        return ok, checks

    def _backlog(self) -> int:
        """The relay's count from its last sweep (counting on every probe would read whole
        collections on some servers); a count of its own before the first sweep."""
        last = self.relay.last_backlog
        return self.relay.backlog() if last is None else last


def problem_api(app: Flask) -> Any:
    """A flask-smorest Api whose documented errors are what every process answers: problem+json."""
    from flask_smorest import Api
    from flask_smorest.utils import prepare_response

    class ProblemApi(Api):
        ERROR_SCHEMA = ProblemSchema

        def _register_responses(self):
            for status in http.HTTPStatus:
                response: dict[str, Any] = {"description": status.phrase}
                if status >= 400:
                    response["schema"] = self.ERROR_SCHEMA
                    prepare_response(response, self.spec, PROBLEM_MIME)
                self.spec.components.response(status.name, response, lazy=True)
            response = {
                "description": "Any error, as problem+json (RFC 7807)",
                "schema": self.ERROR_SCHEMA,
            }
            prepare_response(response, self.spec, PROBLEM_MIME)
            self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)

        def _register_pagination_header(self):
            # The header's value is JSON text: documented as the object it encodes, no client (or
            # response check) would accept the string it is.
            self.spec.components.header(
                "PAGINATION",
                {
                    "description": "JSON object: total, total_pages, first_page, last_page, page, previous_page, "
                    "next_page (the last two when there is such a page)",
                    "schema": {"type": "string"},
                },
                lazy=True,
            )

    return ProblemApi(app)


PAGE_SIZE, MAX_PAGE_SIZE = 50, 200


class QueryPage(Page):
    """flask-smorest pagination over a mongoengine query: one skip/limit read and one count per
    page (a query's len() would load every document). Use as `@blp.paginate(QueryPage,
    page_size=PAGE_SIZE, max_page_size=MAX_PAGE_SIZE)`: the body stays a list, and the
    X-Pagination header says where it is in the whole."""

    @property
    def item_count(self) -> int:
        return self.collection.count()


def create_service_app(
    settings: Settings, *, title: str, blueprints: Iterable[Any], runtime: ServiceRuntime
) -> Flask:
    """A service's Flask app: flask-smorest API (OpenAPI from the marshmallow schemas), problem+json, health."""
    configure_logging(settings.service, settings.log_level)
    app = Flask(f"voices.{settings.service}")
    use_storable_int_routes(app)
    app.config.update(
        API_TITLE=title,
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    api = problem_api(app)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.extensions["voices_settings"] = settings
    runtime.init_app(app)
    return app


class StorableInt(IntegerConverter):
    """`<int:...>` in routes, up to the largest integer a MongoDB document can hold (8 bytes):
    a larger number matches no route (404) instead of failing in the database driver."""

    def __init__(
        self,
        url_map: Any,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(url_map, fixed_digits, min, 2**63 - 1 if max is None else max, signed)


def use_storable_int_routes(app: Flask) -> None:
    """Call before any route is registered."""
    app.url_map.converters["int"] = StorableInt


def ensure_topics(settings: Settings) -> None:
    """Create the event topics and their dead-letter topics that are missing; raises KafkaError
    when Kafka cannot be reached or refuses."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    names = [*settings.topics.all(), *(settings.topics.dlq(t) for t in settings.topics.all())]
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap_servers.split(","),
        client_id=f"{settings.service}-admin",
        request_timeout_ms=10000,
    )
    try:
        existing = set(admin.list_topics())
        for name in names:
            if name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(name, settings.kafka.partitions, settings.kafka.replication_factor)]
                )
            except TopicAlreadyExistsError:
                pass  # another service or worker created it first
    finally:
        admin.close()


def current_runtime(app: Flask) -> ServiceRuntime:
    return app.extensions["voices_runtime"]


def service_context():
    """The serving app's domain context (keys, settings, topics), for API views."""
    return current_runtime(current_app).context


def events_stored() -> None:
    """Called by a view after it stored events in the outbox, so the relay sends them now."""
    current_runtime(current_app).after_commit()
