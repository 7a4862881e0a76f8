"""What the builder's pages share: the blueprint, names of things, and the calls they all make."""

from __future__ import annotations

from typing import Any

from flask import g

from gateway.web.i18n import N_, NATIVE_NAMES
from gateway.web.staff import drafts
from gateway.web.staff.pages import _, call, staff_blueprint

builder = staff_blueprint("builder", __name__)

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


def consultation_of(cid: str) -> dict[str, Any]:
    return call("GET", f"/api/v1/consultations/{cid}")


def save_draft(cid: str, draft: dict[str, Any]) -> dict[str, Any]:
    return call("PUT", f"/api/v1/consultations/{cid}/survey", json={"survey": draft})


def draft_of(consultation: dict[str, Any]) -> dict[str, Any]:
    return drafts.normalised(consultation.get("draft"), list(consultation["languages"]))


def page_language(consultation: dict[str, Any]) -> str:
    """The consultation language to show texts in: the page's when offered, else its first."""
    lang = g.get("web_lang", "en")
    return lang if lang in consultation["languages"] else consultation["languages"][0]


def page_context(consultation: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "c": consultation,
        "cid": consultation["consultation_id"],
        "text_lang": page_language(consultation),
        "language_names": NATIVE_NAMES,
        "status_name": _(STATUS_NAMES.get(consultation["status"], consultation["status"])),
        "type_names": TYPE_NAMES,
        "language_options": [(code, NATIVE_NAMES[code]) for code in consultation["languages"]],
        **more,
    }


def text_in(text: Any, lang: str) -> str:
    if not isinstance(text, dict):
        return ""
    return text.get(lang) or next((v for v in text.values() if v), "")


def number_or_text(text: str, kind: type = int) -> Any:
    """The number typed, or the text itself for the service to refuse with its own message."""
    text = text.strip()
    try:
        return kind(text)
    except ValueError:
        return text or None


def query_values(name: str, value: str) -> dict[str, Any]:
    """One query parameter for url_for, for names Python reserves ("in", "from")."""
    return {name: value}
