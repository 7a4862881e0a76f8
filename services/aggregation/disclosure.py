"""Disclosure control: nothing leaves aggregation without passing through here.

Model
-----
All tables of a snapshot are one linked system (see `projection`): every
figure is a `CellKey`, and each line of each table is an equation
"sum of the cells of the line = its margin" (`_skipped` and `_declined` make
the lines add up over all contributors). An analyst knows every published
value and every such equation. A suppressed cell is *derivable* when the
equations pin it to one value, i.e. when its unit vector lies in the row
space of the equations restricted to the suppressed unknowns.

Steps (`protect_tables`):

1. primary suppression: every figure with 0 < contributors < k
   (`below_minimum`), margins and the overall total included;
2. complementary suppression per table (1-D tables with their total, 2-D
   tables with both margins and the total, and every 2-D slice of a
   question x dimension x dimension table): a table with margins is a
   bipartite graph (row nodes + a total-row node, column nodes + a
   total-column node; a cell, margin or total is an edge). Over the reals, a
   suppressed figure is derivable from its table exactly when its edge is a
   bridge of the graph of suppressed edges, so each bridge gets the cheapest
   path of extra suppressions that closes a cycle through it (Dijkstra:
   fewest coarser figures first, then the smallest total of contributors).
   For a 1-D table this is the classic "suppress the next smallest cell (or
   the total)", for a 2-D table the classic "two suppressions in every
   line", minus its known hole (a bridge between two protected blocks);
3. a figure shared by several tables has one status, so steps 2 repeat over
   all tables until nothing changes;
4. an exact audit of the whole linked system (Gaussian elimination over the
   integers modulo the prime 2^61-1) catches what table-by-table protection
   cannot see (3-D combinations, links between tables; it does happen, see
   the tests); a derivable figure gets one more suppression in one of its
   lines and steps 2-4 repeat;
5. numeric summaries (count, sum, mean) add two equations; they are
   published only if the audit shows that no suppressed figure becomes
   derivable with them.

Zero cells are published as 0 and not used as complementary suppressions:
a zero has no contributor to re-identify, and a suppressed zero protects
little (its neighbour's interval would end exactly at its true value). The
exception is a last resort: in sparse, mostly suppressed tables the
published zeros can be what pins a figure, and when nothing non-zero is left
to close the gap (Dijkstra counts zeros before anything else; the audit
looks for a non-zero figure in the lines first) a zero is suppressed, reason
"complementary", rather than leaving the figure derivable. In the benchmark
data this hides 11 zeros at 300 responses, 3 at 3,000, none at 100,000.
Caveat stated on purpose: a published 0 beside a published cell can show
that everybody in a group gave the same answer (group attribute
disclosure); the k-threshold does not cover that, and neither does any
suppression of zeros short of suppressing most sparse tables.

Guarantee and its limits: no suppressed figure is *uniquely determined* by
the published figures and the table equations (over the reals). Not
covered: intervals are not widened to a protection level, and integer and
non-negativity reasoning can narrow them; `reason` itself tells an analyst
that a "below_minimum" cell is between 1 and k-1 and a "complementary" one
is not. Multiple-choice tables do not add up (one person in several
cells); they get the same treatment, which is conservative.

Differential privacy (optional): `spend_privacy_budget` then
`add_laplace_noise` (OpenDP discrete Laplace on every count, scale =
sensitivity / epsilon), then the same suppression on the noisy counts, which
is post-processing and costs no extra epsilon.
"""
from __future__ import annotations

import heapq
import math
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import combinations, product
from typing import Any, Iterable, Mapping, Sequence

from services.aggregation.projection import (
    DECLINED,
    SKIPPED,
    CellKey,
    Tables,
)
from shared.errors import Conflict, ValidationFailed

DEFAULT_MIN_CELL_SIZE = 10
FLOOR_MIN_CELL_SIZE = 5

