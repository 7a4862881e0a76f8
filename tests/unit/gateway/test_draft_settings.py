"""A draft's languages and purposes, changed after it was created, reach the consent service."""

from __future__ import annotations

from tests.e2e.conftest import ONE_QUESTION_SURVEY


def test_a_language_and_purpose_added_to_a_draft_take_consent_texts(platform):
    organiser = platform.staff("organiser", platform.organisation())["token"]
    cid = platform.call(
        "POST",
        "/api/v1/consultations",
        organiser,
        expect=201,
        json={
            "title": "Draft",
            "languages": ["en"],
            "purposes": ["participate"],
            "min_cell_size": 5,
            "survey": ONE_QUESTION_SURVEY,
        },
    ).get_json()["consultation_id"]
    platform.deliver()
    platform.call(
        "PATCH",
        f"/api/v1/consultations/{cid}",
        organiser,
        expect=200,
        json={"languages": ["en", "fr"], "purposes": ["participate", "aggregate_reporting"]},
    )
    platform.deliver()
    for language in ("en", "fr"):
        platform.call(
            "POST",
            f"/api/v1/consent/consultations/{cid}/texts",
            organiser,
            expect=201,
            json={
                "version": 1,
                "language": language,
                "title": "Consent",
                "body": f"We keep your answers safe ({language}).",
                "purposes": {
                    "participate": "To take part.",
                    "aggregate_reporting": "To be counted.",
                },
            },
        )
    # And a use taken away is no longer offered.
    platform.call(
        "PATCH",
        f"/api/v1/consultations/{cid}",
        organiser,
        expect=200,
        json={"purposes": ["participate"]},
    )
    platform.deliver()
    refused = platform.call(
        "POST",
        f"/api/v1/consent/consultations/{cid}/texts",
        organiser,
        expect=422,
        json={
            "version": 2,
            "language": "en",
            "title": "Consent",
            "body": "Again.",
            "purposes": {"participate": "To take part.", "aggregate_reporting": "To be counted."},
        },
    ).get_json()
    assert "purposes" in refused["errors"]
