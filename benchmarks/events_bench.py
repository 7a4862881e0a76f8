"""Event decoding benchmark: `shared.bus.decode` (JSON + envelope + payload contract) per second.

    .venv/bin/python -m benchmarks.events_bench [--events 50000] [--repeat 3]

Decodes the aggregation rebuild's own event mix (response.submitted with ~2%
consent.withdrawn, from `aggregation_bench.bench_events`), already encoded,
so only what a consumer does per record is timed. Prints the best of
`--repeat` runs and the split between JSON parsing and validation, beside
the same parse building new schema instances for every event (how
`Envelope.parse` worked before it reused one instance per contract), the
two timed in turn so that both see the same machine load.

Loopback only (no network at all), bounded in count, no asserts on timing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.aggregation_bench import bench_events
from shared.bus import decode, encode
from shared.events import CONTRACTS, Envelope, EnvelopeSchema


def parse_with_new_schemas(raw: dict) -> Envelope:
    """Envelope.parse as it was before the schema instances were reused (kept only for comparison)."""
    EnvelopeSchema().load(raw)
    errors = CONTRACTS[(raw["type"], raw["version"])]().validate(raw["payload"])
    if errors:
        raise ValueError(errors)
    return Envelope(**raw)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    values = [encode(e) for e in bench_events(args.events)]
    best_decode = best_json = best_uncached = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        for v in values:
            json.loads(v)
        best_json = min(best_json, time.perf_counter() - t)
        t = time.perf_counter()
        for v in values:
            decode(v)
        best_decode = min(best_decode, time.perf_counter() - t)
        t = time.perf_counter()
        for v in values:
            parse_with_new_schemas(json.loads(v))
        best_uncached = min(best_uncached, time.perf_counter() - t)
    n = len(values)
    print(
        f"[events] decode {n:,} events: {best_decode:.2f}s = {n / best_decode:,.0f} events/s "
        f"({best_decode / n * 1e6:.0f} µs each, of which JSON parsing {best_json / n * 1e6:.0f} µs); "
        f"best of {args.repeat}"
    )
    print(
        f"[events] the same with new schema instances for every event: {best_uncached:.2f}s = "
        f"{n / best_uncached:,.0f} events/s ({best_uncached / n * 1e6:.0f} µs each); "
        f"reusing them is {best_uncached / best_decode:.1f}x faster"
    )


if __name__ == "__main__":
    main()