BELOW_MINIMUM = "below_minimum"
COMPLEMENTARY = "complementary"

# A Mersenne prime: exact elimination over GF(P) is fast with Python ints,
# and for 0/±1 table equations its rank equals the rank over the rationals
# except for determinants divisible by P, which these small systems do not reach.
_P = (1 << 61) - 1


# ---- k ---------------------------------------------------------------------

@dataclass(frozen=True)
class MinimumCellSize:
    """The k in force, what was asked for, and why they differ."""

    k: int
    requested: int | None
    note: str | None = None


def effective_min_cell_size(requested: Any) -> MinimumCellSize:
    """The minimum number of contributors per published figure.

    None means the default (10); anything below 5 is raised to 5 and the
    note says so. Raises ValidationFailed for a non-integer.
    """
    if requested is None:
        return MinimumCellSize(DEFAULT_MIN_CELL_SIZE, None, f"no minimum set: default {DEFAULT_MIN_CELL_SIZE} used")
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise ValidationFailed("the minimum cell size must be an integer",
                               errors={"min_cell_size": ["must be an integer"]})
    if requested < FLOOR_MIN_CELL_SIZE:
        return MinimumCellSize(FLOOR_MIN_CELL_SIZE, requested,
                               f"minimum cell size {requested} raised to {FLOOR_MIN_CELL_SIZE}, the platform floor")
    return MinimumCellSize(requested, requested)


# ---- result ----------------------------------------------------------------

@dataclass(frozen=True)
class NumericRelease:
    """Whether a question's count/sum/mean may be published, and the values if so."""

    published: bool
    reason: str | None
    count: int | None = None
    sum: float | None = None
    mean: float | None = None


@dataclass(frozen=True)
class Protection:
    """The suppression decision for every figure of a snapshot.

    suppressed: CellKey -> reason ("below_minimum" | "complementary"); any
    key not in it is published with `values[key]` (0 when absent).
    hidden_labels: question id -> categories whose very label must not be
    shown (data-driven categories of cells below k).
    """

    k: MinimumCellSize
    values: Mapping[CellKey, int]
    suppressed: Mapping[CellKey, str]
    numeric: Mapping[str, NumericRelease]
    hidden_labels: Mapping[str, frozenset[str]]
    audit_rounds: int = 0

    def cell(self, key: CellKey) -> dict[str, Any]:
        """The published form of one figure: {value|None, suppressed, reason}; never a suppressed value."""
        reason = self.suppressed.get(key)
        if reason is not None:
            return {"value": None, "suppressed": True, "reason": reason}
        return {"value": int(self.values.get(key, 0)), "suppressed": False, "reason": None}


def with_percentages(cells: Sequence[dict[str, Any]], exclude: Iterable[int] = ()) -> list[dict[str, Any]]:
    """Copies of `cells` with `percent` = value / sum of the PUBLISHED values (one decimal).

    Suppressed cells, and the positions in `exclude` (e.g. `_skipped`), get
    None and do not enter the base: a percentage must never let one work
    back to a suppressed value.
    """
    skip = set(exclude)
    base = sum(c["value"] for i, c in enumerate(cells) if i not in skip and not c["suppressed"])
    out = []
    for i, c in enumerate(cells):
        pct = None
        if base > 0 and i not in skip and not c["suppressed"]:
            pct = round(100.0 * c["value"] / base, 1)
        out.append({**c, "percent": pct})
    return out


# ---- structures (tables with margins) as graphs ----------------------------

@dataclass(frozen=True)
class _Edge:
    u: Any
    v: Any
    key: CellKey


@dataclass(frozen=True)
class _Structure:
    edges: tuple[_Edge, ...]
    interior_len: int


def _key(pairs: Iterable[tuple[str, str]]) -> CellKey:
    return tuple(sorted(pairs))


