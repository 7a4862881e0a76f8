"""Running a consultation: invitations, progress, releases, quotes, follow-up contacts, closing.

Each page calls the services' public routes as the signed-in organiser (the same rules as the
API: roles, tenancy, lifecycle and validation stay in the services) and shows a refusal in the
service's own words beside the field it concerns, with what was typed still in place. Every form
that changes something answers with a redirect, so reloading never sends it twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from babel.dates import format_datetime
from flask import Response, abort, current_app, g, request, url_for

from gateway.guards import behind_tls
from gateway.web import charts
from gateway.web.i18n import DEFAULT_LANGUAGE, N_
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff.forms import Form
from gateway.web.staff.operations.sheet import invitation_url, invitations_csv, qr_svg
from gateway.web.staff.operations.sheets import InvitationSheets
from gateway.web.staff.pages import _, call, render, see_other, signed_in, staff_blueprint, state

operations = staff_blueprint("operations", __name__)

ORGANISER = "organiser"
MAX_BATCH = 500  # the surveys service's own limit for one batch
KIND_NAMES = {"single": N_("Single-use code"), "link": N_("Anonymous link")}
STATUS_NAMES = {
    "draft": N_("Draft"),
    "open": N_("Open"),
    "closed": N_("Closed"),
    "archived": N_("Archived"),
}
CONTACT_METHOD_NAMES = {
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "signal": N_("Signal"),
    "whatsapp": N_("WhatsApp"),
    "other": N_("Other"),
}
# The status changes the close page offers from each status (the service decides what is allowed).
STATUS_CHANGES = {"open": ("closed",), "closed": ("archived", "open")}
QUOTES_PER_PAGE = 20
CONTACTS_PER_PAGE = 50


# ---- what every page of a consultation shares -------------------------------------------------


def _lang() -> str:
    return g.get("web_lang", DEFAULT_LANGUAGE)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _moment(value: str | dt.datetime) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def when(value: str | dt.datetime | None) -> str:
    """A date and time in the page's language, with its zone (UTC), or an empty string."""
    if not value:
        return ""
    return format_datetime(_moment(value), "long", tzinfo=dt.UTC, locale=_lang())


def in_language(localised: Mapping[str, str] | None, fallback: str = "") -> str:
    """A text given per language, in the page's language when there is one."""
    if not localised:
        return fallback
    return (
        localised.get(_lang()) or localised.get(DEFAULT_LANGUAGE) or next(iter(localised.values()))
    )


def _consultation(cid: str) -> dict[str, Any]:
    """The consultation as the surveys service shows it to this person (404 page when not theirs)."""
    try:
        return call("GET", f"/api/v1/consultations/{cid}")
    except ServiceRefused as refused:
        if refused.status in (403, 404):
            abort(404)
        raise


# The consultation's own page in the builder, when the builder is installed; else the staff home.
CONSULTATION_PAGE = "builder.overview"


def _consultation_url(cid: str) -> str:
    if CONSULTATION_PAGE in current_app.view_functions:
        return url_for(CONSULTATION_PAGE, cid=cid)
    return url_for("shell.home")


def _page(
    template: str, cid: str, consultation: Mapping[str, Any], status: int = 200, **context: Any
) -> Response:
    return render(
        f"staff/operations/{template}",
        status,
        cid=cid,
        consultation_url=_consultation_url(cid),
        consultation=consultation,
        consultation_title=in_language(consultation.get("titles"), consultation.get("title", "")),
        status_name=STATUS_NAMES.get(consultation.get("status", ""), ""),
        when=when,
        in_language=in_language,
        **context,
    )


def _public_origin() -> str:
    """Where participants reach this site: VOICES_PUBLIC_URL, else this request's own origin."""
    settings = state().settings
    return settings.get("PUBLIC_URL") or (
        f"{'https' if behind_tls(settings) else request.scheme}://{request.host}"
    )


def _sheets() -> InvitationSheets:
    return InvitationSheets(hmac.new(state().secret, b"invitation-sheets", hashlib.sha256).digest())


# ---- invitations ------------------------------------------------------------------------------


def not_open_yet(consultation: Mapping[str, Any]) -> str | None:
    """Why participants cannot use invitations yet: "draft" until it is published, "scheduled"
    before its opening time; None when they can (the surveys service answers them the same way)."""
    if consultation.get("status") == "draft":
        return "draft"
    opens_at = consultation.get("opens_at")
    if consultation.get("status") == "open" and opens_at and _moment(opens_at) > _now():
        return "scheduled"
    return None


