"""The XLSForm vocabulary Voices reads: which question types map to what, which columns are read,
ignored with a warning or refused, and the messages that say what to change in the spreadsheet."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pyxform import aliases, constants
from pyxform.question_type_dictionary import QUESTION_TYPE_DICT

TYPES_INTEGER = {"integer", "int", "add integer prompt", "q int"}
TYPES_DECIMAL = {"decimal", "add decimal prompt", "q decimal"}
TYPES_DATE = {"date", "add date prompt", "q date"}
TYPES_TEXT = {"text", "string", "add text prompt", "q string"}
TYPES_NOTE = {"note", "add note prompt", "q note"}
# Filled in by the phone or the server, not answered: Voices records none of it, so these rows are skipped.
TYPES_METADATA = {
    "start", "end", "today", "deviceid", "device id", "imei", "subscriberid", "subscriber id",
    "simserial", "sim id", "phonenumber", "phone number", "username", "email", "audit",
    "start-geopoint", "background-geopoint", "background-audio", "start time", "end time",
    "get start time", "get end time", "get today", "get device id", "get subscriber id",
    "get sim id", "get phone number", "uri:deviceid", "uri:email", "uri:phonenumber",
    "uri:simserial", "uri:subscriberid", "uri:username",
}  # fmt: skip
RE_BEGIN = re.compile(r"^begin[ _](?P<kind>\w+(?: group)?)(?:\s+.*)?$")
RE_END = re.compile(r"^end[ _](?P<kind>\w+(?: group)?)$")
OR_OTHER = {"or_other", "or other", "or specify other"}
SUPPORTED_TYPES_HINT = "select_one, select_multiple, integer, decimal, range, date, text, begin/end group (notes are skipped)"
DELETE_ROW = "delete the row and any ${%s} that refers to it"

# Columns Voices reads, ignores with a warning, or refuses (after pyxform's header aliasing).
IGNORED_BIND = {"required": "'required' is ignored: every question in Voices can be skipped",
                 "jr:requiredMsg": "'required_message' is ignored: nothing is required",
                 "jr:constraintMsg": "'constraint_message' is ignored: Voices writes its own messages",
                 "jr:noAppErrorString": "'no_app_error_string' is ignored"}  # fmt: skip
IGNORED_CONTROL = {"appearance", "autoplay", "rows"}
# Top-level keys handled above or in the row code; any other non-empty column gets a warning.
READ_TOP = {"media", "guidance_hint", "default", "instance", "label", "hint", "type", "name", "choice_filter",
             "__row", "bind", "control", "dimension", "sensitive", "content_warning", "parameters"}  # fmt: skip
REFUSED_TOP = {
    "trigger": "'trigger' (recalculating on change) is not supported: clear the cell",
    "repeat_count": "repeats are not supported: ask the questions once, outside a repeat",
}
REFUSED_BIND = {
    "calculate": "calculations are not supported: clear the calculation cell",
    "readonly": "read-only fields are not supported: clear the read_only cell",
    constants.ENTITIES_SAVETO_NS: "entities are not supported: clear the save_to cell",
}


def yes_no(value: Any) -> bool | None:
    if value is None:
        return False
    text = str(value).strip()
    if text in aliases.yes_no:
        return aliases.yes_no[text]
    return {"yes": True, "no": False, "true": True, "false": False}.get(text.lower())


def both(first: dict | None, second: dict | None) -> dict | None:
    """A condition true when both are (None is always true)."""
    if first is None or second is None:
        return first or second
    return {"all": [*(first["all"] if set(first) == {"all"} else [first]), second]}


def choice_code(name: str, position: int, taken: set[str]) -> str:
    """A Voices code for a choice name it cannot keep: accents dropped, other characters as _, unique."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_")[:56] or f"choice_{position}"
    code, n = base, 1
    while code in taken:
        n += 1
        code = f"{base}_{n}"
    return code


def unsupported_type(kind: str, lowered: str, name: str) -> str:
    """Why a question type cannot be imported, and what to change in the spreadsheet instead."""
    command = lowered.split(" ")[0]
    if command in aliases.select_from_file or aliases.select.get(command) == "select one external":
        return (
            f"{kind!r} takes its choices from a file: copy them into the choices sheet and change the "
            "type to select_one or select_multiple with that list"
        )
    if command == "rank":
        return (
            f"{kind!r} is not supported: change the type to select_multiple (the order is not kept)"
        )
    entry = QUESTION_TYPE_DICT.get(kind) or QUESTION_TYPE_DICT.get(lowered)
    if entry is None:
        return f"question type {kind!r} is not supported; change the type to one of {SUPPORTED_TYPES_HINT}"
    bind_type = entry.get("bind", {}).get("type")
    tag = entry.get("control", {}).get("tag")
    delete = DELETE_ROW % name
    if bind_type in ("geopoint", "geotrace", "geoshape"):
        return f"{kind!r} records a location, which Voices never does: {delete}, or ask for a region with select_one"
    if tag == "upload":
        return f"{kind!r} takes a file, photo or recording, which Voices never stores: {delete}"
    if bind_type in ("time", "dateTime"):
        return f"{kind!r} is not supported: change the type to date (or to text for a time of day)"
    if bind_type == "barcode":
        return f"{kind!r} is not supported: change the type to text"
    if tag == "trigger":
        return (
            f"{kind!r} is not supported: change the type to select_one with a list of one choice "
            "(e.g. 'yes'); every Voices question can be skipped"
        )
    if entry.get("control") is None:  # calculate, hidden, external data: values nobody answers
        return f"{kind!r} computes or loads a value, which Voices never does: {delete}"
    return (
        f"question type {kind!r} is not supported; change the type to one of {SUPPORTED_TYPES_HINT}"
    )
