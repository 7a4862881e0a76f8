"""Consent texts through the consent API: per consultation, versioned, one per language, immutable once published."""

from __future__ import annotations

import hashlib

import pytest

from tests.unit.consent.conftest import ALL_PURPOSES, BODY


def texts(cid: str) -> str:
    return f"/api/v1/consent/consultations/{cid}/texts"


def test_a_text_is_a_draft_until_every_language_is_published_together(consent):
    cid = consent.consultation(languages=("en", "fr", "ar"))
    en = consent.text(cid, "en")
    assert en["version"] == 1 and en["published_at"] is None
    assert en["sha256"] == hashlib.sha256(BODY["en"].encode("utf-8")).hexdigest()
    assert en["purposes"] == {p: f"Plain words about {p} (en)." for p in ALL_PURPOSES}
    consent.call("GET", texts(cid) + "?language=en", 404)  # drafts are not shown to participants
    consent.text(cid, "fr")
    problem = consent.publish_text(cid, expect=422)
    assert problem["errors"] == {"languages": ["missing: ar"]}
    consent.text(cid, "ar")
    published = consent.publish_text(cid)
    assert sorted(t["language"] for t in published) == ["ar", "en", "fr"]
    assert all(t["published_at"] for t in published)
    shown = consent.call("GET", texts(cid) + "?language=ar", 200)
    assert shown["body"] == BODY["ar"] and shown["version"] == 1
    assert shown["sha256"] == hashlib.sha256(BODY["ar"].encode("utf-8")).hexdigest()
    events = consent.events("consent_text.published")
    assert sorted(e.payload["language"] for e in events) == ["ar", "en", "fr"]
    assert {e.payload["text_sha256"] for e in events} == {t["sha256"] for t in published}


def test_a_published_version_never_changes_and_the_next_version_takes_the_edit(consent, unchanged):
    cid = consent.consultation(languages=("en", "fr"))
    consent.text(cid, "en")
    consent.text(cid, "fr")
    consent.publish_text(cid)
    with unchanged():
        problem = consent.text(cid, "en", expect=409, body="A quietly different text.")
        assert "write version 2" in problem["detail"]
        consent.publish_text(cid, expect=409)
    # Without a version the edit goes to the next one; version 1 is still what participants read.
    draft = consent.text(cid, "en", version=None, body="Version two wording.")
    assert draft["version"] == 2 and draft["published_at"] is None
    assert consent.call("GET", texts(cid) + "?language=en", 200)["body"] == BODY["en"]
    consent.text(cid, "fr", version=2, body="Deuxième version.")
    consent.publish_text(cid, 2)
    assert consent.call("GET", texts(cid) + "?language=en", 200)["body"] == "Version two wording."
    # Version 1 stays readable: a grant names the version the participant saw.
    assert consent.call("GET", texts(cid) + "/1?language=en", 200)["body"] == BODY["en"]
    with unchanged():
        consent.text(cid, "en", version=1, expect=409)


def test_a_new_language_cannot_be_slipped_into_a_published_version(consent, unchanged):
    cid = consent.consultation(languages=("en",))
    consent.text(cid, "en")
    consent.publish_text(cid)
    with unchanged():
        consent.text(cid, "fr", expect=422)  # not a language of the consultation
    # Even when the consultation's languages grow, version 1 stays as published.
    consent.consultation(languages=("en", "fr"), cid=cid, publish=False)
    with unchanged():
        consent.text(cid, "fr", version=1, expect=409)
    assert consent.text(cid, "fr", version=None)["version"] == 2


@pytest.mark.parametrize(
    "change, field",
    [
        (
            {"purposes": dict.fromkeys(ALL_PURPOSES[:-1], "x")},
            "purposes",
        ),  # one purpose left unexplained
        ({"purposes": {**dict.fromkeys(ALL_PURPOSES, "x"), "sell_data": "x"}}, "purposes"),
        ({"language": "de"}, "language"),  # not one of the six UN languages
        ({"body": ""}, "body"),
        ({"title": "t" * 201}, "title"),
        ({"version": 0}, "version"),
        ({"purposes": dict.fromkeys(ALL_PURPOSES, "")}, "purposes"),
        ({"notes": "extra"}, "notes"),
    ],
)
def test_bad_texts_are_refused_with_the_field_named_and_nothing_stored(
    consent, unchanged, change, field
):
    cid = consent.consultation(languages=("en",))
    body = {
        "version": 1,
        "language": "en",
        "title": "Your consent",
        "body": BODY["en"],
        "purposes": dict.fromkeys(ALL_PURPOSES, "Plain words."),
        **change,
    }
    with unchanged():
        problem = consent.organiser("POST", texts(cid), 422, json=body)
    assert field in problem["errors"]


