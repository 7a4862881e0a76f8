"""The organisation's consultations, the survey page of one (reorder, delete) and its settings."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, abort, g, request, url_for

from gateway.web.i18n import LANGUAGES, NATIVE_NAMES
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff import drafts
from gateway.web.staff.builder.common import (
    PURPOSE_NAMES,
    PURPOSES,
    SETTING_FIELDS,
    STATUS_NAMES,
    builder,
    consultation_of,
    draft_of,
    number_or_text,
    page_context,
    save_draft,
)
from gateway.web.staff.forms import Form, flatten_errors
from gateway.web.staff.pages import _, call, flash, render, see_other, signed_in
from shared.errors import ServiceUnavailable

# ---------------------------------------------------------------- home

HOME_PAGE_SIZE = 50  # consultations a page of the home lists (the service allows up to 200)


@builder.route("/consultations", methods=["GET", "POST"])
@signed_in("organiser")
def consultations() -> Response:
    """The organisation's consultations with status, responses counted and last activity; a
    form to start a new one."""
    form = Form.of({"languages": ["en"]})
    if request.method == "POST":
        form = Form.of(request.form)
        body: dict[str, Any] = {
            "title": form.value("title").strip(),
            "languages": form.values_of("languages"),
        }
        if not body["languages"]:
            form.add_error("languages", _("Choose at least one language."))
        elif body["title"]:
            # The title is typed in the page's language: it counts as that language's title (or
            # the first offered one's), so publishing does not ask for it again.
            page_lang = g.get("web_lang", "en")
            typed_in = page_lang if page_lang in body["languages"] else body["languages"][0]
            body["titles"] = {typed_in: body["title"]}
        if form.ok:
            try:
                created = call("POST", "/api/v1/consultations", json=body)
            except ServiceRefused as refused:
                form.take_refusal(
                    refused.body.get("detail"),
                    refused.errors,
                    {"title": "title", "languages": "languages"},
                )
            else:
                flash(_("The consultation is created as a draft."))
                return see_other(url_for("builder.overview", cid=created["consultation_id"]))
    page = request.args.get("page", "1")
    page_number = int(page) if page.isdigit() and 0 < int(page) < 10**6 else 1
    headers: dict[str, str] = {}
    listed = call(
        "GET",
        "/api/v1/consultations",
        params={"page": str(page_number), "page_size": str(HOME_PAGE_SIZE)},
        answer_headers=headers,
    )
    rows = [{**item, **_activity(item)} for item in listed]
    return render(
        "staff/builder/consultations.html",
        200 if form.ok else 422,
        rows=rows,
        pages=_pages(headers.get("X-Pagination"), page_number),
        form=form,
        all_languages=[(code, NATIVE_NAMES[code]) for code in LANGUAGES],
        status_names=STATUS_NAMES,
    )


def _pages(header: str | None, page: int) -> dict[str, int]:
    """Where the page is in the whole list, from the service's X-Pagination header."""
    try:
        known = json.loads(header or "{}")
    except ValueError:
        known = {}
    if not isinstance(known, dict):
        known = {}
    total = known.get("total", 0)
    last = known.get("total_pages") or known.get("last_page") or 1
    return {
        "page": page,
        "last": max(int(last), 1),
        "total": int(total) if isinstance(total, int) else 0,
    }


def _activity(consultation: dict[str, Any]) -> dict[str, Any]:
    """Responses kept and the latest thing that happened (a response stored, a version
    published, the consultation opened, closed or created). Read from the surveys service's
    running tally: one document per consultation, however many responses it has."""
    counted: int | None = None
    moments = [
        consultation.get(key)
        for key in ("created_at", "opened_at", "closed_at")
        if consultation.get(key)
    ]
    moments += [
        v.get("published_at") for v in consultation.get("versions") or [] if v.get("published_at")
    ]
    if consultation.get("versions"):
        try:
            progress = call(
                "GET", f"/api/v1/consultations/{consultation['consultation_id']}/progress"
            )
        except (ServiceRefused, ServiceUnavailable):
            # The surveys service is down: the list still shows, without the counts.
            progress = {}
        counted = progress.get("submitted")
        if progress.get("last_submitted_at"):
            moments.append(progress["last_submitted_at"])
    latest = max((str(m) for m in moments), default="")
    return {"responses_counted": counted, "last_activity": latest[:16].replace("T", " ")}


