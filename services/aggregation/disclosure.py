"""Disclosure control: nothing leaves aggregation without passing through here.

Model
-----
All tables of a snapshot are one linked system (see `projection`): every
figure is a `CellKey`, and each line of each table relates its cells to its
margin (`intervals.reader_relations`: they add up when the varying question
has one answer per person; multiple-choice lines get the inequalities that
do hold). A reader knows every published value, every relation, that a
hidden figure holds at least one person (zeros are always published), and
that every hidden figure carries the same mark: `suppressed`, whatever the
reason it was hidden. Nothing else about a hidden figure is published.

Guarantee (`protect_tables`): every published figure is 0 or at least k,
and for every hidden figure the integer values consistent with everything
the reader knows span at least k (high - low >= k, the sliding protection
range of tau-ARGUS with width k), so no hidden figure is pinned, and none
can be shown to be below k.

Steps:

1. rare values of data-driven questions (numbers, dates, open ratings) are
   grouped into one category `_other_values` until the group holds at least
   k people (`group_rare_values`); their labels are never shown;
2. primary suppression: every figure with 0 < contributors < k, and every
   figure whose change since an earlier snapshot's published value is
   between 1 and k-1 in size (successive releases, see below);
3. complementary suppression per table with margins (`suppression`): a table is a bipartite
   graph and a hidden figure is derivable from its table exactly when its
   edge is a bridge of the hidden edges, so each bridge gets the cheapest
   path of extra suppressions that closes a cycle through it (Dijkstra);
   then an exact rank audit of the whole linked system (Gaussian elimination
   modulo 2^61-1) adds suppressions until nothing is pinned;
4. the interval audit (`intervals.figure_bounds`): linear programs over all
   tables at once, per independent group of hidden figures, refined by an
   integer program where a bound is fractional; a hidden figure whose range
   is narrower than k gets one more suppression in one of its lines, and
   the audit repeats. Hiding one more figure only relaxes the reader's
   system, so a figure that passed stays passed and the loop ends (at
   worst with every non-zero figure hidden, when every range is unbounded);
5. numeric summaries (count, sum, mean) are published only when every value
   category of the question is published and nothing is grouped: then they
   follow from published figures and reveal nothing more; otherwise the sum
   would give the total of the hidden values (a group mean).

Steps 3 are fast heuristics; step 4 is the guarantee.

Successive releases: a figure published in an earlier snapshot with value a
is hidden now when 0 < |now - a| < k, so the exact difference of any figure
published in both snapshots is 0 or at least k, and every other difference
has the range of the hidden side (at least k wide). Checked against every
earlier snapshot of the consultation, not only the last.

Not covered: a published 0 beside a published cell can show that everybody
in a group gave the same answer (group attribute disclosure); which figures
are hidden is itself visible; a reader who assumes links between snapshots
(for instance that nobody withdrew, so no figure went down) can combine the
ranges of two snapshots; the sum of the hidden figures of one line is
known, as with every complementary suppression.

Differential privacy (optional, in `differential_privacy`): `spend_privacy_budget`, then
`add_laplace_noise` (OpenDP discrete Laplace on every count, scale =
sensitivity / epsilon, then post-processed to non-negative integers that
satisfy every table relation), then the same protection on the noisy
counts, which is post-processing and costs no extra epsilon.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

# The budget and the noise live in `differential_privacy`; a release asks for them here, with every
# other part of disclosure control.
from services.aggregation.differential_privacy import (
    PrivacyBudget,
    add_laplace_noise,
    dp_sensitivity,
    net_spent,
    privacy_budget_from_document,
    spend_privacy_budget,
)
from services.aggregation.intervals import (
    Relation,
    figure_bounds,
    reader_relations,
)
from services.aggregation.projection import RESERVED_CATEGORIES
from services.aggregation.suppression import (
    COMPLEMENTARY,
    derivable_figures,
    exclusive_forms,
    protect_structure,
    table_structures,
)
from services.aggregation.tables import CellKey, NumericSummary, Tables
from shared.errors import ValidationFailed

DEFAULT_MIN_CELL_SIZE = 10
FLOOR_MIN_CELL_SIZE = 5

# The one mark a reader sees on every hidden figure: it says nothing about the value.
SUPPRESSED = "suppressed"
# Why a figure was hidden, kept inside the service (tests, benchmarks), never published.
BELOW_MINIMUM = "below_minimum"
CHANGED = "changed_since_earlier_snapshot"
OTHER_VALUES = "_other_values"  # the group of rare values of a data-driven question

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
        return MinimumCellSize(
            DEFAULT_MIN_CELL_SIZE, None, f"no minimum set: default {DEFAULT_MIN_CELL_SIZE} used"
        )
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise ValidationFailed(
            "the minimum cell size must be an integer",
            errors={"min_cell_size": ["must be an integer"]},
        )
    if requested < FLOOR_MIN_CELL_SIZE:
        return MinimumCellSize(
            FLOOR_MIN_CELL_SIZE,
            requested,
            f"minimum cell size {requested} raised to {FLOOR_MIN_CELL_SIZE}, the platform floor",
        )
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

    tables: what is published (rare data-driven values already grouped
    into `_other_values`); render snapshots from these.
    suppressed: CellKey -> why it is hidden (internal: below_minimum,
    complementary, changed_since_earlier_snapshot); any key not in it is
    published with `values[key]` (0 when absent).
    """

    k: MinimumCellSize
    tables: Tables
    values: Mapping[CellKey, int]
    suppressed: Mapping[CellKey, str]
    numeric: Mapping[str, NumericRelease]
    audit_rounds: int = 0

    def cell(self, key: CellKey) -> dict[str, Any]:
        """The published form of one figure: {value|None, suppressed, reason}; never a suppressed value.

        Every hidden figure has the same reason, `suppressed`: a reason per
        cause would narrow the range a reader can infer.
        """
        if key in self.suppressed:
            return {"value": None, "suppressed": True, "reason": SUPPRESSED}
        return {"value": int(self.values.get(key, 0)), "suppressed": False, "reason": None}


