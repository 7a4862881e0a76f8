"""Disclosure control: nothing below k, nothing suppressed derivable, DP budget kept."""

from __future__ import annotations

from itertools import combinations, product

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.aggregation.disclosure import (
    BELOW_MINIMUM,
    COMPLEMENTARY,
    OTHER_VALUES,
    SUPPRESSED,
    PrivacyBudget,
    add_laplace_noise,
    derivable_figures,
    dp_sensitivity,
    effective_min_cell_size,
    privacy_budget_from_document,
    protect_tables,
    spend_privacy_budget,
    with_percentages,
)
from services.aggregation.intervals import reader_relations
from services.aggregation.projection import DECLINED, SKIPPED, Contribution
from services.aggregation.tables import QuestionAxis, TableLayout, Tables, tabulate
from shared.errors import Conflict, ValidationFailed

# ---- an independent statement of what an analyst can solve ------------------


def lines_of_table(axes: dict[str, tuple[str, ...]], shape: tuple[str, ...]):
    """Every line of the table over `shape` and of all its margin tables: (cells, margin)."""
    out = []
    names = list(shape)
    # all sub-tables (margins) of the shape, each with its lines in every direction
    for size in range(1, len(names) + 1):
        for sub in combinations(names, size):
            for q in sub:
                rest = [s for s in sub if s != q]
                for fixed in product(*(axes[s] for s in rest)):
                    base = list(zip(rest, fixed, strict=True))
                    cells = [tuple(sorted(base + [(q, c)])) for c in axes[q]]
                    out.append((cells, tuple(sorted(base))))
    return out


def determined_unknowns(equations, suppressed) -> set:
    """Suppressed keys pinned by the equations: zero in every null-space basis vector (numpy SVD)."""
    unknown = sorted({k for eq in equations for k in eq if k in suppressed})
    if not unknown:
        return set()
    index = {k: i for i, k in enumerate(unknown)}
    rows = []
    for eq in equations:
        row = np.zeros(len(unknown))
        for key, coef in eq.items():
            if key in index:
                row[index[key]] += float(coef)
        if np.any(row):
            rows.append(row)
    if not rows:
        return set()
    a = np.unique(np.array(rows), axis=0)
    # vt must span the whole unknown space; U is never needed in full.
    _, s, vt = np.linalg.svd(a, full_matrices=a.shape[0] < a.shape[1])
    rank = int(np.sum(s > 1e-9 * max(1.0, s[0])))
    null = vt[rank:]
    if null.shape[0] == 0:
        return set(unknown)
    return {k for k, i in index.items() if np.all(np.abs(null[:, i]) < 1e-9)}


def forms(lines):
    out = []
    for cells, margin in lines:
        f = dict.fromkeys(cells, 1.0)
        f[margin] = f.get(margin, 0.0) - 1.0
        out.append(f)
    return out


# ---- hypothesis strategy: random consultations and responses ----------------