# ---------------------------------------------------------------- the builder page


@builder.route("/consultations/<cid>")
@signed_in("organiser")
def overview(cid: str) -> Response:
    consultation = consultation_of(cid)
    return overview_page(consultation)


def overview_page(
    consultation: dict[str, Any],
    status: int = 200,
    upload: Form | None = None,
    import_problems: list[dict] | None = None,
    import_warnings: list[dict] | None = None,
    notice: str | None = None,
) -> Response:
    draft = draft_of(consultation)
    missing = drafts.missing_translations(draft, list(consultation["languages"]))
    return render(
        "staff/builder/overview.html",
        status,
        **page_context(
            consultation,
            draft=draft,
            missing=missing,
            upload=upload or Form(),
            import_problems=import_problems or [],
            import_warnings=import_warnings or [],
            notice=notice,
            purpose_names=PURPOSE_NAMES,
        ),
    )


@builder.route("/consultations/<cid>/move", methods=["POST"])
@signed_in("organiser")
def move(cid: str) -> Response:
    consultation = consultation_of(cid)
    step = -1 if request.form.get("direction") == "up" else 1
    item = request.form.get("item", "")
    try:
        changed = drafts.move(draft_of(consultation), item, step)
    except drafts.DraftError:
        flash(_("That part of the survey is not there any more; the page shows it as it is now."))
        return see_other(url_for("builder.overview", cid=cid))
    try:
        save_draft(cid, changed)
    except ServiceRefused as refused:
        # Moving a question above the one its skip logic refers to, say.
        return _refused_on_overview_page(consultation, refused, changed)
    return see_other(url_for("builder.overview", cid=cid, _anchor=f"item-{item}"))


@builder.route("/consultations/<cid>/questions/<qid>/delete", methods=["POST"])
@signed_in("organiser")
def delete_question(cid: str, qid: str) -> Response:
    consultation = consultation_of(cid)
    try:
        changed = drafts.delete_question(draft_of(consultation), qid)
        save_draft(cid, changed)
    except drafts.DraftError:
        abort(404)
    except ServiceRefused as refused:
        return _refused_on_overview_page(consultation, refused, changed)
    flash(_("The question is deleted from the draft."))
    return see_other(url_for("builder.overview", cid=cid))


@builder.route("/consultations/<cid>/sections/<sid>/delete", methods=["POST"])
@signed_in("organiser")
def delete_section(cid: str, sid: str) -> Response:
    consultation = consultation_of(cid)
    try:
        changed = drafts.delete_section(draft_of(consultation), sid)
        save_draft(cid, changed)
    except drafts.DraftError:
        abort(404)
    except ServiceRefused as refused:
        return _refused_on_overview_page(consultation, refused, changed)
    flash(_("The section and its questions are deleted from the draft."))
    return see_other(url_for("builder.overview", cid=cid))


def _refused_on_overview_page(
    consultation: dict[str, Any], refused: ServiceRefused, sent: dict[str, Any]
) -> Response:
    """The survey page with the refusal of a change (`sent`, the draft as it would have been),
    each problem naming the section or question it is about rather than its place in the list."""
    form = Form()
    if refused.errors:
        form.problems.append(refused.body.get("detail") or "")
    for path, messages in flatten_errors(refused.errors).items():
        part = drafts.part_named(sent, path)
        for message in messages:
            if part is None:
                form.add_error(None, f"{path}: {message}" if path else message)
                continue
            kind, item_id, rest = part
            about_skip_logic = rest.startswith("relevant")
            if kind == "section":
                text = (
                    _(
                        "Section “%(id)s”, when it is shown: %(problem)s",
                        id=item_id,
                        problem=message,
                    )
                    if about_skip_logic
                    else _("Section “%(id)s”: %(problem)s", id=item_id, problem=message)
                )
            else:
                text = (
                    _(
                        "Question “%(id)s”, when it is shown: %(problem)s",
                        id=item_id,
                        problem=message,
                    )
                    if about_skip_logic
                    else _("Question “%(id)s”: %(problem)s", id=item_id, problem=message)
                )
            form.add_error(None, text)
    if not refused.errors:
        form.add_error(None, refused.body.get("detail") or "")
    return overview_page(
        consultation, 422 if refused.status == 422 else refused.status, upload=form
    )


