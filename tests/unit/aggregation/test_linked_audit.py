"""An independent attack on released snapshots: integer programs over every table at once.

The attacker here reads only the snapshot document, as a policy user gets
it (the JSON export), and knows how the tables fit together: every line of
every table adds up to its margin (for a multiple-choice question: each
option at most the margin, everyone in at least one category, nobody in
more than all options), a published figure is exact, and a suppressed one
is at least 1 (the README: zeros are always published, and every hidden
figure carries the same mark). For every suppressed figure it asks an
integer program for the smallest and largest value; the release is safe
when every such range spans at least k.

For two snapshots the attacker has both documents. Nothing links the
hidden figures of one to those of the other (people join and withdraw),
so the range of a figure's change is the difference of its two ranges.
"""

from __future__ import annotations

import math
from itertools import combinations, product

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from services.aggregation.disclosure import protect_tables
from services.aggregation.projection import DECLINED, SKIPPED, Contribution
from services.aggregation.snapshots import build_snapshot, published_figures
from services.aggregation.tables import tabulate

# ---- the attacker ---------------------------------------------------------------


def read_snapshot(doc):
    """(published figures by key, categories per question, types, table shapes) from a snapshot document."""
    figures: dict = {}
    hidden: set = set()
    cats: dict = {}
    types: dict = {}
    shapes: set = set()

    def note(pairs, cell):
        key = tuple(sorted(pairs))
        if cell["suppressed"]:
            assert cell["value"] is None and cell["reason"] == "suppressed"
            hidden.add(key)
        else:
            figures[key] = cell["value"]

    note((), doc["contributors"])
    for q in doc["questions"]:
        qid = q["question_id"]
        cats[qid] = tuple(c["category"] for c in q["categories"])
        types[qid] = q["type"]
        shapes.add((qid,))
        note((), q["total"])
        for c in q["categories"]:
            note([(qid, c["category"])], c)
    for kind in ("crosstabs", "crosstabs2"):
        for t in doc[kind]:
            shapes.add(tuple(sorted([t["question_id"], *t["dimensions"]])))
            for g in t["groups"]:
                fixed = list(zip(t["dimensions"], g["categories"], strict=True))
                note(fixed, g["total"])
                for c in g["cells"]:
                    note(fixed + [(t["question_id"], c["category"])], c)
    assert not hidden & set(figures), "a figure is both published and suppressed"
    return figures, hidden, cats, types, shapes


def attacker_relations(cats, types, shapes):
    """(coefficients, is_equality) for every line of every table and of all its margins: sum <= 0 or == 0."""
    out = []
    done = set()
    for shape in shapes:
        for size in range(1, len(shape) + 1):
            for sub in combinations(shape, size):
                if sub in done:
                    continue
                done.add(sub)
                for q in sub:
                    rest = [s for s in sub if s != q]
                    for fixed in product(*(cats[s] for s in rest)):
                        base = list(zip(rest, fixed, strict=True))
                        margin = tuple(sorted(base))
                        cells = {c: tuple(sorted(base + [(q, c)])) for c in cats[q]}
                        if types[q] != "multiple_choice":
                            coef = dict.fromkeys(cells.values(), 1)
                            coef[margin] = -1
                            out.append((coef, True))
                            continue
                        for key in cells.values():
                            out.append(({key: 1, margin: -1}, False))
                        out.append(({**dict.fromkeys(cells.values(), -1), margin: 1}, False))
                        options = [key for c, key in cells.items() if c not in (DECLINED, SKIPPED)]
                        reserved = [key for c, key in cells.items() if c in (DECLINED, SKIPPED)]
                        n = len(options)
                        out.append(
                            (
                                {
                                    **dict.fromkeys(options, 1),
                                    **dict.fromkeys(reserved, n),
                                    margin: -n,
                                },
                                False,
                            )
                        )
    return out