@st.composite
def consultations(draw):
    qtype = draw(st.sampled_from(["single_choice", "multiple_choice"]))
    questions = [
        {
            "id": "region",
            "type": "single_choice",
            "options": ["n", "s", "e"][: draw(st.integers(2, 3))],
            "dimension": True,
        },
        {"id": "age", "type": "single_choice", "options": ["y", "o"], "dimension": True},
        {
            "id": "q",
            "type": qtype,
            "options": ["a", "b", "c", "d"][: draw(st.integers(2, 4))],
            "dimension": False,
        },
    ]
    if draw(st.booleans()):
        questions.append(
            {"id": "r", "type": "rating", "options": [], "dimension": False, "min": 1, "max": 4}
        )
    person = st.fixed_dictionaries(
        {},
        optional={
            "region": st.sampled_from(questions[0]["options"]),
            "age": st.sampled_from(["y", "o"]),
            "q": (
                st.lists(st.sampled_from(questions[2]["options"]), unique=True, min_size=1)
                if qtype == "multiple_choice"
                else st.sampled_from(questions[2]["options"])
            ),
            "r": st.integers(1, 4),
        },
    )
    people = draw(
        st.lists(
            st.tuples(person, st.lists(st.sampled_from(["region", "age", "q"]), max_size=1)),
            max_size=70,
        )
    )
    contributions = [
        Contribution(f"r{i}", f"p{i}", "c", answers, tuple(declined), 1, "t")
        for i, (answers, declined) in enumerate(people)
    ]
    k = draw(st.integers(5, 12))
    return questions, contributions, k


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(consultations())
def test_nothing_below_k_and_no_suppressed_figure_is_derivable(case):
    questions, contributions, k = case
    tables = tabulate(contributions, questions)
    protection = protect_tables(tables, k)
    axes = {q: a.categories for q, a in tables.axes.items()}

    # 1. no published figure has 1..k-1 contributors, zeros are never suppressed, one mark for all
    tables = protection.tables
    axes = {q: a.categories for q, a in tables.axes.items()}
    all_keys = {key for shape in tables.shapes() for key in tables.keys_of_shape(shape)}
    for key in all_keys:
        value = tables.count(key)
        if key in protection.suppressed:
            assert value > 0
            assert protection.suppressed[key] == (BELOW_MINIMUM if value < k else COMPLEMENTARY)
            assert protection.cell(key) == {"value": None, "suppressed": True, "reason": SUPPRESSED}
        else:
            assert value == 0 or value >= k, f"{key} published with {value} < {k}"

    # 2. each 1-D table alone (cells + total) and each 2-D cross-tab alone
    #    (cells + row and column margins + total): nothing suppressed is determined
    for layout in tables.layouts:
        if layout.kind == "question":
            lines = [([((layout.question, c),) for c in axes[layout.question]], ())]
        elif layout.kind == "crosstab":
            lines = lines_of_table(axes, layout.shape)
        else:
            continue
        assert not determined_unknowns(forms(lines), protection.suppressed), layout

    # 3. the whole linked system: every table of the snapshot at once, with the
    #    numeric summaries that were published as two more equations each
    #    (test_linked_audit goes further: ranges, not only whether a figure is pinned)
    equations = forms(
        [line for layout in tables.layouts for line in lines_of_table(axes, layout.shape)]
    )
    for qid, release in protection.numeric.items():
        if release.published:
            values = tables.numeric[qid].values
            cats = [c for c in axes[qid] if c not in (DECLINED, SKIPPED)]
            equations.append({((qid, c),): 1.0 for c in cats})
            equations.append({((qid, c),): values[c] for c in cats})
    assert not determined_unknowns(equations, protection.suppressed)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(consultations())
def test_exact_audit_agrees_with_numpy(case):
    questions, contributions, _ = case
    tables = tabulate(contributions, questions)
    axes = {q: a.categories for q, a in tables.axes.items()}
    # Suppress the primary pattern only (no complements): plenty of derivable figures.
    suppressed = {
        key
        for shape in tables.shapes()
        for key in tables.keys_of_shape(shape)
        if 0 < tables.count(key) < 12
    }
    equations = forms(
        [line for layout in tables.layouts for line in lines_of_table(axes, layout.shape)]
    )
    assert derivable_figures(equations, suppressed) == determined_unknowns(equations, suppressed)


# ---- worked examples ------------------------------------------------------------


def synthetic(counts: dict, axes: dict[str, tuple[str, ...]], layouts) -> Tables:
    return Tables(
        consultation_id="c",
        axes={
            q: QuestionAxis(q, "single_choice", cats, False, False, False)
            for q, cats in axes.items()
        },
        counts=counts,
        numeric={},
        layouts=tuple(layouts),
    )


def test_one_way_table_suppresses_the_next_smallest_cell_and_keeps_zeros():
    counts = {(("q", "a"),): 3, (("q", "b"),): 20, (("q", "c"),): 30, (("q", "d"),): 0, (): 53}
    p = protect_tables(
        synthetic(counts, {"q": ("a", "b", "c", "d")}, [TableLayout("question", "q")]), 10
    )
    # a + b = 23 and both are at least 1: each ranges over 1..22, wider than k
    assert p.suppressed == {(("q", "a"),): BELOW_MINIMUM, (("q", "b"),): COMPLEMENTARY}
    assert p.cell((("q", "d"),)) == {"value": 0, "suppressed": False, "reason": None}
    assert p.cell(()) == {"value": 53, "suppressed": False, "reason": None}


