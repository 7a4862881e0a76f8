"""Truthful health: how long the broker and the outbox may take before a service is not ready,
whether a broker answers, the consumer group's lag, and the /healthz and /readyz endpoints."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify

from shared.settings import Settings

log = logging.getLogger("voices.runtime")


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


def health_blueprint(
    service: str,
    readiness: Callable[[], tuple[bool, dict[str, Any]]],
    serving: Callable[[], tuple[bool, dict[str, Any]]],
) -> Blueprint:
    """/healthz (the process answers), /readyz (`readiness()`: whether it can do all its work)
    and /readyz/requests (`serving()`: whether it can answer requests now, which is what a load
    balancer asks: a service whose broker is away still takes requests, its events wait in the
    outbox)."""
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz():
        return jsonify(status="ok", service=service)

    def answer(check: Callable[[], tuple[bool, dict[str, Any]]]) -> tuple[Response, int]:
        ok, checks = check()
        return jsonify(status="ready" if ok else "not_ready", service=service, checks=checks), (
            200 if ok else 503
        )

    bp.add_url_rule("/readyz", "readyz", lambda: answer(readiness))
    bp.add_url_rule("/readyz/requests", "readyz_requests", lambda: answer(serving))

    return bp
