"""The languages of an XLSForm's text columns, as Voices' UN language codes."""
from __future__ import annotations

import re
from typing import Any

from pyxform import constants

from ..questionnaire import UN_LANGUAGES
from .problems import problem

DEFAULT_LABEL = constants.DEFAULT_LANGUAGE_VALUE  # pyxform's key for a column without ::language

# Title for sections made from questions outside any group.
DEFAULT_SECTION_TITLE = {
    "ar": "أسئلة",
    "zh": "问题",
    "en": "Questions",
    "fr": "Questions",
    "ru": "Вопросы",
    "es": "Preguntas",
}

_LANGUAGE_NAMES = {
    "arabic": "ar", "العربية": "ar", "عربي": "ar", "ara": "ar",
    "chinese": "zh", "mandarin": "zh", "中文": "zh", "汉语": "zh", "漢語": "zh", "zho": "zh", "chi": "zh",
    "english": "en", "eng": "en",
    "french": "fr", "français": "fr", "francais": "fr", "fra": "fr", "fre": "fr",
    "russian": "ru", "русский": "ru", "rus": "ru",
    "spanish": "es", "español": "es", "espanol": "es", "castellano": "es", "spa": "es",
}  # fmt: skip
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_PARENTHESISED = re.compile(r"^(?P<name>.*?)\s*\((?P<tag>[^()]*)\)\s*$")


def language_code(label: str) -> str | None:
    """The UN language code for an XLSForm language label, or None.

    Accepts "Arabic (ar)", "ar", "ar-SA", "zh-Hans", "Arabic", "العربية",
    "Français"... A code in parentheses wins over the name.
    """
    text = label.strip()
    match = _PARENTHESISED.match(text)
    candidates = [match.group("tag").strip()] if match else [text]
    for tag in candidates:
        if _LANGUAGE_TAG.match(tag):
            base = re.split(r"[-_]", tag)[0].lower()
            if base in UN_LANGUAGES:
                return base
            if base in _LANGUAGE_NAMES:
                return _LANGUAGE_NAMES[base]
            if match:
                return None  # an explicit code for another language
    name = (match.group("name") if match else text).strip().casefold()
    return _LANGUAGE_NAMES.get(name)


class LanguageColumns:
    """Maps the language labels used in text columns to codes, noting problems once per column."""

    def __init__(self, default_label: str | None, problems: list[dict]) -> None:
        self.default_label = default_label
        self.problems = problems
        self.order: list[str] = []
        self._seen: dict[tuple[str, str, str], str | None] = {}
        self._owner: dict[tuple[str, str, str], str] = {}  # (sheet, column, code) -> label

    def header(self, sheet: str, column: str, label: str) -> str | None:
        key = (sheet, column, label)
        if key in self._seen:
            return self._seen[key]
        header = column if label == DEFAULT_LABEL else f"{column}::{label}"
        if label == DEFAULT_LABEL:
            code = language_code(self.default_label) if self.default_label else None
            if code is None:
                self.problems.append(problem(sheet, 1, header, (
                    f"column '{column}' has no language: name it like '{column}::English (en)' "
                    "or set default_language in the settings sheet"
                    if not self.default_label
                    else f"default_language {self.default_label!r} is not one of {', '.join(UN_LANGUAGES)}"
                )))  # fmt: skip
        else:
            code = language_code(label)
            if code is None:
                self.problems.append(problem(
                    sheet, 1, header,
                    f"language {label!r} is not one of the supported languages {', '.join(UN_LANGUAGES)}",
                ))  # fmt: skip
        if code is not None:
            owner = self._owner.setdefault((sheet, column, code), label)
            if owner != label:
                self.problems.append(problem(
                    sheet, 1, header, f"two '{column}' columns are both in language {code!r}"
                ))  # fmt: skip
                code = None
            elif column == "label" and code not in self.order:  # labels decide the languages
                self.order.append(code)
        self._seen[key] = code
        return code

    def texts(self, sheet: str, column: str, value: Any) -> dict[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            value = {DEFAULT_LABEL: value}
        out = {}
        for label, text in value.items():
            code = self.header(sheet, column, label)
            if code is not None and isinstance(text, str) and text.strip():
                out[code] = text.strip()
        return out