def _structures(tables: Tables) -> list[_Structure]:
    """Every table with margins in the linked system, as multigraphs.

    Shape (q,): two nodes, every category and the total are parallel edges
    (one equation). Larger shapes: for each pair of its questions and each
    combination of the remaining ones, a 2-D table with margins.
    """
    out: list[_Structure] = []
    for shape in tables.shapes():
        if len(shape) == 1:
            (q,) = shape
            edges = [_Edge("u", "v", ((q, c),)) for c in tables.axes[q].categories]
            edges.append(_Edge("u", "v", ()))
            out.append(_Structure(tuple(edges), 1))
            continue
        for r, c in combinations(shape, 2):
            rest = [q for q in shape if q not in (r, c)]
            for fixed in product(*(tables.axes[q].categories for q in rest)):
                f = list(zip(rest, fixed))
                edges = []
                for x in tables.axes[r].categories:
                    for y in tables.axes[c].categories:
                        edges.append(_Edge(("r", x), ("c", y), _key(f + [(r, x), (c, y)])))
                    edges.append(_Edge(("r", x), "C*", _key(f + [(r, x)])))
                for y in tables.axes[c].categories:
                    edges.append(_Edge("R*", ("c", y), _key(f + [(c, y)])))
                edges.append(_Edge("R*", "C*", _key(f)))
                out.append(_Structure(tuple(edges), len(shape)))
    return out


def _connected_without(edges: Sequence[_Edge], skip: int, start: Any, goal: Any) -> bool:
    adj: dict[Any, list[Any]] = defaultdict(list)
    for i, e in enumerate(edges):
        if i != skip:
            adj[e.u].append(e.v)
            adj[e.v].append(e.u)
    seen, queue = {start}, deque([start])
    while queue:
        n = queue.popleft()
        if n == goal:
            return True
        for m in adj[n]:
            if m not in seen:
                seen.add(m)
                queue.append(m)
    return False


def _edge_cost(e: _Edge, value: int, interior_len: int) -> tuple[int, ...]:
    # Zeros only when nothing else closes the cycle (zero policy). Then
    # coarser figures count how many we suppress (they sit in many tables
    # and cascade); at the finest level the cost is the contributors hidden.
    cost = [0, 0, 0, 0, 0]
    if value <= 0:
        cost[0] = 1
    elif len(e.key) < interior_len:
        cost[1 + len(e.key)] = 1
    else:
        cost[4] = value
    return tuple(cost)


def _cheapest_path(struct: _Structure, skip: int, values: Mapping[CellKey, int],
                   suppressed: Mapping[CellKey, str]) -> list[_Edge] | None:
    """Cheapest path between the ends of edge `skip` not using it; None if there is none.

    Already suppressed edges cost nothing; zero cells only if unavoidable.
    """
    target = struct.edges[skip]
    adj: dict[Any, list[tuple[int, _Edge, Any]]] = defaultdict(list)
    for i, e in enumerate(struct.edges):
        if i == skip:
            continue
        adj[e.u].append((i, e, e.v))
        adj[e.v].append((i, e, e.u))
    zero = (0, 0, 0, 0, 0)
    best: dict[Any, tuple[int, ...]] = {target.u: zero}
    back: dict[Any, tuple[Any, _Edge]] = {}
    heap: list[tuple[tuple[int, ...], int, Any]] = [(zero, 0, target.u)]
    order = {target.u: 0}
    while heap:
        cost, _, node = heapq.heappop(heap)
        if node == target.v:
            path = []
            while node != target.u:
                node, e = back[node]
                path.append(e)
            return path
        if cost > best.get(node, cost):
            continue
        for i, e, other in adj[node]:
            step = zero if e.key in suppressed else _edge_cost(e, values.get(e.key, 0), struct.interior_len)
            new = tuple(a + b for a, b in zip(cost, step))
            if other not in best or new < best[other]:
                best[other] = new
                back[other] = (node, e)
                order.setdefault(other, len(order))
                heapq.heappush(heap, (new, order[other], other))
    return None


