"""Vectorised tabulation: the same contributor counts as `tables.tabulate`, with NumPy.

`tables.tabulate` stays the readable reference (one participant at a time, every
combination of their categories); this module gives the same `Tables` for a release, where
a consultation can hold hundreds of thousands of responses:

1. Encoding, once per question, one pass over the participants: each single-valued question
   becomes an integer column (the index of the participant's category on the question's
   axis), each multiple-choice question a 0/1 membership matrix (a participant can be in
   several categories). The common answer shapes (a string option, an int or float number,
   a date string) go through small lookup tables; anything else is classified by
   `tables.answer_categories` itself, so both ways agree on every answer.
2. Counting, once per table shape (a question set, margins included): the single-valued
   columns of the shape become one flat cell index and `numpy.bincount` counts the
   participants per cell; multiple-choice questions enter as weights (a participant adds one
   to each chosen option's cells, still once per cell).

Pure domain code: no storage, Kafka or Flask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations, product
from typing import Any

import numpy as np

from services.aggregation.projection import (
    CHOICE_TYPES,
    DECLINED,
    RESERVED_CATEGORIES,
    TABULATED_TYPES,
    Contribution,
    Question,
    one_per_participant,
    question_from_payload,
)
from services.aggregation.tables import (
    CellKey,
    NumericSummary,
    QuestionAxis,
    Tables,
    answer_categories,
    rating_range,
    table_layouts,
)

_NUMERIC_TYPES = ("rating", "number")


# The answer types whose distinct values can be keyed directly (as the value, or a list as its
# tuple) without two answers that the reference tells apart sharing a key (True == 1 in a dict,
# but no question type below accepts both).
_KEYED_TYPES: dict[str, frozenset[type]] = {
    "single_choice": frozenset({str}),
    "multiple_choice": frozenset({list}),
    "rating": frozenset({int, float}),
    "number": frozenset({int, float}),
    "date": frozenset({str}),
}


def _classify(q: Question, value: Any) -> tuple[str, ...]:
    """The reference's categories of one answer to `q` (not declined)."""
    return answer_categories(q, Contribution("", "", "", {q.id: value}))


def _answer_profiles(q: Question, values: list[Any]) -> tuple[list[int], list[tuple[str, ...]]]:
    """Each participant's answer as the id of a distinct answer, and each id's categories.

    Distinct answers are few (options, a rating scale, ticked combinations), so each is
    classified once. Answers of an unexpected type are classified one by one.
    """
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds <= _KEYED_TYPES[q.type]:
        keys = (
            [None if v is None else tuple(v) for v in values]
            if q.type == "multiple_choice"
            else values
        )
        distinct: dict[Any, int] = {}
        try:
            ids = [distinct.setdefault(key, len(distinct)) for key in keys]
        except TypeError:  # an unhashable element in a list: classify one by one below
            pass
        else:
            return ids, [
                _classify(q, list(key) if isinstance(key, tuple) else key) for key in distinct
            ]
    by_categories: dict[tuple[str, ...], int] = {}
    ids = [by_categories.setdefault(_classify(q, v), len(by_categories)) for v in values]
    return ids, list(by_categories)


class _Encoded:
    """A question's categories in axis order: a code per participant (`codes`), or for a
    multiple-choice question a 0/1 membership matrix, participants x categories (`members`)."""

    def __init__(self, axis: QuestionAxis, codes: np.ndarray, members: np.ndarray) -> None:
        self.categories = axis.categories
        self.multiple = members.ndim == 2
        self.codes = codes
        self.members = members


_UNUSED = np.zeros(0, dtype=np.int64)


def _axis(q: Question, observed: set[str]) -> tuple[QuestionAxis, tuple[str, ...]]:
    """The question's axis (as `tables.tabulate` orders it) and its answer categories."""
    observed = observed - set(RESERVED_CATEGORIES)
    if q.type in CHOICE_TYPES:
        cats, data_driven = tuple(q.options), False
    elif (scale := rating_range(q)) is not None:
        cats, data_driven = scale, False
    elif q.type in _NUMERIC_TYPES:
        cats, data_driven = tuple(sorted(observed, key=float)), True
    else:
        cats, data_driven = tuple(sorted(observed)), True
    axis = QuestionAxis(
        id=q.id,
        type=q.type,
        categories=tuple(cats) + RESERVED_CATEGORIES,
        data_driven=data_driven,
        dimension=q.is_dimension,
        numeric=q.type in _NUMERIC_TYPES,
    )
    return axis, cats


