"""Where a response's freshness goes, stage by stage, from the logs an intake run leaves behind.

    .venv/bin/python -m benchmarks.freshness_stages LOG_DIR

LOG_DIR is the folder `intake_bench.py` names at its start (the services' logs and Kafka's data).
For every response it finds three moments: stored (the surveys service's access log line for its
`POST /api/v1/responses 201`), published (the CreateTime of its record on the responses topic,
read from Kafka's log segments with the broker's own `DumpLogSegments`) and counted (the
aggregation service's "handled response.submitted" line), matched by trace id. It prints the rate
of each stage and the p50/p95 of the outbox relay's delay (stored to published) and of the
aggregation consumer's (published to counted). Reads files only; starts nothing but the dump tool.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.servers import KAFKA_LIB

_RECORD = re.compile(r"CreateTime: (\d+) .*\"trace_id\":\"([0-9a-f]+)\"")


def _log_moments(path: Path, wanted: Callable[[dict], bool]) -> dict[str, datetime]:
    moments = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # gunicorn's own lines are not JSON
        if isinstance(entry, dict) and wanted(entry) and entry.get("trace_id"):
            moments[entry["trace_id"]] = datetime.fromisoformat(entry["ts"])
    return moments


def _published(kafka_log: Path) -> dict[str, datetime]:
    moments = {}
    for segment in sorted(kafka_log.glob("*.responses.events-*/*.log")):
        dump = subprocess.run(
            [
                "java",
                "-cp",
                f"{KAFKA_LIB}/*",
                "kafka.tools.DumpLogSegments",
                "--files",
                str(segment),
                "--print-data-log",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        for match in _RECORD.finditer(dump.stdout):
            moments[match.group(2)] = datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
    return moments


def _rate(moments: Iterable[datetime]) -> float:
    ordered = sorted(moments)
    span = (ordered[-1] - ordered[0]).total_seconds() if len(ordered) > 1 else 0.0
    return (len(ordered) - 1) / span if span else 0.0


def _percentiles(delays: list[float]) -> str:
    delays = sorted(delays)
    n = len(delays)
    return f"p50 {delays[n // 2]:.2f} s, p95 {delays[min(n - 1, int(n * 0.95))]:.2f} s, max {delays[-1]:.2f} s"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit(__doc__)
    log_dir = Path(args[0])
    stored = _log_moments(
        log_dir / "surveys.log", lambda e: e.get("msg") == "POST /api/v1/responses 201"
    )
    counted = _log_moments(
        log_dir / "aggregation.log", lambda e: e.get("msg") == "handled response.submitted"
    )
    published = _published(log_dir / "kafka" / "log")
    common = [t for t in stored if t in published and t in counted]
    if not common:
        sys.exit(f"no response found in all three places under {log_dir}")
    print(
        f"{len(common)} responses: stored {_rate(stored.values()):.1f}/s, published "
        f"{_rate(published.values()):.1f}/s, counted {_rate(counted.values()):.1f}/s"
    )
    print(
        "stored -> published (outbox relay):  "
        + _percentiles([(published[t] - stored[t]).total_seconds() for t in common])
    )
    print(
        "published -> counted (consumer):     "
        + _percentiles([(counted[t] - published[t]).total_seconds() for t in common])
    )
    print(
        "stored -> counted:                   "
        + _percentiles([(counted[t] - stored[t]).total_seconds() for t in common])
    )


if __name__ == "__main__":
    main()