def with_percentages(
    cells: Sequence[dict[str, Any]], base: int | None, exclude: Iterable[int] = ()
) -> list[dict[str, Any]]:
    """Copies of `cells` with `percent` = value / `base` (one decimal).

    `base` is every counted person the percentages are of (suppressed cells included), itself a
    published figure; None (the base is suppressed) or 0 gives no percentages at all, since a
    percentage of a hidden base would reveal it. Suppressed cells and the positions in
    `exclude` (e.g. `_skipped`, not in the base) get None. A percentage never exceeds 100 for a
    published value no larger than the base.
    """
    skip = set(exclude)
    out = []
    for i, c in enumerate(cells):
        pct = None
        if base and i not in skip and not c["suppressed"]:
            pct = round(100.0 * min(c["value"], base) / base, 1)
        out.append({**c, "percent": pct})
    return out


# ---- grouping rare values ----------------------------------------------------


def group_rare_values(tables: Tables, k: int) -> Tables:
    """`tables` with the rare values of each data-driven question merged into one `_other_values` category.

    A value is rare when 1 to k-1 people gave it. The group takes the rarest
    values first and grows with the next rarest until it holds at least k
    people (or every value is in it), so the group is a figure like any
    other: published when it is big enough, protected when not, and its
    labels are never shown. Questions without rare values are unchanged.
    """
    grouping: dict[str, frozenset[str]] = {}
    for qid, axis in tables.axes.items():
        if not axis.data_driven:
            continue
        values = [c for c in axis.categories if c not in RESERVED_CATEGORIES]
        count = {c: tables.counts.get(((qid, c),), 0) for c in values}
        rare = [c for c in values if 0 < count[c] < k]
        if not rare:
            continue
        growing = set(rare)
        rest = sorted((c for c in values if c not in growing), key=lambda c: (count[c], c))
        while sum(count[c] for c in growing) < k and rest:
            growing.add(rest.pop(0))
        grouping[qid] = frozenset(growing)
    if not grouping:
        return tables

    def recode(key: CellKey) -> CellKey:
        return tuple(sorted((q, OTHER_VALUES if c in grouping.get(q, ()) else c) for q, c in key))

    counts: dict[CellKey, int] = defaultdict(int)
    for key, v in tables.counts.items():
        counts[recode(key)] += v
    axes = dict(tables.axes)
    numeric = dict(tables.numeric)
    for qid, group in grouping.items():
        axis = axes[qid]
        kept = tuple(c for c in axis.categories if c not in group and c not in RESERVED_CATEGORIES)
        axes[qid] = replace(axis, categories=kept + (OTHER_VALUES,) + RESERVED_CATEGORIES)
        if qid in numeric:
            old = numeric[qid]
            numeric[qid] = NumericSummary(
                count=old.count,
                sum=old.sum,
                mean=old.mean,
                values={c: v for c, v in old.values.items() if c not in group},
            )
    return replace(tables, axes=axes, counts=dict(counts), numeric=numeric)


