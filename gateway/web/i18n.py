"""Interface language of the participant pages: the six UN languages, from Babel message catalogs.

Survey questions and consent texts come in the organisers' own translations; only the words of
the interface come from these catalogs. The catalogs are kept as .po files and compiled in
memory when the app starts, so there is no build step and no generated file to forget.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

# The six official UN languages, in the order the switcher lists them.
LANGUAGES: tuple[str, ...] = ("ar", "zh", "en", "fr", "ru", "es")
DEFAULT_LANGUAGE = "en"
RIGHT_TO_LEFT = frozenset({"ar"})
# Each language named in itself, so a person finds theirs without reading the current one.
NATIVE_NAMES = {
    "ar": "العربية",
    "zh": "中文",
    "en": "English",
    "fr": "Français",
    "ru": "Русский",
    "es": "Español",
}
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"
# One catalog (domain) per area of the web app, each extracted from its own files, so the
# participant pages and each group of staff pages keep their strings apart. A domain lists the
# Python and template paths (relative to gateway/web) its strings are extracted from; the first
# domain with a matching prefix wins, and `messages` takes every file no other domain claims.
DOMAINS: dict[str, tuple[str, ...]] = {
    "messages": (),
    # Organisers running a consultation: invitations, progress, releases, quotes, contacts.
    "operations": ("staff/operations/", "templates/staff/operations/"),
    # The staff shell (sign-in, layout) and the consultation builder.
    "staff": ("staff/", "templates/staff/"),
    # Policy, auditor and administration pages.
    "oversight": ("oversight/", "templates/oversight/"),
}


def domain_of(relative_path: str) -> str:
    """The catalog a source file of the web app (path relative to gateway/web) belongs to."""
    for domain, prefixes in DOMAINS.items():
        if any(relative_path.startswith(prefix) for prefix in prefixes):
            return domain
    return DOMAIN


def N_(message: str) -> str:  # noqa: N802 gettext's conventional marker name
    """Marks a string for the catalogs without translating it yet (it is translated when shown)."""
    return message


def text_direction(language: str) -> str:
    return "rtl" if language in RIGHT_TO_LEFT else "ltr"


def supported(language: str | None) -> str | None:
    """`language` when it is one of the six, else None."""
    return language if language in LANGUAGES else None


def compile_catalog(po_path: Path, language: str, domain: str = DOMAIN) -> Translations:
    """The translations of one .po file, compiled in memory. Fuzzy entries are left out."""
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=domain)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=domain)


def compile_language(directory: Path, language: str) -> NullTranslations:
    """Every domain's catalog of one language merged into one; none at all gives the msgids."""
    merged: Translations | None = None
    for domain in DOMAINS:
        po_path = directory / language / "LC_MESSAGES" / f"{domain}.po"
        if not po_path.exists():
            continue
        translations = compile_catalog(po_path, language, domain)
        if merged is None:
            merged = translations
        else:
            merged.merge(translations)
    return merged if merged is not None else NullTranslations()


class Catalogs:
    """Compiled translations per language; a missing catalog falls back to the English msgids."""

    def __init__(
        self, directory: Path = TRANSLATIONS_DIR, languages: Iterable[str] = LANGUAGES
    ) -> None:
        self._by_language: dict[str, NullTranslations] = {}
        for language in languages:
            self._by_language[language] = compile_language(directory, language)

    def get(self, language: str) -> NullTranslations:
        return (
            self._by_language.get(language)
            or self._by_language.get(DEFAULT_LANGUAGE)
            or NullTranslations()
        )

    def gettext(self, language: str, message: str, **variables: object) -> str:
        text = self.get(language).gettext(message)
        return text % variables if variables else text

    def ngettext(
        self, language: str, singular: str, plural: str, n: int, **variables: object
    ) -> str:
        text = self.get(language).ngettext(singular, plural, n)
        return text % {"num": n, **variables}
