"""`make run` keeps its data: start, use, stop, start again, and everything is there.

Runs `python -m deploy.run` (what `make run` runs) with its own data folder and ports, so it
starts its own Kafka and document store, and stops them, as a user's machine would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deploy.servers import REPO_ROOT, free_port, port_taken
from tests.e2e.conftest import Api, eventually, participate
from tests.e2e.test_aggregation_withdrawal import progress
from tests.e2e.test_consent_ledger import download_export, ledger_entries, run_verifier

STOP_WITHIN_S = 15


def _free_block(size: int) -> int:
    """A port p such that p .. p+size-1 are all free (the gateway and the three services)."""
    for _ in range(50):
        base = free_port()
        if base + size < 65000 and not any(port_taken(base + i) for i in range(size)):
            return base
    raise RuntimeError("no free block of ports")


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie (a dead child whose parent, gone too, no longer reaps it)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Launcher:
    def __init__(self, data_dir: Path) -> None:
        self.gateway_port = _free_block(4)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("MONGODB_URI", "KAFKA_BOOTSTRAP_SERVERS")
        }
        self.env.update(
            {
                "VOICES_DATA_DIR": str(data_dir),
                "GATEWAY_PORT": str(self.gateway_port),
                "DOCUMENT_STORE_PORT": str(free_port()),
                "KAFKA_PORT": str(free_port()),
                "KAFKA_CONTROLLER_PORT": str(free_port()),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.process: subprocess.Popen | None = None
        self.output = ""

    def start(self, timeout: float = 180) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.run"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                self.output = "".join(lines)
                return self.output
        self.stop()
        raise AssertionError("make run did not come up:\n" + "".join(lines))

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int = signal.SIGTERM) -> float:
        """Send `sig` to the launcher; returns how long until it and every child had gone."""
        started = time.monotonic()
        children = self.children()
        self.process.send_signal(sig)
        try:
            self.process.wait(STOP_WITHIN_S + 5)
        finally:
            self.process.stdout.close()
        deadline = started + STOP_WITHIN_S + 5
        alive = children
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _running(p)]
            time.sleep(0.2)
        took = time.monotonic() - started
        for process in alive:
            process.kill()
        assert not alive, (
            f"still running after the launcher stopped: {[p.cmdline()[:3] for p in alive]}"
        )
        return took

    def value(self, label: str) -> str:
        match = re.search(rf"^\s*{re.escape(label)}\s+(\S+)", self.output, re.MULTILINE)
        assert match, f"{label!r} not in the banner:\n{self.output}"
        return match.group(1)


def test_stop_and_start_again_keeps_every_record(tmp_path):
    data = tmp_path / "var"
    launcher = Launcher(data)
    first = launcher.start()
    assert "first start: demo data loaded" in first and str(data) in first
    assert oct((data / "secrets.env").stat().st_mode & 0o777) == "0o600"
    api = Api(f"http://127.0.0.1:{launcher.gateway_port}")
    organiser, auditor, policy = (
        launcher.value(role) for role in ("organiser", "auditor", "policy")
    )
    cid = launcher.value("Demo consultation:")
    code = launcher.value("Participant link:").rsplit("/", 1)[-1]
    try:
        answers = {"region": "north", "age_band": "25-39", "got_help": "yes"}
        text_langs = api.call(
            "GET", f"/api/v1/consent/consultations/{cid}/texts", params={"language": "en"}
        )
        assert text_langs["version"] == 1
        pseudonyms = [participate(api, code, answers)["pseudonym"] for _ in range(3)]
        assert len(set(pseudonyms)) == 3
        eventually(lambda: progress(api, organiser, cid) == 3, timeout=60)
        release = api.call(
            "POST",
            "/api/v1/releases",
            organiser,
            expect=201,
            json={"consultation_id": cid, "epsilon": 0.5},
        )
        ledger_before = eventually(
            lambda: (lambda e: e if any(x["kind"] == "release.signed_off" for x in e) else None)(
                ledger_entries(api, auditor)
            ),
            timeout=60,
        )
    finally:
        took = launcher.stop(signal.SIGHUP)  # a closed terminal
    assert took < STOP_WITHIN_S

    launcher_again = Launcher(data)
    launcher_again.gateway_port = launcher.gateway_port
    launcher_again.env = launcher.env
    second = launcher_again.start()
    try:
        assert "first start" not in second and "survives restarts" in second
        # Same keys, same demo: the tokens printed the first time still work.
        assert launcher_again.value("organiser") == organiser
        consultations = api.call("GET", "/api/v1/consultations", organiser)
        assert [c["consultation_id"] for c in consultations] == [
            cid
        ]  # the demo was not loaded twice
        assert (
            api.call("GET", f"/api/v1/insights/consultations/{cid}/progress", organiser)[
                "responses_counted"
            ]
            == 3
        )
        seen = api.call("GET", f"/api/v1/insights/consultations/{cid}", policy)
        assert seen["release"]["snapshot"] == release["snapshot"]
        ledger_after = ledger_entries(api, auditor)
        assert ledger_after[: len(ledger_before)] == ledger_before
        verified = run_verifier(*download_export(api, auditor, tmp_path), "--strict")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        # The budget spent before the restart is still spent.
        budget = api.call("GET", f"/api/v1/insights/consultations/{cid}/privacy-budget", organiser)
        assert budget["remaining"] == pytest.approx(budget["epsilon_total"] - 0.5)
    finally:
        # Even a launcher killed outright leaves nothing running: its children die with it.
        assert launcher_again.stop(signal.SIGKILL) < STOP_WITHIN_S


def test_a_port_in_use_is_named_at_once(tmp_path):
    launcher = Launcher(tmp_path / "var")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", launcher.gateway_port))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "deploy.run"],
            cwd=REPO_ROOT,
            env=launcher.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"port {launcher.gateway_port} (gateway) already in use" in done.stderr
    assert not (tmp_path / "var" / "documents").exists()  # nothing was started