def test_purposes_must_be_explained_exactly_as_the_consultation_offers_them(consent, unchanged):
    cid = consent.consultation(languages=("en",), purposes=["participate", "aggregate_reporting"])
    with unchanged():
        problem = consent.text(cid, "en", expect=422)  # explains all five
    assert "not offered: follow_up_contact" in problem["errors"]["purposes"]
    text = consent.text(cid, "en", purposes=["participate", "aggregate_reporting"])
    assert set(text["purposes"]) == {"participate", "aggregate_reporting"}


def test_only_the_owning_organisations_organisers_write_texts(consent, unchanged):
    cid = consent.consultation(languages=("en",))
    body = {
        "version": 1,
        "language": "en",
        "title": "T",
        "body": "B",
        "purposes": dict.fromkeys(ALL_PURPOSES, "x"),
    }
    with unchanged():
        # Another organisation's consultation looks exactly like a missing one.
        other = consent.call(
            "POST", texts(cid), 404, headers=consent.staff("organiser", "org_b"), json=body
        )
        missing = consent.call(
            "POST", texts("c_missing"), 404, headers=consent.staff("organiser", "org_b"), json=body
        )
        assert {k: v for k, v in other.items() if k != "request_id"} == {
            k: v for k, v in missing.items() if k != "request_id"
        }
        consent.call("POST", texts(cid), 403, headers=consent.staff("auditor", "org_a"), json=body)
        consent.call("POST", texts(cid), 401, json=body)
        consent.call(
            "POST", texts(cid) + "/1/publish", 404, headers=consent.staff("organiser", "org_b")
        )


def test_organisers_see_every_version_and_language_with_drafts(consent):
    cid = consent.consultation(languages=("en", "fr"))
    consent.text(cid, "en")
    consent.text(cid, "fr")
    consent.publish_text(cid)
    consent.text(cid, "en", version=2, body="Draft two.")
    listed = consent.organiser("GET", texts(cid) + "/versions", 200)
    assert [(t["version"], t["language"], t["published_at"] is not None) for t in listed] == [
        (1, "en", True),
        (1, "fr", True),
        (2, "en", False),
    ]
    consent.call("GET", texts(cid) + "/versions", 404, headers=consent.staff("organiser", "org_b"))
    consent.call("GET", texts(cid) + "/2?language=en", 404)  # a draft is not public


def test_a_text_sent_right_after_the_consultation_was_created_waits_for_it(consent, monkeypatch):
    """The consultation.created event is still on its way when the organiser's text comes in."""
    import threading

    from shared.events import Envelope, isoformat, utcnow

    monkeypatch.setattr(consent.context, "consultation_wait_s", 5.0)
    cid = "c_just_created"
    consent.bus.publish(
        consent.topics.surveys,
        Envelope(
            type="consultation.created",
            key=cid,
            producer="surveys",
            payload={
                "consultation_id": cid,
                "organisation_id": "org_a",
                "languages": ["en"],
                "min_age": None,
                "purposes": list(ALL_PURPOSES),
                "created_at": isoformat(utcnow()),
            },
        ),
    )
    arrives = threading.Timer(0.3, consent.bus.deliver)
    arrives.start()
    try:
        assert consent.text(cid, "en")["version"] == 1
    finally:
        arrives.join()
    # A consultation that never comes is still 404, for its own organisation and for others.
    monkeypatch.setattr(consent.context, "consultation_wait_s", 0.2)
    consent.call(
        "POST",
        texts("c_never"),
        404,
        headers=consent.staff("organiser", "org_a"),
        json={"language": "en", "title": "T", "body": BODY["en"], "purposes": {}},
    )
    consent.call(
        "POST", texts(cid) + "/1/publish", 404, headers=consent.staff("organiser", "org_b")
    )


def test_unknown_consultations_and_versions_are_404(consent):
    consent.call("GET", texts("c_missing") + "?language=en", 404)
    consent.call("GET", texts("c_missing") + "/1?language=en", 404)
    cid = consent.consultation(languages=("en",))
    consent.publish_text(cid, 3, expect=404)
    consent.call("GET", texts(cid), 422)  # the language is required


def test_publication_times_say_they_are_utc(consent):
    from datetime import datetime, timedelta

    cid = consent.open_consultation()
    shown = consent.call("GET", texts(cid) + "?language=en", 200)
    # The store hands times back without a zone; the answer must still say which one (the document's date-time).
    assert datetime.fromisoformat(shown["published_at"]).utcoffset() == timedelta(0)
