"""Where a benchmark's processes spend their time: py-spy profiles of the stack's processes, and
the CPU seconds of every process of the run, per role."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


class Profiler:
    """py-spy sampling the gunicorn processes of the named stack processes (workers included)."""

    def __init__(self, out_dir: Path | None, rate: int = 50) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.spies: dict[str, subprocess.Popen] = {}

    def start(self, pids: dict[str, int]) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            self.spies[name] = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(pid),
                    "--subprocesses",
                    "--nonblocking",
                    # Only the thread holding the GIL: time spent running Python, not waiting
                    # for the store or the network (which py-spy cannot tell apart here).
                    "--gil",
                    "--rate",
                    str(self.rate),
                    "--format",
                    "raw",
                    "--output",
                    str(self.out_dir / f"{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        for spy in self.spies.values():
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for spy in self.spies.values():
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
        if self.out_dir is not None:
            for name in self.spies:
                print(summarise_profile(self.out_dir / f"{name}.txt", name), flush=True)


# Where a request's own work starts in each profiled process: its share is broken down by the
# functions this one calls (and, for admission, one level further).
REQUEST_ENTRY = {"surveys": "submit_response", "gateway": "Flask.full_dispatch_request"}
_PLUMBING = ("threading.py", "concurrent/futures", "gunicorn/", "flask/", "werkzeug/", "process ")


def _function(frame: str) -> str:
    """'name (file.py:12)' -> 'name (file.py)'."""
    return frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame


def summarise_profile(path: Path, name: str, top: int = 12) -> str:
    """Where `name`'s samples went, from py-spy's raw (collapsed) stacks taken with --gil (only
    the thread running Python at each sample): the busiest functions (inclusive share, thread and
    framework plumbing left out), then the request's own work by the functions it calls."""
    if not path.exists():
        return f"{name}: no profile written"
    inclusive: dict[str, int] = {}
    steps: dict[str, int] = {}
    busy = in_request = 0
    entry = REQUEST_ENTRY.get(name)
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        count = int(count_text)
        busy += count
        for frame in {_function(f) for f in frames}:  # once per stack
            if not any(part in frame for part in _PLUMBING):
                inclusive[frame] = inclusive.get(frame, 0) + count
        at = next((i for i, f in enumerate(frames) if entry and f.startswith(entry + " ")), None)
        if at is None:
            continue
        in_request += count
        step = _function(frames[at + 1]) if at + 1 < len(frames) else "(itself)"
        if step.startswith("admit ") and at + 2 < len(frames):
            step += " > " + _function(frames[at + 2])
        steps[step] = steps.get(step, 0) + count
    lines = [f"{name}: {busy} samples holding the GIL; inclusive share of the busiest functions"]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / max(busy, 1):5.1f}%  {frame}")
    if entry:
        lines.append(
            f"  {entry}: {100 * in_request / max(busy, 1):.1f}% of the samples; its steps:"
        )
        for step, count in sorted(steps.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"    {100 * count / max(in_request, 1):5.1f}%  {step}")
    return "\n".join(lines)


# ---------------------------------------------------------------- CPU time per process


def _process_role(cmdline: list[str]) -> str:
    """Which part of the run a process is, from its command line."""
    text = " ".join(cmdline)
    for role in ("gateway", "surveys", "consent", "aggregation"):
        if f"{'gateway' if role == 'gateway' else 'services.' + role}.app" in text:
            return role
    if "voices-ferretdb" in text:
        return "document store"
    if "kafka.Kafka" in text:
        return "kafka"
    if "baseline_app" in text:
        return "bare insert app"
    if "py-spy" in text:
        return "profiler"
    return "other"


class CpuMeter:
    """CPU seconds (user + system) spent by this process (the client) and each of its descendants
    (servers, services, workers) between `start` and `stop`, summed per role: where the machine's
    time went, whatever the load of other work on it."""

    def __init__(self) -> None:
        self.before: dict[int, tuple[str, float]] = {}
        self.spent: dict[str, float] = {}

    @staticmethod
    def _sample() -> dict[int, tuple[str, float]]:
        import psutil

        me = psutil.Process()
        sample = {}
        for process in [me, *me.children(recursive=True)]:
            try:
                times = process.cpu_times()
                role = "client" if process.pid == me.pid else _process_role(process.cmdline())
            except psutil.Error:
                continue  # gone meanwhile
            sample[process.pid] = (role, times.user + times.system)
        return sample

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> dict[str, float]:
        spent: dict[str, float] = {}
        for pid, (role, seconds) in self._sample().items():
            _, earlier = self.before.get(pid, (role, 0.0))
            spent[role] = spent.get(role, 0.0) + max(seconds - earlier, 0.0)
        self.spent = spent
        return spent


def report_cpu(name: str, spent: dict[str, float], count: int) -> None:
    if not count:
        return
    parts = ", ".join(
        f"{role} {1000 * seconds / count:.1f}"
        for role, seconds in sorted(spent.items(), key=lambda kv: -kv[1])
        if seconds >= 0.005
    )
    total = 1000 * sum(spent.values()) / count
    print(f"CPU ms per response, {name}: {total:.1f} in all ({parts})", flush=True)
