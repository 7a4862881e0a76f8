"""Released snapshots: shape, digest, exports, and no suppressed value anywhere."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest

from services.aggregation.disclosure import OTHER_VALUES, add_laplace_noise, protect_tables
from services.aggregation.projection import SKIPPED, Contribution
from services.aggregation.snapshots import (
    CSV_COLUMNS,
    build_snapshot,
    snapshot_csv,
    snapshot_csv_rows,
    snapshot_digest,
    snapshot_json,
    verify_snapshot_digest,
)
from services.aggregation.tables import tabulate
from shared.errors import ValidationFailed

QUESTIONS = [
    {"id": "region", "type": "single_choice", "options": ["north", "south"], "dimension": True},
    {"id": "age", "type": "single_choice", "options": ["young", "older"], "dimension": True},
    {
        "id": "support",
        "type": "single_choice",
        "options": ["yes", "no", "unsure"],
        "dimension": False,
    },
    {"id": "years", "type": "number", "options": [], "dimension": False},
]


def people():
    # Answers drawn independently (seeded): regular patterns such as i % 2 and i % 4 make many cells
    # empty, and published empty cells leave little room to protect the rest.
    rng = random.Random(5)
    out = []
    for i in range(240):
        answers = {
            "region": rng.choice(["north", "north", "south"]),
            "age": rng.choice(["young", "older"]),
            "support": rng.choice(["yes", "yes", "yes", "no"]),
            "years": 1234 if i == 7 else rng.randrange(4),
        }
        if i < 3:
            answers["support"] = "unsure"  # 3 people: below k
        out.append(Contribution(f"r{i}", f"p{i}", "c-1", answers))
    return out


def release(tables=None, k=10):
    tables = tables or tabulate(people(), QUESTIONS, consultation_id="c-1")
    return build_snapshot(
        tables,
        protect_tables(tables, k),
        consultation_id="c-1",
        snapshot=1,
        created_at="2024-05-01T12:00:00Z",
    )


def suppressed_entries(node):
    """Every dict in the snapshot that says it is suppressed."""
    if isinstance(node, dict):
        if node.get("suppressed") is True:
            yield node
        for v in node.values():
            yield from suppressed_entries(v)
    elif isinstance(node, list):
        for v in node:
            yield from suppressed_entries(v)


def test_snapshot_has_its_header_and_a_verifiable_digest():
    s = release()
    assert (s["consultation_id"], s["snapshot"], s["created_at"], s["k"]) == (
        "c-1",
        1,
        "2024-05-01T12:00:00Z",
        10,
    )
    assert verify_snapshot_digest(s) and s["digest"] == snapshot_digest(s)
    tampered = json.loads(snapshot_json(s))
    shown = next(
        c
        for q in tampered["questions"]
        for c in q["categories"]
        if not c["suppressed"] and c["value"]
    )
    shown["value"] += 1
    assert not verify_snapshot_digest(tampered)
    later = build_snapshot(
        tabulate(people(), QUESTIONS),
        protect_tables(tabulate(people(), QUESTIONS), 10),
        consultation_id="c-1",
        snapshot=1,
        created_at="2024-05-02T12:00:00Z",
    )
    assert later["digest"] != s["digest"]  # created_at is covered


def test_no_suppressed_value_reaches_the_snapshot_or_its_exports():
    s = release()
    entries = list(suppressed_entries(s))
    assert entries, "the example must have suppressed cells"
    for e in entries:
        assert e.get("value") is None and e.get("percent") is None and e["reason"] == "suppressed"
    support = next(q for q in s["questions"] if q["question_id"] == "support")
    unsure = next(c for c in support["categories"] if c["category"] == "unsure")
    assert unsure == {
        "category": "unsure",
        "value": None,
        "suppressed": True,
        "reason": "suppressed",
        "percent": None,
    }

    rows = list(csv.DictReader(io.StringIO(snapshot_csv(s))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(snapshot_csv_rows(s))
    flagged = [r for r in rows if r["suppressed"] == "true"]
    assert flagged and all(r["value"] == "" and r["reason"] for r in flagged)
    assert all(r["value"] != "" for r in rows if r["suppressed"] == "false")


def test_percentages_are_of_everyone_who_answered_suppressed_cells_included():
    s = release()
    checked = 0
    for question in s["questions"]:
        base = question["contributors"]
        published = [
            c for c in question["categories"] if not c["suppressed"] and c["category"] != SKIPPED
        ]
        if base["suppressed"]:
            assert all(c["percent"] is None for c in question["categories"])
            continue
        checked += 1
        for c in published:
            assert c["percent"] == round(100 * c["value"] / base["value"], 1)
            assert c["percent"] <= 100
        assert all(c["percent"] is None for c in question["categories"] if c["suppressed"])
    assert checked
    # The example's suppressed "unsure" (3 people) stays in the base of "support": its published
    # percentages add up to less than 100.
    support = next(q for q in s["questions"] if q["question_id"] == "support")
    assert sum(c["percent"] or 0 for c in support["categories"]) < 100
    for table in s["crosstabs"]:
        for group in table["groups"]:
            for c in group["cells"]:
                if c["percent"] is not None:
                    assert c["percent"] == round(100 * c["value"] / group["base"]["value"], 1)


def test_a_rare_number_is_never_named():
    s = release()
    text = snapshot_json(s)
    assert "1234" not in text
    years = next(q for q in s["questions"] if q["question_id"] == "years")
    # 1234 is grouped with the next rarest values until the group holds k people
    assert [c["category"] for c in years["categories"]].count(OTHER_VALUES) == 1


def test_json_export_is_the_snapshot():
    s = release()
    assert json.loads(snapshot_json(s)) == s
    assert snapshot_json(s) == snapshot_json(json.loads(snapshot_json(s)))  # canonical


def test_crosstabs_by_one_and_two_dimensions_are_in_the_snapshot():
    s = release()
    by_region = next(
        t for t in s["crosstabs"] if t["question_id"] == "support" and t["dimensions"] == ["region"]
    )
    north = next(g for g in by_region["groups"] if g["categories"] == ["north"])
    in_north = sum(1 for c in people() if c.answers["region"] == "north")
    assert north["total"]["value"] in (in_north, None)  # unless hidden to protect a neighbour
    both = next(t for t in s["crosstabs2"] if t["question_id"] == "support")
    assert (
        both["dimensions"] == ["region", "age"] and len(both["groups"]) == 4 * 4
    )  # incl. _declined/_skipped


def test_k_clamp_is_reported():
    tables = tabulate(people(), QUESTIONS)
    s = build_snapshot(
        tables, protect_tables(tables, 2), consultation_id="c-1", snapshot=2, created_at="t"
    )
    assert (s["k"], s["k_requested"]) == (5, 2) and "raised to 5" in s["k_note"]


def test_differential_privacy_parameters_and_withheld_questions_are_stated():
    noisy = add_laplace_noise(tabulate(people(), QUESTIONS), 1e6)
    s = release(noisy)
    assert s["disclosure"]["differential_privacy"]["epsilon"] == 1e6
    assert [w["question_id"] for w in s["withheld_questions"]] == ["years"]
    assert all(q["question_id"] != "years" for q in s["questions"])
    # A noisy snapshot says what was done to its counts, not the exact-release wording.
    said = s["disclosure"]
    assert "noisy counts of 1 to 9" in said["primary"] and "discrete Laplace" in said["noise"]
    assert "add up" in said["noise"] and "no published figure is an exact count" in said["noise"]
    assert "noise" not in release()["disclosure"]


def test_the_disclosure_statement_states_the_guarantee_and_the_one_mark():
    said = release()["disclosure"]
    assert (
        "span at least 10" in said["complementary"]
        and "every table at once" in said["complementary"]
    )
    assert "'suppressed'" in said["marks"] and "never suppressed" in said["zero_cells"]
    assert "since an earlier snapshot" in said["primary"]


def test_bad_snapshot_number_or_consultation_is_refused():
    tables = tabulate(people(), QUESTIONS, consultation_id="c-1")
    p = protect_tables(tables, 10)
    with pytest.raises(ValidationFailed):
        build_snapshot(tables, p, consultation_id="c-1", snapshot=0, created_at="t")
    with pytest.raises(ValidationFailed):
        build_snapshot(tables, p, consultation_id="c-2", snapshot=1, created_at="t")
