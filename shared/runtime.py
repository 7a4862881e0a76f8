"""What every service process wires the same way: store, bus, outbox relay, consumer, health.

A service's `create_app` builds a `ServiceRuntime` and calls `init_app`; the
background threads start from gunicorn's `post_worker_init` (deploy/) or
explicitly in tests, never at import time.
"""

from __future__ import annotations

import http
import json
import logging
import re
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import click
from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.cli import AppGroup
from flask_smorest import Page
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from werkzeug.routing import IntegerConverter

from shared import mongo
from shared.bus import Bus, KafkaBus
from shared.consumer import KafkaConsumerLoop
from shared.dead_letters import MongoDeadLetters
from shared.errors import PROBLEM_MIME, NotFound
from shared.events import Envelope
from shared.in_process_bus import InProcessBus
from shared.log import configure_logging, trace_id_var
from shared.metrics import GaugeCollector, install_metrics, metrics_of
from shared.outbox import OutboxDocument, OutboxRelay
from shared.problems import ProblemSchema, register_problem_handlers
from shared.settings import Settings

log = logging.getLogger("voices.runtime")

Handler = Callable[[Envelope, Any], None]


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
    """

    def __init__(self, handlers: Mapping[str, Handler], context: Any, db: Database) -> None:
        self.handlers = dict(handlers)
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
        self.dispatcher = EventDispatcher(handlers, context, self.db)
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
        app.register_blueprint(health_blueprint(self))
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
        app.cli.add_command(dlq_cli)
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


def health_blueprint(runtime: ServiceRuntime) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz():
        return jsonify(status="ok", service=runtime.settings.service)

    @bp.get("/readyz")
    def readyz():
        ok, checks = runtime.readiness()
        return jsonify(
            status="ready" if ok else "not_ready", service=runtime.settings.service, checks=checks
        ), (200 if ok else 503)

    return bp


# Ids we accept from a caller: they end up in logs and headers, so nothing but a short token.
_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _id_from(header: str) -> str | None:
    value = request.headers.get(header)
    return value if value and _ID.match(value) else None


def route_pattern() -> str:
    """The route pattern of this request (`g.route_pattern` when a forwarder knows better), never the URL."""
    override = g.get("route_pattern")
    if override:
        return override
    return request.url_rule.rule if request.url_rule else "unmatched"


def install_request_context(app: Flask, service: str) -> None:
    """Request and trace ids on every request and response; one log line and metrics per request.

    The log line names the route pattern, never the concrete URL (codes live in
    URLs), and never the client address or user agent. Installs /metrics, which answers only
    when VOICES_METRICS_TOKEN is set (and sent): closed unless an operator configures it.
    """
    access = logging.getLogger("voices.access")
    metrics = install_metrics(app, service)

    @app.before_request
    def _metrics_closed_unless_configured():
        settings = app.extensions.get("voices_settings")
        if request.path == "/metrics" and not (
            settings is not None and settings.get("METRICS_TOKEN")
        ):
            raise NotFound("There is nothing at this path.")

    @app.before_request
    def _ids():
        g.request_id = _id_from("X-Request-ID") or uuid.uuid4().hex
        g.trace_id = _id_from("X-Trace-ID") or g.request_id
        g.trace_token = trace_id_var.set(g.trace_id)
        g.started = time.perf_counter()

    @app.after_request
    def _headers(response):
        response.headers["X-Request-ID"] = getattr(g, "request_id", "")
        response.headers["X-Trace-ID"] = getattr(g, "trace_id", "")
        rule = route_pattern()
        if rule not in ("/healthz", "/readyz", "/metrics"):
            seconds = time.perf_counter() - g.get("started", time.perf_counter())
            metrics.observe_request(request.method, rule, response.status_code, seconds)
            access.info(
                "%s %s %s",
                request.method,
                rule,
                response.status_code,
                extra={
                    "route": rule,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
        return response

    @app.teardown_request
    def _reset(_exc):
        token = g.pop("trace_token", None)
        if token is not None:
            trace_id_var.reset(token)


def current_trace_id() -> str:
    return trace_id_var.get() or uuid.uuid4().hex


__all__ = [
    "EventDispatcher",
    "MongoOffsetStore",
    "ServiceRuntime",
    "configure_logging",
    "current_runtime",
    "current_trace_id",
    "install_request_context",
]


# ---- truthful health: bounds, broker answers, lag, dead letters ----------------------------------


class HealthBounds:
    """How long the broker may take to answer, and an unpublished event may wait, before the
    service says it is not ready (VOICES_BROKER_ACK_TIMEOUT_S, VOICES_OUTBOX_MAX_AGE_S)."""

    def __init__(self, broker_ack_s: float, outbox_max_age_s: float, lag_interval_s: float) -> None:
        self.broker_ack_s = broker_ack_s
        self.outbox_max_age_s = outbox_max_age_s
        self.lag_interval_s = lag_interval_s

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthBounds:
        def number(name: str, default: float) -> float:
            raw = settings.get(name)
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise RuntimeError(
                    f"VOICES_{name} must be a number of seconds, not {raw!r}"
                ) from None
            if not value > 0:
                raise RuntimeError(f"VOICES_{name} must be more than 0 seconds")
            return value

        return cls(
            number("BROKER_ACK_TIMEOUT_S", 2.0),
            number("OUTBOX_MAX_AGE_S", 30.0),
            number("LAG_INTERVAL_S", 5.0),
        )


def _api_versions_request(correlation_id: int) -> bytes:
    """A Kafka ApiVersions v0 request (api key 18): the cheapest request every broker answers."""
    client_id = b"voices-readyz"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def kafka_answers(bootstrap_servers: str, timeout: float) -> str:
    """ "ok" when a bootstrap broker answers an ApiVersions request within `timeout` seconds;
    otherwise "unreachable" (no connection) or "no answer within Ns" (connected, silent: a
    paused or overloaded broker still completes TCP handshakes in the kernel)."""
    silent = False
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection(
                (host.strip("[]") or "localhost", int(port)), timeout=timeout
            ) as sock:
                sock.settimeout(timeout)
                sock.sendall(_api_versions_request(7))
                header = b""
                while len(header) < 8:
                    chunk = sock.recv(8 - len(header))
                    if not chunk:
                        break
                    header += chunk
                if len(header) == 8 and struct.unpack(">i", header[4:])[0] == 7:
                    return "ok"
                silent = True
        except TimeoutError:
            silent = True
        except (OSError, ValueError):
            continue
    return f"no answer within {timeout:g}s" if silent else "unreachable"


def kafka_reachable(bootstrap_servers: str, timeout: float = 0.5) -> bool:
    """Whether a bootstrap broker answers within `timeout` seconds."""
    return kafka_answers(bootstrap_servers, timeout) == "ok"


class ConsumerLag:
    """The consumer group's lag per partition: log end offset minus the group's committed offset
    (the log start where nothing is committed), read from the broker every few seconds.

    Measured from what the group committed, not from this process's own partitions, so every
    worker of the service reports the whole group's lag; a worker that stopped handling events
    shows as lag growing, never as 0.
    """

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self.interval_s = HealthBounds.from_settings(settings).lag_interval_s
        self._lag: dict[tuple[str, int], int] = {}
        self._measured_at: float | None = None
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None

    def start(self) -> None:
        if self._thread is None and self.topics:
            self._thread = threading.Thread(target=self._run, name="consumer-lag", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._close()

    def partitions(self) -> dict[tuple[str, int], int]:
        """The last measurement, {(topic, partition): lag}; empty when it is stale or missing."""
        if self._measured_at is None or self._stale():
            return {}
        return dict(self._lag)

    def _stale(self) -> bool:
        return (
            self._measured_at is None
            or time.monotonic() - self._measured_at > 3 * self.interval_s + 2
        )

    def report(self) -> dict[str, Any]:
        """For /readyz: total lag and the largest partition's, or why it is unknown."""
        if self._stale():
            return {"state": "unknown", "error": self._error}
        lag = dict(self._lag)
        worst = max(lag.items(), key=lambda item: item[1], default=None)
        return {
            "state": "measured",
            "total": sum(lag.values()),
            "max": None
            if worst is None
            else {"partition": f"{worst[0][0]}/{worst[0][1]}", "lag": worst[1]},
            "age_s": round(time.monotonic() - (self._measured_at or 0), 1),
        }

    def measure(self) -> dict[tuple[str, int], int]:
        """Ask the broker now; raises KafkaError when it cannot answer."""
        from kafka import KafkaConsumer, TopicPartition

        if self._client is None:
            self._client = KafkaConsumer(
                bootstrap_servers=self.settings.kafka.bootstrap_servers.split(","),
                group_id=self.settings.consumer_group,  # only to read its offsets: it never joins
                enable_auto_commit=False,
                request_timeout_ms=10000,
                client_id=f"{self.settings.service}-lag",
            )
        client = self._client
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(client.partitions_for_topic(topic) or ())
        ]
        ends = client.end_offsets(partitions)
        starts = client.beginning_offsets(partitions)
        lag = {}
        for tp in partitions:
            committed = client.committed(tp)
            position = starts.get(tp, 0) if committed is None else committed
            lag[(tp.topic, tp.partition)] = max(0, ends.get(tp, 0) - position)
        return lag

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._lag = self.measure()
                self._measured_at = time.monotonic()
                self._error = None
            except Exception as exc:  # noqa: BLE001 broker away: the figure goes stale, then "unknown"
                self._error = f"{type(exc).__name__}: {exc}"[:200]
                self._close()
            self._stop.wait(self.interval_s)

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close(autocommit=False)
            except Exception as exc:  # noqa: BLE001 a broken client is dropped either way
                log.debug("closing the lag client: %s", exc)


