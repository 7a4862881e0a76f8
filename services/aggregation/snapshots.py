"""Released snapshots: the one document policy users see, its digest and its exports.

A snapshot is built only from the `Protection` decided for a consultation's
tables (`Protection.tables`, rare values already grouped), so a suppressed
value cannot reach it: every figure goes through `Protection.cell`. The digest is the SHA-256 of the canonical JSON of the
snapshot without its `digest` field; release.published carries it, so an
auditor can recompute it from an export (`verify_snapshot_digest`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

from services.aggregation.disclosure import OTHER_VALUES, SUPPRESSED, Protection, with_percentages
from services.aggregation.projection import SKIPPED
from services.aggregation.tables import CellKey, QuestionAxis, TableLayout, Tables
from services.aggregation.wording import RESERVED_CATEGORIES, category_text, question_text
from shared.errors import ValidationFailed

SNAPSHOT_FORMAT = 1
CSV_COLUMNS = (
    "table",
    "question_id",
    "dimension_1",
    "category_1",
    "dimension_2",
    "category_2",
    "category",
    "value",
    "percent",
    "suppressed",
    "reason",
    # The same figures in words (the language asked for, else the first the release has),
    # then what the whole release is: the same on every line, so each line reads on its own.
    "question",
    "category_label",
    "dimension_1_label",
    "category_1_label",
    "dimension_2_label",
    "category_2_label",
    "percent_base",
    "meaning",
    "k",
    "released_at",
    "noise_added",
    "epsilon",
)


def canonical_json(document: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, UTF-8 text: the bytes the digest is taken of."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def snapshot_digest(snapshot: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of `snapshot` without its `digest` field."""
    body = {k: v for k, v in snapshot.items() if k != "digest"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def verify_snapshot_digest(snapshot: Mapping[str, Any]) -> bool:
    """True when the snapshot's `digest` matches its content."""
    return snapshot.get("digest") == snapshot_digest(snapshot)


def _hidden_cell() -> dict[str, Any]:
    return {"value": None, "suppressed": True, "reason": SUPPRESSED}


def _cells_for(
    axis: QuestionAxis, protection: Protection, fixed: Sequence[tuple[str, str]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One line of a table along `axis` (the other questions fixed), with percentages, and the
    base of those percentages.

    Rare data-driven values are one `_other_values` category already
    (`disclosure.group_rare_values`), so the export never names a rare
    answer; `_skipped` is shown but is not in the percentage base (those
    people did not answer this question). The base is everyone else on the line, suppressed
    cells included: the line's total less `_skipped`, published only when both are.
    """
    cells = [
        {"category": c, **protection.cell(tuple(sorted([*fixed, (axis.id, c)])))}
        for c in axis.categories
    ]
    skipped_at = [i for i, c in enumerate(cells) if c["category"] == SKIPPED]
    base = _answered(
        protection.cell(tuple(sorted(fixed))),
        cells[skipped_at[0]] if skipped_at else {"value": 0, "suppressed": False},
        protection.k.k,
    )
    return with_percentages(
        cells, None if base["suppressed"] else base["value"], exclude=skipped_at
    ), base


def _answered(total: Mapping[str, Any], skipped: Mapping[str, Any], k: int) -> dict[str, Any]:
    """People of a line who answered: total less skipped, hidden when either is, or when the
    difference is below k (derivable from the two, but a snapshot never prints a count below k)."""
    if total["suppressed"] or skipped["suppressed"]:
        return _hidden_cell()
    answered = total["value"] - skipped["value"]
    if 0 < answered < k:
        return _hidden_cell()
    return {"value": answered, "suppressed": False, "reason": None}


def _question_result(tables: Tables, protection: Protection, layout: TableLayout) -> dict[str, Any]:
    axis = tables.axes[layout.question]
    categories, contributors = _cells_for(axis, protection, ())
    result: dict[str, Any] = {
        "question_id": axis.id,
        "type": axis.type,
        "total": protection.cell(()),
        "contributors": contributors,
        "categories": categories,
    }
    release = protection.numeric.get(axis.id)
    if release is not None:
        if release.published and release.sum is not None:
            result["numeric"] = {
                "count": release.count,
                "sum": round(release.sum, 6),
                "mean": None if release.mean is None else round(release.mean, 4),
                "suppressed": False,
                "reason": None,
            }
        else:
            result["numeric"] = {
                "count": None,
                "sum": None,
                "mean": None,
                "suppressed": release.reason is not None,
                "reason": None if release.reason is None else SUPPRESSED,
            }
    return result


def _crosstab(tables: Tables, protection: Protection, layout: TableLayout) -> dict[str, Any]:
    axis = tables.axes[layout.question]
    dim_axes = [tables.axes[d] for d in layout.dimensions]
    groups = []
    for combo in product(*(a.categories for a in dim_axes)):
        fixed = list(zip(layout.dimensions, combo, strict=True))
        cells, base = _cells_for(axis, protection, fixed)
        groups.append(
            {
                "categories": list(combo),
                "total": protection.cell(tuple(sorted(fixed))),
                "base": base,
                "cells": cells,
            }
        )
    return {
        "question_id": axis.id,
        "dimensions": list(layout.dimensions),
        "groups": groups,
        "total": protection.cell(()),
    }


def disclosure_statement(protection: Protection) -> dict[str, Any]:
    """What was done to the figures of a snapshot, in words a policy reader can check."""
    k = protection.k.k
    noisy = protection.tables.privacy
    basis = "noisy counts" if noisy else "counts"
    statement: dict[str, Any] = {
        "primary": f"{basis} of 1 to {k - 1} are suppressed, and so is every figure that moved by 1 to {k - 1} "
        "since an earlier snapshot of this consultation published it",
        "complementary": "further figures are suppressed until, for every suppressed figure, the whole numbers "
        "consistent with all published figures of this snapshot (cells, margins and totals of "
        f"every table at once) span at least {k}",
        "marks": "every suppressed figure carries the same reason, 'suppressed'; it says nothing of the value "
        "except that it is at least 1",
        "zero_cells": "published as 0; never suppressed",
        "grouped_values": f"rare answers to number, date and open rating questions are grouped as {OTHER_VALUES} "
        f"until the group holds at least {k} people; their labels are not shown",
        "numeric_summaries": "count, sum and mean are published only when every value of the question is "
        "published and none is grouped",
        "percentages": "of every counted person who answered the question (its base: the line's "
        "total less _skipped, suppressed cells included); none where the base itself is suppressed",
        "differential_privacy": dict(noisy) if noisy else None,
        "noise_added": bool(noisy),
        "epsilon": noisy["epsilon"] if noisy else None,
        # What each mark in the figures means, for readers of the exports.
        "mark_meanings": {
            SUPPRESSED: f"hidden: either 1 to {k - 1} people, or hidden so that another hidden "
            "figure cannot be worked out from the published ones; never 0",
            **RESERVED_CATEGORIES,
        },
    }
    if noisy:
        statement["noise"] = (
            f"every count carries discrete Laplace noise (epsilon {noisy['epsilon']}, scale {noisy['scale']:g}); "
            "the noisy counts are then replaced by the closest non-negative whole numbers for which every table's "
            "cells add up to its published margins and totals, before suppression; no published figure is an "
            "exact count, and the budget is spent once for the whole snapshot"
        )
    return statement


def published_figures(snapshot: Mapping[str, Any]) -> dict[CellKey, int]:
    """Every figure a snapshot document publishes, by cell key (suppressed ones left out).

    What a later release compares itself with (`disclosure.protect_tables`, `earlier`).
    """
    out: dict[CellKey, int] = {}

    def put(pairs: Any, cell: Any) -> None:
        if not cell.get("suppressed") and cell.get("value") is not None:
            out[tuple(sorted(pairs))] = int(cell["value"])

    put((), snapshot["contributors"])
    for q in snapshot["questions"]:
        put((), q["total"])
        for cell in q["categories"]:
            put([(q["question_id"], cell["category"])], cell)
    for kind in ("crosstabs", "crosstabs2"):
        for t in snapshot[kind]:
            for g in t["groups"]:
                fixed = list(zip(t["dimensions"], g["categories"], strict=True))
                put(fixed, g["total"])
                for cell in g["cells"]:
                    put(fixed + [(t["question_id"], cell["category"])], cell)
    return out


def build_snapshot(
    tables: Tables,
    protection: Protection,
    *,
    consultation_id: str,
    snapshot: int,
    created_at: str,
    wording: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The snapshot document (plain dict, JSON-ready) with its digest.

    `tables` are those given to `protect_tables` (their consultation is
    checked); the figures come from `protection.tables`, where rare values
    are grouped.

    consultation id, snapshot number, created_at (give an ISO-8601 UTC
    string; it is part of the digest), the k in force, per-question results,
    cross-tabs by one and by two dimensions, what was withheld and why, and
    the disclosure method (with the differential-privacy parameters when the
    tables are noisy), and `wording` (`wording.wording_from_published`: the
    title, question wording and option labels in every language) frozen as they
    were at release, under the digest. Raises ValidationFailed for a non-positive snapshot
    number or tables of another consultation.
    """
    if isinstance(snapshot, bool) or not isinstance(snapshot, int) or snapshot < 1:
        raise ValidationFailed(
            "snapshot numbers start at 1", errors={"snapshot": ["must be a positive integer"]}
        )
    if tables.consultation_id not in (None, consultation_id):
        raise ValidationFailed(
            "tables belong to another consultation",
            errors={"consultation_id": ["does not match the tables"]},
        )
    tables = protection.tables
    questions, crosstabs, crosstabs2 = [], [], []
    for layout in tables.layouts:
        if layout.kind == "question":
            questions.append(_question_result(tables, protection, layout))
        elif layout.kind == "crosstab":
            crosstabs.append(_crosstab(tables, protection, layout))
        else:
            crosstabs2.append(_crosstab(tables, protection, layout))
    document: dict[str, Any] = {
        "format": SNAPSHOT_FORMAT,
        "consultation_id": consultation_id,
        "snapshot": snapshot,
        "created_at": created_at,
        "k": protection.k.k,
        "k_requested": protection.k.requested,
        "k_note": protection.k.note,
        "contributors": protection.cell(()),
        "disclosure": disclosure_statement(protection),
        "questions": questions,
        "crosstabs": crosstabs,
        "crosstabs2": crosstabs2,
        "withheld_questions": [
            {"question_id": q, "reason": r} for q, r in sorted(tables.withheld.items())
        ],
        "wording": dict(wording)
        if wording
        else {"survey_version": 0, "languages": [], "title": {}, "questions": {}},
    }
    document["digest"] = snapshot_digest(document)
    return document


def snapshot_json(snapshot: Mapping[str, Any]) -> str:
    """The JSON export: canonical JSON of the whole snapshot, digest included."""
    return canonical_json(snapshot)


def _row(
    table: str,
    question: str,
    cell: Mapping[str, Any],
    category: str,
    dims: Sequence[str] = (),
    dim_cats: Sequence[str] = (),
    *,
    context: Mapping[str, Any],
    base: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    d = list(dims) + ["", ""]
    c = list(dim_cats) + ["", ""]
    value = cell.get("value")
    pct = cell.get("percent")
    wording, language = context["wording"], context["language"]
    meanings = context["meanings"]
    reason = cell.get("reason") or ""

    def label(question_id: str, category_id: str) -> str:
        if not question_id:
            return ""
        return category_text(wording, question_id, category_id, language)

    return {
        "table": table,
        "question_id": question,
        "dimension_1": d[0],
        "category_1": c[0],
        "dimension_2": d[1],
        "category_2": c[1],
        "category": category,
        # A suppressed cell is an empty field plus the flag, never a number.
        "value": "" if cell.get("suppressed") or value is None else str(value),
        "percent": "" if pct is None else f"{pct:.1f}",
        "suppressed": "true" if cell.get("suppressed") else "false",
        "reason": reason,
        "question": question_text(wording, question, language),
        "category_label": label(question, category) if table != "numeric" else category,
        "dimension_1_label": question_text(wording, d[0], language) if d[0] else "",
        "category_1_label": label(d[0], c[0]),
        "dimension_2_label": question_text(wording, d[1], language) if d[1] else "",
        "category_2_label": label(d[1], c[1]),
        "percent_base": ""
        if pct is None or base is None or base.get("value") is None
        else str(base["value"]),
        "meaning": "; ".join(m for m in (meanings.get(category), meanings.get(reason)) if m),
        **context["release"],
    }


def _csv_context(snapshot: Mapping[str, Any], language: str) -> dict[str, Any]:
    wording = snapshot.get("wording") or {}
    disclosure = snapshot.get("disclosure") or {}
    noisy = disclosure.get("differential_privacy")
    epsilon = noisy.get("epsilon") if isinstance(noisy, Mapping) else None
    return {
        "wording": wording,
        "language": language,
        "meanings": dict(disclosure.get("mark_meanings") or RESERVED_CATEGORIES),
        "release": {
            "k": str(snapshot.get("k", "")),
            "released_at": str(snapshot.get("created_at", "")),
            "noise_added": "true" if noisy else "false",
            "epsilon": "" if epsilon is None else str(epsilon),
        },
    }


def snapshot_csv_rows(snapshot: Mapping[str, Any], language: str = "en") -> list[dict[str, str]]:
    """One flat row per published or suppressed figure, columns `CSV_COLUMNS`.

    Suppressed figures have an empty `value`, `suppressed` "true", the reason and its meaning.
    Labels are in `language` where the release has it, else in the first language it has.
    """
    ctx = _csv_context(snapshot, language)
    rows: list[dict[str, str]] = []
    for q in snapshot["questions"]:
        qid = q["question_id"]
        base = q.get("contributors")
        rows.append(_row("question", qid, q["total"], "_total", context=ctx))
        rows.append(_row("question", qid, q["contributors"], "_contributors", context=ctx))
        rows.extend(
            _row("question", qid, cell, cell["category"], context=ctx, base=base)
            for cell in q["categories"]
        )
        num = q.get("numeric")
        if num is not None:
            for stat in ("count", "sum", "mean"):
                rows.append(
                    _row(
                        "numeric",
                        qid,
                        {
                            "value": num[stat],
                            "suppressed": num["suppressed"],
                            "reason": num["reason"],
                        },
                        stat,
                        context=ctx,
                    )
                )
    for kind, table in (("crosstabs", "crosstab"), ("crosstabs2", "crosstab2")):
        for t in snapshot[kind]:
            for g in t["groups"]:
                rows.append(
                    _row(
                        table,
                        t["question_id"],
                        g["total"],
                        "_total",
                        t["dimensions"],
                        g["categories"],
                        context=ctx,
                    )
                )
                rows.extend(
                    _row(
                        table,
                        t["question_id"],
                        cell,
                        cell["category"],
                        t["dimensions"],
                        g["categories"],
                        context=ctx,
                        base=g.get("base"),
                    )
                    for cell in g["cells"]
                )
    return rows


def snapshot_csv(snapshot: Mapping[str, Any], language: str = "en") -> str:
    """The CSV export (header + `snapshot_csv_rows`), RFC 4180 line endings."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(snapshot_csv_rows(snapshot, language))
    return buf.getvalue()