def _protect_structure(struct: _Structure, values: Mapping[CellKey, int], suppressed: dict[CellKey, str]) -> bool:
    """Add complementary suppressions until no suppressed edge of this table is a bridge."""
    changed = False
    while True:
        sup_edges = [e for e in struct.edges if e.key in suppressed]
        bridge = None
        for i, e in enumerate(sup_edges):
            if not _connected_without(sup_edges, i, e.u, e.v):
                bridge = e
                break
        if bridge is None:
            return changed
        skip = struct.edges.index(bridge)
        path = _cheapest_path(struct, skip, values, suppressed)
        if path is None:
            # A table with its margins is a connected graph, so this cannot
            # happen; if it ever did, hiding the whole table is the safe answer.
            path = list(struct.edges)
        for e in path:
            if e.key not in suppressed:
                suppressed[e.key] = COMPLEMENTARY
                changed = True


# ---- the exact audit -------------------------------------------------------

def line_equations(tables: Tables) -> list[tuple[list[CellKey], CellKey]]:
    """Every additive relation an analyst can use: (cells of a line, its margin).

    One per shape, per question of the shape, per combination of the
    other questions' categories: sum over the question's categories = margin.
    """
    eqs: list[tuple[list[CellKey], CellKey]] = []
    for shape in tables.shapes():
        for q in shape:
            rest = [s for s in shape if s != q]
            for fixed in product(*(tables.axes[s].categories for s in rest)):
                f = list(zip(rest, fixed))
                eqs.append(([_key(f + [(q, c)]) for c in tables.axes[q].categories], _key(f)))
    return eqs


def _mod(x: Fraction | int) -> int:
    x = Fraction(x)
    return (x.numerator % _P) * pow(x.denominator % _P, -1, _P) % _P


def derivable_figures(equations: Iterable[Mapping[CellKey, Fraction | int]],
                      suppressed: Iterable[CellKey]) -> set[CellKey]:
    """The suppressed keys whose value the equations pin down.

    `equations` are linear forms over keys (coefficients only: the constant
    side does not matter for whether a value is determined). A key is
    determined iff its unit vector is in the row space of the equations
    restricted to the suppressed keys, i.e. iff the reduced row echelon form
    has a row with that key alone.
    """
    unknown = {k: i for i, k in enumerate(sorted(set(suppressed)))}
    pivots: dict[int, dict[int, int]] = {}
    for eq in equations:
        row: dict[int, int] = {}
        for key, coef in eq.items():
            if key in unknown:
                c = _mod(coef)
                if c:
                    j = unknown[key]
                    row[j] = (row.get(j, 0) + c) % _P
        row = {j: c for j, c in row.items() if c}
        if not row:
            continue
        for col in [c for c in row if c in pivots]:
            coef = row.get(col)
            if not coef:
                continue
            for c2, v2 in pivots[col].items():
                nv = (row.get(c2, 0) - coef * v2) % _P
                if nv:
                    row[c2] = nv
                else:
                    row.pop(c2, None)
        if not row:
            continue
        p = min(row)
        inv = pow(row[p], -1, _P)
        row = {j: c * inv % _P for j, c in row.items()}
        # Keep the echelon form reduced so that "a row with one entry" is exact.
        for other in pivots.values():
            coef = other.get(p)
            if coef:
                for c2, v2 in row.items():
                    nv = (other.get(c2, 0) - coef * v2) % _P
                    if nv:
                        other[c2] = nv
                    else:
                        other.pop(c2, None)
        pivots[p] = row
    by_index = {i: k for k, i in unknown.items()}
    return {by_index[p] for p, row in pivots.items() if len(row) == 1}


def _forms(eqs: list[tuple[list[CellKey], CellKey]]) -> list[dict[CellKey, int]]:
    forms = []
    for cells, margin in eqs:
        f: dict[CellKey, int] = {c: 1 for c in cells}
        f[margin] = f.get(margin, 0) - 1
        forms.append(f)
    return forms