# ---------------------------------------------------------------- settings


@builder.route("/consultations/<cid>/settings", methods=["GET", "POST"])
@signed_in("organiser")
def settings(cid: str) -> Response:
    consultation = consultation_of(cid)
    draft_only = consultation["status"] == "draft"
    if request.method == "GET":
        return _settings_page(consultation, _settings_form(consultation))
    form = Form.of(request.form)
    languages = form.values_of("languages") if draft_only else list(consultation["languages"])
    changes: dict[str, Any] = {
        "title": form.value("title").strip(),
        "titles": {
            lang: form.value(f"titles.{lang}").strip()
            for lang in languages
            if form.value(f"titles.{lang}").strip()
        },
        "description": form.value("description").strip() or None,
        "descriptions": {
            lang: form.value(f"descriptions.{lang}").strip()
            for lang in languages
            if form.value(f"descriptions.{lang}").strip()
        },
        "retention_days": number_or_text(form.value("retention_days")),
    }
    if draft_only:
        changes.update(
            languages=languages,
            purposes=[p for p in PURPOSES if p in {*form.values_of("purposes"), "participate"}],
            min_cell_size=number_or_text(form.value("min_cell_size")),
            min_age=number_or_text(form.value("min_age"))
            if form.value("min_age").strip()
            else None,
            epsilon_budget=(
                number_or_text(form.value("epsilon_budget"), float)
                if form.value("epsilon_budget").strip()
                else None
            ),
        )
        if not languages:
            form.add_error("languages", _("Choose at least one language."))
    if form.ok:
        try:
            updated = call("PATCH", f"/api/v1/consultations/{cid}", json=changes)
        except ServiceRefused as refused:
            form.take_refusal(
                refused.body.get("detail"),
                refused.errors,
                SETTING_FIELDS,
                prefixes=[("titles", "titles"), ("descriptions", "descriptions")],
            )
        else:
            draft = draft_of(updated)
            if draft["sections"] and draft != updated.get("draft"):
                save_draft(cid, draft)  # the draft follows the consultation's languages
            flash(_("The settings are saved."))
            return see_other(url_for("builder.overview", cid=cid))
    return _settings_page(consultation, form, 422)


def _settings_form(consultation: dict[str, Any]) -> Form:
    values: dict[str, Any] = {
        "title": consultation["title"],
        "languages": list(consultation["languages"]),
        "purposes": list(consultation["purposes"]),
        "min_cell_size": consultation["min_cell_size"],
        "min_age": consultation.get("min_age") if consultation.get("min_age") is not None else "",
        "retention_days": consultation["retention_days"],
        "epsilon_budget": consultation.get("epsilon_budget") or "",
        "description": consultation.get("description") or "",
    }
    for lang, text in (consultation.get("titles") or {}).items():
        values[f"titles.{lang}"] = text
    for lang, text in (consultation.get("descriptions") or {}).items():
        values[f"descriptions.{lang}"] = text
    return Form.of(values)


def _settings_page(consultation: dict[str, Any], form: Form, status: int = 200) -> Response:
    return render(
        "staff/builder/settings.html",
        status,
        **page_context(
            consultation,
            form=form,
            draft_only=consultation["status"] == "draft",
            all_languages=[(code, NATIVE_NAMES[code]) for code in LANGUAGES],
            purposes=[(p, _(PURPOSE_NAMES[p])) for p in PURPOSES],
        ),
    )
