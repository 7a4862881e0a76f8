"""One typed settings object per process, read from the environment once.

Kafka's settings default to Kafka's own. `VOICES_NAMESPACE` prefixes database
names, topics and consumer groups, so several deployments (or test stacks) can
share one Kafka cluster and one MongoDB server without seeing each other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, overload

NAMESPACE = re.compile(r"^([a-z][a-z0-9_]{0,31})?$")


def _env(env: Mapping[str, str], name: str, default: Any, cast: Callable[[str], Any] = str) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if cast is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return cast(raw)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "localhost:9092"
    # Kafka's own consumer-group defaults.
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    poll_timeout_ms: int = 1000
    max_poll_records: int = 200
    linger_ms: int = 5
    request_timeout_ms: int = 30000
    # Topics are created by the services (the broker never creates one on first use).
    partitions: int = 3
    replication_factor: int = 1
    # Handler failures are retried this many times before the event goes to <topic>.dlq.
    handler_attempts: int = 3


@dataclass(frozen=True)
class Topics:
    surveys: str = "surveys.events"
    consent: str = "consent.events"
    responses: str = "responses.events"
    releases: str = "releases.events"

    def all(self) -> list[str]:
        return [self.surveys, self.consent, self.responses, self.releases]

    def prefixed(self, namespace: str) -> Topics:
        if not namespace:
            return self
        return Topics(**{name: f"{namespace}.{topic}" for name, topic in vars(self).items()})

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"


@dataclass(frozen=True)
class Settings:
    service: str
    mongodb_uri: str = "mongodb://localhost:27017/voices"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    # Background consumer and outbox relay threads (off in unit tests that drive them by hand).
    run_background: bool = True
    relay_interval_s: float = 0.2
    log_level: str = "INFO"
    # Service-specific secrets and URLs; each service reads only its own.
    extra: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""

    def __post_init__(self) -> None:
        if not NAMESPACE.match(self.namespace):
            raise ValueError(
                "VOICES_NAMESPACE must be empty or 1-32 of a-z, 0-9 and _, starting with a letter"
            )

    @property
    def database(self) -> str:
        return (
            f"{self.namespace}_voices_{self.service}"
            if self.namespace
            else f"voices_{self.service}"
        )

    @property
    def consumer_group(self) -> str:
        return (
            f"{self.namespace}.voices-{self.service}"
            if self.namespace
            else f"voices-{self.service}"
        )

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    @overload
    def get(self, name: str, default: None) -> str | None: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        return self.extra.get(name, default)

    def require(self, name: str) -> str:
        value = self.extra.get(name)
        if not value:
            raise RuntimeError(f"setting {name} is required for the {self.service} service")
        return value

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        namespace = _env(env, "VOICES_NAMESPACE", "")
        kafka_defaults = KafkaSettings()
        kafka = KafkaSettings(
            bootstrap_servers=_env(
                env, "KAFKA_BOOTSTRAP_SERVERS", kafka_defaults.bootstrap_servers
            ),
            session_timeout_ms=_env(
                env, "KAFKA_SESSION_TIMEOUT_MS", kafka_defaults.session_timeout_ms, int
            ),
            heartbeat_interval_ms=_env(
                env, "KAFKA_HEARTBEAT_INTERVAL_MS", kafka_defaults.heartbeat_interval_ms, int
            ),
            poll_timeout_ms=_env(env, "KAFKA_POLL_TIMEOUT_MS", kafka_defaults.poll_timeout_ms, int),
            max_poll_records=_env(
                env, "KAFKA_MAX_POLL_RECORDS", kafka_defaults.max_poll_records, int
            ),
            linger_ms=_env(env, "KAFKA_LINGER_MS", kafka_defaults.linger_ms, int),
            request_timeout_ms=_env(
                env, "KAFKA_REQUEST_TIMEOUT_MS", kafka_defaults.request_timeout_ms, int
            ),
            handler_attempts=_env(
                env, "KAFKA_HANDLER_ATTEMPTS", kafka_defaults.handler_attempts, int
            ),
            partitions=_env(env, "KAFKA_TOPIC_PARTITIONS", kafka_defaults.partitions, int),
            replication_factor=_env(
                env, "KAFKA_REPLICATION_FACTOR", kafka_defaults.replication_factor, int
            ),
        )
        # Names given explicitly are used as they are; the defaults carry the namespace.
        default_topics = Topics().prefixed(namespace)
        topics = Topics(
            surveys=_env(env, "TOPIC_SURVEYS", default_topics.surveys),
            consent=_env(env, "TOPIC_CONSENT", default_topics.consent),
            responses=_env(env, "TOPIC_RESPONSES", default_topics.responses),
            releases=_env(env, "TOPIC_RELEASES", default_topics.releases),
        )
        prefix = "VOICES_"
        extra = {k[len(prefix) :]: v for k, v in env.items() if k.startswith(prefix)}
        return cls(
            service=service,
            namespace=namespace,
            mongodb_uri=_env(env, "MONGODB_URI", cls.mongodb_uri),
            kafka=kafka,
            topics=topics,
            run_background=_env(env, "RUN_BACKGROUND", True, bool),
            relay_interval_s=_env(env, "OUTBOX_RELAY_INTERVAL_S", 0.2, float),
            log_level=_env(env, "LOG_LEVEL", "INFO"),
            extra=extra,
        )
