"""The interface catalogs: every string of the pages translated into all six languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from gateway.web.i18n import LANGUAGES, TRANSLATIONS_DIR, Catalogs, text_direction

WEB = Path(TRANSLATIONS_DIR).parent
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def extracted_messages() -> set[str]:
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    return {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(WEB), method_map, keywords=keywords
        )
    }


def catalog(language: str):
    with (TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_interface_string_is_translated(language):
    wanted = extracted_messages()
    assert len(wanted) > 150
    entries = {message.id: message for message in catalog(language) if message.id}
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


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_translations_are_in_their_own_language(language):
    # A copied English sentence is not a translation (names such as "Shift" may stay).
    english = [
        m.id for m in catalog(language) if m.id and m.string == m.id and len(m.id.split()) > 2
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
