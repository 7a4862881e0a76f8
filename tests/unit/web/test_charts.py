"""Server-side SVG charts: CSP-safe markup, text alternatives, suppressed cells drawn as such,
bar lengths proportional to the counts (measured on the SVG, not taken from the spec)."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from gateway.web import charts
from gateway.web.charts import Bar, Group

SVG = "{http://www.w3.org/2000/svg}"
HIDDEN = "hidden: fewer than 10 people"


def parse(chart: charts.Chart) -> ET.Element:
    return ET.fromstring(str(chart.svg))  # noqa: S314 (the module's own output)


def texts(root: ET.Element) -> list[str]:
    return [node.text or "" for node in root.iter(f"{SVG}text")]


def bar_widths(root: ET.Element, layer: int) -> list[float]:
    """Widths of the bars of one layer, read from their path data ("M x,y h W v H h -W Z")."""
    widths = []
    for group in root.iter(f"{SVG}g"):
        if f"layer_{layer}_marks" in (group.get("class") or "").split():
            for path in group.iter(f"{SVG}path"):
                match = re.match(r"M[-\d.e]+,[-\d.e]+h([-\d.e]+)", path.get("d", ""))
                assert match, path.get("d")
                widths.append(abs(float(match.group(1))))
    return widths


def assert_csp_safe(chart: charts.Chart) -> None:
    markup = str(chart.svg)
    root = parse(chart)
    tags = {node.tag.removeprefix(SVG) for node in root.iter()}
    assert not tags & {"script", "style", "foreignObject", "image", "use", "a"}
    for node in root.iter():
        for name, value in node.attrib.items():
            assert name != "style"
            assert not name.startswith("on"), name
            assert "url(" not in value and "http" not in value.replace("http://www.w3.org/", ""), (
                name,
                value,
            )
    assert "javascript:" not in markup


def assert_labelled(chart: charts.Chart, title: str) -> None:
    root = parse(chart)
    assert root.get("role") == "img"
    # Texts were placed for left-to-right anchors, whatever the page's direction.
    assert root.get("direction") == "ltr"
    ids = [root.get("aria-labelledby", ""), root.get("aria-describedby", "")]
    by_id = {node.get("id"): node for node in root.iter() if node.get("id")}
    assert by_id[ids[0]].tag == f"{SVG}title" and by_id[ids[0]].text == title
    assert by_id[ids[1]].tag == f"{SVG}desc" and by_id[ids[1]].text == chart.summary
    # No other element claims a role of its own inside the image.
    assert [node for node in root.iter() if node.get("role")] == [root]


def test_category_bars_are_proportional_and_labelled() -> None:
    chart = charts.category_bars(
        "Where people live",
        [Bar("Amman", 25), Bar("Zarqa", 12), Bar("Salt", 10)],
        suppressed_label=HIDDEN,
        value_title="People",
    )
    assert_csp_safe(chart)
    assert_labelled(chart, "Where people live")
    widths = bar_widths(parse(chart), 0)
    assert len(widths) == 3
    assert widths[1] / widths[0] == pytest.approx(12 / 25, rel=1e-6)
    assert widths[2] / widths[0] == pytest.approx(10 / 25, rel=1e-6)
    assert {"Amman", "Zarqa", "Salt", "25", "12", "10", "People"} <= set(texts(parse(chart)))
    assert chart.summary == "Amman: 25; Zarqa: 12; Salt: 10"


def test_suppressed_category_is_drawn_as_hidden_not_as_zero() -> None:
    chart = charts.category_bars(
        "Where people live",
        [Bar("Amman", 25), Bar("Irbid", None), Bar("Zarqa", 12)],
        suppressed_label=HIDDEN,
    )
    root = parse(chart)
    assert_csp_safe(chart)
    assert len(bar_widths(root, 0)) == 2  # counted bars: Amman and Zarqa only
    (placeholder,) = [
        path
        for group in root.iter(f"{SVG}g")
        if "layer_1_marks" in (group.get("class") or "")
        for path in group.iter(f"{SVG}path")
    ]
    assert placeholder.get("stroke-dasharray")
    assert placeholder.get("fill") == charts.SUPPRESSED_FILL
    value_labels = [
        node.text
        for group in root.iter(f"{SVG}g")
        if "layer_2_marks" in (group.get("class") or "")
        for node in group.iter(f"{SVG}text")
    ]
    assert value_labels == ["25", HIDDEN, "12"]
    assert "Irbid: " + HIDDEN in chart.summary


def test_labels_are_escaped() -> None:
    hostile = '<script>x</script>&"q"'
    chart = charts.category_bars(hostile, [Bar(hostile, 11)], suppressed_label=HIDDEN)
    assert_csp_safe(chart)
    root = parse(chart)
    assert hostile in texts(root)
    assert_labelled(chart, hostile)


def test_grouped_bars_draw_every_cell_and_a_legend() -> None:
    chart = charts.grouped_bars(
        "Housing by city",
        [
            Group("Amman", [Bar("housed", 14), Bar("not housed", 11)]),
            Group("Irbid", [Bar("housed", None), Bar("not housed", 12)]),
        ],
        suppressed_label=HIDDEN,
        series_title="Housing",
    )
    assert_csp_safe(chart)
    assert_labelled(chart, "Housing by city")
    root = parse(chart)
    widths = bar_widths(root, 0)
    assert sorted(widths) == pytest.approx(sorted(w * widths[0] / 14 for w in (14, 11, 12)))
    assert len(bar_widths(root, 1)) == 1
    assert {"Housing", "housed", "not housed", "Amman", "Irbid", f"housed: {HIDDEN}"} <= set(
        texts(root)
    )
    assert chart.summary == (
        f"Amman: housed: 14; not housed: 11. Irbid: housed: {HIDDEN}; not housed: 12."
    )


def test_stacked_bars_leave_suppressed_cells_out_of_the_stack() -> None:
    chart = charts.grouped_bars(
        "Housing by city",
        [
            Group("Amman", [Bar("housed", 14), Bar("not housed", 11)]),
            Group("Irbid", [Bar("housed", None), Bar("not housed", 12)]),
        ],
        suppressed_label=HIDDEN,
        series_title="Housing",
        stacked=True,
    )
    assert_csp_safe(chart)
    widths = bar_widths(parse(chart), 0)
    assert len(widths) == 3
    # Amman's two cells end where its stack ends: 14 + 11 = 25 against Irbid's 12 alone.
    amman = sorted(widths)[1:]
    assert max(widths) == pytest.approx(max(amman))
    assert HIDDEN in chart.summary


def test_counts_over_time_columns_and_line() -> None:
    points = [(dt.date(2026, 11, day), count) for day, count in ((1, 3), (2, 0), (3, 6))]
    columns = charts.counts_over_time("Answers per day", points, value_title="Answers")
    assert_csp_safe(columns)
    assert_labelled(columns, "Answers per day")
    widths_as_heights = []
    for path in parse(columns).iter(f"{SVG}path"):
        match = re.match(r"M[-\d.e]+,[-\d.e]+h[-\d.e]+v([-\d.e]+)", path.get("d", ""))
        if match and path.get("fill") == charts.BAR:
            widths_as_heights.append(float(match.group(1)))
    assert len(widths_as_heights) == 3
    assert widths_as_heights[1] == 0
    assert widths_as_heights[0] / widths_as_heights[2] == pytest.approx(3 / 6)
    assert columns.summary == "2026-11-01: 3 … 2026-11-03: 6 (Σ 9)"

    line = charts.counts_over_time("Answers per day", points, kind="line", language="ar")
    assert_csp_safe(line)
    assert_labelled(line, "Answers per day")
    assert "نوفمبر" in " ".join(texts(parse(line)))


@pytest.mark.parametrize("language", ["en", "fr", "ru", "ar", "zh", "es"])
def test_numbers_follow_the_page_language(language: str) -> None:
    from babel.numbers import format_decimal

    chart = charts.category_bars(
        "Figures", [Bar("a", 12345), Bar("b", 40)], suppressed_label=HIDDEN, language=language
    )
    shown = texts(parse(chart))
    # Babel (the tables) and the chart agree on how a count is written.
    assert format_decimal(12345, locale=language) in shown


def test_right_to_left_pages_mirror_the_chart() -> None:
    bars = [Bar("عمّان", 25), Bar("إربد", 10)]
    ltr = parse(charts.category_bars("t", bars, suppressed_label=HIDDEN, language="en"))
    rtl = parse(charts.category_bars("t", bars, suppressed_label=HIDDEN, language="ar"))

    def anchors(root: ET.Element) -> list[str]:
        return [
            node.get("text-anchor", "")
            for group in root.iter(f"{SVG}g")
            if "layer_2_marks" in (group.get("class") or "")
            for node in group.iter(f"{SVG}text")
        ]

    assert set(anchors(ltr)) == {"start"}
    assert set(anchors(rtl)) == {"end"}


def test_two_charts_on_one_page_have_distinct_ids() -> None:
    first = charts.category_bars("A", [Bar("x", 12)], suppressed_label=HIDDEN)
    second = charts.category_bars("B", [Bar("x", 12)], suppressed_label=HIDDEN)
    named = charts.category_bars("A", [Bar("x", 12)], suppressed_label=HIDDEN, element_id="q1")
    assert parse(first).get("aria-labelledby") != parse(second).get("aria-labelledby")
    assert parse(named).get("aria-labelledby") == "q1-title"
    assert parse(named).get("aria-describedby") == "q1-desc"