def invitation_counts(invitations: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Used and unused single-use codes, openings of links, revoked invitations."""
    single = [i for i in invitations if i["kind"] == "single"]
    return {
        "single_used": sum(1 for i in single if i.get("uses")),
        "single_unused": sum(1 for i in single if not i.get("uses") and not i.get("revoked")),
        "link_openings": sum(int(i.get("uses") or 0) for i in invitations if i["kind"] == "link"),
        "revoked": sum(1 for i in invitations if i.get("revoked")),
    }


@operations.route("/consultations/<cid>/invitations", methods=["GET", "POST"])
@signed_in(ORGANISER)
def invitations(cid: str) -> Response:
    consultation = _consultation(cid)
    form = Form.of({"kind": "single", "count": "10", "label": ""})
    if request.method == "POST":
        form = Form.of(request.form)
        kind = form.value("kind")
        count_text = form.value("count").strip()
        count = int(count_text) if count_text.isdigit() else None
        if kind not in KIND_NAMES:
            form.add_error("kind", _("Choose single-use codes or anonymous links."))
        if count is None or not 1 <= count <= MAX_BATCH:
            form.add_error("count", _("Give a whole number from 1 to %(max)s.", max=MAX_BATCH))
        if form.ok:
            try:
                created = call(
                    "POST",
                    f"/api/v1/consultations/{cid}/invitations/batch",
                    json={
                        "kind": kind,
                        "count": count,
                        "label": form.value("label").strip() or None,
                    },
                )
            except ServiceRefused as refused:
                if refused.status >= 500:
                    raise
                form.take_refusal(
                    refused.body.get("detail"),
                    refused.errors,
                    {"kind": "kind", "count": "count", "label": "label"},
                )
            else:
                origin = _public_origin()
                batch = [
                    {
                        "kind": i["kind"],
                        "label": i.get("label"),
                        "code": i["code"],
                        "url": invitation_url(origin, url_for("web.invitation", code=i["code"])),
                    }
                    for i in created["invitations"]
                ]
                _sheets().keep(g.staff_cookie, cid, batch, _now())
                return see_other(url_for("operations.sheet", cid=cid))
    listed = call("GET", f"/api/v1/consultations/{cid}/invitations")
    return _page(
        "invitations.html",
        cid,
        consultation,
        400 if not form.ok else 200,
        invitations=list(reversed(listed)),
        counts=invitation_counts(listed),
        kind_names=KIND_NAMES,
        form=form,
        max_batch=MAX_BATCH,
        has_sheet=bool(_sheets().open(g.staff_cookie, cid, _now())),
        not_open_yet=not_open_yet(consultation),
    )


@operations.route("/consultations/<cid>/invitations/<iid>/revoke", methods=["POST"])
@signed_in(ORGANISER)
def revoke_invitation(cid: str, iid: str) -> Response:
    call("POST", f"/api/v1/consultations/{cid}/invitations/{iid}/revoke")
    return see_other(url_for("operations.invitations", cid=cid, _anchor="invitation-list"))


@operations.route("/consultations/<cid>/invitations/sheet")
@signed_in(ORGANISER)
def sheet(cid: str) -> Response:
    consultation = _consultation(cid)
    cards = [
        {
            **invitation,
            "number": number,
            "qr": qr_svg(invitation["url"], _("QR code of invitation %(number)s", number=number)),
        }
        for number, invitation in enumerate(_sheets().open(g.staff_cookie, cid, _now()), start=1)
    ]
    return _page(
        "sheet.html",
        cid,
        consultation,
        cards=cards,
        kind_names=KIND_NAMES,
        not_open_yet=not_open_yet(consultation),
    )


@operations.route("/consultations/<cid>/invitations/sheet.csv")
@signed_in(ORGANISER)
def sheet_csv(cid: str) -> Response:
    _consultation(cid)
    batch = _sheets().open(g.staff_cookie, cid, _now())
    if not batch:
        return see_other(url_for("operations.sheet", cid=cid))
    return Response(
        invitations_csv(batch),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{cid}-invitations.csv"'},
    )


# ---- progress ---------------------------------------------------------------------------------


def responses_per_day(points: Sequence[Mapping[str, Any]]) -> list[tuple[dt.date, int]]:
    """The service's counts (per hour, day or week) summed per calendar day (UTC) of their start,
    for the chart and its table: a week's count stays on the Monday it starts."""
    days: dict[dt.date, int] = {}
    for point in points:
        day = _moment(point["start"]).date()
        days[day] = days.get(day, 0) + int(point["submitted"])
    return sorted(days.items())


def _insights(cid: str, what: str) -> dict[str, Any] | None:
    """An organiser view of the results service, or None before it learnt of the consultation."""
    try:
        return call("GET", f"/api/v1/insights/consultations/{cid}/{what}")
    except ServiceRefused as refused:
        if refused.status in (404, 409):
            return None  # it learns of a consultation when it is published
        raise


@functools.lru_cache(maxsize=64)
def _chart(
    title: str, series: tuple[tuple[dt.date, int], ...], language: str, value_title: str
) -> charts.Chart:
    """The chart of responses per day; drawing one takes a good part of a second, so the same
    figures in the same language are drawn once per process (pages are refreshed often)."""
    return charts.counts_over_time(
        title, series, language=language, value_title=value_title, element_id="responses-chart"
    )


@operations.route("/consultations/<cid>/progress")
@signed_in(ORGANISER)
def progress(cid: str) -> Response:
    consultation = _consultation(cid)
    report = call("GET", f"/api/v1/consultations/{cid}/progress")
    # How far the results service has counted: it counts every stored response to answer, so it
    # is asked only on request and the page itself stays as quick with 10,000 responses as with 10.
    with_results = request.args.get("results") == "1"
    counted = _insights(cid, "progress") if with_results else None
    freshness = _insights(cid, "freshness") if counted is not None else None
    series = responses_per_day(report["over_time"])
    per_week = report["unit"] == "week"
    series_title = _("Responses sent per week") if per_week else _("Responses sent per day")
    chart = _chart(series_title, tuple(series), _lang(), _("Responses")) if series else None
    sections = [
        {
            **section,
            "name": in_language(section.get("title"), section["section_id"]),
            "completion": round(100 * section["completed"] / section["shown"])
            if section["shown"]
            else None,
        }
        for section in report["sections"]
    ]
    return _page(
        "progress.html",
        cid,
        consultation,
        report=report,
        series=series,
        series_title=series_title,
        per_week=per_week,
        chart=chart,
        sections=sections,
        counted=counted,
        freshness=freshness,
        with_results=with_results,
        not_sent=max(0, report["opened"] - report["submitted"] - report["erased"]),
        on_their_way=None
        if counted is None
        else max(0, report["submitted"] - int(counted["responses_counted"])),
    )


# ---- releases ---------------------------------------------------------------------------------


@operations.route("/consultations/<cid>/releases", methods=["GET", "POST"])
@signed_in(ORGANISER)
def releases(cid: str) -> Response:
    consultation = _consultation(cid)
    form = Form.of({})
    if request.method == "POST":
        form = Form.of(request.form)
        epsilon: float | None = None
        if form.value("epsilon").strip():
            try:
                epsilon = float(form.value("epsilon").strip().replace(",", "."))
            except ValueError:
                form.add_error("epsilon", _("Give a number such as 0.5."))
        if form.value("signed_off") != "on":
            form.add_error(
                "signed_off",
                _("The survivor group's sign-off is needed before anything is released."),
            )
        if form.ok:
            try:
                call(
                    "POST",
                    "/api/v1/releases",
                    json={"consultation_id": cid, "epsilon": epsilon},
                )
            except ServiceRefused as refused:
                if refused.status >= 500:
                    raise
                # The service refuses a release over epsilon (required, not offered, over
                # budget, out of range): its message goes beside that field.
                detail = refused.body.get("detail") or refused.body.get("title") or ""
                if refused.errors:
                    form.take_refusal(detail, refused.errors, {"epsilon": "epsilon"})
                else:
                    form.add_error("epsilon", detail)
            else:
                return see_other(url_for("operations.releases", cid=cid, released=1))
    return _page(
        "releases.html",
        cid,
        consultation,
        400 if not form.ok else 200,
        form=form,
        released=request.args.get("released") == "1" and form.ok,
        history=_insights(cid, "releases"),
        counted=_insights(cid, "progress"),
    )


# ---- quotes -----------------------------------------------------------------------------------


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and int(value) >= 1 else 1


def question_labels(consultation: Mapping[str, Any]) -> dict[str, str]:
    """Each question's text in the page's language, over every published version (newest wins)."""
    labels: dict[str, str] = {}
    for version in consultation.get("versions") or []:
        for section in (version.get("definition") or {}).get("sections") or []:
            for question in section.get("questions") or []:
                labels[question["id"]] = in_language(question.get("label"), question["id"])
    return labels


@operations.route("/consultations/<cid>/quotes", methods=["GET", "POST"])
@signed_in(ORGANISER)
def quotes(cid: str) -> Response:
    consultation = _consultation(cid)
    page = _page_number(request.args.get("page"))
    refused_answer: str | None = None
    form = Form.of({})
    if request.method == "POST":
        form = Form.of(request.form)
        response_id, question_id = form.value("response_id"), form.value("question_id")
        try:
            call(
                "POST",
                f"/api/v1/consultations/{cid}/quotes",
                json={
                    "response_id": response_id,
                    "question_id": question_id,
                    "excerpt": form.value("excerpt"),
                },
            )
        except ServiceRefused as refused:
            if refused.status >= 500:
                raise
            refused_answer = f"{response_id}:{question_id}"
            form.take_refusal(refused.body.get("detail"), refused.errors, {"excerpt": "excerpt"})
            if not form.errors:  # 409 (no consent, revoked): it is still about this excerpt
                form.errors["excerpt"] = form.problems
                form.problems = []
        else:
            return see_other(url_for("operations.quotes", cid=cid, page=page, _anchor="approved"))
    quotable = call(
        "GET",
        f"/api/v1/consultations/{cid}/quotable-answers",
        params={"page": str(page), "per_page": str(QUOTES_PER_PAGE)},
    )
    approved = call("GET", f"/api/v1/consultations/{cid}/quotes")
    return _page(
        "quotes.html",
        cid,
        consultation,
        400 if refused_answer else 200,
        quotable=quotable,
        approved=list(reversed(approved)),
        labels=question_labels(consultation),
        form=form,
        refused_answer=refused_answer,
        page=page,
    )


@operations.route("/consultations/<cid>/quotes/revoke", methods=["POST"])
@signed_in(ORGANISER)
def revoke_quote(cid: str) -> Response:
    call(
        "POST",
        f"/api/v1/consultations/{cid}/quotes/revocations",
        json={"quote_id": request.form.get("quote_id", "")},
    )
    return see_other(url_for("operations.quotes", cid=cid, _anchor="approved"))


# ---- follow-up contacts -----------------------------------------------------------------------


@operations.route("/consultations/<cid>/contacts", methods=["GET", "POST"])
@signed_in(ORGANISER)
def contacts(cid: str) -> Response:
    """The notice first; the list only when asked for with the button (a POST, so no prefetch
    or reload reads it unasked), since every read is recorded on the consent ledger."""
    consultation = _consultation(cid)
    listed = None
    if request.method == "POST":
        listed = call(
            "GET",
            f"/api/v1/consultations/{cid}/follow-up-contacts",
            params={
                "page": str(_page_number(request.form.get("page"))),
                "per_page": str(CONTACTS_PER_PAGE),
            },
        )
    return _page(
        "contacts.html", cid, consultation, contacts=listed, method_names=CONTACT_METHOD_NAMES
    )


# ---- closing and archiving --------------------------------------------------------------------


def erasure_date(consultation: Mapping[str, Any]) -> dt.datetime | None:
    """When the answers of a closed consultation are erased: closing time + retention days."""
    closed_at = consultation.get("closed_at")
    if not closed_at:
        return None
    return _moment(closed_at) + dt.timedelta(days=int(consultation.get("retention_days") or 0))


@operations.route("/consultations/<cid>/close", methods=["GET", "POST"])
@signed_in(ORGANISER)
def close(cid: str) -> Response:
    consultation = _consultation(cid)
    form = Form.of({})
    if request.method == "POST":
        form = Form.of(request.form)
        target = form.value("status")
        field = f"confirm-{target}"
        if form.value(field) != "on" and target in STATUS_CHANGES.get(
            consultation.get("status", ""), ()
        ):
            form.add_error(field, _("Tick the box to confirm."))
        else:
            try:
                call("POST", f"/api/v1/consultations/{cid}/status", json={"status": target})
            except ServiceRefused as refused:
                if refused.status >= 500:
                    raise
                # Beside the box of that change when the page offers it, else at the top.
                offered = STATUS_CHANGES.get(consultation.get("status", ""), ())
                form.add_error(
                    field if target in offered else None,
                    refused.body.get("detail") or refused.body.get("title") or "",
                )
            else:
                return see_other(url_for("operations.close", cid=cid))
    return _page(
        "close.html",
        cid,
        consultation,
        400 if not form.ok else 200,
        form=form,
        erase_from=erasure_date(consultation),
    )