def _numeric_forms(tables: Tables, qid: str) -> list[dict[CellKey, Fraction | int]]:
    summary = tables.numeric[qid]
    cats = [c for c in tables.axes[qid].categories if c not in (DECLINED, SKIPPED)]
    count_form = {((qid, c),): 1 for c in cats}
    sum_form = {((qid, c),): Fraction(summary.values[c]) for c in cats}
    return [count_form, sum_form]


# ---- protection ------------------------------------------------------------

def protect_tables(tables: Tables, min_cell_size: MinimumCellSize | int | None) -> Protection:
    """Decide, for every figure of `tables`, whether it is published.

    Returns a `Protection`: no published figure has between 1 and k-1
    contributors, and no suppressed figure can be worked out from the
    published ones and the table equations (see the module docstring for the
    exact guarantee). Deterministic: the same tables give the same decision.
    Raises ValidationFailed for a bad `min_cell_size`.
    """
    k = min_cell_size if isinstance(min_cell_size, MinimumCellSize) else effective_min_cell_size(min_cell_size)
    values = tables.counts
    all_keys = sorted({key for shape in tables.shapes() for key in tables.keys_of_shape(shape)},
                      key=lambda key: (len(key), key))
    suppressed: dict[CellKey, str] = {key: BELOW_MINIMUM for key in all_keys if 0 < values.get(key, 0) < k.k}
    structures = _structures(tables)
    eqs = line_equations(tables)
    forms = _forms(eqs)
    lines_of: dict[CellKey, list[int]] = defaultdict(list)
    for i, (cells, margin) in enumerate(eqs):
        for key in (*cells, margin):
            lines_of[key].append(i)

    rounds = 0
    while True:
        rounds += 1
        changed = True
        while changed:
            changed = False
            for struct in structures:
                changed |= _protect_structure(struct, values, suppressed)
        derivable = derivable_figures(forms, suppressed) if suppressed else set()
        if not derivable:
            break
        for key in sorted(derivable, key=lambda x: (len(x), x)):
            _suppress_one_more(key, eqs, lines_of, values, suppressed)

    numeric: dict[str, NumericRelease] = {}
    extra_forms: list[dict[CellKey, Any]] = []
    for qid in sorted(tables.numeric):
        summary = tables.numeric[qid]
        if summary.count == 0:
            numeric[qid] = NumericRelease(False, None)
            continue
        if summary.count < k.k:
            numeric[qid] = NumericRelease(False, BELOW_MINIMUM)
            continue
        candidate = _numeric_forms(tables, qid)
        if suppressed and derivable_figures(forms + extra_forms + candidate, suppressed):
            numeric[qid] = NumericRelease(False, COMPLEMENTARY)
            continue
        extra_forms.extend(candidate)
        numeric[qid] = NumericRelease(True, None, count=summary.count, sum=summary.sum, mean=summary.mean)

    hidden: dict[str, frozenset[str]] = {}
    for qid, axis in tables.axes.items():
        if axis.data_driven:
            labels = frozenset(c for c in axis.categories
                               if suppressed.get(((qid, c),)) == BELOW_MINIMUM)
            if labels:
                hidden[qid] = labels
    return Protection(k=k, values=dict(values), suppressed=suppressed, numeric=numeric,
                      hidden_labels=hidden, audit_rounds=rounds)


