"""Publishing: the checklist of what would break participants, then the publication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, request, url_for

from gateway.web.i18n import NATIVE_NAMES
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff import drafts
from gateway.web.staff.builder.common import (
    builder,
    consultation_of,
    draft_of,
    page_context,
)
from gateway.web.staff.builder.common import query_values as _query
from gateway.web.staff.forms import Form
from gateway.web.staff.pages import _, call, flash, render, see_other, signed_in

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
    draft = draft_of(consultation)
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
    descriptions = consultation.get("descriptions") or {}
    if descriptions:
        absent = [lang for lang in languages if lang not in descriptions]
        items.append(
            CheckItem(
                not absent,
                _("The description is in every language.")
                if not absent
                else _(
                    "The description is missing in: %(languages)s.",
                    languages=", ".join(NATIVE_NAMES[lang] for lang in absent),
                ),
                url_for("builder.settings", cid=cid, _anchor="f-descriptions"),
                _("Write the description"),
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
                    url_for("builder.consent", cid=cid, **_query("in", lang)),
                    _("Write and publish the consent text"),
                )
            )
    return items


@builder.route("/consultations/<cid>/publish", methods=["GET", "POST"])
@signed_in("organiser")
def publish(cid: str) -> Response:
    consultation = consultation_of(cid)
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
        **page_context(
            consultation,
            items=items,
            ready=all(item.done for item in items),
            form=form,
        ),
    )
