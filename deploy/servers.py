"""Apache Kafka and the document store (FerretDB) as local processes, for `make run` and the tests.

`make install` puts what they need under `VOICES_TOOLS_DIR` (default `.tools/`): the Kafka
broker's jars, resolved by Maven from `deploy/kafka/pom.xml`, and `voices-ferretdb`, built by Go
from `deploy/ferretdb/`. Both keep their data in the directory they are given, so a restart finds
it again. Every child process is tied to its parent: it gets SIGTERM when the process that
started it dies, even by SIGKILL, so nothing is left serving behind a crashed launcher.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = Path(os.environ.get("VOICES_TOOLS_DIR", REPO_ROOT / ".tools")).resolve()
KAFKA_LIB = TOOLS_DIR / "kafka" / "lib"
FERRETDB_BIN = TOOLS_DIR / "bin" / "voices-ferretdb"

_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """A server could not be started; the message names it and says why."""


def die_with_parent() -> None:
    """`preexec_fn` for children: SIGTERM when the parent dies, and a process group of their own
    (so a terminal's Ctrl-C reaches only the launcher, which then stops them in order)."""
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_taken(port: int) -> bool:
    """True when something already listens on 127.0.0.1:port (or it cannot be bound)."""
    with socket.socket() as sock:
        sock.settimeout(0.3)
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            return True
    with socket.socket() as sock:
        # As the servers bind: connections of an earlier run still closing (TIME_WAIT) do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def require_free_ports(ports: dict[str, int]) -> None:
    """Fail at once, naming each port, when any is in use: never report ready against another process."""
    taken = [f"{port} ({name})" for name, port in ports.items() if port_taken(port)]
    if taken:
        raise ServerError(
            f"port {', '.join(taken)} already in use; stop what listens there "
            "or choose other ports (see README, 'Run modes')"
        )


def wait_for_port(
    port: int, timeout: float = 10.0, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(f"exited with {process.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM to the process group, SIGKILL after `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


class ManagedServer:
    """One server process with its data and log in directories it is given."""

    name = "server"
    stop_timeout = 10.0

    def __init__(self, data_dir: Path, log_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.log_dir = Path(log_dir).resolve()
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def ports(self) -> dict[str, int]:
        return {self.name: self.port}

    def _launch(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=die_with_parent,  # noqa: PLW1509 only setsid and prctl, nothing a thread holds
            )

    def _fail(self, why: str) -> ServerError:
        self.stop()
        return ServerError(
            f"{self.name} did not start: {why}\n--- last lines of {self.log_path} ---\n"
            f"{log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        stop_process(self.process, self.stop_timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> ManagedServer:  # pragma: no cover - overridden
        raise NotImplementedError


class DocumentStore(ManagedServer):
    """FerretDB over SQLite: the MongoDB wire protocol, one SQLite file per database under data_dir."""

    name = "document-store"

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30.0) -> DocumentStore:
        if not FERRETDB_BIN.exists():
            raise ServerError(f"{FERRETDB_BIN} is missing: run `make install` (needs Go)")
        self._launch(
            [str(FERRETDB_BIN), "-listen", f"127.0.0.1:{self.port}", "-data", str(self.data_dir)]
        )
        try:
            wait_for_port(self.port, timeout, self.process)
        except ServerError as exc:
            raise self._fail(str(exc)) from None
        return self


KAFKA_LOG4J = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.Kafka=INFO
"""


class KafkaServer(ManagedServer):
    """Apache Kafka, one node in KRaft mode (broker and controller), listening on loopback only.

    Production-like: topics are never created on first use (the services create theirs with
    their partition count), producers are idempotent with acks=all, and consumer groups use
    Kafka's own timeouts. Internal topics have one replica, as one node can hold no more.
    """

    name = "kafka"
    stop_timeout = 10.0

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
    ) -> None:
        super().__init__(data_dir, log_dir, port)
        self.controller_port = controller_port or free_port()
        self.heap = heap

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ports(self) -> dict[str, int]:
        return {"kafka": self.port, "kafka controller": self.controller_port}

    def _properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "log"),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # A lone node has nobody to wait for before the first rebalance.
            "group.initial.rebalance.delay.ms": "0",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
            "-cp",
            f"{KAFKA_LIB}/*",
            main_class,
            *args,
        ]

    def _format_storage(self, properties: Path) -> None:
        """Format the log directory once; a formatted one (a restart) is left as it is."""
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        cluster_id = _kafka_cluster_id()
        # "--cluster-id=<id>": an id may start with "-", which would read as an option.
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",
                "--config",
                str(properties),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=die_with_parent,
        )
        if result.returncode != 0:
            raise ServerError(
                f"kafka storage format failed: {result.stderr.strip() or result.stdout.strip()}"
            )

    def start(self, timeout: float = 90.0) -> KafkaServer:
        if not any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
            raise ServerError(
                f"the Kafka broker's jars are missing from {KAFKA_LIB}: run `make install` (needs Maven)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        properties = self.data_dir / "server.properties"
        properties.write_text(self._properties())
        (self.data_dir / "log4j.properties").write_text(KAFKA_LOG4J)
        self._format_storage(properties)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._launch(self._java("kafka.Kafka", str(properties)))
        deadline = time.monotonic() + timeout
        process = self.process
        assert process is not None  # noqa: S101 for mypy: _launch just set it
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self._fail(f"exited with {process.returncode}")
            with open(self.log_path, "rb") as log:
                log.seek(log_start)
                if b"Kafka Server started" in log.read():
                    return self
            time.sleep(0.2)
        raise self._fail(f"not started after {timeout:.0f}s")


def _kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding (as `random-uuid` prints)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@contextmanager
def local_servers(
    root: Path, mongodb_uri: str | None = None, kafka_bootstrap: str | None = None
) -> Iterator[tuple[str, str]]:
    """Yields (kafka_bootstrap, mongodb_uri): a document store and Kafka started under `root`, except
    for the ones given, which are used as they are. Both are stopped on leaving."""
    started: list[ManagedServer] = []
    try:
        if not mongodb_uri:
            store = DocumentStore(root / "store", root / "logs").start()
            started.append(store)
            mongodb_uri = store.uri
        if not kafka_bootstrap:
            kafka = KafkaServer(root / "kafka", root / "logs").start()
            started.append(kafka)
            kafka_bootstrap = kafka.bootstrap
        yield kafka_bootstrap, mongodb_uri
    finally:
        for server in reversed(started):
            server.stop()