def _suppress_one_more(key: CellKey, eqs: list[tuple[list[CellKey], CellKey]],
                       lines_of: Mapping[CellKey, list[int]], values: Mapping[CellKey, int],
                       suppressed: dict[CellKey, str]) -> None:
    """Add one suppression in a line of a derivable `key`: the finest, smallest published non-zero figure."""
    if key not in suppressed:
        return
    candidates: set[CellKey] = set()
    for i in lines_of.get(key, ()):
        cells, margin = eqs[i]
        candidates.update(c for c in (*cells, margin) if c not in suppressed)
    # Zeros only as a last resort (see the module docstring).
    usable = [c for c in candidates if values.get(c, 0) > 0] or sorted(candidates)
    if not usable:
        return
    choice = min(usable, key=lambda c: (-len(c), values.get(c, 0), c))
    suppressed[choice] = COMPLEMENTARY


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
        return {"consultation_id": self.consultation_id, "epsilon_total": self.epsilon_total,
                "spent": [{"snapshot": s, "epsilon": e} for s, e in self.spent]}


def privacy_budget_from_document(doc: Mapping[str, Any]) -> PrivacyBudget:
    """Read back what `PrivacyBudget.to_document()` stored."""
    return PrivacyBudget(consultation_id=doc["consultation_id"], epsilon_total=float(doc["epsilon_total"]),
                         spent=tuple((int(s["snapshot"]), float(s["epsilon"])) for s in doc.get("spent") or ()))


def spend_privacy_budget(budget: PrivacyBudget, epsilon: float, snapshot: int) -> PrivacyBudget:
    """The budget after a snapshot spends `epsilon`.

    Spending again for a snapshot that already spent returns the budget
    unchanged (a retried release must not pay twice). Raises
    ValidationFailed for epsilon <= 0, Conflict("privacy budget exhausted",
    remaining=..., requested=...) when it would go over.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0 or not math.isfinite(epsilon):
        raise ValidationFailed("epsilon must be a positive number", errors={"epsilon": ["must be > 0"]})
    if any(s == snapshot for s, _ in budget.spent):
        return budget
    # A small tolerance so that spending exactly the rest is allowed despite float sums.
    if budget.epsilon_spent + epsilon > budget.epsilon_total * (1 + 1e-9):
        raise Conflict("privacy budget exhausted", remaining=budget.remaining, requested=epsilon,
                       epsilon_total=budget.epsilon_total, consultation_id=budget.consultation_id)
    return replace(budget, spent=budget.spent + ((snapshot, float(epsilon)),))


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
    gets noise with scale sensitivity/epsilon; results are rounded integers
    clamped at 0 (post-processing). Spend the budget first
    (`spend_privacy_budget`). Raises ValidationFailed for epsilon <= 0.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0 or not math.isfinite(epsilon):
        raise ValidationFailed("epsilon must be a positive number", errors={"epsilon": ["must be > 0"]})
    import opendp.prelude as dp  # imported here: only DP snapshots need it

    dp.enable_features("contrib")
    withheld = {qid: "categories come from the answers; not releasable under differential privacy"
                for qid, axis in tables.axes.items() if axis.data_driven}
    withheld.update({k: v for k, v in tables.withheld.items()})
    layouts = tuple(l for l in tables.layouts if l.question not in withheld and not set(l.dimensions) & set(withheld))
    axes = {qid: a for qid, a in tables.axes.items() if qid not in withheld}
    kept = replace(tables, axes=axes, layouts=layouts, numeric={}, withheld=withheld)
    keys = sorted({key for shape in kept.shapes() for key in kept.keys_of_shape(shape)})
    sensitivity = dp_sensitivity(kept)
    scale = sensitivity / float(epsilon)
    measurement = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale)
    spent = measurement.map(sensitivity)
    if spent > epsilon * (1 + 1e-9):  # OpenDP's own accounting must agree with ours
        raise Conflict("noise calibration does not meet the requested epsilon", requested=epsilon, actual=spent)
    noisy = measurement([int(tables.counts.get(key, 0)) for key in keys])
    counts = {key: max(0, int(v)) for key, v in zip(keys, noisy)}
    privacy = {"mechanism": "discrete Laplace (OpenDP make_laplace, integer counts)", "epsilon": float(epsilon),
               "sensitivity": sensitivity, "scale": scale}
    return replace(kept, counts=counts, privacy=privacy)
