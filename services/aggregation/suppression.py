"""Complementary suppression within each table, and the exact audit of the linked tables.

A table with margins is a bipartite multigraph whose edges are its figures; a hidden figure can
be derived from its table exactly when its edge is a bridge of the hidden edges, so each bridge
gets the cheapest path of extra suppressions that closes a cycle through it (Dijkstra). The exact
audit (`derivable_figures`) then finds, over every table at once, the hidden figures that the
published ones pin down (Gaussian elimination modulo a prime). `disclosure.protect_tables` uses
both before its interval audit.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations, product
from typing import Any

from services.aggregation.tables import CellKey, Tables

# Why a figure was hidden to protect another one (kept inside the service, never published).
COMPLEMENTARY = "complementary"

# A Mersenne prime: exact elimination over GF(P) is fast with Python ints,
# and for 0/±1 table equations its rank equals the rank over the rationals
# except for determinants divisible by P, which these small systems do not reach.
_P = (1 << 61) - 1


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


def table_structures(tables: Tables) -> list[_Structure]:
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
                f = list(zip(rest, fixed, strict=True))
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
    # Coarser figures count how many we suppress (they sit in many tables
    # and cascade); at the finest level the cost is the contributors hidden.
    cost = [0, 0, 0, 0, 0]
    if len(e.key) < interior_len:
        cost[1 + len(e.key)] = 1
    else:
        cost[4] = value
    return tuple(cost)


def _cheapest_path(
    struct: _Structure, skip: int, values: Mapping[CellKey, int], suppressed: Mapping[CellKey, str]
) -> list[_Edge] | None:
    """Cheapest path between the ends of edge `skip` not using it; None if there is none.

    Already suppressed edges cost nothing; zero cells are never used.
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
        for _i, e, other in adj[node]:
            if e.key not in suppressed and values.get(e.key, 0) <= 0:
                continue  # zeros are always published
            step = (
                zero
                if e.key in suppressed
                else _edge_cost(e, values.get(e.key, 0), struct.interior_len)
            )
            new = tuple(a + b for a, b in zip(cost, step, strict=True))
            if other not in best or new < best[other]:
                best[other] = new
                back[other] = (node, e)
                order.setdefault(other, len(order))
                heapq.heappush(heap, (new, order[other], other))
    return None


def protect_structure(
    struct: _Structure, values: Mapping[CellKey, int], suppressed: dict[CellKey, str]
) -> bool:
    """Add complementary suppressions until no suppressed edge of this table is a bridge.

    A bridge that only zeros could close is left to the interval audit,
    which can climb to coarser figures in other tables.
    """
    changed = False
    hopeless: set[CellKey] = set()
    while True:
        sup_edges = [e for e in struct.edges if e.key in suppressed]
        bridge = None
        for i, e in enumerate(sup_edges):
            if e.key not in hopeless and not _connected_without(sup_edges, i, e.u, e.v):
                bridge = e
                break
        if bridge is None:
            return changed
        skip = struct.edges.index(bridge)
        path = _cheapest_path(struct, skip, values, suppressed)
        if path is None:
            hopeless.add(bridge.key)
            continue
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
                f = list(zip(rest, fixed, strict=True))
                eqs.append(([_key(f + [(q, c)]) for c in tables.axes[q].categories], _key(f)))
    return eqs


def _mod(x: Fraction | int) -> int:
    x = Fraction(x)
    return (x.numerator % _P) * pow(x.denominator % _P, -1, _P) % _P


def derivable_figures(
    equations: Iterable[Mapping[CellKey, Fraction | int]], suppressed: Iterable[CellKey]
) -> set[CellKey]:
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
            factor = row.get(col)
            if not factor:
                continue
            for c2, v2 in pivots[col].items():
                nv = (row.get(c2, 0) - factor * v2) % _P
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
            factor = other.get(p)
            if factor:
                for c2, v2 in row.items():
                    nv = (other.get(c2, 0) - factor * v2) % _P
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
        f: dict[CellKey, int] = dict.fromkeys(cells, 1)
        f[margin] = f.get(margin, 0) - 1
        forms.append(f)
    return forms


def exclusive_forms(tables: Tables) -> list[dict[CellKey, int]]:
    # Multiple-choice lines do not add up; only exact equations go into the rank audit.
    eqs = [
        (cells, margin)
        for cells, margin in line_equations(tables)
        if tables.axes[_varying(cells, margin)].type != "multiple_choice"
    ]
    return _forms(eqs)


def _varying(cells: Sequence[CellKey], margin: CellKey) -> str:
    (q,) = {q for q, _ in cells[0]} - {q for q, _ in margin}
    return q
