"""One typed settings object per process, read from the environment once.

Production defaults are Kafka's own; embedded mode (`VOICES_MODE=embedded`)
shortens group timeouts because the embedded broker holds every JoinGroup for
half the session timeout (see README, "Kafka settings").
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Mapping


def _env(env: Mapping[str, str], name: str, default: Any, cast=str) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if cast is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return cast(raw)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "localhost:9092"
    # Kafka's defaults; embedded mode overrides them (see from_env).
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    # Must exceed session_timeout_ms/2 + 1 s on the embedded broker, or a group never joins.
    poll_timeout_ms: int = 1000
    max_poll_records: int = 200
    linger_ms: int = 5
    request_timeout_ms: int = 30000
    # Used only when the services create missing topics themselves.
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

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"


@dataclass(frozen=True)
class Settings:
    service: str
    mode: str = "production"  # "production" | "embedded"
    mongodb_uri: str = "mongodb://localhost:27017/voices"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    # Background consumer and outbox relay threads (off in unit tests that drive them by hand).
    run_background: bool = True
    relay_interval_s: float = 0.2
    log_level: str = "INFO"
    # Service-specific secrets and URLs; each service reads only its own.
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.mode == "embedded"

    @property
    def database(self) -> str:
        return f"voices_{self.service}"

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.extra.get(name, default)

    def require(self, name: str) -> str:
        value = self.extra.get(name)
        if not value:
            raise RuntimeError(f"setting {name} is required for the {self.service} service")
        return value

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        mode = _env(env, "VOICES_MODE", "production")
        embedded = mode == "embedded"
        kafka_defaults = KafkaSettings()
        kafka = KafkaSettings(
            bootstrap_servers=_env(env, "KAFKA_BOOTSTRAP_SERVERS", kafka_defaults.bootstrap_servers),
            session_timeout_ms=_env(env, "KAFKA_SESSION_TIMEOUT_MS", 2000 if embedded else kafka_defaults.session_timeout_ms, int),
            heartbeat_interval_ms=_env(env, "KAFKA_HEARTBEAT_INTERVAL_MS", 500 if embedded else kafka_defaults.heartbeat_interval_ms, int),
            poll_timeout_ms=_env(env, "KAFKA_POLL_TIMEOUT_MS", 3000 if embedded else kafka_defaults.poll_timeout_ms, int),
            max_poll_records=_env(env, "KAFKA_MAX_POLL_RECORDS", kafka_defaults.max_poll_records, int),
            linger_ms=_env(env, "KAFKA_LINGER_MS", kafka_defaults.linger_ms, int),
            request_timeout_ms=_env(env, "KAFKA_REQUEST_TIMEOUT_MS", kafka_defaults.request_timeout_ms, int),
            handler_attempts=_env(env, "KAFKA_HANDLER_ATTEMPTS", kafka_defaults.handler_attempts, int),
            partitions=_env(env, "KAFKA_TOPIC_PARTITIONS", kafka_defaults.partitions, int),
            replication_factor=_env(env, "KAFKA_REPLICATION_FACTOR", kafka_defaults.replication_factor, int),
        )
        topics = Topics(
            surveys=_env(env, "TOPIC_SURVEYS", Topics.surveys),
            consent=_env(env, "TOPIC_CONSENT", Topics.consent),
            responses=_env(env, "TOPIC_RESPONSES", Topics.responses),
            releases=_env(env, "TOPIC_RELEASES", Topics.releases),
        )
        prefix = "VOICES_"
        extra = {k[len(prefix):]: v for k, v in env.items() if k.startswith(prefix)}
        return cls(
            service=service,
            mode=mode,
            mongodb_uri=_env(env, "MONGODB_URI", "mongomock://localhost/voices" if embedded else cls.mongodb_uri),
            kafka=kafka,
            topics=topics,
            run_background=_env(env, "RUN_BACKGROUND", True, bool),
            relay_interval_s=_env(env, "OUTBOX_RELAY_INTERVAL_S", 0.2, float),
            log_level=_env(env, "LOG_LEVEL", "INFO"),
            extra=extra,
        )
