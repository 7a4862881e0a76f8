"""The organiser's consultation builder: home, settings, sections and questions, translations,
XLSForm upload, versions, preview, consent texts and publishing.

Every change goes to the services as the signed-in organiser: the survey draft is changed here as
plain data (drafts.py) and sent back whole with PUT .../survey, so the surveys service validates
it; a refusal is shown next to the field it names, with everything typed kept in the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, abort, request, url_for

from gateway.web.i18n import LANGUAGES, N_, NATIVE_NAMES
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff import drafts
from gateway.web.staff.forms import Form
from gateway.web.staff.pages import (
    _,
    add_nav,
    call,
    flash,
    render,
    see_other,
    signed_in,
    staff_blueprint,
)
from gateway.web.staff.shell import HOME_BY_ROLE

builder = staff_blueprint("builder", __name__)
add_nav("builder.consultations", N_("Consultations"), {"organiser"}, order=10)
HOME_BY_ROLE["organiser"].append("builder.consultations")

PURPOSES = (
    "participate",
    "aggregate_reporting",
    "quote_anonymised",
    "follow_up_contact",
    "share_with_partners",
)
PURPOSE_NAMES = {
    "participate": N_("Take part (keep the answers; always asked)"),
    "aggregate_reporting": N_("Count the answers in group totals"),
    "quote_anonymised": N_("Quote words without names"),
    "follow_up_contact": N_("Contact participants again"),
    "share_with_partners": N_("Share answers with partner groups"),
}
TYPE_NAMES = {
    "single_choice": N_("One choice from a list"),
    "multiple_choice": N_("Several choices from a list"),
    "rating": N_("Rating on a scale"),
    "number": N_("Number"),
    "date": N_("Date"),
    "free_text": N_("Free text"),
}
STATUS_NAMES = {
    "draft": N_("Draft"),
    "open": N_("Open"),
    "closed": N_("Closed"),
    "archived": N_("Archived"),
}
BLANK_OPTION_ROWS = 3  # empty option rows on a question form (more after saving)

# The consultation settings the settings form sends, and the form field each error path belongs to.
SETTING_FIELDS = {
    "title": "title",
    "languages": "languages",
    "purposes": "purposes",
    "min_cell_size": "min_cell_size",
    "min_age": "min_age",
    "retention_days": "retention_days",
    "epsilon_budget": "epsilon_budget",
    "description": "description",
}


# ---------------------------------------------------------------- service calls


def _consultation(cid: str) -> dict[str, Any]:
    return call("GET", f"/api/v1/consultations/{cid}")


def _save_draft(cid: str, draft: dict[str, Any]) -> dict[str, Any]:
    return call("PUT", f"/api/v1/consultations/{cid}/survey", json={"survey": draft})


def _draft(consultation: dict[str, Any]) -> dict[str, Any]:
    return drafts.normalised(consultation.get("draft"), list(consultation["languages"]))


def _page_language(consultation: dict[str, Any]) -> str:
    """The consultation language to show texts in: the page's when offered, else its first."""
    from flask import g

    lang = g.get("web_lang", "en")
    return lang if lang in consultation["languages"] else consultation["languages"][0]


def _context(consultation: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "c": consultation,
        "cid": consultation["consultation_id"],
        "text_lang": _page_language(consultation),
        "language_names": NATIVE_NAMES,
        "status_name": _(STATUS_NAMES.get(consultation["status"], consultation["status"])),
        "type_names": TYPE_NAMES,
        "language_options": [(code, NATIVE_NAMES[code]) for code in consultation["languages"]],
        **more,
    }


def _in(text: Any, lang: str) -> str:
    if not isinstance(text, dict):
        return ""
    return text.get(lang) or next((v for v in text.values() if v), "")


# ---------------------------------------------------------------- home