# ---- protection ------------------------------------------------------------


def published_changes(
    values: Mapping[CellKey, int],
    keys: Iterable[CellKey],
    earlier: Iterable[Mapping[CellKey, int]],
    k: int,
) -> set[CellKey]:
    """Keys whose value moved by 1 to k-1 since an earlier snapshot published it.

    Subtracting two snapshots must not show a change smaller than k (a
    handful of people joining or withdrawing, with their answers).
    """
    earlier = list(earlier)
    out = set()
    for key in keys:
        now = values.get(key, 0)
        if any(key in before and 0 < abs(now - before[key]) < k for before in earlier):
            out.add(key)
    return out


def protect_tables(
    tables: Tables,
    min_cell_size: MinimumCellSize | int | None,
    earlier: Iterable[Mapping[CellKey, int]] = (),
) -> Protection:
    """Decide, for every figure of `tables`, whether it is published.

    `earlier`: the figures published by earlier snapshots of the same
    consultation (`snapshots.published_figures`), so that no difference
    between a snapshot and this one shows a change below k.

    Returns a `Protection` (see the module docstring for the exact
    guarantee): no published figure has between 1 and k-1 contributors, no
    hidden figure can be narrowed to a range of fewer than k values.
    Deterministic: the same input gives the same decision. Raises
    ValidationFailed for a bad `min_cell_size`.
    """
    k = (
        min_cell_size
        if isinstance(min_cell_size, MinimumCellSize)
        else effective_min_cell_size(min_cell_size)
    )
    tables = group_rare_values(tables, k.k)
    values = tables.counts
    all_keys = sorted(
        {key for shape in tables.shapes() for key in tables.keys_of_shape(shape)},
        key=lambda key: (len(key), key),
    )
    suppressed: dict[CellKey, str] = dict.fromkeys(
        published_changes(values, all_keys, earlier, k.k), CHANGED
    )
    suppressed.update({key: BELOW_MINIMUM for key in all_keys if 0 < values.get(key, 0) < k.k})
    structures = table_structures(tables)
    forms = exclusive_forms(tables)
    relations = reader_relations(tables)
    related: dict[CellKey, set[CellKey]] = defaultdict(set)
    relations_of: dict[CellKey, list[int]] = defaultdict(list)
    for i, rel in enumerate(relations):
        for key in rel.coefficients:
            related[key].update(rel.coefficients)
            relations_of[key].append(i)

    rounds = 0
    while True:
        rounds += 1
        changed = True
        while changed:
            changed = False
            for struct in structures:
                changed |= protect_structure(struct, values, suppressed)
        derivable = derivable_figures(forms, suppressed) if suppressed else set()
        added = [
            new
            for key in sorted(derivable, key=lambda x: (len(x), x))
            for new in _suppress_one_more(key, related, values, suppressed, 0)
        ]
        if not added:
            break  # nothing pinned, or nothing left to hide here: the interval audit decides

    # The interval audit: widen every hidden figure's range to at least k.
    pending = set(suppressed)
    while pending:
        rounds += 1
        # Relations without a hidden figure only restate published values: leave them out.
        touching = sorted({i for key in suppressed for i in relations_of.get(key, ())})
        bounds = figure_bounds(
            [relations[i] for i in touching], values, suppressed, only=pending, enough=k.k
        )
        pending = set()
        for key in sorted(bounds, key=lambda x: (-len(x), x)):
            low, high = bounds[key]
            if high - low >= k.k:
                continue
            pending.add(key)
            added = _widen(
                key, high - low, k.k, relations, relations_of, related, values, suppressed
            )
            pending.update(added)

    numeric: dict[str, NumericRelease] = {}
    for qid in sorted(tables.numeric):
        summary = tables.numeric[qid]
        axis = tables.axes[qid]
        value_keys = [((qid, c),) for c in axis.categories if c not in RESERVED_CATEGORIES]
        if summary.count == 0:
            numeric[qid] = NumericRelease(False, None)
        elif OTHER_VALUES in axis.categories or any(key in suppressed for key in value_keys):
            # With a hidden value count, the sum would give the hidden people's total (their mean).
            numeric[qid] = NumericRelease(False, SUPPRESSED)
        else:
            numeric[qid] = NumericRelease(
                True, None, count=summary.count, sum=summary.sum, mean=summary.mean
            )

    return Protection(
        k=k,
        tables=tables,
        values=dict(values),
        suppressed=suppressed,
        numeric=numeric,
        audit_rounds=rounds,
    )


