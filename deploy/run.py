"""`make run`: Apache Kafka, the document store, the three services and the gateway, with demo data.

Everything is kept in one folder (`VOICES_DATA_DIR`, default `./var`), so stopping and starting
again finds every consultation, grant, response, ledger entry and release:

    var/secrets.env    keys and secrets, made once and reused (owner-only)
    var/demo.json      the demo's tokens, staff passwords and link, printed at each start (owner-only)
    var/documents/     the document store (one SQLite file per service database)
    var/kafka/         Kafka's log directory and settings
    var/logs/          one log per process

`MONGODB_URI` and `KAFKA_BOOTSTRAP_SERVERS`, when set, name a MongoDB and a Kafka to use instead
of starting local ones. Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stop every process.
`python -m deploy.run --wipe` deletes the data folder after asking.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from deploy.secrets import generate_secrets
from deploy.servers import REPO_ROOT, DocumentStore, KafkaServer, ServerError, require_free_ports
from deploy.stack import SERVICES, Stack


def data_dir() -> Path:
    return Path(os.environ.get("VOICES_DATA_DIR", REPO_ROOT / "var")).resolve()


def _write_private(path: Path, text: str) -> None:
    """Create or replace `path` readable by its owner only (never briefly readable by others)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def load_or_create_secrets(folder: Path) -> dict[str, str]:
    """The deployment's keys: made on the first start, read back on every later one.

    New keys at each start would make everything stored unreadable (wrapped data keys, code
    hashes, the ledger's signatures, sessions), so an existing file is never replaced.
    """
    path = folder / "secrets.env"
    if path.exists():
        values = dict(
            line.split("=", 1)
            for line in path.read_text(encoding="utf-8").splitlines()
            if "=" in line and not line.startswith("#")
        )
        missing = set(generate_secrets()) - set(values)
        if missing:
            raise SystemExit(
                f"{path} lacks {', '.join(sorted(missing))}; restore it from a backup "
                "(new keys would make the stored data unreadable)"
            )
        return values
    values = {**generate_secrets(), "VOICES_ADMIN_TOKEN": "vt_admin_" + secrets.token_urlsafe(24)}
    _write_private(
        path,
        "# Made once by `make run`; the stored data needs these keys. Keep private.\n"
        + "".join(f"{name}={value}\n" for name, value in values.items()),
    )
    return values


def store_is_empty(mongodb_uri: str, namespace: str) -> bool:
    """No database of this deployment exists yet (checked before any service creates one)."""
    import pymongo

    prefix = f"{namespace}_voices_" if namespace else "voices_"
    client: pymongo.MongoClient = pymongo.MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000)
    try:
        return not any(name.startswith(prefix) for name in client.list_database_names())
    finally:
        client.close()


def wipe(folder: Path, assume_yes: bool = False) -> int:
    if not folder.exists():
        print(f"Nothing to delete: {folder} does not exist.")
        return 0
    if not assume_yes:
        answer = input(
            f"Delete every consultation, response, consent record and key in {folder}? "
            "This cannot be undone. Type 'delete' to confirm: "
        )
        if answer.strip() != "delete":
            print("Nothing deleted.")
            return 1
    shutil.rmtree(folder)
    print(f"Deleted {folder}.")
    return 0


