"""Released results for policy teams: the consultations with releases, and one release read as a
report (per question a chart and its table, cross-tabs by each breakdown, what was hidden and
why, noise, approved quotes, downloads). Everything comes from the released snapshot itself, whose
words (question wording, option labels) were frozen when it was released.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_decimal
from flask import Response, g, request

from gateway.web import charts
from gateway.web.i18n import N_, supported
from gateway.web.oversight.downloads import download
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff.pages import _, add_nav, call, render, signed_in, staff_blueprint

insights = staff_blueprint("insights", __name__)
READERS = ("policy", "organiser", "admin")
add_nav("insights.index", N_("Released results"), {"policy", "admin"}, order=20)

SKIPPED = "_skipped"
# Categories the tables add themselves, in the page's words.
RESERVED = {
    SKIPPED: N_("Skipped the question"),
    "_declined": N_("Prefer not to say"),
    "_other_values": N_("Other answers (rare ones grouped)"),
}


@dataclass
class Cell:
    label: str
    value: int | None
    percent: float | None
    suppressed: bool
    value_text: str = ""
    percent_text: str = ""


@dataclass
class QuestionView:
    question_id: str
    text: str
    cells: list[Cell]
    base: str
    chart: charts.Chart | None
    mean: str | None = None
    crosstabs: list[CrosstabView] = field(default_factory=list)


@dataclass
class CrosstabView:
    dimension: str
    columns: list[str]
    rows: list[tuple[str, str, list[Cell]]]  # (group label, its base, its cells)
    chart: charts.Chart


def _pick(texts: Mapping[str, str] | None, language: str, fallback: str) -> str:
    if not texts:
        return fallback
    return texts.get(language) or next(iter(texts.values()), fallback)


class Words:
    """The frozen words of one release, read in one language."""

    def __init__(self, snapshot: Mapping[str, Any], language: str) -> None:
        self.wording = snapshot.get("wording") or {}
        self.language = language

    def title(self, fallback: str) -> str:
        return _pick(self.wording.get("title"), self.language, fallback)

    def question(self, question_id: str) -> str:
        question = (self.wording.get("questions") or {}).get(question_id) or {}
        return _pick(question.get("label"), self.language, question_id)

    def category(self, question_id: str, category: str) -> str:
        if category in RESERVED:
            return _(RESERVED[category])
        question = (self.wording.get("questions") or {}).get(question_id) or {}
        return _pick((question.get("options") or {}).get(category), self.language, category)


def _number(value: float, language: str) -> str:
    return format_decimal(value, locale=language)


def _cells(raw: list[Mapping[str, Any]], question_id: str, words: Words) -> list[Cell]:
    out = []
    for cell in raw:
        suppressed = bool(cell.get("suppressed"))
        value = None if suppressed else cell.get("value")
        percent = cell.get("percent")
        out.append(
            Cell(
                label=words.category(question_id, cell["category"]),
                value=value,
                percent=percent,
                suppressed=suppressed,
                value_text="" if value is None else _number(value, words.language),
                percent_text="" if percent is None else _number(percent, words.language) + " %",
            )
        )
    return out


def _base_text(cell: Mapping[str, Any] | None, language: str) -> str:
    if not cell or cell.get("suppressed") or cell.get("value") is None:
        return _("hidden")
    return _number(cell["value"], language)


def hidden_label(k: int) -> str:
    return _("hidden (fewer than %(k)s people, or protects another hidden figure)", k=k)


def question_views(snapshot: Mapping[str, Any], language: str) -> list[QuestionView]:
    """Every published question of a snapshot with its chart, table and cross-tabs, in words."""
    words = Words(snapshot, language)
    k = int(snapshot.get("k") or 0)
    hidden = hidden_label(k)
    views = []
    for question in snapshot.get("questions") or []:
        qid = question["question_id"]
        text = words.question(qid)
        cells = _cells(question.get("categories") or [], qid, words)
        shown = [
            charts.Bar(c.label, c.value)
            for c, raw in zip(cells, question.get("categories") or [], strict=True)
            if raw["category"] != SKIPPED
        ]
        chart = (
            charts.category_bars(
                text,
                shown,
                suppressed_label=_("hidden"),
                language=language,
                value_title=_("People"),
                element_id=f"chart-{qid}",
                summary=_describe(shown, hidden),
            )
            if shown
            else None
        )
        numeric = question.get("numeric") or {}
        mean = None
        if numeric and not numeric.get("suppressed") and numeric.get("mean") is not None:
            mean = _number(numeric["mean"], language)
        view = QuestionView(
            question_id=qid,
            text=text,
            cells=cells,
            base=_base_text(question.get("contributors"), language),
            chart=chart,
            mean=mean,
        )
        for table in snapshot.get("crosstabs") or []:
            if table["question_id"] == qid:
                view.crosstabs.append(_crosstab(table, words, hidden))
        views.append(view)
    return views


def _describe(bars: list[charts.Bar], hidden: str) -> str:
    return "; ".join(f"{b.label}: {hidden if b.count is None else b.count}" for b in bars)


def _crosstab(table: Mapping[str, Any], words: Words, hidden: str) -> CrosstabView:
    qid = table["question_id"]
    (dimension,) = table["dimensions"]
    rows = []
    groups = []
    columns: list[str] = []
    for group in table.get("groups") or []:
        label = words.category(dimension, group["categories"][0])
        kept = [c for c in group.get("cells") or [] if c["category"] != SKIPPED]
        cells = _cells(kept, qid, words)
        if not columns:
            columns = [c.label for c in cells]
        rows.append((label, _base_text(group.get("base"), words.language), cells))
        total = group.get("total") or {}
        if not total.get("suppressed") and not total.get("value"):
            continue  # nobody in this group: a row of the table, not a block of the chart
        groups.append(charts.Group(label, [charts.Bar(c.label, c.value) for c in cells]))
    # Answers nobody in any charted group gave stay in the table only.
    empty = {
        index
        for index in range(len(columns))
        if all(group.bars[index].count == 0 for group in groups)
    }
    groups = [
        charts.Group(g.label, [b for i, b in enumerate(g.bars) if i not in empty]) for g in groups
    ]
    title = _(
        "%(question)s, by %(dimension)s",
        question=words.question(qid),
        dimension=words.question(dimension),
    )
    chart = charts.grouped_bars(
        title,
        groups,
        suppressed_label=_("hidden"),
        series_title=words.question(qid),
        language=words.language,
        value_title=_("People"),
        element_id=f"chart-{qid}-by-{dimension}",
        summary=" ".join(f"{g.label}: {_describe(list(g.bars), hidden)}." for g in groups),
    )
    return CrosstabView(
        dimension=words.question(dimension), columns=columns, rows=rows, chart=chart
    )


def _when(iso: str, language: str) -> str:
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso
    return format_datetime(moment, "medium", tzinfo=moment.tzinfo, locale=language) + " UTC"


@insights.route("/insights")
@signed_in(*READERS)
def index() -> Response:
    released = call("GET", "/api/v1/insights/consultations")["releases"]
    lang = g.web_lang
    for item in released:
        item["when"] = _when(item["released_at"], lang)
    return render("oversight/insights_index.html", releases=released)


@insights.route("/insights/<cid>")
@signed_in(*READERS)
def release(cid: str) -> Response:
    lang = g.web_lang
    try:
        latest = call("GET", f"/api/v1/insights/consultations/{cid}")
    except ServiceRefused as refused:
        if refused.status == 409 and refused.body.get("release_state") == "not_released":
            return render("oversight/not_released.html", 409, cid=cid)
        raise
    snapshot, summary = latest["snapshot"], latest["release"]
    quotes = call("GET", f"/api/v1/insights/consultations/{cid}/quotes")["quotes"]
    words = Words(snapshot, lang)
    privacy = (snapshot.get("disclosure") or {}).get("differential_privacy")
    return render(
        "oversight/release.html",
        cid=cid,
        title=words.title(summary.get("title") or cid),
        summary=summary,
        when=_when(summary["released_at"], lang),
        snapshot=snapshot,
        k=snapshot.get("k"),
        contributors=_base_text(snapshot.get("contributors"), lang),
        epsilon=None if not privacy else _number(privacy.get("epsilon"), lang),
        questions=question_views(snapshot, lang),
        withheld=[
            {"text": words.question(w["question_id"]), "reason": w["reason"]}
            for w in snapshot.get("withheld_questions") or []
        ],
        quotes=[
            {"text": q["text"], "question": words.question(q["question_id"] or "")} for q in quotes
        ],
        hidden=hidden_label(int(snapshot.get("k") or 0)),
    )


@insights.route("/insights/<cid>/export.csv")
@signed_in(*READERS)
def export_csv(cid: str) -> Response:
    """The CSV of the latest release, its labels in `?lang=` (one of the six) or the page's."""
    lang = supported(request.args.get("lang")) or g.web_lang
    return download(
        f"/api/v1/insights/consultations/{cid}/export.csv",
        f"{cid}-release-{lang}.csv",
        params={"lang": lang},
    )


@insights.route("/insights/<cid>/export.json")
@signed_in(*READERS)
def export_json(cid: str) -> Response:
    return download(f"/api/v1/insights/consultations/{cid}/export.json", f"{cid}-release.json")