@builder.route("/consultations", methods=["GET", "POST"])
@signed_in("organiser")
def consultations() -> Response:
    """The organisation's consultations with status, responses counted and last activity; a
    form to start a new one."""
    form = Form.of({"languages": ["en"]})
    if request.method == "POST":
        form = Form.of(request.form)
        body = {"title": form.value("title").strip(), "languages": form.values_of("languages")}
        if not body["languages"]:
            form.add_error("languages", _("Choose at least one language."))
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
    rows = []
    for item in call("GET", "/api/v1/consultations", params={"page_size": "200"}):
        rows.append({**item, **_activity(item)})
    return render(
        "staff/builder/consultations.html",
        200 if form.ok else 422,
        rows=rows,
        form=form,
        all_languages=[(code, NATIVE_NAMES[code]) for code in LANGUAGES],
        status_names=STATUS_NAMES,
    )


def _activity(consultation: dict[str, Any]) -> dict[str, Any]:
    """Responses counted and the latest thing that happened (a response counted, a version
    published, the consultation opened, closed or created)."""
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
                "GET", f"/api/v1/insights/consultations/{consultation['consultation_id']}/progress"
            )
        except ServiceRefused:
            progress = {}  # not yet known to the aggregation service
        counted = progress.get("responses_counted")
        if progress.get("last_counted_at"):
            moments.append(progress["last_counted_at"])
    latest = max((str(m) for m in moments), default="")
    return {"responses_counted": counted, "last_activity": latest[:16].replace("T", " ")}


# ---------------------------------------------------------------- the builder page


@builder.route("/consultations/<cid>")
@signed_in("organiser")
def overview(cid: str) -> Response:
    consultation = _consultation(cid)
    return _overview(consultation)


