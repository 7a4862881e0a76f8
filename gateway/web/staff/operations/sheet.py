"""Invitations to hand out: each one's full URL, a QR code of it as inline SVG, and a CSV of them.

Codes of single-use invitations are shown once (the surveys service keeps only their hash), so
the sheet and the CSV are made from the batch just created, never from the stored list.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

import segno
from markupsafe import Markup, escape

CSV_COLUMNS = ("kind", "label", "code", "url")
# A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def invitation_url(origin: str, path: str) -> str:
    """The participant link: the public origin (VOICES_PUBLIC_URL, else the request's) + path."""
    return origin.rstrip("/") + path


def qr_svg(url: str, label: str) -> Markup:
    """A QR code of `url` as inline SVG, named by `label` for screen readers.

    Error correction M (15 % of the code may be damaged: a folded or smudged sheet still scans).
    The SVG has a viewBox and no size, so the stylesheet decides how large it prints; it holds
    presentation attributes only, nothing the gateway's CSP would block.
    """
    svg = segno.make(url, error="m", micro=False).svg_inline(
        scale=1, svgclass="qr", lineclass=None, omitsize=True
    )
    # segno writes only the code's path and our escaped label: nothing of a visitor's is in it.
    return Markup(  # noqa: S704
        svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" focusable="false" ', 1)
    )


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def invitations_csv(invitations: Iterable[Mapping[str, Any]]) -> str:
    """CSV (RFC 4180, header row) of invitations with their code and URL, one per line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for invitation in invitations:
        writer.writerow([_cell(invitation.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()
