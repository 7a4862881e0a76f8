"""Cross-tab benchmark: tabulate + disclosure control vs pandas groupby on the same counts.

    .venv/bin/python -m benchmarks.crosstab_bench [--responses 100000] [--seed 7] [--k 10]

Generates synthetic responses (3 breakdown dimensions, a single-choice, a
multiple-choice and a rating question, some "prefer not to say" and
skips), then times:

* `tabulate` (`services.aggregation.tabulation`, NumPy; the pure-Python reference
  `tables.tabulate` is timed beside it and must give the same tables): every contributor count the snapshot needs (each question
  alone, by each dimension, by each pair of dimensions, and all margins);
* `protect_tables`: primary + complementary suppression and the exact audit;
* `build_snapshot`: the released document and its digest;
* pandas: one groupby per shape on a one-row-per-participant frame
  (multiple choice exploded), counting the same cells.

It checks that pandas and `tabulate` agree on every non-zero cell, then
prints the figures. Loopback only, bounded in time, no asserts on timing.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from services.aggregation import tables as reference_tables
from services.aggregation.disclosure import protect_tables
from services.aggregation.projection import DECLINED, SKIPPED, Contribution
from services.aggregation.snapshots import build_snapshot
from services.aggregation.tabulation import tabulate

QUESTIONS = [
    {
        "id": "region",
        "type": "single_choice",
        "options": ["north", "south", "east", "west", "centre"],
        "dimension": True,
    },
    {
        "id": "age",
        "type": "single_choice",
        "options": ["u18", "18-25", "26-40", "41+"],
        "dimension": True,
    },
    {
        "id": "gender",
        "type": "single_choice",
        "options": ["woman", "man", "other"],
        "dimension": True,
    },
    {
        "id": "support",
        "type": "single_choice",
        "options": ["enough", "some", "none", "unsure"],
        "dimension": False,
    },
    {
        "id": "needs",
        "type": "multiple_choice",
        "options": ["housing", "legal", "health", "money", "school"],
        "dimension": False,
    },
    {"id": "safety", "type": "rating", "options": [], "dimension": False, "min": 1, "max": 5},
]


def generate(n: int, seed: int) -> list[Contribution]:
    """n synthetic contributions with skewed answers, ~3% declined and ~5% skipped per question."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        answers: dict = {}
        declined = []
        for q in QUESTIONS:
            roll = rng.random()
            if roll < 0.03:
                declined.append(q["id"])
                continue
            if roll < 0.08:
                continue
            if q["type"] == "single_choice":
                opts = q["options"]
                # skewed: the first options are much more common, the last ones rare
                answers[q["id"]] = opts[min(int(rng.expovariate(1.2)), len(opts) - 1)]
            elif q["type"] == "multiple_choice":
                answers[q["id"]] = [o for o in q["options"] if rng.random() < 0.3] or [
                    q["options"][0]
                ]
            else:
                answers[q["id"]] = rng.randint(1, 5)
        out.append(
            Contribution(f"r{i}", f"p{i}", "bench", answers, tuple(declined), 1, "2024-01-01")
        )
    return out


def pandas_counts(contributions: list[Contribution], tables) -> tuple[dict, float, float]:
    """The same contributor counts with pandas: one groupby per shape."""
    import pandas as pd

    t0 = time.perf_counter()
    rows = []
    for c in contributions:
        row = {}
        for q in QUESTIONS:
            qid = q["id"]
            if qid in c.declined:
                row[qid] = [DECLINED] if q["type"] == "multiple_choice" else DECLINED
            elif qid not in c.answers:
                row[qid] = [SKIPPED] if q["type"] == "multiple_choice" else SKIPPED
            else:
                v = c.answers[qid]
                row[qid] = v if q["type"] == "multiple_choice" else str(v)
        rows.append(row)
    df = pd.DataFrame(rows)
    for q in QUESTIONS:
        if q["type"] != "multiple_choice":
            df[q["id"]] = df[q["id"]].astype("category")
    t1 = time.perf_counter()
    counts: dict = {(): len(df)}
    multi = {q["id"] for q in QUESTIONS if q["type"] == "multiple_choice"}
    for shape in tables.shapes():
        if not shape:
            continue
        frame = df[list(shape)]
        for q in shape:
            if q in multi:
                frame = frame.explode(q)
        sizes = frame.groupby(list(shape), observed=True).size()
        for idx, n in sizes.items():
            idx = idx if isinstance(idx, tuple) else (idx,)
            counts[tuple(zip(shape, idx, strict=True))] = int(n)
    t2 = time.perf_counter()
    return counts, t1 - t0, t2 - t1


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)

    t = time.perf_counter()
    contributions = generate(args.responses, args.seed)
    t_gen = time.perf_counter() - t

    t = time.perf_counter()
    tables = tabulate(contributions, QUESTIONS, consultation_id="bench")
    t_tab = time.perf_counter() - t

    t = time.perf_counter()
    reference = reference_tables.tabulate(contributions, QUESTIONS, consultation_id="bench")
    t_reference = time.perf_counter() - t
    same_as_reference = reference.counts == tables.counts and reference.axes == tables.axes

    t = time.perf_counter()
    protection = protect_tables(tables, args.k)
    t_protect = time.perf_counter() - t

    t = time.perf_counter()
    snapshot = build_snapshot(
        tables, protection, consultation_id="bench", snapshot=1, created_at="2024-01-01T00:00:00Z"
    )
    t_snap = time.perf_counter() - t

    pd_counts, t_frame, t_groupby = pandas_counts(contributions, tables)
    ours = {k: v for k, v in tables.counts.items() if v}
    agree = ours == pd_counts

    shapes = tables.shapes()
    n_keys = sum(len(tables.keys_of_shape(s)) for s in shapes)
    print(f"responses                 {args.responses:>10,}")
    print(f"questions / dimensions    {len(QUESTIONS):>10} / {len(tables.dimensions)}")
    print(
        f"tables (layouts)          {len(tables.layouts):>10}   shapes incl. margins: {len(shapes)}"
    )
    print(f"figures (keys, incl. 0)   {n_keys:>10,}   non-zero: {len(ours):,}")
    print(
        f"suppressed                {len(protection.suppressed):>10,}   "
        f"(audit rounds: {protection.audit_rounds}, k={protection.k.k})"
    )
    print(f"generate data             {t_gen:>10.2f} s")
    print(f"tabulate (all counts)     {t_tab:>10.2f} s   (NumPy, services.aggregation.tabulation)")
    print(
        f"reference tabulate        {t_reference:>10.2f} s   (pure Python, tables.tabulate; "
        f"same tables: {same_as_reference})"
    )
    print(f"protect_tables            {t_protect:>10.2f} s")
    print(
        f"build_snapshot + digest   {t_snap:>10.2f} s   ({len(snapshot['questions'])} questions, "
        f"{len(snapshot['crosstabs'])} + {len(snapshot['crosstabs2'])} cross-tabs)"
    )
    print(f"pandas: build frame       {t_frame:>10.2f} s")
    print(f"pandas: groupby counts    {t_groupby:>10.2f} s")
    print(f"counts agree with pandas  {agree!s:>10}")
    print(f"load average              {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not same_as_reference:
        raise SystemExit("the vectorised tables differ from the reference")
    if not agree:
        diff = {k for k in set(ours) | set(pd_counts) if ours.get(k) != pd_counts.get(k)}
        print(f"  {len(diff)} differing keys, e.g. {sorted(diff)[:3]}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
