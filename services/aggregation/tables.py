"""Contributor-count tables of a consultation: their axes, layouts and cells (pure domain).

Tables
------
`tabulate` counts CONTRIBUTORS (distinct participants) for every cell. Every
published figure is addressed by a canonical `CellKey`: a sorted tuple of
(question id, category) pairs. `()` is the number of contributors,
`(("q1", "yes"),)` the contributors who chose "yes" in q1,
`(("q1", "yes"), ("region", "north"))` those who chose "yes" and are in the
north. A cross-tab of q1 by region and the cross-tab of region by q1 address
the same keys, and the margins of a cross-tab are exactly the cells of the
lower tables; this is what lets disclosure control treat all tables of a
snapshot as one linked system.

Every question has two reserved categories: `_declined` ("prefer not to
say") and `_skipped` (counted contributor who neither answered nor
declined). With `_skipped`, every table covers all contributors, so the
margins of a cross-tab are exactly the cells of the one-way tables and no
figure is published on a slightly different population than another one
(which would let differences of "almost equal" totals leak small counts).

`tabulate` here is the readable reference (one participant at a time, every combination of
their categories); `tabulation.tabulate` gives the same `Tables` with NumPy for releases.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, combinations, product
from typing import Any

from services.aggregation.projection import (
    CHOICE_TYPES,
    DECLINED,
    RESERVED_CATEGORIES,
    SKIPPED,
    TABULATED_TYPES,
    Contribution,
    Question,
    one_per_participant,
    question_from_payload,
)

CellKey = tuple[tuple[str, str], ...]

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class QuestionAxis:
    """A tabulated question: its categories in display order.

    `data_driven` is true when the categories come from the answers rather
    than from the survey (numbers, dates, ratings without a declared range):
    such labels can themselves disclose a rare answer, so disclosure control
    hides the labels of their suppressed small cells.
    """

    id: str
    type: str
    categories: tuple[str, ...]
    data_driven: bool
    dimension: bool
    numeric: bool


@dataclass(frozen=True)
class NumericSummary:
    """Exact count, sum and mean of the numeric answers to a rating/number question."""

    count: int
    sum: float
    mean: float | None
    values: Mapping[str, float]  # category label -> the number it stands for


@dataclass(frozen=True)
class TableLayout:
    """One table to present: a question alone, by one dimension, or by two dimensions."""

    kind: str  # "question" | "crosstab" | "crosstab2"
    question: str
    dimensions: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[str, ...]:
        return tuple(sorted((self.question, *self.dimensions)))


@dataclass(frozen=True)
class Tables:
    """Contributor counts of every published figure of a consultation.

    counts: CellKey -> number of distinct contributors (absent means 0);
    `()` is the number of contributors overall.
    """

    consultation_id: str | None
    axes: Mapping[str, QuestionAxis]
    counts: Mapping[CellKey, int]
    numeric: Mapping[str, NumericSummary]
    layouts: tuple[TableLayout, ...]
    # question id -> why it is not in these tables (set by disclosure control).
    withheld: Mapping[str, str] = field(default_factory=dict)
    # Set when the counts carry differential-privacy noise: mechanism, epsilon, sensitivity, scale.
    privacy: Mapping[str, Any] | None = None

    @property
    def contributors(self) -> int:
        return self.counts.get((), 0)

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.axes.values() if a.dimension)

    def count(self, key: CellKey) -> int:
        return self.counts.get(key, 0)

    def shapes(self) -> list[tuple[str, ...]]:
        """Every question set whose cells are published or derivable: the
        layouts' shapes and all their sub-shapes (margins), smallest first."""
        seen: set[tuple[str, ...]] = set()
        for layout in self.layouts:
            s = layout.shape
            for r in range(len(s) + 1):
                seen.update(combinations(s, r))
        return sorted(seen, key=lambda s: (len(s), s))

    def keys_of_shape(self, shape: Sequence[str]) -> list[CellKey]:
        """All keys of a shape (every combination of categories, zeros included)."""
        cats = [self.axes[q].categories for q in shape]
        return [tuple(zip(shape, combo, strict=True)) for combo in product(*cats)]


def _number_label(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value) if isinstance(value, float) else str(value)


def answer_categories(q: Question, contribution: Contribution) -> tuple[str, ...]:
    """The categories of `q` this contribution is in (exactly one, or several for multiple choice)."""
    if q.id in contribution.declined:
        # "Prefer not to say" wins over a stray answer to the same question.
        return (DECLINED,)
    value = contribution.answers.get(q.id)
    if value is None:
        return (SKIPPED,)
    if q.type == "single_choice":
        return (value,) if isinstance(value, str) and value in q.options else (SKIPPED,)
    if q.type == "multiple_choice":
        if not isinstance(value, list):
            return (SKIPPED,)
        chosen = tuple(o for o in q.options if o in set(value))
        return chosen or (SKIPPED,)  # nothing valid ticked is no answer
    if q.type in ("rating", "number"):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            return (SKIPPED,)
        if (q.min is not None and value < q.min) or (q.max is not None and value > q.max):
            return (SKIPPED,)
        if q.type == "rating" and not float(value).is_integer():
            return (SKIPPED,)
        return (_number_label(value),)
    if q.type == "date":
        m = _DATE.match(value) if isinstance(value, str) else None
        if not m or not 1 <= int(m.group(2)) <= 12:
            return (SKIPPED,)
        return (f"{m.group(1)}-{m.group(2)}",)
    return (SKIPPED,)


