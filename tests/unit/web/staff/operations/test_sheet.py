"""The invitation sheet's parts: QR codes that scan to the invitation URL, and a safe CSV."""

from __future__ import annotations

import csv
import io

import pytest

from gateway.web.staff.operations.sheet import invitation_url, invitations_csv, qr_svg
from tests.unit.web.staff.operations.qr import decoded


@pytest.mark.parametrize(
    "url",
    [
        "https://voices.example.org/i/K7QM-2XWP-9HTR-4JNC",
        "http://127.0.0.1:8080/i/" + "Ab-_" * 11,
    ],
)
def test_the_qr_code_scans_back_to_the_url(url):
    assert decoded(qr_svg(url, "Invitation 1")) == [url]


def test_the_qr_code_is_named_and_holds_nothing_the_csp_blocks():
    svg = str(qr_svg("https://x.example/i/AB", 'Invitation "1" <b>'))
    assert svg.startswith('<svg role="img" aria-label="Invitation &#34;1&#34; &lt;b&gt;"')
    assert "viewBox" in svg and "<script" not in svg and "style" not in svg
    assert "href" not in svg  # nothing fetched from anywhere


def test_invitation_url_joins_origin_and_path():
    assert invitation_url("https://v.example/", "/i/AB") == "https://v.example/i/AB"


def test_csv_has_a_header_and_one_line_per_invitation_read_back_by_the_csv_module():
    rows = [
        {
            "kind": "single",
            "label": 'Group "A", north',
            "code": "AB-CD",
            "url": "https://v/i/AB-CD",
        },
        {"kind": "link", "label": None, "code": "tok", "url": "https://v/i/tok"},
    ]
    parsed = list(csv.DictReader(io.StringIO(invitations_csv(rows))))
    assert [dict(r) for r in parsed] == [
        {
            "kind": "single",
            "label": 'Group "A", north',
            "code": "AB-CD",
            "url": "https://v/i/AB-CD",
        },
        {"kind": "link", "label": "", "code": "tok", "url": "https://v/i/tok"},
    ]


@pytest.mark.parametrize("label", ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)"])
def test_a_label_a_spreadsheet_would_run_as_a_formula_is_quoted(label):
    [row] = csv.DictReader(io.StringIO(invitations_csv([{"kind": "single", "label": label}])))
    assert row["label"] == "'" + label
