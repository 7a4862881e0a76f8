"""The three services and the gateway under gunicorn, against a Kafka and a MongoDB-protocol server.

`Stack` is what `make run` and the e2e, browser and benchmark layers start: each process is
launched exactly as docker-compose runs it (gunicorn, `deploy/gunicorn.conf.py`, two workers),
with its output in `<log_dir>/<name>.log`. A stack's `namespace` keeps its databases, topics and
consumer groups apart from any other stack's on the same servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from deploy.secrets import generate_secrets
from deploy.servers import REPO_ROOT, die_with_parent, free_port, require_free_ports, stop_process

SERVICES = ("surveys", "consent", "aggregation")


@dataclass
class Stack:
    """The platform's own processes; the servers they use are named by `kafka_bootstrap` and `mongodb_uri`."""

    kafka_bootstrap: str
    mongodb_uri: str
    namespace: str = ""
    gateway_port: int = 0
    service_ports: dict[str, int] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="voices-logs-")))
    secrets: dict[str, str] = field(default_factory=generate_secrets)
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gateway_port = self.gateway_port or free_port()
        for name in SERVICES:
            self.service_ports.setdefault(name, free_port())
        self.log_dir = Path(self.log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[name]}"

    def ports(self) -> dict[str, int]:
        return {"gateway": self.gateway_port, **self.service_ports}

    def start(self, timeout: float = 60.0) -> Stack:
        require_free_ports(self.ports())
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "MONGODB_URI": self.mongodb_uri,
            "VOICES_NAMESPACE": self.namespace,
            "PYTHONUNBUFFERED": "1",
            **{f"VOICES_{name.upper()}_URL": self.service_url(name) for name in SERVICES},
            **self.secrets,
            **self.extra_env,
        }
        try:
            for name in SERVICES:
                self.start_process(name)
            self.start_process("gateway")
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _command(self, name: str) -> list[str]:
        port = self.gateway_port if name == "gateway" else self.service_ports[name]
        app = (
            "gateway.app:create_app()" if name == "gateway" else f"services.{name}.app:create_app()"
        )
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(REPO_ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            app,
        ]

    def start_process(self, name: str) -> subprocess.Popen:
        """Start (or restart) one process; its output goes to <log_dir>/<name>.log."""
        with open(self.log_dir / f"{name}.log", "ab") as log_file:
            env = {**self.env, "VOICES_SERVICE": name}
            self.processes[name] = subprocess.Popen(
                self._command(name),
                cwd=REPO_ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # noqa: PLW1509 only setsid and prctl, nothing a thread holds
            )
        return self.processes[name]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(10)

    def wait_ready(self, timeout: float = 60.0, names: tuple[str, ...] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names or (*SERVICES, "gateway"))
        last: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            name = pending[0]
            if self.processes[name].poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {self.processes[name].returncode}; "
                    f"see {self.log_dir / (name + '.log')}"
                )
            url = self.gateway_url if name == "gateway" else self.service_url(name)
            try:
                response = requests.get(f"{url}/readyz", timeout=5)
                if response.status_code == 200:
                    pending.pop(0)
                    continue
                last[name] = response.text[:300]
            except requests.RequestException as exc:
                last[name] = type(exc).__name__
            time.sleep(0.2)
        if pending:
            detail = "; ".join(f"{name}: {last.get(name, 'no answer')}" for name in pending)
            raise TimeoutError(f"not ready after {timeout:.0f}s: {detail}; logs in {self.log_dir}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to every process at once (gunicorn stops its workers gracefully), SIGKILL after `timeout`."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for process in running:
            stop_process(process, max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
