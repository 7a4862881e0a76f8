"""Charts drawn on the server as SVG, safe to place inline under the gateway's CSP.

Vega-Lite specifications are rendered by `vl-convert-python` (Vega running in an embedded
engine on the server), so no chart library ever runs in the visitor's browser. The SVG it
writes uses presentation attributes only: no <script>, no <style>, no style="" attribute and no
reference to anything outside the document, which `style-src 'self'` and `script-src 'self'`
would block or which would reach a third party. Every chart carries its text alternative
(a <title> and a <desc> the SVG is labelled by) and is meant to sit beside a table of the same
figures.

This module holds no words of its own: callers pass titles, summaries and the label of a
suppressed cell already translated, so the charts speak the page's language.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

import vl_convert
from babel import Locale, UnknownLocaleError
from babel.dates import get_day_names, get_month_names, get_period_names
from babel.numbers import get_decimal_symbol, get_group_symbol
from markupsafe import Markup

# Colours chosen for at least 4.5:1 against white (the text) and 3:1 (the bars, WCAG 1.4.11).
INK = "#1a1a1a"
BAR = "#1f5f8b"
SUPPRESSED_FILL = "#f0f0f0"
SUPPRESSED_STROKE = "#595959"
# Series colours for grouped bars (Okabe-Ito, darkened where needed for 3:1 against white).
SERIES = ("#1f5f8b", "#b35900", "#2e7d32", "#8e3b8e", "#a8323e", "#5c5c00", "#00607a", "#444444")
WIDTH = 560
BAR_STEP = 26
LABEL_LIMIT = 220
FONT = "system-ui, 'Noto Sans', 'DejaVu Sans', sans-serif"


@dataclass(frozen=True)
class Bar:
    """One category: `count` is None when the cell is suppressed (drawn as hidden, never as 0)."""

    label: str
    count: int | None


@dataclass(frozen=True)
class Group:
    """One row of a cross-tab: the breakdown value and its cells, one per series (option)."""

    label: str
    bars: Sequence[Bar]


@dataclass(frozen=True)
class Chart:
    """An SVG chart and its text alternative (the same words the SVG is labelled by)."""

    title: str
    summary: str
    svg: Markup = field(repr=False)

    def __html__(self) -> str:
        return str(self.svg)


def category_bars(
    title: str,
    bars: Sequence[Bar],
    *,
    suppressed_label: str,
    language: str = "en",
    summary: str | None = None,
    value_title: str = "",
    element_id: str | None = None,
) -> Chart:
    """A horizontal bar per category with its count written at the end of the bar.

    A suppressed category is drawn as a dashed, pale bar carrying `suppressed_label` (for
    example "hidden: fewer than 10 people"), so nobody reads it as zero. `summary` defaults to
    the figures in words ("Amman: 25; Irbid: hidden ...").
    """
    rows = [_bar_row(bar, "") for bar in bars]
    placeholder = _placeholder_length(rows)
    for row in rows:
        row["placeholder"] = placeholder
    rtl = _rtl(language)
    counted = _counted_bars({"value": BAR})
    _value_axis(counted, value_title, rtl)
    spec: dict[str, Any] = {
        "width": WIDTH,
        "height": {"step": BAR_STEP},
        "data": {"values": rows},
        "encoding": {
            "y": {
                "field": "label",
                "type": "nominal",
                # Each layer sees part of the rows: the order is given, not left to the layers.
                "sort": _unique(bar.label for bar in bars),
                "title": None,
                "axis": _category_axis(rtl),
            }
        },
        "layer": [counted, _suppressed_bars(), _count_labels(rtl, suppressed_label)],
    }
    text = summary if summary is not None else _describe(bars, suppressed_label)
    return _render(spec, title, text, language, element_id)


def grouped_bars(
    title: str,
    groups: Sequence[Group],
    *,
    suppressed_label: str,
    series_title: str,
    language: str = "en",
    summary: str | None = None,
    value_title: str = "",
    stacked: bool = False,
    element_id: str | None = None,
) -> Chart:
    """A cross-tab: one block of bars per group (breakdown value), one bar per series.

    Grouped by default (each cell readable on its own); `stacked=True` stacks the series of a
    group into one bar, where suppressed cells are left out of the stack and listed in the
    text alternative. Suppressed cells of a grouped chart are drawn as dashed pale bars.
    """
    rows: list[dict[str, Any]] = []
    series_order: list[str] = []
    for group in groups:
        for bar in group.bars:
            rows.append(_bar_row(bar, group.label))
            if bar.label not in series_order:
                series_order.append(bar.label)
    placeholder = _placeholder_length(rows)
    for row in rows:
        row["placeholder"] = placeholder
    rtl = _rtl(language)
    colour = {
        "field": "label",
        "type": "nominal",
        "title": series_title,
        "sort": series_order,
        "scale": {"domain": series_order, "range": _series_colours(len(series_order))},
        "legend": {"orient": "bottom", "direction": "vertical", "labelLimit": LABEL_LIMIT * 2},
    }
    encoding: dict[str, Any] = {
        "y": {
            "field": "group",
            "type": "nominal",
            "sort": _unique(group.label for group in groups),
            "title": None,
            "axis": _category_axis(rtl),
        }
    }
    if stacked:
        layers = [
            _counted_bars(colour, stack=True),
        ]
    else:
        encoding["yOffset"] = {"field": "label", "type": "nominal", "sort": series_order}
        layers = [
            _counted_bars(colour),
            _suppressed_bars(),
            _count_labels(rtl, suppressed_label, name_series=True),
        ]
    spec = {
        "width": WIDTH,
        "height": {"step": BAR_STEP * (1 if stacked else max(1, len(series_order)))},
        "data": {"values": rows},
        "encoding": encoding,
        "layer": layers,
    }
    _value_axis(layers[0], value_title, rtl)
    if summary is None:
        summary = " ".join(
            f"{group.label}: {_describe(group.bars, suppressed_label)}." for group in groups
        )
    return _render(spec, title, summary, language, element_id)


def counts_over_time(
    title: str,
    points: Sequence[tuple[dt.date, int]],
    *,
    language: str = "en",
    kind: Literal["column", "line"] = "column",
    summary: str | None = None,
    value_title: str = "",
    element_id: str | None = None,
) -> Chart:
    """Counts per day (or any date), as columns or as a line with its points marked.

    Dates without a point are not invented: pass a zero for a day that had none. `summary`
    defaults to the first and last dates with their counts and the total.
    """
    rows = [{"date": day.isoformat(), "count": int(count)} for day, count in points]
    rtl = _rtl(language)
    x: dict[str, Any] = {
        "field": "date",
        "type": "temporal" if kind == "line" else "ordinal",
        "title": None,
        "scale": {"reverse": rtl} if kind == "line" else {},
        "axis": {"labelAngle": 0 if kind == "line" else -45, "labelOverlap": True},
    }
    if kind == "column":
        x["timeUnit"] = "yearmonthdate"
        x["type"] = "ordinal"
        x["sort"] = "descending" if rtl else "ascending"
        x["axis"]["format"] = "%e %b"
    else:
        x["axis"]["format"] = "%e %b"
        x["timeUnit"] = "yearmonthdate"
    y = {
        "field": "count",
        "type": "quantitative",
        "title": value_title or None,
        "axis": {"tickMinStep": 1, "format": "d", "orient": "right" if rtl else "left"},
    }
    mark: dict[str, Any] = (
        {"type": "bar", "fill": BAR}
        if kind == "column"
        else {"type": "line", "stroke": BAR, "point": {"fill": BAR, "size": 40}}
    )
    spec = {
        "width": WIDTH,
        "height": 220,
        "data": {"values": rows},
        "mark": mark,
        "encoding": {"x": x, "y": y},
    }
    if summary is None:
        summary = _describe_series(points, language)
    return _render(spec, title, summary, language, element_id)


# ---------------------------------------------------------------------------------------------
# Spec pieces


def _bar_row(bar: Bar, group: str) -> dict[str, Any]:
    suppressed = bar.count is None
    return {
        "group": group,
        "label": bar.label,
        "count": None if suppressed else int(bar.count),  # type: ignore[arg-type]
        "suppressed": suppressed,
    }


def _placeholder_length(rows: Sequence[dict[str, Any]]) -> float:
    """How long a suppressed bar is drawn: a third of the longest counted bar, so it is clearly
    a shape of its own and never reads as a count (it carries no number)."""
    counted = [row["count"] for row in rows if row["count"] is not None]
    longest = max(counted, default=0)
    return max(longest / 3, 1)


def _counted_bars(colour: dict[str, Any], stack: bool = False) -> dict[str, Any]:
    encoding: dict[str, Any] = {
        "x": {"field": "count", "type": "quantitative", "stack": True if stack else None},
    }
    if "value" in colour:
        mark = {"type": "bar", "fill": colour["value"]}
    else:
        mark = {"type": "bar"}
        encoding["color"] = colour
    return {
        "transform": [{"filter": "!datum.suppressed"}],
        "mark": mark,
        "encoding": encoding,
    }


def _suppressed_bars() -> dict[str, Any]:
    return {
        "transform": [{"filter": "datum.suppressed"}],
        "mark": {
            "type": "bar",
            "fill": SUPPRESSED_FILL,
            "stroke": SUPPRESSED_STROKE,
            "strokeDash": [4, 3],
            "strokeWidth": 1,
        },
        "encoding": {"x": {"field": "placeholder", "type": "quantitative"}},
    }


def _count_labels(rtl: bool, suppressed_label: str, name_series: bool = False) -> dict[str, Any]:
    # In a cross-tab every hidden bar looks alike: its text names the series it stands for.
    hidden = json.dumps(suppressed_label)
    if name_series:
        hidden = f"datum.label + ': ' + {hidden}"
    return {
        "transform": [
            {
                "calculate": f"datum.suppressed ? {hidden} : format(datum.count, ',d')",
                "as": "shown",
            },
            {"calculate": "datum.suppressed ? datum.placeholder : datum.count", "as": "at"},
        ],
        "mark": {
            "type": "text",
            "align": "right" if rtl else "left",
            "dx": -4 if rtl else 4,
            "fill": INK,
            "fontSize": 12,
        },
        "encoding": {
            "x": {"field": "at", "type": "quantitative"},
            "text": {"field": "shown", "type": "nominal"},
        },
    }


def _category_axis(rtl: bool) -> dict[str, Any]:
    return {
        "orient": "right" if rtl else "left",
        "labelLimit": LABEL_LIMIT,
        "labelFontSize": 12,
        "labelColor": INK,
        "ticks": False,
        "domain": False,
        "labelPadding": 6,
    }


def _value_axis(layer: dict[str, Any], value_title: str, rtl: bool) -> None:
    layer["encoding"]["x"].update(
        {
            "title": value_title or None,
            "axis": {
                "tickMinStep": 1,
                "format": "d",
                # Counts are whole: a tick between two whole numbers gets no label.
                "labelExpr": "datum.value % 1 ? '' : datum.label",
                "labelColor": INK,
                "titleColor": INK,
            },
            "scale": {"reverse": rtl, "nice": True, "domainMin": 0},
        }
    )


def _unique(labels: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(labels))


def _series_colours(count: int) -> list[str]:
    return [SERIES[index % len(SERIES)] for index in range(count)]


def _rtl(language: str) -> bool:
    try:
        return Locale.parse(language).character_order == "right-to-left"
    except (UnknownLocaleError, ValueError):
        return False


def _describe(bars: Sequence[Bar], suppressed_label: str) -> str:
    return "; ".join(
        f"{bar.label}: {suppressed_label if bar.count is None else bar.count}" for bar in bars
    )


def _describe_series(points: Sequence[tuple[dt.date, int]], language: str) -> str:
    if not points:
        return ""
    ordered = sorted(points)
    first, last = ordered[0], ordered[-1]
    total = sum(count for _, count in ordered)
    return f"{first[0].isoformat()}: {first[1]} … {last[0].isoformat()}: {last[1]} (Σ {total})"


# ---------------------------------------------------------------------------------------------
# Rendering


def _render(
    spec: dict[str, Any], title: str, summary: str, language: str, element_id: str | None
) -> Chart:
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "background": "white",
        "padding": 8,
        **spec,
    }
    spec["config"] = {
        # The SVG is labelled as one image by its <title> and <desc>; Vega's own ARIA roles on
        # every mark would make screen readers walk hundreds of shapes instead.
        "aria": False,
        "font": FONT,
        "axis": {"labelColor": INK, "titleColor": INK, "gridColor": "#d9d9d9"},
        "legend": {"labelColor": INK, "titleColor": INK},
        "view": {"stroke": None},
    }
    document = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    chart_id = (
        element_id
        or "chart-" + hashlib.sha256((document + title + summary).encode()).hexdigest()[:12]
    )
    body = _svg(document, language)
    # Safe to mark: Vega writes every datum as escaped text, and _label escapes title and summary.
    svg = Markup(_label(body, chart_id, title, summary))  # noqa: S704
    return Chart(title=title, summary=summary, svg=svg)


@lru_cache(maxsize=256)
def _svg(document: str, language: str) -> str:
    return vl_convert.vegalite_to_svg(
        json.loads(document),
        format_locale=_format_locale(language),
        time_format_locale=_time_format_locale(language),
        # Data are always inline: refuse any URL a specification could name.
        allowed_base_urls=[],
    )


_SVG_OPEN = re.compile(r"<svg\b[^>]*>")
_INNER_ARIA = re.compile(r'\s(?:role|aria-roledescription|aria-label|aria-hidden)="[^"]*"')


def _label(svg: str, chart_id: str, title: str, summary: str) -> str:
    """Give the SVG its text alternative: role="img" named by its <title>, described by its
    <desc> (the figures in words)."""
    # Vega marks some groups with ARIA roles even with aria off; inside role="img" they would
    # only contradict the image's own label.
    svg = _INNER_ARIA.sub("", svg)
    match = _SVG_OPEN.search(svg)
    if match is None:
        raise ValueError("the renderer returned no <svg> element")
    opening = match.group(0)
    # Vega placed every text for left-to-right anchors; in a right-to-left page SVG text would
    # inherit `direction: rtl` and swap what start and end mean. Arabic words still read right
    # to left inside each text.
    opening = re.sub(r'\sdirection="[^"]*"', "", opening)
    labelled = opening[:-1] + (
        ' direction="ltr"' + f' role="img" focusable="false" aria-labelledby="{chart_id}-title"'
        f' aria-describedby="{chart_id}-desc">'
    )
    text = (
        f"<title id={quoteattr(chart_id + '-title')}>{escape(title)}</title>"
        f"<desc id={quoteattr(chart_id + '-desc')}>{escape(summary)}</desc>"
    )
    return svg[: match.start()] + labelled + text + svg[match.end() :]


@lru_cache(maxsize=16)
def _format_locale(language: str) -> dict[str, Any]:
    """Number symbols as Babel writes them for the page's tables, so chart and table agree."""
    locale = _locale(language)
    return {
        "decimal": get_decimal_symbol(locale),
        "thousands": get_group_symbol(locale),
        "grouping": [3],
        "currency": ["", ""],
    }


@lru_cache(maxsize=16)
def _time_format_locale(language: str) -> dict[str, Any]:
    """Month and day names from Babel (d3's format: Sunday first)."""
    locale = _locale(language)
    days = get_day_names("wide", locale=locale)
    short_days = get_day_names("abbreviated", locale=locale)
    # Babel numbers days from Monday (0); d3 lists them from Sunday.
    order = [6, 0, 1, 2, 3, 4, 5]
    months = get_month_names("wide", locale=locale)
    short_months = get_month_names("abbreviated", locale=locale)
    periods = get_period_names(locale=locale)
    return {
        "dateTime": "%x %X",
        "date": "%Y-%m-%d",
        "time": "%H:%M:%S",
        "periods": [periods.get("am", "AM"), periods.get("pm", "PM")],
        "days": [days[index] for index in order],
        "shortDays": [short_days[index] for index in order],
        "months": [months[index] for index in range(1, 13)],
        "shortMonths": [short_months[index] for index in range(1, 13)],
    }


def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")