def test_one_way_table_with_a_single_cell_suppresses_the_total():
    counts = {(("q", "a"),): 3, (("q", "b"),): 0, (): 3 + 0}
    p = protect_tables(synthetic(counts, {"q": ("a", "b")}, [TableLayout("question", "q")]), 5)
    assert set(p.suppressed) == {(("q", "a"),), ()}


def test_two_way_table_closes_the_hole_of_the_two_per_line_rule():
    # Two 2x2 blocks of small cells joined by one small cell: every row and
    # column has two suppressions, yet the joining cell is derivable.
    rows, cols = ("r1", "r2", "r3", "r4", "r5"), ("c1", "c2", "c3", "c4", "c5")
    small = {
        ("r1", "c1"),
        ("r1", "c2"),
        ("r2", "c1"),
        ("r2", "c2"),
        ("r3", "c3"),
        ("r3", "c4"),
        ("r4", "c3"),
        ("r4", "c4"),
        ("r2", "c3"),
    }
    cell = {
        (r, c): (2 if (r, c) in small else (0 if r != "r5" and c != "c5" else 40))
        for r in rows
        for c in cols
    }
    counts = {(("a", r), ("b", c)): v for (r, c), v in cell.items()}
    counts.update({(("a", r),): sum(cell[(r, c)] for c in cols) for r in rows})
    counts.update({(("b", c),): sum(cell[(r, c)] for r in rows) for c in cols})
    counts[()] = sum(cell.values())
    axes = {"a": rows, "b": cols}
    lines = lines_of_table(axes, ("a", "b"))
    primary = {key for key, v in counts.items() if 0 < v < 10}
    bridge = (("a", "r2"), ("b", "c3"))
    assert bridge in determined_unknowns(
        forms(lines), primary
    )  # the classic rule alone would leak it

    p = protect_tables(synthetic(counts, axes, [TableLayout("crosstab", "a", ("b",))]), 10)
    assert set(p.suppressed) > primary
    assert not determined_unknowns(forms(lines), p.suppressed)
    assert all(v > 0 for key, v in counts.items() if key in p.suppressed)


def test_percentages_are_of_the_whole_base_suppressed_cells_included():
    # 45 people answered: 5 in a suppressed cell, 30 and 10 published; 60 skipped (excluded).
    cells = [
        {"value": None, "suppressed": True, "reason": BELOW_MINIMUM},
        {"value": 30, "suppressed": False, "reason": None},
        {"value": 10, "suppressed": False, "reason": None},
        {"value": 60, "suppressed": False, "reason": None},
    ]
    out = with_percentages(cells, 45, exclude=[3])
    assert [c["percent"] for c in out] == [None, 66.7, 22.2, None]
    assert "value" in out[0] and out[0]["value"] is None
    # A hidden (None) or empty base gives no percentage at all.
    assert [c["percent"] for c in with_percentages(cells, None, exclude=[3])] == [None] * 4
    assert [c["percent"] for c in with_percentages(cells, 0, exclude=[3])] == [None] * 4


def test_numeric_summary_is_published_only_when_it_follows_from_published_counts():
    q = [{"id": "r", "type": "rating", "options": [], "dimension": False, "min": 1, "max": 5}]
    people = [1] * 3 + [2] * 12 + [3] * 30 + [4] * 30 + [5] * 30
    tables = tabulate(
        [Contribution(f"r{i}", f"p{i}", "c", {"r": v}) for i, v in enumerate(people)], q
    )
    p = protect_tables(tables, 10)
    assert {(("r", "1"),), (("r", "2"),)} <= set(p.suppressed)
    # n1 + n2 is public; the sum n1 + 2*n2 would pin both, and any sum isolates the hidden people's total
    assert not p.numeric["r"].published and p.numeric["r"].reason == SUPPRESSED

    people = (
        [1] * 10 + [2] * 14 + [3] * 30 + [4] * 30 + [5] * 30
    )  # every value published: the sum adds nothing
    tables = tabulate(
        [Contribution(f"r{i}", f"p{i}", "c", {"r": v}) for i, v in enumerate(people)], q
    )
    p = protect_tables(tables, 10)
    assert p.numeric["r"].published and p.numeric["r"].mean == pytest.approx(
        sum(people) / len(people)
    )