def _overview(
    consultation: dict[str, Any],
    status: int = 200,
    upload: Form | None = None,
    import_problems: list[dict] | None = None,
    import_warnings: list[dict] | None = None,
    notice: str | None = None,
) -> Response:
    draft = _draft(consultation)
    missing = drafts.missing_translations(draft, list(consultation["languages"]))
    return render(
        "staff/builder/overview.html",
        status,
        **_context(
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
    consultation = _consultation(cid)
    step = -1 if request.form.get("direction") == "up" else 1
    item = request.form.get("item", "")
    try:
        changed = drafts.move(_draft(consultation), item, step)
    except drafts.DraftError:
        flash(_("That part of the survey is not there any more; the page shows it as it is now."))
        return see_other(url_for("builder.overview", cid=cid))
    try:
        _save_draft(cid, changed)
    except ServiceRefused as refused:
        # Moving a question above the one its skip logic refers to, say.
        return _refused_on_overview(consultation, refused)
    return see_other(url_for("builder.overview", cid=cid, _anchor=f"item-{item}"))


@builder.route("/consultations/<cid>/questions/<qid>/delete", methods=["POST"])
@signed_in("organiser")
def delete_question(cid: str, qid: str) -> Response:
    consultation = _consultation(cid)
    try:
        changed = drafts.delete_question(_draft(consultation), qid)
        _save_draft(cid, changed)
    except drafts.DraftError:
        abort(404)
    except ServiceRefused as refused:
        return _refused_on_overview(consultation, refused)
    flash(_("The question is deleted from the draft."))
    return see_other(url_for("builder.overview", cid=cid))


@builder.route("/consultations/<cid>/sections/<sid>/delete", methods=["POST"])
@signed_in("organiser")
def delete_section(cid: str, sid: str) -> Response:
    consultation = _consultation(cid)
    try:
        changed = drafts.delete_section(_draft(consultation), sid)
        _save_draft(cid, changed)
    except drafts.DraftError:
        abort(404)
    except ServiceRefused as refused:
        return _refused_on_overview(consultation, refused)
    flash(_("The section and its questions are deleted from the draft."))
    return see_other(url_for("builder.overview", cid=cid))


def _refused_on_overview(consultation: dict[str, Any], refused: ServiceRefused) -> Response:
    form = Form()
    form.take_refusal(refused.body.get("detail"), refused.errors)
    return _overview(consultation, 422 if refused.status == 422 else refused.status, upload=form)


# ---------------------------------------------------------------- settings


@builder.route("/consultations/<cid>/settings", methods=["GET", "POST"])
@signed_in("organiser")
def settings(cid: str) -> Response:
    consultation = _consultation(cid)
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
        "retention_days": _number(form.value("retention_days")),
    }
    if draft_only:
        changes.update(
            languages=languages,
            purposes=sorted(set(form.values_of("purposes")) | {"participate"}, key=PURPOSES.index),
            min_cell_size=_number(form.value("min_cell_size")),
            min_age=_number(form.value("min_age")) if form.value("min_age").strip() else None,
            epsilon_budget=(
                _number(form.value("epsilon_budget"), float)
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
                prefixes=[("titles", "titles")],
            )
        else:
            draft = _draft(updated)
            if draft["sections"] and draft != updated.get("draft"):
                _save_draft(cid, draft)  # the draft follows the consultation's languages
            flash(_("The settings are saved."))
            return see_other(url_for("builder.overview", cid=cid))
    return _settings_page(consultation, form, 422)


def _number(text: str, kind: type = int) -> Any:
    """The number typed, or the text itself for the service to refuse with its own message."""
    text = text.strip()
    try:
        return kind(text)
    except ValueError:
        return text or None


def _settings_form(consultation: dict[str, Any]) -> Form:
    values: dict[str, Any] = {
        "title": consultation["title"],
        "languages": list(consultation["languages"]),
        "purposes": list(consultation["purposes"]),
        "min_cell_size": consultation["min_cell_size"],
        "min_age": consultation.get("min_age") if consultation.get("min_age") is not None else "",
        "retention_days": consultation["retention_days"],
        "epsilon_budget": consultation.get("epsilon_budget") or "",
    }
    for lang, text in (consultation.get("titles") or {}).items():
        values[f"titles.{lang}"] = text
    return Form.of(values)


def _settings_page(consultation: dict[str, Any], form: Form, status: int = 200) -> Response:
    return render(
        "staff/builder/settings.html",
        status,
        **_context(
            consultation,
            form=form,
            draft_only=consultation["status"] == "draft",
            all_languages=[(code, NATIVE_NAMES[code]) for code in LANGUAGES],
            purposes=[(p, _(PURPOSE_NAMES[p])) for p in PURPOSES],
        ),
    )


# ---------------------------------------------------------------- questions (and new sections)


@dataclass
class QuestionPlace:
    """Where the question being edited is, or will be, in the draft (for placing refusals)."""

    path: str
    section_path: str | None  # set when the question starts a new section


@builder.route("/consultations/<cid>/questions/new", methods=["GET", "POST"])
@signed_in("organiser")
def new_question(cid: str) -> Response:
    consultation = _consultation(cid)
    draft = _draft(consultation)
    if request.method == "GET":
        last = draft["sections"][-1]["id"] if draft["sections"] else "new"
        form = Form.of(
            {
                "type": request.args.get("type", "single_choice"),
                "placement": request.args.get("section", last),
                "id": drafts.new_id(draft, "q"),
                "section_id": drafts.new_id(draft, "s"),
            }
        )
        return _question_page(consultation, draft, form, None)
    return _save_question(consultation, draft, Form.of(request.form), None)


@builder.route("/consultations/<cid>/questions/<qid>", methods=["GET", "POST"])
@signed_in("organiser")
def edit_question(cid: str, qid: str) -> Response:
    consultation = _consultation(cid)
    draft = _draft(consultation)
    try:
        _s, _q, question = drafts.find_question(draft, qid)
    except drafts.DraftError:
        abort(404)
    if request.method == "GET":
        return _question_page(consultation, draft, _question_values(question), question)
    return _save_question(consultation, draft, Form.of(request.form), question)


def _question_values(question: dict[str, Any]) -> Form:
    values: dict[str, Any] = {
        "id": question["id"],
        "type": question["type"],
        "sensitive": bool(question.get("sensitive")),
        "dimension": bool(question.get("dimension")),
        "relevant": drafts.choice_of(question.get("relevant")),
    }
    for key in ("min", "max", "max_length"):
        if question.get(key) is not None:
            values[key] = question[key]
    values["integer"] = bool(question.get("integer"))
    for lang, text in (question.get("label") or {}).items():
        values[f"label.{lang}"] = text
    for lang, text in (question.get("hint") or {}).items():
        values[f"hint.{lang}"] = text
    for index, option in enumerate(question.get("options") or []):
        values[f"options[{index}].code"] = option.get("code", "")
        for lang, text in (option.get("label") or {}).items():
            values[f"options[{index}].label.{lang}"] = text
    return Form.of(values)


def _texts(form: Form, name: str, languages: list[str]) -> dict[str, str]:
    return {
        lang: form.value(f"{name}.{lang}").strip()
        for lang in languages
        if form.value(f"{name}.{lang}").strip()
    }


def _option_rows(form: Form) -> list[int]:
    """The indexes of the option rows of a sent form, in order."""
    rows = set()
    for name in form.values:
        if name.startswith("options[") and "]" in name:
            index = name[len("options[") : name.index("]")]
            if index.isdigit():
                rows.add(int(index))
    return sorted(rows)


def _question_from(
    form: Form, languages: list[str], qid: str, earlier: list[dict], kept: dict | None
) -> tuple[dict[str, Any], list[int]]:
    """The question a form describes, and the form rows its options came from."""
    qtype = form.value("type")
    question: dict[str, Any] = {
        "id": qid,
        "type": qtype,
        "label": _texts(form, "label", languages),
        "hint": _texts(form, "hint", languages) or None,
        "sensitive": form.value("sensitive") == "on",
    }
    if form.value("dimension") == "on":
        question["dimension"] = True
    used_rows = []
    if qtype in drafts.CHOICE_TYPES:
        options = []
        for row in _option_rows(form):
            code = form.value(f"options[{row}].code").strip()
            label = _texts(form, f"options[{row}].label", languages)
            if code or label:
                options.append({"code": code, "label": label})
                used_rows.append(row)
        question["options"] = options
    if qtype in ("rating", "number"):
        for key in ("min", "max"):
            if form.value(key).strip():
                question[key] = _number(form.value(key), float if qtype == "number" else int)
    if qtype == "number":
        question["integer"] = form.value("integer") == "on"
    if qtype == "free_text" and form.value("max_length").strip():
        question["max_length"] = _number(form.value("max_length"))
    question["relevant"] = drafts.condition_of(form.value("relevant"), earlier, kept)
    return question, used_rows


def _save_question(
    consultation: dict[str, Any], draft: dict[str, Any], form: Form, old: dict[str, Any] | None
) -> Response:
    cid = consultation["consultation_id"]
    languages = list(consultation["languages"])
    qid = old["id"] if old else form.value("id").strip()
    earlier = drafts.earlier_questions(draft, old["id"] if old else None)
    if old is None and form.value("placement") not in ("new", ""):
        # A new question at the end of an earlier section sees only what comes before it.
        try:
            s_index, _section = drafts.find_section(draft, form.value("placement"))
        except drafts.DraftError:
            form.add_error("placement", _("This section is not in the draft any more."))
            return _question_page(consultation, draft, form, old, 409)
        earlier = [
            q
            for section in draft["sections"][: s_index + 1]
            for q in section.get("questions") or []
        ]
    try:
        question, rows = _question_from(form, languages, qid, earlier, (old or {}).get("relevant"))
    except drafts.DraftError:
        form.add_error("relevant", _("Choose a question that comes before this one."))
        return _question_page(consultation, draft, form, old, 422)
    place: QuestionPlace
    try:
        if old is not None:
            changed = drafts.put_question(draft, question, replacing=old["id"])
            place = QuestionPlace(drafts.question_path(draft, old["id"]), None)
        elif form.value("placement") in ("new", ""):
            section = {
                "id": form.value("section_id").strip(),
                "title": _texts(form, "section_title", languages),
                "content_warning": (
                    _texts(form, "content_warning", languages)
                    if form.value("has_warning") == "on"
                    else None
                ),
                "relevant": None,
            }
            index = len(draft["sections"])
            changed = drafts.put_question(draft, question, new_section=section)
            place = QuestionPlace(f"sections[{index}].questions[0]", f"sections[{index}]")
        else:
            s_index, section = drafts.find_section(draft, form.value("placement"))
            changed = drafts.put_question(draft, question, section_id=section["id"])
            place = QuestionPlace(
                f"sections[{s_index}].questions[{len(section.get('questions') or [])}]", None
            )
    except drafts.DraftError:
        form.add_error(None, _("The draft changed meanwhile; check the question and save again."))
        return _question_page(consultation, draft, form, old, 409)
    try:
        _save_draft(cid, changed)
    except ServiceRefused as refused:
        fields = {"dimensions": "dimension"}
        if place.section_path:
            fields.update(
                {
                    f"{place.section_path}.title": "section_title",
                    f"{place.section_path}.content_warning": "content_warning",
                    f"{place.section_path}.id": "section_id",
                }
            )
        prefixes = [(f"{place.path}.options[{k}]", f"options[{row}]") for k, row in enumerate(rows)]
        prefixes.append((place.path, ""))
        form.take_refusal(refused.body.get("detail"), refused.errors, fields, prefixes)
        return _question_page(consultation, draft, form, old, refused.status)
    flash(_("The question is saved in the draft."))
    return see_other(url_for("builder.overview", cid=cid, _anchor=f"item-{qid}"))


def _question_page(
    consultation: dict[str, Any],
    draft: dict[str, Any],
    form: Form,
    old: dict[str, Any] | None,
    status: int = 200,
) -> Response:
    lang = _page_language(consultation)
    earlier = drafts.earlier_questions(draft, old["id"] if old else None)
    choices = [(drafts.ALWAYS, _("Always"))]
    if old is not None and drafts.choice_of(old.get("relevant")) == drafts.KEEP:
        choices.append((drafts.KEEP, _("As imported (a condition this list cannot show)")))
    for value, question_label, option_label in drafts.condition_choices(earlier, lang):
        if option_label:
            text = _(
                "When “%(question)s” is “%(option)s”", question=question_label, option=option_label
            )
        else:
            text = _("When “%(question)s” is answered", question=question_label)
        choices.append((value, text))
    rows = max([*_option_rows(form), len((old or {}).get("options") or []) - 1, -1]) + 1
    placements = [
        (section["id"], _in(section.get("title"), lang) or section["id"])
        for section in draft["sections"]
    ]
    placements.append(("new", _("A new section")))
    return render(
        "staff/builder/question.html",
        status,
        **_context(
            consultation,
            form=form,
            question=old,
            option_rows=range(rows + BLANK_OPTION_ROWS),
            relevant_choices=choices,
            placements=placements,
            types=[(t, _(TYPE_NAMES[t])) for t in drafts.QUESTION_TYPES],
        ),
    )


# ---------------------------------------------------------------- sections


@builder.route("/consultations/<cid>/sections/<sid>", methods=["GET", "POST"])
@signed_in("organiser")
def edit_section(cid: str, sid: str) -> Response:
    consultation = _consultation(cid)
    draft = _draft(consultation)
    languages = list(consultation["languages"])
    try:
        s_index, section = drafts.find_section(draft, sid)
    except drafts.DraftError:
        abort(404)
    if request.method == "GET":
        values: dict[str, Any] = {"has_warning": section.get("content_warning") is not None}
        for lang, text in (section.get("title") or {}).items():
            values[f"section_title.{lang}"] = text
        for lang, text in (section.get("content_warning") or {}).items():
            values[f"content_warning.{lang}"] = text
        return _section_page(consultation, section, Form.of(values))
    form = Form.of(request.form)
    warning = (
        _texts(form, "content_warning", languages) if form.value("has_warning") == "on" else None
    )
    changed = drafts.put_section_texts(
        draft, sid, _texts(form, "section_title", languages), warning
    )
    try:
        _save_draft(cid, changed)
    except ServiceRefused as refused:
        form.take_refusal(
            refused.body.get("detail"),
            refused.errors,
            {
                f"sections[{s_index}].title": "section_title",
                f"sections[{s_index}].content_warning": "content_warning",
            },
        )
        return _section_page(consultation, section, form, refused.status)
    flash(_("The section is saved in the draft."))
    return see_other(url_for("builder.overview", cid=cid, _anchor=f"item-{sid}"))


def _section_page(
    consultation: dict[str, Any], section: dict[str, Any], form: Form, status: int = 200
) -> Response:
    return render(
        "staff/builder/section.html", status, **_context(consultation, form=form, section=section)
    )


# ---------------------------------------------------------------- translations side by side


@builder.route("/consultations/<cid>/translations/<lang>", methods=["GET", "POST"])
@signed_in("organiser")
def translations(cid: str, lang: str) -> Response:
    consultation = _consultation(cid)
    languages = list(consultation["languages"])
    if lang not in languages:
        abort(404)
    source = request.values.get("from")
    if source not in languages or source == lang:
        source = next((code for code in languages if code != lang), lang)
    draft = _draft(consultation)
    items = drafts.text_items(draft)
    if request.method == "GET":
        values = {f"t:{item.path}": item.text.get(lang, "") for item in items}
        values["title"] = (consultation.get("titles") or {}).get(lang, "")
        return _translations_page(consultation, draft, lang, source, Form.of(values))
    form = Form.of(request.form)
    changed = drafts.normalised(draft, languages)
    try:
        for item in items:
            drafts.set_text(changed, item.path, lang, form.value(f"t:{item.path}"))
    except drafts.DraftError:
        form.add_error(None, _("The draft changed meanwhile; check the texts and save again."))
        return _translations_page(consultation, draft, lang, source, form, 409)
    titles = dict(consultation.get("titles") or {})
    if form.value("title").strip():
        titles[lang] = form.value("title").strip()
    else:
        titles.pop(lang, None)
    try:
        if titles != (consultation.get("titles") or {}):
            call("PATCH", f"/api/v1/consultations/{cid}", json={"titles": titles})
        if changed != draft:
            _save_draft(cid, changed)
    except ServiceRefused as refused:
        form.take_refusal(
            refused.body.get("detail"),
            refused.errors,
            {f"titles.{lang}": "title", "titles": "title"},
            prefixes=[(item.path, f"t:{item.path}") for item in items],
        )
        return _translations_page(consultation, draft, lang, source, form, refused.status)
    flash(_("The %(language)s texts are saved.", language=NATIVE_NAMES[lang]))
    return see_other(url_for("builder.translations", cid=cid, lang=lang, **{"from": source}))


def _translations_page(
    consultation: dict[str, Any],
    draft: dict[str, Any],
    lang: str,
    source: str,
    form: Form,
    status: int = 200,
) -> Response:
    items = drafts.text_items(draft)
    owners = {}
    for section in draft["sections"]:
        owners[section["id"]] = section
        for question in section.get("questions") or []:
            owners[question["id"]] = question
    kinds = {
        "section_title": N_("Section title"),
        "content_warning": N_("Content warning"),
        "label": N_("Question"),
        "hint": N_("Hint"),
        "option": N_("Answer option"),
    }
    missing = drafts.missing_translations(draft, list(consultation["languages"]))
    return render(
        "staff/builder/translations.html",
        status,
        **_context(
            consultation,
            form=form,
            target=lang,
            source=source,
            items=items,
            kinds=kinds,
            missing=missing,
            missing_here=set(missing.get(lang, [])),
            title_missing=not (consultation.get("titles") or {}).get(lang),
        ),
    )


# ---------------------------------------------------------------- XLSForm upload


@builder.route("/consultations/<cid>/xlsform", methods=["POST"])
@signed_in("organiser")
def upload_xlsform(cid: str) -> Response:
    consultation = _consultation(cid)
    upload = request.files.get("file")
    form = Form.of({"default_language": request.form.get("default_language", "")})
    if upload is None or not upload.filename:
        form.add_error("file", _("Choose an .xlsx or .xls file to upload."))
        return _overview(consultation, 422, upload=form)
    params = {}
    if form.value("default_language"):
        params["default_language"] = form.value("default_language")
    try:
        imported = call(
            "POST",
            f"/api/v1/consultations/{cid}/survey/xlsform",
            params=params or None,
            files={
                "file": (
                    upload.filename,
                    upload.read(),
                    upload.mimetype or "application/octet-stream",
                )
            },
        )
    except ServiceRefused as refused:
        problems = [
            problem
            for rows in (refused.errors or {}).values()
            if isinstance(rows, list)
            for problem in rows
            if isinstance(problem, dict)
        ]
        form.take_refusal(
            refused.body.get("detail"),
            {
                k: v
                for k, v in (refused.errors or {}).items()
                if not isinstance(v, list) or not all(isinstance(p, dict) for p in v)
            },
            {"file": "file", "default_language": "default_language"},
        )
        if problems and not form.problems:
            form.add_error(None, refused.body.get("detail") or "")
        warnings = (
            refused.body.get("warnings") if isinstance(refused.body.get("warnings"), list) else []
        )
        return _overview(
            consultation,
            refused.status,
            upload=form,
            import_problems=problems,
            import_warnings=warnings,
        )
    notice = _(
        "The XLSForm is imported as the draft (sections: %(sections)s).",
        sections=len(imported.get("draft", {}).get("sections") or []),
    )
    return _overview(
        _consultation(cid), 200, import_warnings=imported.get("warnings") or [], notice=notice
    )


# ---------------------------------------------------------------- preview and versions


@builder.route("/consultations/<cid>/preview")
@signed_in("organiser")
def preview(cid: str) -> Response:
    """The survey as a participant sees it, in any offered language; nothing is sent or stored."""
    consultation = _consultation(cid)
    languages = list(consultation["languages"])
    lang = request.args.get("in") if request.args.get("in") in languages else languages[0]
    version = request.args.get("version", "")
    if version:
        chosen = next(
            (v for v in consultation.get("versions") or [] if str(v["number"]) == version), None
        )
        if chosen is None:
            abort(404)
        survey = chosen["definition"]
    else:
        survey = _draft(consultation)
    sections = survey.get("sections") or []
    try:
        index = min(max(int(request.args.get("section", "0")), 0), max(len(sections) - 1, 0))
    except ValueError:
        index = 0
    return render(
        "staff/builder/preview.html",
        **_context(
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
    consultation = _consultation(cid)
    languages = list(consultation["languages"])
    texts = _consent_texts(cid)
    version = _consent_version(texts, request.values.get("version"))
    lang = request.values.get("in")
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
    return see_other(url_for("builder.consent", cid=cid, version=version, **{"in": following}))


@builder.route("/consultations/<cid>/consent/publish", methods=["POST"])
@signed_in("organiser")
def publish_consent(cid: str) -> Response:
    consultation = _consultation(cid)
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
        **_context(
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
    consultation = _consultation(cid)
    texts = _consent_texts(cid)
    version = _consent_version(texts, request.args.get("version"))
    lang = request.args.get("in")
    text = next((t for t in texts if t["version"] == version and t["language"] == lang), None)
    if text is None:
        abort(404)
    return render(
        "staff/builder/consent_preview.html",
        **_context(
            consultation, text=text, version=version, preview_lang=lang, purpose_names=PURPOSE_NAMES
        ),
    )


# ---------------------------------------------------------------- publishing


@dataclass
class CheckItem:
    done: bool
    text: str
    link: str | None = None
    link_text: str | None = None


def _checklist(consultation: dict[str, Any]) -> list[CheckItem]:
    """What publishing needs, each item with the page where it is fixed."""
    cid = consultation["consultation_id"]
    draft = _draft(consultation)
    languages = list(consultation["languages"])
    question_count = sum(len(s.get("questions") or []) for s in draft["sections"])
    items = [
        CheckItem(
            question_count > 0,
            _("Questions in the survey: %(count)s.", count=question_count),
            url_for("builder.overview", cid=cid),
            _("Add questions"),
        )
    ]
    stored_languages = set((consultation.get("draft") or {}).get("languages") or languages)
    if question_count and stored_languages != set(languages):
        items.append(
            CheckItem(
                False,
                _("The survey's languages differ from the consultation's."),
                url_for("builder.settings", cid=cid),
                _("Check the languages"),
            )
        )
    missing = drafts.missing_translations(draft, languages)
    for lang in languages:
        count = len(missing.get(lang, []))
        items.append(
            CheckItem(
                count == 0,
                _("%(language)s: every survey text is written.", language=NATIVE_NAMES[lang])
                if count == 0
                else _(
                    "%(language)s: survey texts missing: %(count)s.",
                    language=NATIVE_NAMES[lang],
                    count=count,
                ),
                url_for("builder.translations", cid=cid, lang=lang),
                _("Write the %(language)s texts", language=NATIVE_NAMES[lang]),
            )
        )
    titles = consultation.get("titles") or {}
    if titles:
        absent = [lang for lang in languages if lang not in titles]
        items.append(
            CheckItem(
                not absent,
                _("The title is in every language.")
                if not absent
                else _(
                    "The title is missing in: %(languages)s.",
                    languages=", ".join(NATIVE_NAMES[lang] for lang in absent),
                ),
                url_for("builder.settings", cid=cid),
                _("Write the title"),
            )
        )
    if consultation["status"] == "draft":
        consented = set(consultation.get("consent_languages") or [])
        for lang in languages:
            items.append(
                CheckItem(
                    lang in consented,
                    _("%(language)s: a consent text is published.", language=NATIVE_NAMES[lang])
                    if lang in consented
                    else _(
                        "%(language)s: no consent text is published yet.",
                        language=NATIVE_NAMES[lang],
                    ),
                    url_for("builder.consent", cid=cid, **{"in": lang}),
                    _("Write and publish the consent text"),
                )
            )
    return items


@builder.route("/consultations/<cid>/publish", methods=["GET", "POST"])
@signed_in("organiser")
def publish(cid: str) -> Response:
    consultation = _consultation(cid)
    form = Form()
    if request.method == "POST":
        if all(item.done for item in _checklist(consultation)):
            try:
                call("POST", f"/api/v1/consultations/{cid}/publish")
            except ServiceRefused as refused:
                form.take_refusal(refused.body.get("detail"), refused.errors)
            else:
                flash(_("The survey is published. Participants can answer it now."))
                return see_other(url_for("builder.overview", cid=cid))
        else:
            form.add_error(None, _("Fix the items marked below first."))
    items = _checklist(consultation)
    return render(
        "staff/builder/publish.html",
        200 if form.ok else 422,
        **_context(
            consultation,
            items=items,
            ready=all(item.done for item in items),
            form=form,
        ),
    )
