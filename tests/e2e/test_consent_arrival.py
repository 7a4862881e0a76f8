"""A consent text posted the moment a consultation exists is taken: no retry loop needed."""

from __future__ import annotations

from tests.e2e.conftest import ONE_QUESTION_SURVEY


def test_a_consent_text_right_after_creating_the_consultation_is_taken(api, organiser):
    token = organiser["token"]
    cid = api.call(
        "POST",
        "/api/v1/consultations",
        token,
        json={
            "title": "At once",
            "languages": ["en"],
            "purposes": ["participate"],
            "survey": ONE_QUESTION_SURVEY,
        },
        expect=201,
    )["consultation_id"]
    text = api.call(
        "POST",
        f"/api/v1/consent/consultations/{cid}/texts",
        token,
        expect=201,
        json={
            "version": 1,
            "language": "en",
            "title": "Your consent",
            "body": "We keep your answers safe.",
            "purposes": {"participate": "To take part."},
        },
    )
    assert text["version"] == 1
    missing = api.session.post(
        f"{api.base}/api/v1/consent/consultations/c_not_there/texts",
        timeout=20,
        headers={"Authorization": f"Bearer {token}"},
        json={"version": 1, "language": "en", "title": "T", "body": "B", "purposes": {}},
    )
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith(
        "application/problem+json"
    )
