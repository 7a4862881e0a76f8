"""Preview of the survey, and the consent texts with a preview of the consent screen."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, request, url_for

from gateway.web.i18n import NATIVE_NAMES
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff.builder.common import (
    PURPOSE_NAMES,
    builder,
    consultation_of,
    draft_of,
    page_context,
)
from gateway.web.staff.builder.common import query_values as _query
from gateway.web.staff.forms import Form
from gateway.web.staff.pages import _, call, flash, render, see_other, signed_in

# ---------------------------------------------------------------- preview and versions


@builder.route("/consultations/<cid>/preview")
@signed_in("organiser")
def preview(cid: str) -> Response:
    """The survey as a participant sees it, in any offered language; nothing is sent or stored."""
    consultation = consultation_of(cid)
    languages = list(consultation["languages"])
    asked = request.args.get("in", "")
    lang = asked if asked in languages else languages[0]
    version = request.args.get("version", "")
    if version:
        chosen = next(
            (v for v in consultation.get("versions") or [] if str(v["number"]) == version), None
        )
        if chosen is None:
            abort(404)
        survey = chosen["definition"]
    else:
        survey = draft_of(consultation)
    sections = survey.get("sections") or []
    try:
        index = min(max(int(request.args.get("section", "0")), 0), max(len(sections) - 1, 0))
    except ValueError:
        index = 0
    return render(
        "staff/builder/preview.html",
        **page_context(
            consultation,
            survey=survey,
            section=sections[index] if sections else None,
            index=index,
            count=len(sections),
            preview_lang=lang,
            version=version,
            show_warning=request.args.get("warning") != "seen",
        ),
    )


# ---------------------------------------------------------------- consent texts


def _consent_texts(cid: str) -> list[dict[str, Any]]:
    return call("GET", f"/api/v1/consent/consultations/{cid}/texts/versions")


def _consent_version(texts: list[dict[str, Any]], asked: str | None) -> int:
    """The version the page edits: the one asked for, else the draft being written, else the one
    after the latest published."""
    if asked and asked.isdigit():
        return int(asked)
    drafts_open = [t["version"] for t in texts if not t.get("published_at")]
    if drafts_open:
        return max(drafts_open)
    return max((t["version"] for t in texts), default=0) + 1


@builder.route("/consultations/<cid>/consent", methods=["GET", "POST"])
@signed_in("organiser")
def consent(cid: str) -> Response:
    consultation = consultation_of(cid)
    languages = list(consultation["languages"])
    texts = _consent_texts(cid)
    version = _consent_version(texts, request.values.get("version"))
    lang = request.values.get("in", "")
    if lang not in languages:
        written = {t["language"] for t in texts if t["version"] == version}
        lang = next((code for code in languages if code not in written), languages[0])
    current = next((t for t in texts if t["version"] == version and t["language"] == lang), None)
    if request.method == "GET":
        source = current or next(
            (t for t in sorted(texts, key=lambda t: -t["version"]) if t["language"] == lang), None
        )
        values: dict[str, Any] = {}
        if source:
            values = {
                "title": source.get("title", ""),
                "body": source.get("body", ""),
                "policy_url": source.get("policy_url") or "",
                "controller_name": (source.get("controller") or {}).get("name", ""),
                "controller_email": (source.get("controller") or {}).get("email", ""),
                **{f"purpose.{p}": text for p, text in (source.get("purposes") or {}).items()},
            }
        return _consent_page(consultation, texts, version, lang, Form.of(values))
    form = Form.of(request.form)
    body: dict[str, Any] = {
        "version": version,
        "language": lang,
        "title": form.value("title").strip(),
        "body": form.value("body").strip(),
        "purposes": {p: form.value(f"purpose.{p}").strip() for p in consultation["purposes"]},
    }
    if form.value("policy_url").strip():
        body["policy_url"] = form.value("policy_url").strip()
    if form.value("controller_name").strip() or form.value("controller_email").strip():
        body["controller"] = {"name": form.value("controller_name").strip()}
        if form.value("controller_email").strip():
            body["controller"]["email"] = form.value("controller_email").strip()
    try:
        call("POST", f"/api/v1/consent/consultations/{cid}/texts", json=body)
    except ServiceRefused as refused:
        form.take_refusal(
            refused.body.get("detail"),
            refused.errors,
            {
                "title": "title",
                "body": "body",
                "policy_url": "policy_url",
                "controller.name": "controller_name",
                "controller.email": "controller_email",
                "purposes": "purposes",
            },
            prefixes=[("purposes", "purpose")],
        )
        return _consent_page(consultation, texts, version, lang, form, refused.status)
    flash(
        _(
            "Consent text version %(version)s is saved in %(language)s.",
            version=version,
            language=NATIVE_NAMES[lang],
        )
    )
    written = {t["language"] for t in texts if t["version"] == version} | {lang}
    following = next((code for code in languages if code not in written), lang)
    return see_other(
        url_for("builder.consent", cid=cid, version=version, **_query("in", following))
    )


@builder.route("/consultations/<cid>/consent/publish", methods=["POST"])
@signed_in("organiser")
def publish_consent(cid: str) -> Response:
    consultation = consultation_of(cid)
    texts = _consent_texts(cid)
    version = _consent_version(texts, request.form.get("version"))
    try:
        call("POST", f"/api/v1/consent/consultations/{cid}/texts/{version}/publish")
    except ServiceRefused as refused:
        form = Form()
        form.take_refusal(refused.body.get("detail"), refused.errors)
        lang = next(iter(consultation["languages"]))
        return _consent_page(consultation, texts, version, lang, Form(), refused.status, form)
    flash(_("Consent text version %(version)s is published.", version=version))
    return see_other(url_for("builder.consent", cid=cid))


def _consent_page(
    consultation: dict[str, Any],
    texts: list[dict[str, Any]],
    version: int,
    lang: str,
    form: Form,
    status: int = 200,
    publish_form: Form | None = None,
) -> Response:
    versions: dict[int, dict[str, Any]] = {}
    for text in texts:
        entry = versions.setdefault(
            text["version"], {"languages": {}, "published": bool(text.get("published_at"))}
        )
        entry["languages"][text["language"]] = text
        entry["published"] = entry["published"] and bool(text.get("published_at"))
    editing = versions.get(version, {"languages": {}, "published": False})
    return render(
        "staff/builder/consent.html",
        status,
        **page_context(
            consultation,
            form=form,
            publish_form=publish_form or Form(),
            versions=sorted(versions.items()),
            version=version,
            text_in=lang,
            editing=editing,
            purpose_names=PURPOSE_NAMES,
        ),
    )


@builder.route("/consultations/<cid>/consent/preview")
@signed_in("organiser")
def consent_preview(cid: str) -> Response:
    """The consent screen as a participant sees it, with this version's text in one language."""
    consultation = consultation_of(cid)
    texts = _consent_texts(cid)
    version = _consent_version(texts, request.args.get("version"))
    lang = request.args.get("in", "")
    text = next((t for t in texts if t["version"] == version and t["language"] == lang), None)
    if text is None:
        abort(404)
    return render(
        "staff/builder/consent_preview.html",
        **page_context(
            consultation, text=text, version=version, preview_lang=lang, purpose_names=PURPOSE_NAMES
        ),
    )
