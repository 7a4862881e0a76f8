"""Editing a draft survey as plain data, for the consultation builder (no Flask, no HTTP).

The builder reads the consultation's draft, changes it with these functions and sends the whole
draft back (PUT .../survey): the surveys service validates it and stays the only judge. Texts
are addressed by the service's own error paths ("sections[0].questions[2].options[1].label"),
so a refusal for a path lands next to the input for it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

CHOICE_TYPES = ("single_choice", "multiple_choice")
QUESTION_TYPES = ("single_choice", "multiple_choice", "rating", "number", "date", "free_text")
_PATH_PART = re.compile(r"(\w+)(?:\[(\d+)\])?")


class DraftError(LookupError):
    """The section or question a form names is not in the draft (changed meanwhile)."""


@dataclass(frozen=True)
class TextItem:
    """One translatable text of a draft: its path, what it is, and the question or section it is on."""

    path: str
    kind: str  # section_title, content_warning, label, hint, option
    owner: str  # the id of the section or question
    text: dict[str, str]


def empty_draft(languages: list[str]) -> dict[str, Any]:
    return {"languages": list(languages), "sections": []}


def normalised(draft: dict[str, Any] | None, languages: list[str]) -> dict[str, Any]:
    """A copy of `draft` in the consultation's languages (what publishing will ask for)."""
    result = copy.deepcopy(draft) if draft else empty_draft(languages)
    result.setdefault("sections", [])
    result["languages"] = list(languages)
    return result


# ---------------------------------------------------------------- finding things


def sections(draft: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in draft.get("sections") or [] if isinstance(s, dict)]


def find_section(draft: dict[str, Any], section_id: str) -> tuple[int, dict[str, Any]]:
    """(index, section). Raises DraftError."""
    for index, section in enumerate(sections(draft)):
        if section.get("id") == section_id:
            return index, section
    raise DraftError(f"no section {section_id!r}")


def find_question(draft: dict[str, Any], question_id: str) -> tuple[int, int, dict[str, Any]]:
    """(section index, question index, question). Raises DraftError."""
    for s_index, section in enumerate(sections(draft)):
        for q_index, question in enumerate(section.get("questions") or []):
            if isinstance(question, dict) and question.get("id") == question_id:
                return s_index, q_index, question
    raise DraftError(f"no question {question_id!r}")


def question_path(draft: dict[str, Any], question_id: str) -> str:
    s_index, q_index, _ = find_question(draft, question_id)
    return f"sections[{s_index}].questions[{q_index}]"


def all_ids(draft: dict[str, Any]) -> set[str]:
    ids = set()
    for section in sections(draft):
        ids.add(str(section.get("id")))
        for question in section.get("questions") or []:
            ids.add(str(question.get("id")))
    return ids


def earlier_questions(draft: dict[str, Any], question_id: str | None) -> list[dict[str, Any]]:
    """The questions before `question_id` (all of them for a new question at the end)."""
    found: list[dict[str, Any]] = []
    for section in sections(draft):
        for question in section.get("questions") or []:
            if question.get("id") == question_id:
                return found
            found.append(question)
    return found


def questions_before_section(draft: dict[str, Any], section_id: str) -> list[dict[str, Any]]:
    """The questions of the sections before `section_id`: what its skip logic may depend on."""
    found: list[dict[str, Any]] = []
    for section in sections(draft):
        if section.get("id") == section_id:
            break
        found.extend(section.get("questions") or [])
    return found


_PART_PATH = re.compile(r"^sections\[(\d+)\](?:\.questions\[(\d+)\])?(?:\.(.*))?$")


def part_named(draft: dict[str, Any], path: str) -> tuple[str, str, str] | None:
    """("section" or "question", its id, the rest of the path) for an error path of `draft`, such
    as "sections[1].questions[0].relevant"; None for a path outside its sections and questions."""
    match = _PART_PATH.match(path)
    if match is None:
        return None
    s_index, q_index, rest = int(match.group(1)), match.group(2), match.group(3) or ""
    all_sections = sections(draft)
    if s_index >= len(all_sections):
        return None
    section = all_sections[s_index]
    if q_index is None:
        return "section", str(section.get("id")), rest
    questions = section.get("questions") or []
    if int(q_index) >= len(questions):
        return None
    return "question", str(questions[int(q_index)].get("id")), rest


