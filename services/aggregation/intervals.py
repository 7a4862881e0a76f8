"""What a reader can work out about hidden figures: exact bounds by linear and integer programming.

The reader's model of a snapshot (pure domain, no storage):

* every figure is a `CellKey`; a published figure is a constant, a hidden
  one an unknown;
* every line of every table is a relation between its cells and its margin
  (`reader_relations`): "cells add up to the margin" when the varying
  question has one answer per person, and for a multiple-choice question
  the relations that do hold (each option at most the margin, every person
  in at least one category, at most all options each);
* a hidden figure holds at least one person: zeros are always published, so
  a hidden mark tells the reader exactly that and nothing more.

`figure_bounds` gives, for every hidden figure, the smallest and largest
integer value consistent with all of this (the feasibility interval an
attacker with a linear or integer programming solver obtains).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import highspy
import numpy as np

from services.aggregation.projection import DECLINED, SKIPPED
from services.aggregation.tables import CellKey, Tables

# Lower bound of a hidden figure: zeros are never hidden (see the module docstring).
HIDDEN_AT_LEAST = 1
_TOL = 1e-6


@dataclass(frozen=True)
class Relation:
    """A homogeneous linear relation over figures: sum(coef * figure) == 0, or <= 0."""

    coefficients: Mapping[CellKey, int]
    equality: bool


def _key(pairs: Iterable[tuple[str, str]]) -> CellKey:
    return tuple(sorted(pairs))


def reader_relations(tables: Tables) -> list[Relation]:
    """Every relation between the figures of `tables` that holds for any data a reader could assume.

    One group per shape, per question of the shape, per combination of the
    other questions' categories (the lines of the linked tables).
    """
    relations: list[Relation] = []
    for shape in tables.shapes():
        for q in shape:
            rest = [s for s in shape if s != q]
            axis = tables.axes[q]
            for fixed in product(*(tables.axes[s].categories for s in rest)):
                f = list(zip(rest, fixed, strict=True))
                margin = _key(f)
                cells = {c: _key(f + [(q, c)]) for c in axis.categories}
                relations.extend(_line_relations(cells, margin, axis.type == "multiple_choice"))
    return relations


def _line_relations(
    cells: Mapping[str, CellKey], margin: CellKey, multiple: bool
) -> list[Relation]:
    if not multiple:
        coefficients = dict.fromkeys(cells.values(), 1)
        coefficients[margin] = coefficients.get(margin, 0) - 1
        return [Relation(coefficients, True)]
    options = [key for c, key in cells.items() if c not in (DECLINED, SKIPPED)]
    reserved = [key for c, key in cells.items() if c in (DECLINED, SKIPPED)]
    n = len(options)
    out = [
        Relation({key: 1, margin: -1}, False) for key in cells.values()
    ]  # one person counts once per cell
    everyone = dict.fromkeys(cells.values(), -1)
    everyone[margin] = 1
    out.append(Relation(everyone, False))  # everybody is in at least one category
    # A person who declined or skipped ticked no option; anyone else ticked at most all n.
    at_most = dict.fromkeys(options, 1)
    at_most.update(dict.fromkeys(reserved, n))
    at_most[margin] = -n
    out.append(Relation(at_most, False))
    return out


class InconsistentFigures(Exception):
    """The published figures contradict the relations: a bug, never a property of the data."""


def figure_bounds(
    relations: Sequence[Relation],
    values: Mapping[CellKey, int],
    hidden: Iterable[CellKey],
    only: Iterable[CellKey] | None = None,
    enough: int | None = None,
) -> dict[CellKey, tuple[int, float]]:
    """Integer bounds (low, high) of every hidden figure (or of those in `only`); high may be inf.

    Published figures are `values[key]` (0 when absent). The problem splits
    into independent groups of hidden figures linked by some relation; each
    group is one linear program per bound, and a bound whose optimum is not
    integral is solved again as an integer program.

    With `enough`, `values` must also hold the true values of the hidden
    figures (they are one solution), and a figure's range is reported as
    soon as solutions already found reach `enough` apart: (low, high) are
    then values it can take, not its extremes. Every whole-number solution
    met on the way counts for every figure of the group, so most figures
    need no program of their own. Raises InconsistentFigures when no
    assignment satisfies the relations.
    """
    hidden_set = set(hidden)
    wanted = hidden_set if only is None else set(only) & hidden_set
    rows: list[tuple[dict[CellKey, int], float, bool]] = []
    parent: dict[CellKey, CellKey] = {k: k for k in hidden_set}

    def find(x: CellKey) -> CellKey:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for rel in relations:
        unknown: dict[CellKey, int] = {}
        constant = 0
        for key, coef in rel.coefficients.items():
            if not coef:
                continue
            if key in hidden_set:
                unknown[key] = unknown.get(key, 0) + coef
            else:
                constant += coef * int(values.get(key, 0))
        unknown = {k: c for k, c in unknown.items() if c}
        if not unknown:
            if (rel.equality and constant != 0) or (not rel.equality and constant > 0):
                raise InconsistentFigures("published figures break a table relation")
            continue
        rows.append((unknown, float(-constant), rel.equality))
        first, *others = unknown
        for o in others:
            parent[find(o)] = find(first)

    groups: dict[CellKey, list[CellKey]] = defaultdict(list)
    for key in sorted(hidden_set):
        groups[find(key)].append(key)
    rows_of: dict[CellKey, list[int]] = defaultdict(list)
    for i, (unknown, _, _) in enumerate(rows):
        rows_of[find(next(iter(unknown)))].append(i)

    out: dict[CellKey, tuple[int, float]] = {}
    for root, members in groups.items():
        targets = [k for k in members if k in wanted]
        if targets:
            truth = [values.get(k, 0) for k in members] if enough is not None else None
            out.update(
                _group_bounds(
                    members, [rows[i] for i in rows_of.get(root, ())], targets, truth, enough
                )
            )
    return out


def _group_bounds(
    members: list[CellKey],
    rows: list[tuple[dict[CellKey, int], float, bool]],
    targets: list[CellKey],
    truth: list[int] | None,
    enough: int | None,
) -> dict[CellKey, tuple[int, float]]:
    if not rows:
        return dict.fromkeys(targets, (HIDDEN_AT_LEAST, math.inf))
    index = {k: i for i, k in enumerate(members)}
    # Smallest and largest value each figure takes in the whole-number solutions found so far.
    seen_low = np.array(truth, dtype=float) if truth is not None else np.full(len(members), np.inf)
    seen_high = (
        np.array(truth, dtype=float) if truth is not None else np.full(len(members), -np.inf)
    )
    linear = _model(rows, index, integer=False)
    integer = None  # built when a bound is fractional
    out: dict[CellKey, tuple[int, float]] = {}
    for key in targets:
        j = index[key]
        ends = {}
        for sense in (highspy.ObjSense.kMaximize, highspy.ObjSense.kMinimize):
            if enough is not None and seen_high[j] - seen_low[j] >= enough:
                break
            value, x = _optimum(linear, j, sense)
            if value is not None and abs(value - round(value)) > _TOL:
                # A fractional vertex: whole numbers may not reach the linear bound.
                integer = integer or _model(rows, index, integer=True)
                value, x = _optimum(integer, j, sense)
            if x is not None and np.all(np.abs(x - np.round(x)) <= _TOL):
                seen_low = np.minimum(seen_low, np.round(x))
                seen_high = np.maximum(seen_high, np.round(x))
            ends[sense] = math.inf if value is None else value
            if value is None:
                seen_high[j] = math.inf
        if len(ends) < 2 and enough is not None:
            out[key] = (
                int(seen_low[j]),
                seen_high[j] if math.isinf(seen_high[j]) else int(seen_high[j]),
            )
            continue
        high = ends[highspy.ObjSense.kMaximize]
        low = math.ceil(ends[highspy.ObjSense.kMinimize] - _TOL)
        high = high if math.isinf(high) else math.floor(high + _TOL)
        out[key] = (low, high)
    return out


def _model(rows: Any, index: Any, *, integer: bool) -> highspy.Highs:
    """One solver per group, kept between objectives: each solve starts from the last basis."""
    n = len(index)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, len(rows)
    lp.col_cost_ = np.zeros(n)
    lp.col_lower_ = np.full(n, float(HIDDEN_AT_LEAST))
    lp.col_upper_ = np.full(n, highspy.kHighsInf)
    lp.row_lower_ = np.array([b if equality else -highspy.kHighsInf for _, b, equality in rows])
    lp.row_upper_ = np.array([b for _, b, _ in rows])
    starts, columns, coefficients = [0], [], []
    for unknown, _, _ in rows:
        for key, coef in unknown.items():
            columns.append(index[key])
            coefficients.append(float(coef))
        starts.append(len(columns))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, len(rows)
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = starts, columns, coefficients
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.passModel(lp)
    return solver


def _optimum(
    solver: highspy.Highs, column: int, sense: Any
) -> tuple[float | None, np.ndarray | None]:
    """The optimum of one figure and the solution reaching it, or (None, None) when it has no maximum.

    Raises InconsistentFigures."""
    solver.changeObjectiveSense(sense)
    solver.changeColCost(column, 1.0)
    solver.run()
    status = solver.getModelStatus()
    if status == highspy.HighsModelStatus.kUnknown:
        # Rarely the warm start ends without a verdict; solving from scratch settles it.
        solver.clearSolver()
        solver.run()
        status = solver.getModelStatus()
    x = (
        np.array(solver.getSolution().col_value)
        if status == highspy.HighsModelStatus.kOptimal
        else None
    )
    solver.changeColCost(column, 0.0)
    if x is not None:
        return float(x[column]), x
    unbounded = (
        highspy.HighsModelStatus.kUnbounded,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    )
    if status in unbounded and sense == highspy.ObjSense.kMaximize:
        # "Unbounded or infeasible": the real figures are a solution, so a feasible point exists; check it.
        solver.changeObjectiveSense(highspy.ObjSense.kMinimize)
        solver.run()
        if solver.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            return None, None
    raise InconsistentFigures(
        f"no values fit the published figures ({solver.modelStatusToString(status)})"
    )


# Post-processing of noisy counts must finish; the best whole-number solution found by then is used.
_CONSISTENT_TIME_LIMIT = 60.0


def nearest_consistent_counts(
    relations: Sequence[Relation], keys: Sequence[CellKey], noisy: Mapping[CellKey, int]
) -> dict[CellKey, int]:
    """Non-negative whole numbers, one per key, that satisfy every relation and are closest to `noisy`
    (least total absolute difference): noisy tables that add up. Only a function of the noisy counts,
    so it is post-processing and costs no privacy budget. Within the time limit the best whole-number
    solution found is used (all zeros always fit, so one exists); raises InconsistentFigures if the
    solver found none by then.
    """
    n = len(keys)
    index = {k: i for i, k in enumerate(keys)}
    target = np.array([float(noisy.get(k, 0)) for k in keys])
    rows: list[tuple[list[int], list[float], float, float]] = []
    for rel in relations:
        cols = [index[k] for k in rel.coefficients if rel.coefficients[k]]
        vals = [float(rel.coefficients[k]) for k in rel.coefficients if rel.coefficients[k]]
        rows.append((cols, vals, 0.0 if rel.equality else -highspy.kHighsInf, 0.0))
    for i in range(n):  # t_i >= |x_i - noisy_i|, with t_i the column n + i
        rows.append(([i, n + i], [1.0, -1.0], -highspy.kHighsInf, target[i]))
        rows.append(([i, n + i], [-1.0, -1.0], -highspy.kHighsInf, -target[i]))
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = 2 * n, len(rows)
    lp.col_cost_ = np.concatenate([np.zeros(n), np.ones(n)])
    lp.col_lower_ = np.zeros(2 * n)
    lp.col_upper_ = np.full(2 * n, highspy.kHighsInf)
    lp.row_lower_ = np.array([r[2] for r in rows])
    lp.row_upper_ = np.array([r[3] for r in rows])
    starts, columns, coefficients = [0], [], []
    for cols, vals, _, _ in rows:
        columns.extend(cols)
        coefficients.extend(vals)
        starts.append(len(columns))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = 2 * n, len(rows)
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = starts, columns, coefficients
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n + [highspy.HighsVarType.kContinuous] * n
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("time_limit", _CONSISTENT_TIME_LIMIT)
    solver.passModel(lp)
    solver.run()
    solution = solver.getSolution()
    if not solution.value_valid:
        # Publishing zeros would mislead; the caller refunds the budget and the release can be retried.
        raise InconsistentFigures("no consistent noisy tables were found in time")
    x = solution.col_value
    return {k: max(0, round(x[i])) for k, i in index.items()}