_WIDEN_TRIES = 12


def _widen(
    key: CellKey,
    width: float,
    k: int,
    relations: Sequence[Relation],
    relations_of: Mapping[CellKey, list[int]],
    related: Mapping[CellKey, set[CellKey]],
    values: Mapping[CellKey, int],
    suppressed: dict[CellKey, str],
) -> list[CellKey]:
    """Hide one published neighbour of the too narrow `key`; returns what was hidden.

    The finest neighbours are tried first, each on the lines around `key`
    only (fewer relations give a range at least as wide, so this ranks
    candidates, and the full audit checks the result): the first that opens
    the range to k wins, else the one that widens it most. A neighbour in a
    line that does not bind `key` widens nothing, which is why they are tried
    rather than picked by size.
    """
    room = k - width
    candidates = sorted(
        (n for n in related.get(key, ()) if n not in suppressed and values.get(n, 0) > 0),
        key=lambda c: (
            -len(c),
            values[c] <= room,
            values[c] if values[c] > room else -values[c],
            c,
        ),
    )
    if not candidates:
        return _suppress_one_more(key, related, values, suppressed, room)
    local = [
        relations[i]
        for i in sorted({i for n in (key, *related[key]) for i in relations_of.get(n, ())})
    ]
    local_hidden = [n for n in {n for rel in local for n in rel.coefficients} if n in suppressed]
    best, best_width = candidates[0], width
    for candidate in candidates[:_WIDEN_TRIES]:
        tried = _local_width(key, local, values, [*local_hidden, candidate], k)
        if tried >= k:
            best = candidate
            break
        if tried > best_width:
            best, best_width = candidate, tried
    suppressed[best] = COMPLEMENTARY
    return [best]


def _local_width(
    key: CellKey,
    local: Sequence[Relation],
    values: Mapping[CellKey, int],
    hidden: Iterable[CellKey],
    k: int,
) -> float:
    low, high = figure_bounds(local, values, hidden, only=[key], enough=k)[key]
    return high - low


def _suppress_one_more(
    key: CellKey,
    related: Mapping[CellKey, set[CellKey]],
    values: Mapping[CellKey, int],
    suppressed: dict[CellKey, str],
    room: float,
) -> list[CellKey]:
    """Hide one more non-zero figure next to `key` (sharing a line with it); returns what was hidden.

    Prefers, among the published neighbours, the finest figure with more
    than `room` people (enough to widen the range in one step; the smallest
    such), else the largest. When every neighbour is hidden or zero, it
    looks one line further out, through the hidden neighbours.
    """
    seen = {key}
    frontier = [key]
    while frontier:
        candidates = {
            n
            for f in frontier
            for n in related.get(f, ())
            if n not in suppressed and values.get(n, 0) > 0
        }
        if candidates:
            choice = min(
                candidates,
                key=lambda c: (
                    -len(c),
                    values.get(c, 0) <= room,
                    values.get(c, 0) if values.get(c, 0) > room else -values.get(c, 0),
                    c,
                ),
            )
            suppressed[choice] = COMPLEMENTARY
            return [choice]
        nxt = sorted(
            {n for f in frontier for n in related.get(f, ()) if n not in seen and n in suppressed}
        )
        seen.update(nxt)
        frontier = nxt
    return []


__all__ = [
    "BELOW_MINIMUM",
    "CHANGED",
    "COMPLEMENTARY",
    "OTHER_VALUES",
    "SUPPRESSED",
    "MinimumCellSize",
    "NumericRelease",
    "PrivacyBudget",
    "Protection",
    "add_laplace_noise",
    "derivable_figures",
    "dp_sensitivity",
    "effective_min_cell_size",
    "group_rare_values",
    "net_spent",
    "privacy_budget_from_document",
    "protect_tables",
    "published_changes",
    "spend_privacy_budget",
    "with_percentages",
]