def new_id(draft: dict[str, Any], prefix: str) -> str:
    """An id not used in the draft yet: prefix1, prefix2, ..."""
    taken = all_ids(draft)
    number = 1
    while f"{prefix}{number}" in taken:
        number += 1
    return f"{prefix}{number}"


# ---------------------------------------------------------------- texts and translations


def text_items(draft: dict[str, Any]) -> list[TextItem]:
    """Every translatable text of the draft, in reading order."""
    items = []
    for s_index, section in enumerate(sections(draft)):
        spath = f"sections[{s_index}]"
        sid = str(section.get("id"))
        items.append(TextItem(f"{spath}.title", "section_title", sid, section.get("title") or {}))
        if section.get("content_warning") is not None:
            items.append(
                TextItem(
                    f"{spath}.content_warning", "content_warning", sid, section["content_warning"]
                )
            )
        for q_index, question in enumerate(section.get("questions") or []):
            qpath = f"{spath}.questions[{q_index}]"
            qid = str(question.get("id"))
            items.append(TextItem(f"{qpath}.label", "label", qid, question.get("label") or {}))
            if question.get("hint") is not None:
                items.append(TextItem(f"{qpath}.hint", "hint", qid, question["hint"]))
            for o_index, option in enumerate(question.get("options") or []):
                items.append(
                    TextItem(
                        f"{qpath}.options[{o_index}].label",
                        "option",
                        qid,
                        option.get("label") or {},
                    )
                )
    return items


def _walk(draft: dict[str, Any], path: str) -> tuple[Any, str]:
    """(the object holding the last key, the last key) of a text path. Raises DraftError."""
    parts = path.split(".")
    node: Any = draft
    for part in parts[:-1]:
        match = _PATH_PART.fullmatch(part)
        if match is None:
            raise DraftError(path)
        key, index = match.group(1), match.group(2)
        try:
            node = node[key]
            if index is not None:
                node = node[int(index)]
        except (KeyError, IndexError, TypeError):
            raise DraftError(path) from None
    return node, parts[-1]


def set_text(draft: dict[str, Any], path: str, language: str, value: str) -> None:
    """Set one language of the text at `path` (an empty value removes that language)."""
    holder, key = _walk(draft, path)
    if not isinstance(holder, dict):
        raise DraftError(path)
    text = dict(holder.get(key) or {})
    if value.strip():
        text[language] = value.strip()
    else:
        text.pop(language, None)
    holder[key] = text


def missing(text: dict[str, str] | None, language: str) -> bool:
    value = (text or {}).get(language)
    return not isinstance(value, str) or not value.strip()


def missing_translations(draft: dict[str, Any], languages: list[str]) -> dict[str, list[str]]:
    """{language: [paths of texts missing in it]} for the languages with something missing."""
    found: dict[str, list[str]] = {}
    for item in text_items(draft):
        for language in languages:
            if missing(item.text, language):
                found.setdefault(language, []).append(item.path)
    return found


# ---------------------------------------------------------------- skip logic as choices

ALWAYS = ""
KEEP = "keep"


def condition_choices(earlier: list[dict[str, Any]], language: str) -> list[tuple[str, str, str]]:
    """What a question (or section) may depend on, as (value, question label, option label or '')
    triples for a select list: each earlier question answered, and each option of earlier choice
    questions chosen. The value encodes the condition (see `condition_of`)."""
    choices = []
    for question in earlier:
        qid = str(question.get("id"))
        label = _in(question.get("label"), language) or qid
        choices.append((f"answered:{qid}", label, ""))
        if question.get("type") in CHOICE_TYPES:
            for option in question.get("options") or []:
                choices.append(
                    (
                        f"chosen:{qid}:{option.get('code')}",
                        label,
                        _in(option.get("label"), language) or str(option.get("code")),
                    )
                )
    return choices


