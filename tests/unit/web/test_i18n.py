"""The interface catalogs: every string of the pages translated into all six languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from gateway.web.i18n import (
    DOMAIN,
    DOMAINS,
    LANGUAGES,
    TRANSLATIONS_DIR,
    Catalogs,
    domain_of,
    text_direction,
)

WEB = Path(TRANSLATIONS_DIR).parent
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def extracted_messages(domain: str = DOMAIN) -> set[str]:
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    return {
        message if isinstance(message, str) else message[0]
        for file, _line, message, _comments, _context in extract_from_dir(
            str(WEB), method_map, keywords=keywords
        )
        if domain_of(file) == domain
    }


def catalog(language: str, domain: str = DOMAIN):
    with (TRANSLATIONS_DIR / language / "LC_MESSAGES" / f"{domain}.po").open("rb") as handle:
        return read_po(handle, locale=language)


def domains_in_use() -> list[str]:
    return [domain for domain in DOMAINS if extracted_messages(domain)]


@pytest.mark.parametrize("domain", domains_in_use())
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_interface_string_is_translated(language, domain):
    wanted = extracted_messages(domain)
    if domain == DOMAIN:
        assert len(wanted) > 150
    entries = {message.id: message for message in catalog(language, domain) if message.id}
    assert set(entries) == wanted, (
        f"missing {sorted(wanted - set(entries))}, stale {sorted(set(entries) - wanted)}"
    )
    for msgid, entry in entries.items():
        assert entry.string and not entry.fuzzy, f"{language}: {msgid!r} has no translation"
        assert sorted(PLACEHOLDER.findall(entry.string)) == sorted(PLACEHOLDER.findall(msgid)), (
            language,
            msgid,
        )
        assert "%" not in PLACEHOLDER.sub("", entry.string), (
            language,
            msgid,
        )  # stray % breaks formatting


@pytest.mark.parametrize("domain", domains_in_use())
@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_translations_are_in_their_own_language(language, domain):
    # A copied English sentence is not a translation (names such as "Shift" may stay).
    english = [
        m.id
        for m in catalog(language, domain)
        if m.id and m.string == m.id and len(m.id.split()) > 2
    ]
    assert english == []


def test_catalogs_compile_in_memory_and_fall_back_to_english():
    catalogs = Catalogs()
    assert catalogs.gettext("ar", "Next") == "التالي"
    assert (
        catalogs.gettext("zh", "Part %(position)s of %(total)s", position=1, total=3)
        == "第1部分，共3部分"
    )
    assert catalogs.gettext("de", "Next") == "Next"
    assert text_direction("ar") == "rtl" and text_direction("fr") == "ltr"


def test_each_source_file_belongs_to_one_catalog():
    assert domain_of("views.py") == "messages"
    assert domain_of("templates/section.html") == "messages"
    assert domain_of("staff/auth.py") == "staff"
    assert domain_of("templates/staff/home.html") == "staff"
    assert domain_of("staff/operations/invitations.py") == "operations"
    assert domain_of("templates/staff/operations/progress.html") == "operations"
    assert domain_of("templates/oversight/release.html") == "oversight"