def _encode(
    q: Question, answers: list[Mapping[str, Any]], declined: np.ndarray
) -> tuple[QuestionAxis, _Encoded, NumericSummary | None]:
    """One question for every participant: its axis, its encoded column and, for a rating or
    number question, the summary of the numbers given. `declined`: who declined it."""
    values = [a.get(q.id) for a in answers]
    ids, profiles = _answer_profiles(q, values)
    profile_of = np.asarray(ids, dtype=np.int64)
    # A distinct answer is seen when someone gave it without declining the question.
    seen = np.bincount(profile_of[~declined], minlength=len(profiles)) > 0
    observed = {label for p, labels in enumerate(profiles) if seen[p] for label in labels}
    if declined.any():
        observed.add(DECLINED)
    axis, cats = _axis(q, observed)
    position = {label: i for i, label in enumerate(axis.categories)}
    declined_at = position[DECLINED]
    if q.type == "multiple_choice":
        profile_members = np.zeros((len(profiles), len(axis.categories)), dtype=np.float64)
        for p, labels in enumerate(profiles):
            if seen[p]:
                profile_members[p, [position[label] for label in labels]] = 1.0
        members = profile_members[profile_of]
        members[declined] = 0.0
        members[declined, declined_at] = 1.0
        encoded = _Encoded(axis, _UNUSED, members)
    else:
        # A distinct answer given only by people who declined is never counted under its label.
        profile_codes = np.array(
            [position[labels[0]] if seen[p] else declined_at for p, labels in enumerate(profiles)],
            dtype=np.int64,
        )
        codes = profile_codes[profile_of]
        codes[declined] = declined_at
        encoded = _Encoded(axis, codes, _UNUSED)
    summary = None
    if q.type in _NUMERIC_TYPES:
        answered = np.array(
            [labels[0] not in RESERVED_CATEGORIES for labels in profiles], dtype=bool
        )
        counted = answered[profile_of] & ~declined if len(profiles) else np.zeros(0, dtype=bool)
        numbers = [
            float(v)
            for v, keep in zip(values, counted.tolist(), strict=True)
            if keep and v is not None
        ]
        total = math.fsum(numbers)
        summary = NumericSummary(
            count=len(numbers),
            sum=total,
            mean=total / len(numbers) if numbers else None,
            values={c: float(c) for c in cats},
        )
    return axis, encoded, summary


def _count_shape(
    shape: tuple[str, ...], encoded: Mapping[str, _Encoded], people: int
) -> dict[CellKey, int]:
    """The non-zero contributor counts of every cell of one shape (a sorted question set)."""
    singles = [qid for qid in shape if not encoded[qid].multiple]
    multiples = [qid for qid in shape if encoded[qid].multiple]
    sizes = tuple(len(encoded[qid].categories) for qid in singles)
    flat: np.ndarray = (
        np.ravel_multi_index(tuple(encoded[qid].codes for qid in singles), sizes)
        if singles
        else np.zeros(people, dtype=np.int64)
    )
    cells = math.prod(sizes)
    out: dict[CellKey, int] = {}
    # One bincount per combination of the multiple-choice categories in the shape: a participant
    # weighs 1 exactly when they chose every one of them.
    multiple_axes = [range(len(encoded[qid].categories)) for qid in multiples]
    for combo in product(*multiple_axes):
        if multiples:
            weights = encoded[multiples[0]].members[:, combo[0]]
            for qid, code in zip(multiples[1:], combo[1:], strict=True):
                weights = weights * encoded[qid].members[:, code]
            counts = np.bincount(flat, weights=weights, minlength=cells)
        else:
            counts = np.bincount(flat, minlength=cells)
        for index in np.flatnonzero(counts):
            single_codes: tuple[Any, ...] = np.unravel_index(index, sizes) if sizes else ()
            labels: dict[str, Any] = dict(zip(singles, single_codes, strict=True))
            labels.update(zip(multiples, combo, strict=True))
            out[tuple((qid, encoded[qid].categories[int(labels[qid])]) for qid in shape)] = round(
                float(counts[index])
            )
    return out


def tabulate(
    contributions: Iterable[Contribution],
    questions: Sequence[Question | Mapping[str, Any]],
    *,
    consultation_id: str | None = None,
) -> Tables:
    """Contributor counts for every table of the consultation; the same `Tables` as
    `tables.tabulate` (see there for what is counted), computed column-wise."""
    qs = [question_from_payload(q) for q in questions]
    tabulated = [q for q in qs if q.type in TABULATED_TYPES]
    people = one_per_participant(
        c for c in contributions if consultation_id is None or c.consultation_id == consultation_id
    )
    layouts = table_layouts(tabulated)
    axes: dict[str, QuestionAxis] = {}
    numeric: dict[str, NumericSummary] = {}
    encoded: dict[str, _Encoded] = {}
    answers = [person.answers for person in people]
    declined_by = [(row, person.declined) for row, person in enumerate(people) if person.declined]
    for q in tabulated:
        declined = np.zeros(len(people), dtype=bool)
        declined[[row for row, ids in declined_by if q.id in ids]] = True
        axes[q.id], encoded[q.id], summary = _encode(q, answers, declined)
        if summary is not None:
            numeric[q.id] = summary
    shapes = sorted(
        {
            s
            for layout in layouts
            for r in range(1, len(layout.shape) + 1)
            for s in combinations(layout.shape, r)
        },
        key=lambda s: (len(s), s),
    )
    counts: dict[CellKey, int] = {}
    if people:
        counts[()] = len(people)
        for shape in shapes:
            counts.update(_count_shape(shape, encoded, len(people)))
    return Tables(
        consultation_id=consultation_id,
        axes=axes,
        counts=counts,
        numeric=numeric,
        layouts=layouts,
    )