def test_rare_numbers_are_grouped_until_the_group_holds_k_and_its_mean_is_not_published():
    q = [{"id": "n", "type": "number", "options": [], "dimension": False}]
    values = [1234] + [99] * 2 + [5] * 12 + [7] * 20 + [8] * 30
    tables = tabulate(
        [Contribution(f"r{i}", f"p{i}", "c", {"n": v}) for i, v in enumerate(values)], q
    )
    p = protect_tables(tables, 10)
    # 1234 and 99 (3 people) are rare; the group takes the next rarest (5: 12 people) to reach k
    assert p.tables.axes["n"].categories == ("7", "8", OTHER_VALUES, "_declined", "_skipped")
    assert p.tables.count((("n", OTHER_VALUES),)) == 15
    assert not p.numeric["n"].published  # the sum would give the group's mean


def test_minimum_cell_size_default_floor_and_type():
    assert effective_min_cell_size(None).k == 10
    clamped = effective_min_cell_size(3)
    assert (clamped.k, clamped.requested) == (5, 3) and "raised to 5" in clamped.note
    assert effective_min_cell_size(12).k == 12 and effective_min_cell_size(12).note is None
    with pytest.raises(ValidationFailed):
        effective_min_cell_size("10")


# ---- differential privacy ------------------------------------------------------


def test_budget_spending_and_exhaustion():
    budget = PrivacyBudget("c", 1.0)
    budget = spend_privacy_budget(budget, 0.6, snapshot=1)
    with pytest.raises(Conflict):  # two releases never share one charge
        spend_privacy_budget(budget, 0.1, snapshot=1)
    with pytest.raises(Conflict) as err:
        spend_privacy_budget(budget, 0.5, snapshot=2)
    assert err.value.detail == "privacy budget exhausted"
    assert err.value.extra["remaining"] == pytest.approx(0.4)
    budget = spend_privacy_budget(budget, 0.4, snapshot=2)
    assert budget.remaining == pytest.approx(0.0)
    assert privacy_budget_from_document(budget.to_document()) == budget
    with pytest.raises(ValidationFailed):
        spend_privacy_budget(budget, 0, snapshot=3)


DP_QUESTIONS = [
    {"id": "region", "type": "single_choice", "options": ["n", "s"], "dimension": True},
    {"id": "q", "type": "multiple_choice", "options": ["a", "b", "c"], "dimension": False},
    {"id": "n", "type": "number", "options": [], "dimension": False},
]


def dp_tables():
    cs = [
        Contribution(
            f"r{i}", f"p{i}", "c", {"region": "ns"[i % 2], "q": ["a", "c"][: 1 + i % 2], "n": i}
        )
        for i in range(200)
    ]
    return tabulate(cs, DP_QUESTIONS)


def test_sensitivity_counts_every_key_one_person_can_touch():
    t = dp_tables()
    # shapes (), (n), (q), (region), (n, region), (q, region): 1 + 1 + 3 + 1 + 1 + 3
    assert dp_sensitivity(t) == 10


def test_laplace_noise_withholds_data_driven_questions_and_keeps_counts_integral():
    t = dp_tables()
    noisy = add_laplace_noise(t, 1e6)  # negligible noise: counts match
    assert "n" in noisy.withheld and "n" not in noisy.axes and noisy.numeric == {}
    assert noisy.privacy["sensitivity"] == 8 and noisy.privacy["epsilon"] == 1e6
    for key, v in noisy.counts.items():
        assert isinstance(v, int) and v >= 0
        assert abs(v - t.count(key)) <= 1
    rough = add_laplace_noise(t, 0.05)  # scale 120: the counts cannot all survive unchanged
    assert any(rough.counts[key] != t.count(key) for key in rough.counts)
    p = protect_tables(rough, 10)
    assert all(
        rough.counts[key] == 0 or rough.counts[key] >= 10
        for key in rough.counts
        if key not in p.suppressed
    )