def attack(doc) -> dict:
    """Integer range (low, high) of every suppressed figure of a snapshot document."""
    figures, hidden, cats, types, shapes = read_snapshot(doc)
    relations = attacker_relations(cats, types, shapes)
    unknown = sorted(hidden | {key for coef, _ in relations for key in coef if key not in figures})
    if not unknown:
        return {}
    index = {key: i for i, key in enumerate(unknown)}
    rows, lo, hi = [], [], []
    for coef, equality in relations:
        row = np.zeros(len(unknown))
        constant = 0
        for key, c in coef.items():
            if key in index:
                row[index[key]] += c
            else:
                constant += c * figures[key]
        if not row.any():
            assert (constant == 0) if equality else (constant <= 0), (
                "published figures contradict a table"
            )
            continue
        rows.append(row)
        lo.append(-constant if equality else -np.inf)
        hi.append(-constant)
    constraint = LinearConstraint(np.array(rows), lo, hi)
    bounds = Bounds(np.array([1 if key in hidden else 0 for key in unknown]), np.inf)
    ranges = {}
    for key in sorted(hidden):
        ends = []
        for sign in (1, -1):
            c = np.zeros(len(unknown))
            c[index[key]] = sign
            res = milp(
                c, integrality=np.ones(len(unknown)), bounds=bounds, constraints=[constraint]
            )
            if res.status == 0:
                ends.append(round(res.x[index[key]]))
                continue
            # HiGHS may say "unbounded or infeasible": the figures are feasible, so only "no maximum" is allowed.
            feasible = milp(
                np.zeros(len(unknown)),
                integrality=np.ones(len(unknown)),
                bounds=bounds,
                constraints=[constraint],
            )
            assert feasible.status == 0 and sign == -1, res.message
            ends.append(math.inf)
        ranges[key] = tuple(ends)
    return ranges


def assert_safe(doc, k):
    figures, _hidden, *_ = read_snapshot(doc)
    small = {key: v for key, v in figures.items() if 0 < v < k}
    assert not small, f"published below k: {small}"
    ranges = attack(doc)
    narrow = {key: r for key, r in ranges.items() if r[1] - r[0] < k}
    assert not narrow, f"suppressed figures narrowed below {k}: {narrow}"
    for q in doc["questions"]:
        num = q.get("numeric")
        if num and not num["suppressed"]:
            # A published sum must follow from published counts: no hidden value may be isolated by it.
            assert all(
                not c["suppressed"]
                for c in q["categories"]
                if c["category"] not in (DECLINED, SKIPPED)
            )
            assert "_other_values" not in [c["category"] for c in q["categories"]]
    return ranges


def release(contributions, questions, k, number=1, earlier=()):
    tables = tabulate(contributions, questions, consultation_id="c")
    p = protect_tables(tables, k, earlier=[published_figures(e) for e in earlier])
    return build_snapshot(
        tables, p, consultation_id="c", snapshot=number, created_at="2026-01-01T00:00:00Z"
    )


# ---- random consultations near k ------------------------------------------------


@st.composite
def surveys(draw):
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
            "options": ["a", "b", "c"][: draw(st.integers(2, 3))],
            "dimension": False,
        },
    ]
    if draw(st.booleans()):
        questions.append({"id": "years", "type": "number", "options": [], "dimension": False})
    k = draw(st.integers(5, 8))
    return questions, k


def people(draw, questions, n, start=0):
    qtype = questions[2]["type"]
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
            "years": st.integers(0, 6),
        },
    )
    answers = draw(
        st.lists(
            st.tuples(person, st.lists(st.sampled_from(["region", "q"]), max_size=1)),
            min_size=n,
            max_size=n,
        )
    )
    return [
        Contribution(f"r{start + i}", f"p{start + i}", "c", a, tuple(d), 1, "t")
        for i, (a, d) in enumerate(answers)
    ]


@st.composite
def snapshots_near_k(draw):
    questions, k = draw(surveys())
    n = draw(st.integers(k, 6 * k))
    return questions, k, people(draw, questions, n)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(snapshots_near_k())
def test_no_suppressed_figure_of_a_snapshot_can_be_narrowed_below_k(case):
    questions, k, contributions = case
    assert_safe(release(contributions, questions, k), k)


@st.composite
def successive_snapshots(draw):
    questions, k = draw(surveys())
    before = people(draw, questions, draw(st.integers(2 * k, 6 * k)))
    kind = draw(st.sampled_from(["additions", "withdrawals", "both"]))
    added = (
        people(draw, questions, draw(st.integers(1, 2 * k)), start=1000)
        if kind != "withdrawals"
        else []
    )
    gone = set(
        draw(st.lists(st.sampled_from(range(len(before))), unique=True, min_size=1, max_size=2 * k))
        if kind != "additions"
        else []
    )
    after = [c for i, c in enumerate(before) if i not in gone] + added
    return questions, k, before, after


