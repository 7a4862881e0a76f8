"""Aggregation benchmark: a release of 100k responses vs pandas, rebuild from the topics, freshness.

    .venv/bin/python -m benchmarks.aggregation_bench [--responses 100000] [--rebuild 100000,1000000]
                     [--broker 100000,1000000] [--handler-sample 2000]
                     [--rebuild-with-writes 5000] [--freshness 300] [--skip ...]

1. Release pipeline at 100k responses (data and pandas comparison from
   `crosstab_bench`): counted_contributions -> tabulate -> protect_tables ->
   build_snapshot, every cross-tab by one and by two dimensions with
   suppression (all tables protected jointly: every hidden figure's range,
   from linear and integer programs over all tables, spans at least k),
   against pandas groupby counts of the same cells.
2. Rebuild of N events (response.submitted, ~2% consent.withdrawn), three ways:
   a. without a broker (`--rebuild`): decoding, validating and applying all N
      events with the projection's domain functions to an in-memory store
      (what the handlers decide, without a database);
   b. through Apache Kafka (`--broker`): N events produced to a topic
      (timed apart), read once with the rebuild's own reader
      (`rebuild.TopicsFromBeginning`, to the high watermark) to time the
      broker alone, then the whole replay: that reader and `rebuild.replay`
      with the same in-memory store as the dispatch;
   c. the real handlers writing to the document store (MONGODB_URI, or the
      local FerretDB), on a bounded sample (`--handler-sample`), twice side by
      side: one event at a time and in runs of up to 500 records, with the
      rate at each quarter, so a rate that falls with the data shows;
   d. a rebuild with real writes (`--rebuild-with-writes`, env
      BENCH_REBUILD_WITH_WRITES): N events produced to Apache Kafka, read from
      the beginning and replayed in runs through the real handlers into the
      document store, its count checked against the in-memory reference.
3. Freshness: the aggregation app with its Kafka consumer on Apache Kafka
   and the document store; events published with submitted_at = now at a
   steady rate; p50/p95 of submitted_at -> counted from the histogram data.

Kafka and the document store are started once for the run (`deploy.servers.local_servers`)
unless KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI name others.

Loopback only, bounded in count and time, no asserts on timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclasses.dataclass
class Servers:
    bootstrap: str
    mongodb_uri: str


SERVERS: Servers  # set in main(): Kafka and the document store of this run

from benchmarks.crosstab_bench import QUESTIONS, generate, pandas_counts  # noqa: E402
from services.aggregation import projection, tabulation  # noqa: E402
from services.aggregation.disclosure import protect_tables  # noqa: E402
from services.aggregation.snapshots import build_snapshot  # noqa: E402
from shared.bus import decode, encode  # noqa: E402
from shared.events import Envelope, isoformat, utcnow  # noqa: E402

CID = "bench"


def release_pipeline(n: int) -> None:
    contributions = generate(n, 7)
    # ~1% withdrawn: their tombstones go through counted_contributions as in a release.
    tombstones = [
        projection.Tombstone(CID, c.pseudonym, whole_participant=True) for c in contributions[::100]
    ]
    contributions = [dataclasses.replace(c, consultation_id=CID) for c in contributions]
    t = time.perf_counter()
    counted = projection.counted_contributions(contributions, tombstones)
    t_count = time.perf_counter() - t
    t = time.perf_counter()
    tables = tabulation.tabulate(counted, QUESTIONS, consultation_id=CID)
    t_tab = time.perf_counter() - t
    t = time.perf_counter()
    protection = protect_tables(tables, 10)
    t_prot = time.perf_counter() - t
    t = time.perf_counter()
    snap = build_snapshot(
        tables, protection, consultation_id=CID, snapshot=1, created_at="2025-01-01T00:00:00Z"
    )
    t_snap = time.perf_counter() - t
    pd, t_frame, t_group = pandas_counts(counted, tables)
    agree = {k: v for k, v in tables.counts.items() if v} == pd
    two_dim = sum(1 for layout in tables.layouts if layout.kind == "crosstab2")
    causes = Counter(protection.suppressed.values())
    print(
        f"[release] responses {n:,} (counted {len(counted):,}), cross-tabs by two dimensions: {two_dim}, "
        f"suppressed figures: {len(protection.suppressed):,} ({dict(causes)}), "
        f"audit rounds: {protection.audit_rounds}"
    )
    print(
        f"[release] counted_contributions {t_count:.2f}s  tabulate {t_tab:.2f}s  protect_tables {t_prot:.2f}s  "
        f"build_snapshot {t_snap:.2f}s  total {t_count + t_tab + t_prot + t_snap:.2f}s"
    )
    print(
        f"[release] pandas frame {t_frame:.2f}s  groupby {t_group:.2f}s (no suppression)  "
        f"counts agree: {agree}  snapshot {len(snap['crosstabs2'])} two-dimension tables"
    )


def bench_events(n: int, seed: int = 3):
    rng = random.Random(seed)
    yield Envelope(
        type="consultation.published",
        key=CID,
        producer="bench",
        payload={
            "consultation_id": CID,
            "organisation_id": "o",
            "survey_version": 1,
            "title": "bench",
            "languages": ["en"],
            "min_cell_size": 10,
            "min_age": None,
            "purposes": ["participate", "aggregate_reporting"],
            "questions": [dict({"min": None, "max": None}, **q) for q in QUESTIONS],
            "published_at": "2025-01-01",
        },
    )
    for i in range(n - 1):
        p = f"p{rng.randrange(max(1, n))}"
        if rng.random() < 0.02:
            yield Envelope(
                type="consent.withdrawn",
                key=p,
                producer="bench",
                payload={
                    "grant_id": "g",
                    "pseudonym": p,
                    "consultation_id": CID,
                    "purposes": ["aggregate_reporting"],
                    "remaining": ["participate"],
                    "all": False,
                    "withdrawn_at": "2025-02-01T00:00:00Z",
                },
            )
        else:
            yield Envelope(
                type="response.submitted",
                key=CID,
                producer="bench",
                payload={
                    "response_id": f"r{i}",
                    "consultation_id": CID,
                    "survey_version": 1,
                    "pseudonym": p,
                    "grant_id": "g",
                    "purposes": ["participate", "aggregate_reporting"],
                    "submitted_at": "2025-01-02T00:00:00Z",
                    "answers": {
                        "region": rng.choice(["north", "south", "east"]),
                        "age": rng.choice(["u18", "18-25"]),
                        "needs": ["housing", "legal"],
                        "safety": rng.randint(1, 5),
                    },
                    "declined": [],
                    "free_text_questions": [],
                },
            )


def apply_in_memory(state: dict, event: Envelope) -> None:
    """The handlers' decisions with dicts for collections (same domain calls as handlers.py)."""
    p = event.payload
    if event.type == "response.submitted":
        c = projection.contribution_from_submitted(p)
        if c is not None and projection.is_counted(
            c, state["tombs"].get((c.consultation_id, c.pseudonym))
        ):
            state["contribs"].setdefault(c.response_id, c)
    elif event.type == "consent.withdrawn":
        t = projection.tombstone_from_withdrawn(p)
        if t is not None:
            key = (t.consultation_id, t.pseudonym)
            state["tombs"][key] = projection.merge_tombstones(state["tombs"].get(key), t)
            state["buried"].add(key)


