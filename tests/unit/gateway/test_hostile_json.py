"""Hostile JSON bodies: refused at the gateway as 400 or 422 problem+json, one log line each, nothing stored."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.guards import MAX_JSON_DEPTH, parse_json_body
from shared.errors import ValidationFailed
from tests.unit.gateway.test_hardening import assert_problem

NESTED = b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
HOSTILE = {
    "nested 100,000 deep": (NESTED, 422),
    "nested just past the limit": (
        b'{"a": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}",
        422,
    ),
    "a 5,000-digit integer": (b'{"title": "x", "min_cell_size": ' + b"9" * 5000 + b"}", 422),
    "a float that overflows": (b'{"title": "x", "min_cell_size": 1e999}', 422),
    "a lone surrogate": (
        b'{"title": "a\\ud800b", "languages": ["en"], "purposes": ["participate"]}',
        422,
    ),
    "a lone surrogate in a key": (b'{"\\udfff": 1}', 422),
    "NaN": (b'{"title": "x", "min_cell_size": NaN}', 400),
    "not UTF-8": (b'{"title": "\xff"}', 400),
    "not JSON": (b'{"title": ', 400),
}
ROUTES = ("/api/v1/consultations", "/api/v1/consent/grants", "/api/v1/responses")


@pytest.fixture(scope="module")
def organiser(platform):
    return platform.staff("organiser", platform.organisation())


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_bodies_are_refused_with_one_log_line(platform, organiser, caplog, path, name):
    body, status = HOSTILE[name]
    token = organiser["token"] if path == "/api/v1/consultations" else None
    with caplog.at_level(logging.INFO):
        response = platform.call("POST", path, token, data=body, content_type="application/json")
    assert_problem(response, status)
    assert response.get_json()["detail"]
    assert not any(record.exc_info for record in caplog.records), "no traceback for a refused body"
    assert [r for r in caplog.records if r.name == "voices.access"] == caplog.records[-1:], [
        r.getMessage() for r in caplog.records
    ]


def test_a_refused_body_reaches_no_service(platform, organiser):
    for adapter in platform.adapters.values():
        adapter.down = True  # a forwarded call would answer 503
    try:
        response = platform.call(
            "POST",
            "/api/v1/consultations",
            organiser["token"],
            data=NESTED,
            content_type="application/json",
        )
    finally:
        for adapter in platform.adapters.values():
            adapter.down = False
    assert_problem(response, 422)


def test_real_documents_still_parse():
    survey = {
        "sections": [
            {
                "id": "s",
                "questions": [{"id": "q", "options": [{"label": {"en": "yes", "ar": "نعم"}}]}],
            }
        ]
    }
    assert parse_json_body(json.dumps(survey).encode()) == survey
    assert parse_json_body(
        b'{"epsilon": 0.5, "n": -12345678901234567890, "s": "\\ud83d\\ude00"}'
    ) == {"epsilon": 0.5, "n": -12345678901234567890, "s": "\U0001f600"}
    assert parse_json_body(b"  ") is None
    with pytest.raises(ValidationFailed):
        parse_json_body(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))


HIDDEN = {
    "right-to-left override": "Safe\u202eexe.txt",
    "NUL": "Safe\u0000",
    "zero-width space": "Sa\u200bfe",
    "bidi isolate": "\u2067Safe\u2069",
    "C1 control": "Safe\u0085",
    "byte order mark": "\ufeffSafe",
}


@pytest.mark.parametrize("name", HIDDEN)
def test_invisible_control_characters_are_refused_in_every_text_field(platform, organiser, name):
    listed = platform.call(
        "GET", "/api/v1/consultations", organiser["token"], expect=200
    ).get_json()
    base = {"title": "Plain", "languages": ["en"], "purposes": ["participate"], "min_cell_size": 5}
    for body, where in (
        ({**base, "title": HIDDEN[name]}, "title"),
        ({**base, "description": f"line one\n{HIDDEN[name]}"}, "description"),
        ({**base, "survey": {"title": {"en": HIDDEN[name]}}}, "survey.title.en"),
    ):
        refused = platform.call("POST", "/api/v1/consultations", organiser["token"], json=body)
        assert_problem(refused, 422)
        assert list(refused.get_json()["errors"]) == [where]
    assert (
        platform.call("GET", "/api/v1/consultations", organiser["token"], expect=200).get_json()
        == listed
    )


def test_joiners_and_direction_marks_that_scripts_need_are_kept():
    text = "می\u200cخواهم \u200fنعم\u200e 👩\u200d👩\u200d👧 line\ttab\r\n"
    assert parse_json_body(json.dumps({"title": text}).encode()) == {"title": text}
