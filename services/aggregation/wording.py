"""The words of a consultation (title, question wording, option labels in every language),
as consultation.published carries them, so that a release can freeze them beside its figures.

Pure domain: plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.aggregation.projection import SKIPPED

# Categories the tables add themselves (not options of the survey), explained in the exports.
RESERVED_CATEGORIES: dict[str, str] = {
    SKIPPED: "did not answer this question (skipped it or were not asked)",
    "_declined": "chose 'prefer not to say'",
    "_other_values": "rare answers grouped together until the group holds at least k people",
    "_total": "all counted people",
    "_contributors": "counted people who answered this question (the base of its percentages)",
}


def _texts(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(lang): text for lang, text in value.items() if isinstance(text, str) and text}


def wording_from_published(payload: Mapping[str, Any]) -> dict[str, Any]:
    """{survey_version, languages, title: {lang: text}, questions: {id: {label, options}}}.

    `title` falls back to the single title under every language when the event has no titles.
    Questions without wording (events published before it was carried) get empty dicts, so a
    reader shows their ids.
    """
    languages = [str(lang) for lang in payload.get("languages") or []]
    titles = _texts(payload.get("titles"))
    if not titles and isinstance(payload.get("title"), str):
        titles = dict.fromkeys(languages, payload["title"]) or {"": payload["title"]}
    questions: dict[str, Any] = {}
    for question in payload.get("questions") or []:
        option_labels = question.get("option_labels") or {}
        questions[question["id"]] = {
            "label": _texts(question.get("label")),
            "options": {
                str(code): _texts(labels)
                for code, labels in option_labels.items()
                if isinstance(labels, Mapping)
            },
        }
    return {
        "survey_version": int(payload.get("survey_version") or 0),
        "languages": languages,
        "title": titles,
        "questions": questions,
    }


def pick(texts: Mapping[str, str] | None, language: str, fallback: str) -> str:
    """The text in `language`, else in the first language that has one, else `fallback`."""
    if not texts:
        return fallback
    if language in texts:
        return texts[language]
    return next(iter(texts.values()), fallback)


def question_text(wording: Mapping[str, Any] | None, question_id: str, language: str) -> str:
    """The question's wording in `language` (its id when the release has no wording)."""
    question = ((wording or {}).get("questions") or {}).get(question_id) or {}
    return pick(question.get("label"), language, question_id)


def category_text(
    wording: Mapping[str, Any] | None, question_id: str, category: str, language: str
) -> str:
    """An option's label in `language`; reserved categories and values (numbers, ratings) as
    they are."""
    question = ((wording or {}).get("questions") or {}).get(question_id) or {}
    return pick((question.get("options") or {}).get(category), language, category)