class Launcher:
    """Starts the servers and the stack in order and stops them in reverse, whatever ends the run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.logs = folder / "logs"
        self.store: DocumentStore | None = None
        self.kafka: KafkaServer | None = None
        self.stack: Stack | None = None

    def start(self, secrets_env: dict[str, str]) -> bool:
        """Start everything; returns whether the store was empty before (a first start)."""
        gateway_port = int(os.environ.get("GATEWAY_PORT", "8080"))
        mongodb_uri = os.environ.get("MONGODB_URI")
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not mongodb_uri:
            self.store = DocumentStore(
                self.folder / "documents",
                self.logs,
                port=int(os.environ.get("DOCUMENT_STORE_PORT", "27117")),
            )
        if not bootstrap:
            self.kafka = KafkaServer(
                self.folder / "kafka",
                self.logs,
                port=int(os.environ.get("KAFKA_PORT", "9192")),
                controller_port=int(os.environ.get("KAFKA_CONTROLLER_PORT", "9193")),
            )
        self.stack = Stack(
            kafka_bootstrap="",
            mongodb_uri="",
            gateway_port=gateway_port,
            service_ports={name: gateway_port + 1 + i for i, name in enumerate(SERVICES)},
            log_dir=self.logs,
            secrets=secrets_env,
        )
        # Every port is checked before anything starts, so a second `make run` fails at once.
        require_free_ports(
            {
                **(self.store.ports() if self.store else {}),
                **(self.kafka.ports() if self.kafka else {}),
                **self.stack.ports(),
            }
        )
        if self.store:
            self.store.start()
            mongodb_uri = self.store.uri
        if not mongodb_uri:  # MONGODB_URI, or the store started above
            raise ServerError("no document store to use")
        try:
            empty = store_is_empty(mongodb_uri, os.environ.get("VOICES_NAMESPACE", ""))
        except Exception as exc:  # noqa: BLE001 any failure to answer is reported the same way
            raise ServerError(
                f"the document store at {mongodb_uri} does not answer: {exc}"
            ) from None
        if self.kafka:
            self.kafka.start()
            bootstrap = self.kafka.bootstrap
        if not bootstrap:  # KAFKA_BOOTSTRAP_SERVERS, or the Kafka started above
            raise ServerError("no Apache Kafka to use")
        self.stack.kafka_bootstrap, self.stack.mongodb_uri = bootstrap, mongodb_uri
        self.stack.namespace = os.environ.get("VOICES_NAMESPACE", "")
        self.stack.start(timeout=120)
        return empty

    @property
    def gateway_url(self) -> str:
        if self.stack is None:
            raise ServerError("the platform has not been started")
        return self.stack.gateway_url

    def stop(self) -> None:
        if self.stack:
            self.stack.stop(timeout=8)
        # Kafka and the store stop together; each gets SIGKILL if it takes too long.
        servers = [s for s in (self.kafka, self.store) if s]
        threads = [threading.Thread(target=s.stop) for s in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def demo_info(folder: Path, gateway_url: str, admin_token: str, first_start: bool) -> dict | None:
    """Load the demo into an empty store and remember its tokens; on later starts read them back."""
    from deploy.demo import DemoLoader

    path = folder / "demo.json"
    if first_start:
        demo = DemoLoader(gateway_url, admin_token).load()
        _write_private(path, json.dumps(demo, indent=2))
        return demo
    if not path.exists():
        return None
    demo = json.loads(path.read_text())
    if "admin" not in (demo.get("staff_accounts") or {}):
        # Demo data from before the staff pages: give its accounts passwords once.
        demo = DemoLoader(gateway_url, admin_token).staff_sign_ins(demo)
        _write_private(path, json.dumps(demo, indent=2))
    return demo


def banner(launcher: Launcher, demo: dict | None, admin_token: str, first_start: bool) -> str:
    url = launcher.gateway_url
    lines = [
        "",
        f"Voices is running. Data is kept in {launcher.folder} and survives restarts"
        + (" (first start: demo data loaded)." if first_start else "."),
        "",
        f"  Gateway (API):      {url}/api/v1/...",
        f"  Health:             {url}/healthz",
        f"  API docs:           {url}/docs",
    ]
    if demo:
        lines += [
            f"  Participant link:   {url}/i/{demo['invitation_code']}",
            f"  Demo consultation:  {demo['consultation_id']}",
        ]
    lines += [
        "",
        "API tokens (send as 'Authorization: Bearer <token>'):",
        f"  admin      {admin_token}",
    ]
    if demo:
        lines += [
            f"  {role:<10} {demo[f'{role}_token']}" for role in ("organiser", "policy", "auditor")
        ]
    sign_ins = (demo or {}).get("staff_accounts") or {}
    if sign_ins:
        lines += [
            "",
            f"Staff pages: {url}/staff/sign-in  (demo accounts, passwords kept in demo.json)",
        ]
        lines += [
            f"  {role:<10} {person['email']:<26} {person['password']}"
            for role, person in sign_ins.items()
        ]
    lines += [
        "",
        f"Logs: {launcher.logs}",
        "Press Ctrl-C to stop; `make wipe` deletes the data.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--wipe", action="store_true", help="delete the data folder after asking, then exit"
    )
    parser.add_argument("--yes", action="store_true", help="with --wipe: do not ask")
    args = parser.parse_args(argv)
    folder = data_dir()
    if args.wipe:
        return wipe(folder, args.yes)

    stop_requested = threading.Event()

    def request_stop(signum, _frame):
        stop_requested.set()
        raise KeyboardInterrupt  # leaves whatever the main thread is waiting on, including start-up

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    secrets_env = load_or_create_secrets(folder)
    admin_token = secrets_env["VOICES_ADMIN_TOKEN"]
    launcher = Launcher(folder)
    print(
        f"Starting the document store, Apache Kafka, three services and the gateway (data in {folder}) ...",
        flush=True,
    )
    started = time.monotonic()
    try:
        try:
            first_start = launcher.start(secrets_env)
            print(f"All services ready in {time.monotonic() - started:.1f}s.", flush=True)
            demo = demo_info(folder, launcher.gateway_url, admin_token, first_start)
        except (ServerError, TimeoutError, RuntimeError, OSError) as exc:
            print(f"Could not start: {exc}", file=sys.stderr, flush=True)
            return 1
        except Exception as exc:  # noqa: BLE001 e.g. the demo could not be loaded: say so, stop cleanly
            print(f"Could not start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return 1
        print(banner(launcher, demo, admin_token, first_start), flush=True)
        while not stop_requested.is_set():
            stop_requested.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        print("Stopping ...", flush=True)
        launcher.stop()
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