def rating_range(q: Question) -> tuple[str, ...] | None:
    if q.type != "rating" or q.min is None or q.max is None:
        return None
    lo, hi = math.ceil(q.min), math.floor(q.max)
    if hi < lo or hi - lo > 100:  # not a rating scale one could list
        return None
    return tuple(str(v) for v in range(lo, hi + 1))


def table_layouts(questions: Sequence[Question]) -> tuple[TableLayout, ...]:
    """The tables a consultation publishes: each tabulated question alone, by
    each dimension, and by each pair of dimensions (never by itself)."""
    tabulated = [q for q in questions if q.type in TABULATED_TYPES]
    dims = [q.id for q in tabulated if q.is_dimension]
    layouts: list[TableLayout] = []
    for q in tabulated:
        layouts.append(TableLayout("question", q.id))
        layouts.extend(TableLayout("crosstab", q.id, (d,)) for d in dims if d != q.id)
        layouts.extend(
            TableLayout("crosstab2", q.id, pair)
            for pair in combinations(dims, 2)
            if q.id not in pair
        )
    return tuple(layouts)


def tabulate(
    contributions: Iterable[Contribution],
    questions: Sequence[Question | Mapping[str, Any]],
    *,
    consultation_id: str | None = None,
) -> Tables:
    """Contributor counts for every table of the consultation.

    Give it the counted contributions (see `counted_contributions`); it keeps
    one per participant (`one_per_participant`) and counts each participant
    once per cell they are in, so a multiple-choice answer adds one to each
    chosen option and the cross-tab cells count people, not ticks. Answers
    that do not fit the question (unknown option, out of range, malformed
    date) count as skipped. Free-text questions are not tabulated.

    Returns exact counts: apply `services.aggregation.disclosure` before
    anything leaves the service.
    """
    qs = [question_from_payload(q) for q in questions]
    tabulated = [q for q in qs if q.type in TABULATED_TYPES]
    people = one_per_participant(
        c for c in contributions if consultation_id is None or c.consultation_id == consultation_id
    )
    layouts = table_layouts(tabulated)
    shapes = {
        s
        for layout in layouts
        for r in range(len(layout.shape) + 1)
        for s in combinations(layout.shape, r)
    }
    shapes_by_size = sorted(shapes, key=lambda s: (len(s), s))

    counts: Counter[CellKey] = Counter()
    seen_categories: dict[str, set[str]] = defaultdict(set)
    numeric_values: dict[str, list[float]] = defaultdict(list)
    nonempty_shapes = [tuple(shape) for shape in shapes_by_size if shape]
    position = {q.id: i for i, q in enumerate(tabulated)}
    shape_positions = [tuple(position[q] for q in shape) for shape in nonempty_shapes]
    # Participants with the same categories everywhere add to the same keys:
    # count each distinct answer profile once, weighted by how many share it.
    profiles: Counter[tuple[tuple[tuple[str, str], ...], ...]] = Counter()
    for person in people:
        profile = []
        for q in tabulated:
            cs = answer_categories(q, person)
            profile.append(tuple((q.id, c) for c in cs))
            seen_categories[q.id].update(cs)
            if q.type in ("rating", "number") and cs[0] not in RESERVED_CATEGORIES:
                numeric_values[q.id].append(float(person.answers[q.id]))
        profiles[tuple(profile)] += 1
    for shared_profile, weight in profiles.items():
        # One participant adds one to every combination of their categories;
        # those keys are distinct, so a cell counts them at most once. A shape
        # is sorted by question id, so each product tuple is a canonical key.
        keys = chain.from_iterable(
            product(*(shared_profile[i] for i in pos)) for pos in shape_positions
        )
        if weight == 1:
            counts.update(keys)
        else:
            for key in keys:
                counts[key] += weight
    if people:
        counts[()] = len(people)

    axes: dict[str, QuestionAxis] = {}
    numeric: dict[str, NumericSummary] = {}
    for q in tabulated:
        observed = seen_categories[q.id] - set(RESERVED_CATEGORIES)
        if q.type in CHOICE_TYPES:
            cats, data_driven = q.options, False
        elif (scale := rating_range(q)) is not None:
            cats, data_driven = scale, False
        elif q.type in ("rating", "number"):
            cats, data_driven = tuple(sorted(observed, key=float)), True
        else:
            cats, data_driven = tuple(sorted(observed)), True
        axes[q.id] = QuestionAxis(
            id=q.id,
            type=q.type,
            categories=tuple(cats) + RESERVED_CATEGORIES,
            data_driven=data_driven,
            dimension=q.is_dimension,
            numeric=q.type in ("rating", "number"),
        )
        if q.type in ("rating", "number"):
            vals = numeric_values[q.id]
            total = math.fsum(vals)
            numeric[q.id] = NumericSummary(
                count=len(vals),
                sum=total,
                mean=total / len(vals) if vals else None,
                values={c: float(c) for c in cats},
            )
    return Tables(
        consultation_id=consultation_id,
        axes=axes,
        counts=dict(counts),
        numeric=numeric,
        layouts=layouts,
    )
