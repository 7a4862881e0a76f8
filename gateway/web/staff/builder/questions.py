"""Questions, sections, translations side by side, and the XLSForm upload."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Response, abort, request, url_for

from gateway.web.i18n import N_, NATIVE_NAMES
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff import drafts
from gateway.web.staff.builder.common import (
    BLANK_OPTION_ROWS,
    TYPE_NAMES,
    builder,
    consultation_of,
    draft_of,
    number_or_text,
    page_context,
    page_language,
    save_draft,
    text_in,
)
from gateway.web.staff.builder.common import query_values as _query
from gateway.web.staff.builder.consultation import overview_page
from gateway.web.staff.forms import Form
from gateway.web.staff.pages import _, call, flash, render, see_other, signed_in

# ---------------------------------------------------------------- questions (and new sections)


@dataclass
class QuestionPlace:
    """Where the question being edited is, or will be, in the draft (for placing refusals)."""

    path: str
    section_path: str | None  # set when the question starts a new section


@builder.route("/consultations/<cid>/questions/new", methods=["GET", "POST"])
@signed_in("organiser")
def new_question(cid: str) -> Response:
    consultation = consultation_of(cid)
    draft = draft_of(consultation)
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
    consultation = consultation_of(cid)
    draft = draft_of(consultation)
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
                question[key] = number_or_text(form.value(key), float if qtype == "number" else int)
    if qtype == "number":
        question["integer"] = form.value("integer") == "on"
    if qtype == "free_text" and form.value("max_length").strip():
        question["max_length"] = number_or_text(form.value("max_length"))
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
            new_section: dict[str, Any] = {
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
            changed = drafts.put_question(draft, question, new_section=new_section)
            place = QuestionPlace(f"sections[{index}].questions[0]", f"sections[{index}]")
        else:
            s_index, existing = drafts.find_section(draft, form.value("placement"))
            changed = drafts.put_question(draft, question, section_id=existing["id"])
            place = QuestionPlace(
                f"sections[{s_index}].questions[{len(existing.get('questions') or [])}]", None
            )
    except drafts.DraftError:
        form.add_error(None, _("The draft changed meanwhile; check the question and save again."))
        return _question_page(consultation, draft, form, old, 409)
    try:
        save_draft(cid, changed)
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
        _name_the_kind(form)
        return _question_page(consultation, draft, form, old, refused.status)
    flash(_("The question is saved in the draft."))
    return see_other(url_for("builder.overview", cid=cid, _anchor=f"item-{qid}"))


_TOO_FEW_OPTIONS = re.compile(r"^a (\w+) question needs at least (\d+) options?$")


def _name_the_kind(form: Form) -> None:
    """The service names a kind of question by its code ("single_choice"): say it as the form
    does, and what to fill in."""
    messages = form.errors.get("options", [])
    for index, message in enumerate(messages):
        match = _TOO_FEW_OPTIONS.match(message)
        if match and match.group(1) in TYPE_NAMES:
            messages[index] = _(
                "“%(kind)s” needs at least %(count)s answer options: give each its code and text.",
                kind=_(TYPE_NAMES[match.group(1)]),
                count=int(match.group(2)),
            )


def _question_page(
    consultation: dict[str, Any],
    draft: dict[str, Any],
    form: Form,
    old: dict[str, Any] | None,
    status: int = 200,
) -> Response:
    lang = page_language(consultation)
    earlier = drafts.earlier_questions(draft, old["id"] if old else None)
    choices = _relevant_choices(earlier, lang, (old or {}).get("relevant"))
    rows = max([*_option_rows(form), len((old or {}).get("options") or []) - 1, -1]) + 1
    placements = [
        (section["id"], text_in(section.get("title"), lang) or section["id"])
        for section in draft["sections"]
    ]
    placements.append(("new", _("A new section")))
    return render(
        "staff/builder/question.html",
        status,
        **page_context(
            consultation,
            form=form,
            question=old,
            option_rows=range(rows + BLANK_OPTION_ROWS),
            relevant_choices=choices,
            placements=placements,
            types=[(t, _(TYPE_NAMES[t])) for t in drafts.QUESTION_TYPES],
        ),
    )


def _relevant_choices(
    earlier: list[dict[str, Any]], lang: str, current: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """The skip-logic select list: always, or a condition on one of the `earlier` questions."""
    choices = [(drafts.ALWAYS, _("Always"))]
    if drafts.choice_of(current) == drafts.KEEP:
        choices.append((drafts.KEEP, _("As imported (a condition this list cannot show)")))
    for value, question_label, option_label in drafts.condition_choices(earlier, lang):
        if option_label:
            text = _(
                "When “%(question)s” is “%(option)s”", question=question_label, option=option_label
            )
        else:
            text = _("When “%(question)s” is answered", question=question_label)
        choices.append((value, text))
    return choices


# ---------------------------------------------------------------- sections


@builder.route("/consultations/<cid>/sections/<sid>", methods=["GET", "POST"])
@signed_in("organiser")
def edit_section(cid: str, sid: str) -> Response:
    consultation = consultation_of(cid)
    draft = draft_of(consultation)
    languages = list(consultation["languages"])
    try:
        s_index, section = drafts.find_section(draft, sid)
    except drafts.DraftError:
        abort(404)
    if request.method == "GET":
        values: dict[str, Any] = {
            "has_warning": section.get("content_warning") is not None,
            "relevant": drafts.choice_of(section.get("relevant")),
        }
        for lang, text in (section.get("title") or {}).items():
            values[f"section_title.{lang}"] = text
        for lang, text in (section.get("content_warning") or {}).items():
            values[f"content_warning.{lang}"] = text
        return _section_page(consultation, draft, section, Form.of(values))
    form = Form.of(request.form)
    warning = (
        _texts(form, "content_warning", languages) if form.value("has_warning") == "on" else None
    )
    try:
        relevant = drafts.condition_of(
            form.value("relevant"),
            drafts.questions_before_section(draft, sid),
            section.get("relevant"),
        )
    except drafts.DraftError:
        form.add_error("relevant", _("Choose a question from an earlier section."))
        return _section_page(consultation, draft, section, form, 422)
    changed = drafts.put_section_texts(
        draft, sid, _texts(form, "section_title", languages), warning, relevant
    )
    try:
        save_draft(cid, changed)
    except ServiceRefused as refused:
        form.take_refusal(
            refused.body.get("detail"),
            refused.errors,
            {
                f"sections[{s_index}].title": "section_title",
                f"sections[{s_index}].content_warning": "content_warning",
            },
            prefixes=[(f"sections[{s_index}].relevant", "relevant")],
        )
        return _section_page(consultation, draft, section, form, refused.status)
    flash(_("The section is saved in the draft."))
    return see_other(url_for("builder.overview", cid=cid, _anchor=f"item-{sid}"))


def _section_page(
    consultation: dict[str, Any],
    draft: dict[str, Any],
    section: dict[str, Any],
    form: Form,
    status: int = 200,
) -> Response:
    earlier = drafts.questions_before_section(draft, section["id"])
    return render(
        "staff/builder/section.html",
        status,
        **page_context(
            consultation,
            form=form,
            section=section,
            relevant_choices=_relevant_choices(
                earlier, page_language(consultation), section.get("relevant")
            ),
        ),
    )


# ---------------------------------------------------------------- translations side by side


@builder.route("/consultations/<cid>/translations/<lang>", methods=["GET", "POST"])
@signed_in("organiser")
def translations(cid: str, lang: str) -> Response:
    consultation = consultation_of(cid)
    languages = list(consultation["languages"])
    if lang not in languages:
        abort(404)
    source = request.values.get("from", "")
    if source not in languages or source == lang:
        source = next((code for code in languages if code != lang), lang)
    draft = draft_of(consultation)
    items = drafts.text_items(draft)
    if request.method == "GET":
        values = {f"t:{item.path}": item.text.get(lang, "") for item in items}
        values["title"] = (consultation.get("titles") or {}).get(lang, "")
        values["description"] = (consultation.get("descriptions") or {}).get(lang, "")
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
    descriptions = dict(consultation.get("descriptions") or {})
    if form.value("description").strip():
        descriptions[lang] = form.value("description").strip()
    else:
        descriptions.pop(lang, None)
    settings: dict[str, Any] = {}
    if titles != (consultation.get("titles") or {}):
        settings["titles"] = titles
    if descriptions != (consultation.get("descriptions") or {}):
        settings["descriptions"] = descriptions
    try:
        if settings:
            call("PATCH", f"/api/v1/consultations/{cid}", json=settings)
        if changed != draft:
            save_draft(cid, changed)
    except ServiceRefused as refused:
        form.take_refusal(
            refused.body.get("detail"),
            refused.errors,
            {
                f"titles.{lang}": "title",
                "titles": "title",
                f"descriptions.{lang}": "description",
                "descriptions": "description",
            },
            prefixes=[(item.path, f"t:{item.path}") for item in items],
        )
        return _translations_page(consultation, draft, lang, source, form, refused.status)
    flash(_("The %(language)s texts are saved.", language=NATIVE_NAMES[lang]))
    return see_other(url_for("builder.translations", cid=cid, lang=lang, **_query("from", source)))


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
        **page_context(
            consultation,
            form=form,
            target=lang,
            source=source,
            items=items,
            kinds=kinds,
            missing=missing,
            missing_here=set(missing.get(lang, [])),
            title_missing=not (consultation.get("titles") or {}).get(lang),
            description_missing=bool(consultation.get("descriptions"))
            and not (consultation.get("descriptions") or {}).get(lang),
        ),
    )


# ---------------------------------------------------------------- XLSForm upload


@builder.route("/consultations/<cid>/xlsform", methods=["POST"])
@signed_in("organiser")
def upload_xlsform(cid: str) -> Response:
    consultation = consultation_of(cid)
    upload = request.files.get("file")
    form = Form.of({"default_language": request.form.get("default_language", "")})
    if upload is None or not upload.filename:
        form.add_error("file", _("Choose an .xlsx or .xls file to upload."))
        return overview_page(consultation, 422, upload=form)
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
        return overview_page(
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
    return overview_page(
        consultation_of(cid), 200, import_warnings=imported.get("warnings") or [], notice=notice
    )
