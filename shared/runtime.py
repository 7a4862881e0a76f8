"""What every service process wires the same way: store, bus, outbox relay, consumer, health.

A service's `create_app` builds a `ServiceRuntime` and calls `init_app`; the
background threads start from gunicorn's `post_worker_init` (deploy/) or
explicitly in tests, never at import time.
"""

from __future__ import annotations

import http
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask_smorest import Page
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from werkzeug.routing import IntegerConverter

from shared import mongo
from shared.bus import Bus, InProcessBus, KafkaBus, KafkaConsumerLoop
from shared.errors import PROBLEM_MIME, NotFound
from shared.events import Envelope
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
        self.subscriptions = list(subscriptions)
        self.consumer: KafkaConsumerLoop | None = None
        self.started = False
        self.topics_ready = True  # only a Kafka bus has topics to wait for (start_background)
        self.topics_error: str | None = None
        self._stopping = threading.Event()
        if isinstance(self.bus, InProcessBus) and self.subscriptions:
            self.bus.subscribe(self.subscriptions, self.dispatcher)

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
                    "Records not yet handled, per topic",
                    ["service", "topic"],
                    self._lag_samples,
                )
            )
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
            )
            self.consumer.start()

    def stop(self) -> None:
        self._stopping.set()
        if self.consumer:
            self.consumer.stop()
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

    def _lag_samples(self):
        per_topic: dict[str, int] = {}
        lag = dict(self.consumer.status.get("lag", {})) if self.consumer is not None else {}
        for key, value in lag.items():
            topic = key.rsplit("/", 1)[0]
            per_topic[topic] = per_topic.get(topic, 0) + int(value)
        for topic in self.subscriptions:
            yield (self.settings.service, topic), float(per_topic.get(topic, 0))

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        try:
            mongo.ping(self.settings.service)
            checks["mongodb"] = "ok"
        except Exception as exc:  # noqa: BLE001 any failure means not ready; say which
            checks["mongodb"] = f"unavailable: {type(exc).__name__}"
        if isinstance(self.bus, KafkaBus):
            checks["kafka"] = (
                "ok" if kafka_reachable(self.settings.kafka.bootstrap_servers) else "unreachable"
            )
            if not self.topics_ready:
                checks["kafka_topics"] = f"not created yet: {self.topics_error or 'starting'}"
            if self.consumer is not None:
                checks["kafka_consumer"] = self.consumer.status["state"]
            checks["kafka_producer"] = "unavailable" if self.relay.last_error else "ok"
        else:
            checks["bus"] = "in-process"
        ok = (
            checks.get("mongodb") == "ok"
            and checks.get("kafka", "ok") == "ok"
            and "kafka_topics" not in checks
            and checks.get("kafka_producer", "ok") == "ok"
            and checks.get("kafka_consumer", "running") == "running"
        )
        checks["outbox_backlog"] = self._backlog() if checks["mongodb"] == "ok" else None
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


def kafka_reachable(bootstrap_servers: str, timeout: float = 0.5) -> bool:
    """Whether any bootstrap broker accepts a TCP connection now (the clients reconnect on their own
    and do not say when they cannot)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection(
                (host.strip("[]") or "localhost", int(port)), timeout=timeout
            ):
                return True
        except (OSError, ValueError):
            continue
    return False


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