def rebuild_bench(sizes: list[int], broker_sizes: list[int], sample: int) -> None:
    """Rebuild of N events: (a) decode + validate + apply without a broker, for every N in `sizes`;
    (b) the whole replay through the embedded broker for every N in `broker_sizes`; (c) the real
    handlers on mongomock for `sample` events."""
    for n in sizes:
        state = {"contribs": {}, "tombs": {}, "buried": set()}
        spent = 0.0
        for e in bench_events(n):
            value = encode(e)  # what the broker hands back; not timed
            t = time.perf_counter()
            apply_in_memory(state, decode(value))
            spent += time.perf_counter() - t
        print(
            f"[rebuild] {n:,} events without a broker: decode + validate + apply (domain functions, in-memory "
            f"store) {spent:.1f}s ({n / spent:,.0f}/s); counted {counted(state):,}"
        )
        del state
    for n in broker_sizes:
        replay_through_broker(n)
    if sample:
        handler_sample(sample)


def counted(state: dict) -> int:
    return sum(
        1
        for c in state["contribs"].values()
        if projection.is_counted(c, state["tombs"].get((c.consultation_id, c.pseudonym)))
    )


def replay_through_broker(n: int) -> None:
    """N events produced to one topic of Apache Kafka (timed apart), then the rebuild's own
    reader (`rebuild.TopicsFromBeginning`) and `rebuild.replay` (decode, validate, skip invalid,
    positions) with the handlers' domain decisions on an in-memory store as the dispatch."""
    from functools import partial

    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from services.aggregation.rebuild import TopicsFromBeginning, replay
    from shared.settings import KafkaSettings

    broker = SERVERS
    topic = f"bench.{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    producer = KafkaProducer(
        bootstrap_servers=[broker.bootstrap], linger_ms=20, batch_size=256 * 1024, acks=1
    )
    t = time.perf_counter()
    futures = [producer.send(topic, encode(e)) for e in bench_events(n)]
    producer.flush()
    for f in futures:
        f.get(timeout=30)  # every record acknowledged
    t_produce = time.perf_counter() - t
    producer.close()
    del futures
    t = time.perf_counter()
    source = TopicsFromBeginning(KafkaSettings(bootstrap_servers=broker.bootstrap), [topic])
    read_only = sum(1 for _ in source)
    source.close()
    t_read = time.perf_counter() - t
    state = {"contribs": {}, "tombs": {}, "buried": set()}
    t = time.perf_counter()
    source = TopicsFromBeginning(KafkaSettings(bootstrap_servers=broker.bootstrap), [topic])
    total = source.total
    report = replay(source, partial(apply_in_memory, state))
    source.close()
    t_replay = time.perf_counter() - t
    print(
        f"[rebuild] {n:,} events through Apache Kafka: produced in {t_produce:.1f}s "
        f"({n / t_produce:,.0f}/s, not part of a rebuild); reading alone {t_read:.1f}s "
        f"({read_only / t_read:,.0f} records/s); read to the high watermark ({total:,} records) + "
        f"decode + validate + apply (in-memory store) {t_replay:.1f}s ({report.handled / t_replay:,.0f}/s), "
        f"handled {report.handled:,}, invalid {report.invalid}, counted {counted(state):,}"
    )