def change_ranges(first, second, k):
    """Range of every figure's change between two snapshots, from both documents only."""
    a_figs, a_hidden, *_ = read_snapshot(first)
    b_figs, b_hidden, *_ = read_snapshot(second)
    a_ranges, b_ranges = attack(first), attack(second)
    out = {}
    for key in (set(a_figs) | a_hidden) & (set(b_figs) | b_hidden):
        a_lo, a_hi = a_ranges.get(key, (a_figs.get(key), a_figs.get(key)))
        b_lo, b_hi = b_ranges.get(key, (b_figs.get(key), b_figs.get(key)))
        out[key] = (b_lo - a_hi, b_hi - a_lo)
    return out


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(successive_snapshots())
def test_what_changed_between_two_snapshots_cannot_be_narrowed_below_k(case):
    questions, k, before, after = case
    first = release(before, questions, k)
    second = release(after, questions, k, number=2, earlier=[first])
    assert_safe(second, k)
    for key, (low, high) in change_ranges(first, second, k).items():
        if low == high:
            assert low == 0 or abs(low) >= k, f"{key} changed by exactly {low}"
        else:
            assert high - low >= k, f"the change of {key} is narrowed to {low}..{high}"


def test_one_added_participant_is_not_readable_by_subtraction():
    questions = [
        {"id": "region", "type": "single_choice", "options": ["n", "s"], "dimension": True},
        {"id": "q", "type": "single_choice", "options": ["a", "b"], "dimension": False},
    ]
    before = [
        Contribution(f"r{i}", f"p{i}", "c", {"region": "ns"[i % 2], "q": "ab"[i // 2 % 2]})
        for i in range(40)
    ]
    newcomer = Contribution("r99", "p99", "c", {"region": "s", "q": "b"})
    first = release(before, questions, 5)
    assert not any(c["suppressed"] for q in first["questions"] for c in q["categories"])
    second = release(before + [newcomer], questions, 5, number=2, earlier=[first])
    assert_safe(second, 5)
    a, b = published_figures(first), published_figures(second)
    assert all(b[key] == a[key] or abs(b[key] - a[key]) >= 5 for key in set(a) & set(b))
    assert () not in b  # the total moved by one: it cannot be published next to the earlier one


def test_a_withdrawal_leaves_the_next_snapshot_and_is_not_readable_by_subtraction():
    questions = [
        {"id": "region", "type": "single_choice", "options": ["n", "s"], "dimension": True},
        {"id": "q", "type": "single_choice", "options": ["a", "b"], "dimension": False},
    ]
    everyone = [
        Contribution(f"r{i}", f"p{i}", "c", {"region": "ns"[i % 2], "q": "ab"[i // 2 % 2]})
        for i in range(41)
    ]
    first = release(everyone, questions, 5)
    second = release(everyone[1:], questions, 5, number=2, earlier=[first])
    assert_safe(second, 5)
    for key, (low, high) in change_ranges(first, second, 5).items():
        assert (low == high == 0) or high - low >= 5, key
    # Compared with the first snapshot, not only the last one.
    third = release(everyone[1:], questions, 5, number=3, earlier=[first, second])
    for key, value in published_figures(third).items():
        before = published_figures(first).get(key)
        assert before is None or value == before or abs(value - before) >= 5


def test_a_line_of_ten_with_eight_published_no_longer_pins_its_two_small_cells():
    # Reported: total 10, 8 published, two cells marked "below minimum" -> both had to be 1.
    questions = [
        {"id": "q", "type": "single_choice", "options": ["a", "b", "c"], "dimension": False}
    ]
    answers = ["a"] * 8 + ["b", "c"]
    doc = release(
        [Contribution(f"r{i}", f"p{i}", "c", {"q": v}) for i, v in enumerate(answers)], questions, 5
    )
    cells = {c["category"]: c for c in doc["questions"][0]["categories"]}
    assert all(
        cells[c]
        == {
            "category": c,
            "value": None,
            "suppressed": True,
            "reason": "suppressed",
            "percent": None,
        }
        for c in "abc"
    )
    assert all(high - low >= 5 for low, high in assert_safe(doc, 5).values())
