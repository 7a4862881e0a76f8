"""The languages of an XLSForm's text columns, as Voices' UN language codes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pyxform import constants

from shared.questionnaire.definition import UN_LANGUAGES

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

# Texts of what `or_other` adds: the choice, and the text question asked when it is chosen.
OTHER_CHOICE = {
    "ar": "أخرى",
    "zh": "其他",
    "en": "Other",
    "fr": "Autre",
    "ru": "Другое",
    "es": "Otro",
}
SPECIFY_OTHER = {
    "ar": "يرجى التحديد",
    "zh": "请具体说明",
    "en": "Please specify",
    "fr": "Veuillez préciser",
    "ru": "Уточните, пожалуйста",
    "es": "Especifique, por favor",
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
    """Maps the language labels of text columns to codes, noting problems and warnings once per column.

    A column without a language (plain `label`, `hint`) is in the form's default language: the
    settings sheet's default_language, else the one the caller names, else the first of the
    consultation's languages that no label column of the same sheet has (English when there is
    no consultation). By sheet, because a translated survey sheet often comes with a choices
    sheet that has one plain label column.
    """

    def __init__(
        self,
        default_label: str | None,
        problems: list[dict],
        warnings: list[dict],
        *,
        consultation_languages: Sequence[str] | None,
        labelled: dict[str, set[str]],
    ) -> None:
        self.default_label = default_label
        self.consultation_languages = list(consultation_languages or [])
        self.labelled = labelled  # sheet -> codes that its `label::<language>` columns name
        self.problems = problems
        self.warnings = warnings
        self.order: list[str] = []
        self.left_out: list[str] = []  # headers of columns in languages Voices does not support
        self._seen: dict[tuple[str, str, str], str | None] = {}
        self._owner: dict[tuple[str, str, str], str] = {}  # (sheet, column, code) -> label
        self._guess_said: set[str] = set()  # sheets whose default language was guessed aloud

    def header(self, sheet: str, column: str, label: str) -> str | None:
        key = (sheet, column, label)
        if key in self._seen:
            return self._seen[key]
        header = column if label == DEFAULT_LABEL else f"{column}::{label}"
        if label == DEFAULT_LABEL:
            code = self._default_code(sheet, column)
        else:
            code = language_code(label)
            if code is None:
                self.left_out.append(header)
                self.warnings.append(problem(sheet, 1, header, (
                    f"column '{header}' is not imported: {label!r} is not one of the languages Voices "
                    f"works in ({', '.join(UN_LANGUAGES)})"
                )))  # fmt: skip
        if code is not None:
            owner = self._owner.setdefault((sheet, column, code), label)
            if owner != label:
                self.problems.append(problem(
                    sheet, 1, header, f"two '{column}' columns are both in language {code!r}: "
                                      "delete one or name the language of each"
                ))  # fmt: skip
                code = None
            elif column == "label" and code not in self.order:  # labels decide the languages
                self.order.append(code)
        self._seen[key] = code
        return code

    def adopt(self, texts: dict[str, str]) -> None:
        """Count the languages of texts used as labels (a hint standing in for a missing label)."""
        self.order.extend(code for code in texts if code not in self.order)

    def column_for(self, sheet: str, column: str, code: str) -> str:
        """The header of the sheet's column for a language: the one in the form, or one to add."""
        label = self._owner.get((sheet, column, code))
        if label is None:  # the sheet lacks the column: name it as the other sheets do
            label = next(
                (lab for (_, col, c), lab in self._owner.items() if (col, c) == (column, code)),
                code,
            )
        return column if label == DEFAULT_LABEL else f"{column}::{label}"

    def _default_code(self, sheet: str, column: str) -> str | None:
        """The language of a column without one, or None after noting why there is none."""
        if self.default_label:
            code = language_code(self.default_label)
            if code is None:
                self.problems.append(problem(sheet, 1, column, (
                    f"default_language {self.default_label!r} is not one of {', '.join(UN_LANGUAGES)}: "
                    f"change it, or name the language of the column, e.g. '{column}::English (en)'"
                )))  # fmt: skip
            return code
        labelled = self.labelled.get(sheet, set())
        candidates = [c for c in self.consultation_languages or ["en"] if c not in labelled]
        if (
            not candidates and column == "label"
        ):  # a label for each language already: this one is extra
            self.warnings.append(problem(sheet, 1, column, (
                f"column '{column}' has no language and is not imported: the other label columns already "
                f"cover {', '.join(sorted(labelled))}; name its language (e.g. '{column}::English (en)') "
                "to import it"
            )))  # fmt: skip
            return None
        if (
            not candidates
        ):  # e.g. a plain hint beside translated labels: most likely in their first language
            code = next(
                c for c in [*self.consultation_languages, *sorted(labelled)] if c in labelled
            )
            self.warnings.append(problem(sheet, 1, column, (
                f"column '{column}' has no language and is taken to be in {code!r}, the first language of the "
                f"label columns: name its language (e.g. '{column}::English (en)') if it is another"
            )))  # fmt: skip
            return code
        if (
            len(candidates) > 1 or not self.consultation_languages
        ) and sheet not in self._guess_said:
            self._guess_said.add(sheet)
            self.warnings.append(problem(sheet, 1, column, (
                f"columns without a language, such as '{column}', are taken to be in {candidates[0]!r}: "
                "if they are in another language, set default_language in the settings sheet"
            )))  # fmt: skip
        return candidates[0]

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
