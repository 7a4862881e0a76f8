"""Readiness says what is happening: a broker that accepts connections but does not answer."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from shared.health import HealthBounds, kafka_answers
from tests.conftest import make_settings


class FakeBroker:
    """Listens on loopback; answers ApiVersions requests only when `answer` is set."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            if self.answer:
                size = struct.unpack(">i", conn.recv(4))[0]
                request = conn.recv(size)
                correlation = struct.unpack(">i", request[4:8])[0]
                conn.sendall(struct.pack(">ii", 6, correlation) + b"\x00\x00")

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.sock.close()


def test_a_broker_that_accepts_connections_but_does_not_answer_is_not_ok():
    silent, answering = FakeBroker(answer=False), FakeBroker(answer=True)
    try:
        assert kafka_answers(f"127.0.0.1:{silent.port}", 0.3) == "no answer within 0.3s"
        assert kafka_answers(f"127.0.0.1:{answering.port}", 2.0) == "ok"
        # Any answering broker of the list will do.
        assert kafka_answers(f"127.0.0.1:{silent.port},127.0.0.1:{answering.port}", 0.3) == "ok"
    finally:
        silent.close()
        answering.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert kafka_answers(f"127.0.0.1:{port}", 0.3) == "unreachable"


def test_bounds_come_from_the_settings_and_refuse_nonsense(secrets_env):
    bounds = HealthBounds.from_settings(
        make_settings("surveys", secrets_env).with_(
            extra={"BROKER_ACK_TIMEOUT_S": "1.5", "OUTBOX_MAX_AGE_S": "12"}
        )
    )
    assert (bounds.broker_ack_s, bounds.outbox_max_age_s) == (1.5, 12.0)
    with pytest.raises(RuntimeError, match="OUTBOX_MAX_AGE_S"):
        HealthBounds.from_settings(
            make_settings("surveys", secrets_env).with_(extra={"OUTBOX_MAX_AGE_S": "0"})
        )
