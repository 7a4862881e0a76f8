"""Differential privacy for a release (optional, per consultation): the epsilon budget that
snapshots spend, and OpenDP's discrete Laplace noise on every count, post-processed to
non-negative whole numbers that keep every table relation (which costs no further epsilon)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from services.aggregation.intervals import nearest_consistent_counts, reader_relations
from services.aggregation.projection import DECLINED, SKIPPED
from services.aggregation.tables import Tables
from shared.errors import Conflict, ValidationFailed

# ---- differential privacy --------------------------------------------------


@dataclass(frozen=True)
class PrivacyBudget:
    """A consultation's epsilon budget and what snapshots have spent of it."""

    consultation_id: str
    epsilon_total: float
    spent: tuple[tuple[int, float], ...] = ()  # (snapshot number, epsilon)

    @property
    def epsilon_spent(self) -> float:
        return math.fsum(e for _, e in self.spent)

    @property
    def remaining(self) -> float:
        return max(0.0, self.epsilon_total - self.epsilon_spent)

    def to_document(self) -> dict[str, Any]:
        return {
            "consultation_id": self.consultation_id,
            "epsilon_total": self.epsilon_total,
            "spent": [{"snapshot": s, "epsilon": e} for s, e in self.spent],
        }


def _check_epsilon(epsilon: object) -> None:
    """Raises ValidationFailed unless epsilon is a finite number above 0 (booleans are not)."""
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, (int, float))
        or not epsilon > 0
        or not math.isfinite(epsilon)
    ):
        raise ValidationFailed(
            "epsilon must be a positive number", errors={"epsilon": ["must be > 0"]}
        )


def privacy_budget_from_document(doc: Mapping[str, Any]) -> PrivacyBudget:
    """Read back what `PrivacyBudget.to_document()` stored."""
    return PrivacyBudget(
        consultation_id=doc["consultation_id"],
        epsilon_total=float(doc["epsilon_total"]),
        spent=tuple((int(s["snapshot"]), float(s["epsilon"])) for s in doc.get("spent") or ()),
    )


def spend_privacy_budget(budget: PrivacyBudget, epsilon: float, snapshot: int) -> PrivacyBudget:
    """The budget after snapshot number `snapshot` spends `epsilon`.

    Every snapshot pays for itself: a number that has already spent is a
    Conflict (two releases must never share one charge). Raises
    ValidationFailed for epsilon <= 0, Conflict("privacy budget exhausted",
    remaining=..., requested=...) when it would go over.
    """
    _check_epsilon(epsilon)
    if net_spent(budget.spent).get(snapshot, 0.0) > 0:
        raise Conflict(
            "this snapshot number has already spent privacy budget",
            snapshot=snapshot,
            consultation_id=budget.consultation_id,
        )
    # A small tolerance so that spending exactly the rest is allowed despite float sums.
    if budget.epsilon_spent + epsilon > budget.epsilon_total * (1 + 1e-9):
        raise Conflict(
            "privacy budget exhausted",
            remaining=budget.remaining,
            requested=epsilon,
            epsilon_total=budget.epsilon_total,
            consultation_id=budget.consultation_id,
        )
    return replace(budget, spent=budget.spent + ((snapshot, float(epsilon)),))


def net_spent(spent: Iterable[tuple[int, float]]) -> dict[int, float]:
    """Epsilon per snapshot number after refunds (negative entries of releases that were not stored)."""
    out: dict[int, float] = defaultdict(float)
    for snapshot, epsilon in spent:
        out[snapshot] = math.fsum((out[snapshot], epsilon))
    return {s: e for s, e in out.items() if e > 1e-12}


def dp_sensitivity(tables: Tables) -> int:
    """How many published counts one participant can change (each by at most 1).

    Counts are of distinct contributors and `tabulate` keeps one response per
    participant, so a participant adds 1 to one key per shape, or to up to
    (number of options) keys for each multiple-choice question in the shape.
    Computed from the survey, never from the data.
    """

    def width(qid: str) -> int:
        axis = tables.axes[qid]
        if axis.type == "multiple_choice":
            return max(1, len([c for c in axis.categories if c not in (DECLINED, SKIPPED)]))
        return 1

    return sum(math.prod(width(q) for q in shape) for shape in tables.shapes())


def add_laplace_noise(tables: Tables, epsilon: float) -> Tables:
    """A copy of `tables` whose counts carry discrete Laplace noise (OpenDP), epsilon-DP as a whole.

    Questions whose categories come from the answers (numbers, dates,
    ratings without a declared range) are withheld: publishing which
    categories exist would not be differentially private. Numeric summaries
    are withheld too. Every key of every remaining shape, zeros included,
    gets noise with scale sensitivity/epsilon; the noisy counts are then
    replaced by the closest non-negative integers that satisfy every table
    relation (`intervals.nearest_consistent_counts`, post-processing: cells
    add up to their margins and totals). Spend the budget first
    (`spend_privacy_budget`). Raises ValidationFailed for epsilon <= 0.
    """
    _check_epsilon(epsilon)
    import opendp.prelude as dp  # imported here: only DP snapshots need it

    dp.enable_features("contrib")
    withheld = {
        qid: "categories come from the answers; not releasable under differential privacy"
        for qid, axis in tables.axes.items()
        if axis.data_driven
    }
    withheld.update(dict(tables.withheld.items()))
    layouts = tuple(
        layout
        for layout in tables.layouts
        if layout.question not in withheld and not set(layout.dimensions) & set(withheld)
    )
    axes = {qid: a for qid, a in tables.axes.items() if qid not in withheld}
    kept = replace(tables, axes=axes, layouts=layouts, numeric={}, withheld=withheld)
    keys = sorted({key for shape in kept.shapes() for key in kept.keys_of_shape(shape)})
    sensitivity = dp_sensitivity(kept)
    scale = sensitivity / float(epsilon)
    measurement = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale
    )
    spent = measurement.map(sensitivity)
    if spent > epsilon * (1 + 1e-9):  # OpenDP's own accounting must agree with ours
        raise Conflict(
            "noise calibration does not meet the requested epsilon", requested=epsilon, actual=spent
        )
    noisy = measurement([int(tables.counts.get(key, 0)) for key in keys])
    # Post-processing (no further epsilon): the closest non-negative whole numbers that add up in every table.
    counts = nearest_consistent_counts(
        reader_relations(kept), keys, dict(zip(keys, noisy, strict=True))
    )
    privacy = {
        "mechanism": "discrete Laplace (OpenDP make_laplace, integer counts)",
        "epsilon": float(epsilon),
        "sensitivity": sensitivity,
        "scale": scale,
        "post_processing": "closest non-negative integers (least absolute difference) for which every "
        "table adds up to its margins and totals",
    }
    return replace(kept, counts=counts, privacy=privacy)