def _aggregation_runtime():
    """The aggregation service's runtime on the run's document store, in a database of its own."""
    from deploy.secrets import generate_secrets
    from services.aggregation.app import create_app
    from shared.in_process_bus import InProcessBus
    from shared.runtime import current_runtime
    from shared.settings import Settings

    extra = {k[len("VOICES_") :]: v for k, v in generate_secrets().items()}
    settings = Settings(
        service="aggregation",
        mongodb_uri=SERVERS.mongodb_uri,
        run_background=False,
        extra=extra,
        namespace=f"bench{uuid.uuid4().hex[:8]}",
    )
    return current_runtime(create_app(settings, bus=InProcessBus()))


def _replay_with_writes(runtime, records, n: int, chunk_size: int) -> tuple[list, object]:
    """`rebuild.replay` of `records` into the store through the real handlers; returns the time at
    each quarter of the `n` records and the replay's report."""
    from services.aggregation.rebuild import replay

    # Each quarter, and the 100,000th record of a longer rebuild (the rate at 100k and at the end).
    quarters = {n * q // 4 for q in range(1, 5)} | ({100_000} if n > 100_000 else set())
    marks = [(0, 0.0)]
    seen = 0
    t = time.perf_counter()

    def tick() -> None:
        nonlocal seen
        seen += 1
        if seen in quarters:
            marks.append((seen, time.perf_counter() - t))
            if n >= 100_000:  # a long rebuild says how far it got, in case it is stopped
                print(
                    f"[rebuild]   {seen:,} of {n:,} after {marks[-1][1]:.0f}s "
                    f"({_quarter_rates(marks[-2:])}; load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )

    report = replay(records, runtime.dispatcher, on_record=tick, chunk_size=chunk_size)
    return marks, report


def _quarter_rates(marks: list) -> str:
    # Each quarter's own rate: a rate that falls with the stored data shows as falling quarters.
    return ", ".join(
        f"{a + 1:,}-{b:,}: {(b - a) / (tb - ta):,.0f}/s"
        for (a, ta), (b, tb) in itertools.pairwise(marks)
        if tb > ta
    )


def _stored_contributions() -> int:
    """Contributions stored in the database of the runtime made last (its connection is current)."""
    from services.aggregation.models import ContributionDocument

    return ContributionDocument.objects(consultation_id=CID).count()


def handler_sample(sample: int) -> None:
    """The same `sample` events through the real handlers into the document store twice, side by
    side: one event at a time (as the consumer did before it took runs) and in runs of up to 500
    records (`rebuild.replay`'s chunks, as a poll hands them to the consumer)."""
    events = list(bench_events(sample))
    records = [("bench", 0, offset, encode(e)) for offset, e in enumerate(events)]
    state = {"contribs": {}, "tombs": {}, "buried": set()}
    for e in events:
        apply_in_memory(state, e)
    expected = counted(state)
    results = {}
    for label, chunk in (("one at a time", 1), ("in runs", 500)):
        runtime = _aggregation_runtime()
        load_before = os.getloadavg()[0]
        marks, report = _replay_with_writes(runtime, records, len(records), chunk)
        stored = _stored_contributions()
        results[label] = sample / marks[-1][1]
        print(
            f"[rebuild] real handlers writing to the store, {label}: {sample:,} events in "
            f"{marks[-1][1]:.1f}s ({results[label]:,.0f}/s; quarters {_quarter_rates(marks)}); "
            f"counted {stored:,} (in-memory reference {expected:,}, "
            f"{'equal' if stored == expected else 'DIFFERENT'}); handled {report.handled:,}; "
            f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(
        f"[rebuild] runs against one at a time, same run: "
        f"{results['in runs'] / results['one at a time']:.1f}x the events/s",
        flush=True,
    )


def rebuild_with_writes(n: int) -> None:
    """A rebuild of `n` events with real writes: produced to a topic of Apache Kafka, then read
    from the beginning (`rebuild.TopicsFromBeginning`) and replayed through the real handlers into
    the document store (`rebuild.replay`, runs of up to 500 records), with the rate per quarter."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from services.aggregation.rebuild import TopicsFromBeginning
    from shared.settings import KafkaSettings

    topic = f"bench.{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=SERVERS.bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    producer = KafkaProducer(
        bootstrap_servers=[SERVERS.bootstrap], linger_ms=20, batch_size=256 * 1024, acks=1
    )
    state = {"contribs": {}, "tombs": {}, "buried": set()}
    for e in bench_events(n):
        apply_in_memory(state, e)
        producer.send(topic, encode(e))
    producer.flush()
    producer.close()
    expected = counted(state)
    del state
    runtime = _aggregation_runtime()
    load_before = os.getloadavg()[0]
    source = TopicsFromBeginning(KafkaSettings(bootstrap_servers=SERVERS.bootstrap), [topic])
    try:
        marks, report = _replay_with_writes(runtime, source, source.total, 500)
    finally:
        source.close()
    stored = _stored_contributions()
    print(
        f"[rebuild] {n:,} events with real writes (Kafka -> handlers -> document store): "
        f"{marks[-1][1]:.1f}s ({n / marks[-1][1]:,.0f}/s; quarters {_quarter_rates(marks)}); "
        f"counted {stored:,} (in-memory reference {expected:,}, "
        f"{'equal' if stored == expected else 'DIFFERENT'}); handled {report.handled:,}; "
        f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def freshness_bench(count: int, rate: float) -> None:
    from deploy.secrets import generate_secrets
    from services.aggregation import handlers, releases
    from services.aggregation.app import create_app
    from shared.runtime import current_runtime
    from shared.settings import Settings

    env = {
        **os.environ,
        **generate_secrets(),
        "KAFKA_BOOTSTRAP_SERVERS": SERVERS.bootstrap,
        "MONGODB_URI": SERVERS.mongodb_uri,
        "VOICES_NAMESPACE": f"fresh{uuid.uuid4().hex[:8]}",
    }
    settings = Settings.from_env("aggregation", env)
    app = create_app(settings)
    runtime = current_runtime(app)
    runtime.start_background()
    try:
        bus = runtime.bus
        observed_before = sum(
            b.get() for b in handlers.FRESHNESS._buckets
        )  # the handler sample counts too
        events = list(bench_events(count + 1))
        bus.publish(settings.topics.surveys, events[0])
        t0 = time.perf_counter()
        for i, e in enumerate(e for e in events[1:] if e.type == "response.submitted"):
            payload = dict(e.payload, submitted_at=isoformat(utcnow()))
            bus.publish(
                settings.topics.responses,
                Envelope(type=e.type, key=e.key, producer="bench", payload=payload),
            )
            delay = t0 + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sent = i + 1
        deadline = time.monotonic() + 120
        with app.app_context():
            while time.monotonic() < deadline:
                f = releases.freshness(CID)
                # Events already in the log when the consumer joined are counted as replayed.
                if f["responses"] + f["replayed"] >= sent:
                    break
                time.sleep(0.5)
        print(
            f"[freshness] Apache Kafka + consumer + document store, {sent} responses at {rate:g}/s: counted "
            f"{f['responses']} live and {f['replayed']} replayed, p50 {f['p50_seconds']}s, "
            f"p95 {f['p95_seconds']}s "
            f"(freshness histogram observations during this run: "
            f"{sum(b.get() for b in handlers.FRESHNESS._buckets) - observed_before:.0f})"
        )
    finally:
        runtime.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--rebuild", default="100000,1000000")
    parser.add_argument(
        "--handler-sample",
        type=int,
        default=int(os.environ.get("BENCH_HANDLER_SAMPLE", "2000")),
        help="events through the real handlers writing to the store (env BENCH_HANDLER_SAMPLE)",
    )
    parser.add_argument(
        "--broker", default="100000,1000000", help="comma list of sizes replayed through Kafka"
    )
    parser.add_argument(
        "--rebuild-with-writes",
        default=os.environ.get("BENCH_REBUILD_WITH_WRITES", "5000"),
        help="comma list of sizes rebuilt through Kafka with real writes to the document store "
        "(env BENCH_REBUILD_WITH_WRITES, e.g. 100000,1000000)",
    )
    parser.add_argument("--freshness", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--skip", default="", help="comma list of release,rebuild,freshness")
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    skip = set(args.skip.split(","))
    if "release" not in skip:
        release_pipeline(args.responses)
    if {"rebuild", "freshness"} <= skip:
        return
    import tempfile

    from deploy.servers import local_servers

    global SERVERS  # noqa: PLW0603 the servers are started once and shared by every benchmark
    with local_servers(
        Path(tempfile.mkdtemp(prefix="voices-aggregation-bench-")),
        os.environ.get("MONGODB_URI"),
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
    ) as (bootstrap, mongodb_uri):
        SERVERS = Servers(bootstrap, mongodb_uri)
        if "rebuild" not in skip:
            rebuild_bench(
                [int(x) for x in args.rebuild.split(",") if x],
                [int(x) for x in args.broker.split(",") if x],
                args.handler_sample,
            )
            for n in (int(x) for x in args.rebuild_with_writes.split(",") if x):
                rebuild_with_writes(n)
        if "freshness" not in skip:
            freshness_bench(args.freshness, args.rate)
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