# ---- dead letters on the command line --------------------------------------------------------

dlq_cli = AppGroup("dlq", help="Events this service could not accept (dead letters).")


@dlq_cli.command("list")
@click.option("--all", "every", is_flag=True, help="Also list redriven and discarded letters.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dlq_list(every: bool, as_json: bool) -> None:
    """List the dead letters, oldest first (open ones only unless --all)."""
    store = current_runtime(current_app).dead_letters
    for doc in store.letters(None if every else "open"):
        row = {
            "id": str(doc["_id"]),
            "state": doc.get("state"),
            "kind": doc.get("kind"),
            "event_type": doc.get("event_type"),
            "consultation_id": doc.get("consultation_id"),
            "source": f"{doc.get('topic')}/{doc.get('partition')}/{doc.get('offset')}",
            "deliveries": doc.get("deliveries"),
            "blocks_releases": bool(doc.get("blocks_releases")),
            "first_at": doc["first_at"].isoformat() if doc.get("first_at") else None,
            "reason": doc.get("reason"),
        }
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(
                f"{row['id']}  {row['state']}  {row['kind']}  {row['event_type'] or '-'}  "
                f"{row['source']}  {'BLOCKS RELEASES  ' if row['blocks_releases'] else ''}"
                f"{row['reason']}"
            )


@dlq_cli.command("redrive")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Re-drive every open dead letter.")
def dlq_redrive(ids: tuple[str, ...], every: bool) -> None:
    """Hand dead letters to this service's handlers again (after the cause was fixed).

    Idempotent: handled letters are marked redriven and not handed over again, and an event
    handled before is not applied twice. Exits with 1 when any letter still fails.
    """
    if not ids and not every:
        raise click.UsageError("name the dead letters to re-drive, or pass --all")
    runtime = current_runtime(current_app)

    def show(letter_id: str, outcome: str, reason: str) -> None:
        click.echo(f"{letter_id}  {outcome}{'  ' + reason if reason else ''}")

    counts = runtime.dead_letters.redrive(
        runtime.dispatcher, list(ids) if ids else None, on_result=show
    )
    click.echo(
        f"redriven {counts['redriven']}, still failing {counts['still_failing']}, "
        f"skipped {counts['skipped']}",
        err=True,
    )
    if counts["still_failing"]:
        sys.exit(1)


@dlq_cli.command("discard")
@click.argument("letter_id")
@click.option("--reason", required=True, help="Why it may be dropped (kept with the letter).")
def dlq_discard(letter_id: str, reason: str) -> None:
    """Drop one open dead letter after checking it can never be applied (junk, a test record)."""
    if not current_runtime(current_app).dead_letters.resolve(letter_id, "discarded", reason):
        raise click.ClickException(f"no open dead letter {letter_id}")
    click.echo(f"{letter_id}  discarded")