def condition_of(
    choice: str, earlier: list[dict[str, Any]], kept: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The condition a select-list value stands for (None: always shown; `kept` for KEEP).
    Raises DraftError for a value that names no earlier question or option."""
    if choice == ALWAYS:
        return None
    if choice == KEEP:
        return kept
    kind, _, rest = choice.partition(":")
    by_id = {str(q.get("id")): q for q in earlier}
    if kind == "answered" and rest in by_id:
        return {"question": rest, "op": "answered"}
    if kind == "chosen":
        qid, _, code = rest.partition(":")
        question = by_id.get(qid)
        if question and code in {str(o.get("code")) for o in question.get("options") or []}:
            op = "includes" if question.get("type") == "multiple_choice" else "equals"
            return {"question": qid, "op": op, "value": code}
    raise DraftError(f"not a condition on an earlier question: {choice!r}")


def choice_of(condition: dict[str, Any] | None) -> str:
    """The select-list value of a stored condition; KEEP for one the list cannot express (from
    an XLSForm, say), which then stays as it is unless another choice is made."""
    if not condition:
        return ALWAYS
    op, qid = condition.get("op"), condition.get("question")
    if qid and op == "answered" and set(condition) == {"question", "op"}:
        return f"answered:{qid}"
    if qid and op in ("equals", "includes") and set(condition) == {"question", "op", "value"}:
        return f"chosen:{qid}:{condition['value']}"
    return KEEP


def _in(text: Any, language: str) -> str:
    if not isinstance(text, dict):
        return ""
    return text.get(language) or next((v for v in text.values() if v), "")


# ---------------------------------------------------------------- changes


def put_question(
    draft: dict[str, Any],
    question: dict[str, Any],
    *,
    replacing: str | None = None,
    section_id: str | None = None,
    new_section: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of `draft` with `question` in place of question `replacing`, or added at the end of
    section `section_id`, or as the first question of `new_section` (added at the end).
    Raises DraftError when a named section or question is gone."""
    result = copy.deepcopy(draft)
    if replacing is not None:
        s_index, q_index, _ = find_question(result, replacing)
        result["sections"][s_index]["questions"][q_index] = question
        return result
    if new_section is not None:
        result.setdefault("sections", []).append({**new_section, "questions": [question]})
        return result
    s_index, _ = find_section(result, section_id or "")
    result["sections"][s_index].setdefault("questions", []).append(question)
    return result


def put_section_texts(
    draft: dict[str, Any],
    section_id: str,
    title: dict[str, str],
    content_warning: dict[str, str] | None,
    relevant: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy with the section's title, content warning and skip logic replaced."""
    result = copy.deepcopy(draft)
    s_index, _ = find_section(result, section_id)
    result["sections"][s_index]["title"] = title
    result["sections"][s_index]["content_warning"] = content_warning
    result["sections"][s_index]["relevant"] = relevant
    return result


def delete_question(draft: dict[str, Any], question_id: str) -> dict[str, Any]:
    """A copy without the question; a section left without questions goes too."""
    result = copy.deepcopy(draft)
    s_index, q_index, _ = find_question(result, question_id)
    del result["sections"][s_index]["questions"][q_index]
    if not result["sections"][s_index]["questions"]:
        del result["sections"][s_index]
    return result


def delete_section(draft: dict[str, Any], section_id: str) -> dict[str, Any]:
    result = copy.deepcopy(draft)
    s_index, _ = find_section(result, section_id)
    del result["sections"][s_index]
    return result


def move(draft: dict[str, Any], item_id: str, step: int) -> dict[str, Any]:
    """A copy with the section or question `item_id` moved `step` places (-1 up, +1 down). A
    question moves across into the neighbouring section at its edge. Raises DraftError."""
    result = copy.deepcopy(draft)
    all_sections = result.get("sections") or []
    try:
        s_index, _ = find_section(result, item_id)
    except DraftError:
        s_index = None
    if s_index is not None:
        target = s_index + step
        if 0 <= target < len(all_sections):
            all_sections[s_index], all_sections[target] = (
                all_sections[target],
                all_sections[s_index],
            )
        return result
    s_index, q_index, question = find_question(result, item_id)
    questions = all_sections[s_index]["questions"]
    target = q_index + step
    if 0 <= target < len(questions):
        questions[q_index], questions[target] = questions[target], questions[q_index]
    elif 0 <= s_index + step < len(all_sections) and len(questions) > 1:
        del questions[q_index]
        neighbour = all_sections[s_index + step]["questions"]
        if step < 0:
            neighbour.append(question)
        else:
            neighbour.insert(0, question)
    return result