# ---- three-way tables: where table-by-table protection is not enough ----------


@st.composite
def cubes(draw):
    """A question x dimension x dimension table (additive, with all its margins)."""
    sizes = [draw(st.integers(2, 3)) for _ in range(3)]
    cats = {q: tuple(f"{q}{i}" for i in range(n)) for q, n in zip("abc", sizes, strict=True)}
    cell_value = st.one_of(st.integers(1, 4), st.just(0), st.integers(5, 40))
    counts: dict = {}
    for combo in product(*(cats[q] for q in "abc")):
        v = draw(cell_value)
        for size in range(4):
            for sub in combinations(range(3), size):
                key = tuple(("abc"[i], combo[i]) for i in sub)
                counts[key] = counts.get(key, 0) + v
    return cats, counts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cubes())
def test_three_way_table_with_all_margins_leaks_nothing(cube):
    cats, counts = cube
    tables = synthetic(counts, cats, [TableLayout("crosstab2", "a", ("b", "c"))])
    p = protect_tables(tables, 5)
    assert all(v == 0 or v >= 5 for key, v in counts.items() if key not in p.suppressed)
    assert all(counts[key] > 0 for key in p.suppressed)
    assert not determined_unknowns(forms(lines_of_table(cats, ("a", "b", "c"))), p.suppressed)


def test_the_exact_audit_catches_what_the_two_way_slices_miss():
    # Found by random search: after the table-by-table (graph) step every 2-D
    # slice of this cube is protected, yet the 3-D equations still pin a
    # suppressed cell; the audit has to add suppressions (a second round).
    cats = {"a": ("a0", "a1"), "b": ("b0", "b1"), "c": ("c0", "c1", "c2")}
    cell = {
        ("a0", "b0", "c0"): 30,
        ("a0", "b0", "c1"): 0,
        ("a0", "b0", "c2"): 0,
        ("a0", "b1", "c0"): 2,
        ("a0", "b1", "c1"): 2,
        ("a0", "b1", "c2"): 2,
        ("a1", "b0", "c0"): 2,
        ("a1", "b0", "c1"): 2,
        ("a1", "b0", "c2"): 2,
        ("a1", "b1", "c0"): 30,
        ("a1", "b1", "c1"): 30,
        ("a1", "b1", "c2"): 2,
    }
    counts: dict = {}
    for combo, v in cell.items():
        for size in range(4):
            for sub in combinations(range(3), size):
                key = tuple(("abc"[i], combo[i]) for i in sub)
                counts[key] = counts.get(key, 0) + v
    tables = synthetic(counts, cats, [TableLayout("crosstab2", "a", ("b", "c"))])
    p = protect_tables(tables, 5)
    assert p.audit_rounds > 1
    assert not determined_unknowns(forms(lines_of_table(cats, ("a", "b", "c"))), p.suppressed)
    assert all(counts[key] > 0 for key in p.suppressed)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_noisy_counts_are_non_negative_integers_that_add_up_in_every_table(seed):
    rng = np.random.default_rng(seed)
    cs = [
        Contribution(
            f"r{i}",
            f"p{i}",
            "c",
            {"region": "ns"[rng.integers(2)], "q": ["a", "b", "c"][: 1 + rng.integers(3)]},
        )
        for i in range(int(rng.integers(0, 60)))
    ]
    tables = tabulate(cs, DP_QUESTIONS[:2])
    noisy = add_laplace_noise(tables, 0.3)
    assert all(isinstance(v, int) and v >= 0 for v in noisy.counts.values())
    for rel in reader_relations(noisy):
        total = sum(c * noisy.count(key) for key, c in rel.coefficients.items())
        assert total == 0 if rel.equality else total <= 0
    # Protection then works on them like on exact counts (the audit needs tables that add up).
    protect_tables(noisy, 5)
