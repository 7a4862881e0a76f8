"""Consultations, settings, lifecycle, survey versions and invitations through the surveys API."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from services.surveys.models import Consultation, Participant
from shared.events import isoformat, utcnow
from tests.unit.surveys.conftest import SURVEY, YES_NO, t


def base(cid: str) -> str:
    return f"/api/v1/consultations/{cid}"


# ---------------------------------------------------------------- creating and settings


def test_a_new_consultation_is_a_draft_with_safe_defaults(surveys):
    created = surveys.create(None, purposes=["participate"])
    assert created["status"] == "draft"
    assert created["min_cell_size"] == 10 and created["retention_days"] == 365
    assert created["versions"] == [] and created["draft"] == {
        "languages": ["en", "ar"],
        "sections": [],
    }
    [event] = surveys.events(surveys.settings.topics.surveys)
    assert event.type == "consultation.created"
    assert event.payload["consultation_id"] == created["consultation_id"]
    assert event.payload["organisation_id"] == "org_a"


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"min_cell_size": 4}, "min_cell_size"),
        ({"retention_days": 0}, "retention_days"),
        ({"languages": ["en", "de"]}, "languages"),
        ({"languages": []}, "languages"),
        ({"purposes": ["aggregate_reporting"]}, "purposes"),
        ({"purposes": ["participate", "sell_data"]}, "purposes"),
        (
            {"opens_at": "2030-01-02T00:00:00+00:00", "closes_at": "2030-01-01T00:00:00+00:00"},
            "closes_at",
        ),
        ({"opens_at": "2030-01-02T00:00:00"}, "opens_at"),  # no time zone: ambiguous
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_stored(surveys, unchanged, settings, field):
    with unchanged():
        problem = surveys.create(None, expect=422, **settings)
    assert field in problem["errors"]


def test_a_survey_given_at_creation_is_validated_and_stored_normalised(surveys, unchanged):
    bad = copy.deepcopy(SURVEY)
    bad["sections"][0]["questions"][0]["required"] = True
    with unchanged():
        problem = surveys.create(bad, expect=422)
    assert "sections[0].questions[0].required" in problem["errors"]
    created = surveys.create(SURVEY)
    rating = created["draft"]["sections"][0]["questions"][2]
    assert (rating["min"], rating["max"], rating["hint"], rating["relevant"]) == (1, 5, None, None)


def test_draft_settings_can_be_patched(surveys):
    cid = surveys.create(SURVEY)["consultation_id"]
    changed = surveys.organiser(
        "PATCH",
        base(cid),
        200,
        json={
            "title": "Renamed",
            "min_cell_size": 12,
            "retention_days": 30,
            "languages": ["en", "ar", "fr"],
            "purposes": ["participate"],
            "min_age": 16,
            "opens_at": "2030-01-01T00:00:00+00:00",
            "closes_at": "2030-02-01T00:00:00+00:00",
        },
    )
    assert (changed["title"], changed["min_cell_size"], changed["retention_days"]) == (
        "Renamed",
        12,
        30,
    )
    assert changed["languages"] == ["en", "ar", "fr"] and changed["purposes"] == ["participate"]
    assert changed["opens_at"].startswith("2030-01-01T00:00:00") and changed["min_age"] == 16
    stored = Consultation.objects.get(consultation_id=cid)
    assert stored.min_cell_size == 12 and stored.revision == 1
    # The consent service takes texts and grants by languages, purposes and minimum age: it is told.
    [_created, event] = surveys.events(surveys.settings.topics.surveys)
    assert event.type == "consultation.settings_changed" and event.key == cid
    assert {
        k: event.payload[k] for k in ("languages", "purposes", "min_age", "organisation_id")
    } == {
        "languages": ["en", "ar", "fr"],
        "purposes": ["participate"],
        "min_age": 16,
        "organisation_id": "org_a",
    }


def test_titles_and_descriptions_are_translated_and_checked_on_publish(surveys, unchanged):
    titles = {"en": "After leaving", "ar": "بعد المغادرة"}
    with unchanged():
        problem = surveys.create(SURVEY, expect=422, titles={**titles, "fr": "Après le départ"})
    assert problem["errors"]["titles"] == ["not a language of the consultation: fr"]
    cid = surveys.create(SURVEY, titles={"en": "After leaving"}, descriptions={"ar": "عن الدعم"})[
        "consultation_id"
    ]
    with unchanged():
        problem = surveys.organiser("POST", f"{base(cid)}/publish", 422)
    assert problem["errors"] == {
        "titles": ["missing translation for 'ar'"],
        "descriptions": ["missing translation for 'en'"],
    }
    surveys.organiser(
        "PATCH",
        base(cid),
        200,
        json={"titles": titles, "descriptions": {"en": "About support", "ar": "عن الدعم"}},
    )
    assert surveys.organiser("POST", f"{base(cid)}/publish", 200)["titles"] == titles
    opened = surveys.call("POST", f"/api/v1/invitations/{surveys.invite(cid)}/open", 201)
    assert opened["titles"] == titles and opened["descriptions"]["ar"] == "عن الدعم"
    assert opened["title"] == "After leaving"  # the organisers' own, as before


def test_a_patch_that_changes_nothing_consent_depends_on_announces_nothing(surveys):
    cid = surveys.create(SURVEY)["consultation_id"]
    surveys.organiser("PATCH", base(cid), 200, json={"title": "Renamed", "languages": ["en", "ar"]})
    assert [e.type for e in surveys.events(surveys.settings.topics.surveys)] == [
        "consultation.created"
    ]


@pytest.mark.parametrize(
    "patch, status, field",
    [
        ({}, 422, None),
        ({"min_cell_size": 3}, 422, "min_cell_size"),
        ({"status": "open"}, 422, "status"),
        ({"purposes": ["aggregate_reporting"]}, 422, "purposes"),
        (
            {"closes_at": "2000-01-01T00:00:00+00:00", "opens_at": "2001-01-01T00:00:00+00:00"},
            422,
            "closes_at",
        ),
    ],
)
def test_bad_patches_are_refused_and_change_nothing(surveys, unchanged, patch, status, field):
    cid = surveys.create(SURVEY)["consultation_id"]
    with unchanged():
        problem = surveys.organiser("PATCH", base(cid), status, json=patch)
    if field:
        assert field in problem["errors"]


def test_settings_participants_consented_under_are_fixed_once_open(surveys, unchanged):
    cid = surveys.open_consultation()
    for patch in (
        {"languages": ["en"]},
        {"purposes": ["participate"]},
        {"min_cell_size": 20},
        {"min_age": 18},
    ):
        with unchanged():
            problem = surveys.organiser("PATCH", base(cid), 409, json=patch)
        assert problem["fields"] == list(patch)
    # Sending the current value is not a change.
    surveys.organiser(
        "PATCH", base(cid), 200, json={"languages": ["en", "ar"], "title": "Still open"}
    )
    later = isoformat(utcnow() + timedelta(days=10))
    assert surveys.organiser("PATCH", base(cid), 200, json={"closes_at": later})["closes_at"]


def test_an_archived_consultation_cannot_be_changed(surveys, unchanged):
    cid = surveys.open_consultation()
    for status in ("closed", "archived"):
        surveys.organiser("POST", f"{base(cid)}/status", 200, json={"status": status})
    with unchanged():
        surveys.organiser("PATCH", base(cid), 409, json={"title": "x"})
        surveys.organiser("PUT", f"{base(cid)}/survey", 409, json={"survey": SURVEY})


# ---------------------------------------------------------------- lifecycle


def test_lifecycle_draft_open_closed_archived(surveys, unchanged):
    cid = surveys.create(SURVEY)["consultation_id"]
    with unchanged():
        surveys.organiser(
            "POST", f"{base(cid)}/status", 409, json={"status": "open"}
        )  # nothing published
        surveys.organiser("POST", f"{base(cid)}/status", 409, json={"status": "closed"})
        surveys.organiser("POST", f"{base(cid)}/status", 422, json={"status": "draft"})
    opened = surveys.organiser("POST", f"{base(cid)}/publish", 200)
    assert opened["status"] == "open" and opened["opened_at"]
    closed = surveys.organiser("POST", f"{base(cid)}/status", 200, json={"status": "closed"})
    assert closed["closed_at"]
    with unchanged():
        surveys.organiser("POST", f"{base(cid)}/publish", 409)
    assert (
        surveys.organiser("POST", f"{base(cid)}/status", 200, json={"status": "open"})["status"]
        == "open"
    )
    surveys.organiser("POST", f"{base(cid)}/status", 200, json={"status": "closed"})
    surveys.organiser("POST", f"{base(cid)}/status", 200, json={"status": "archived"})
    with unchanged():
        surveys.organiser("POST", f"{base(cid)}/status", 409, json={"status": "open"})
    changes = [
        e.payload["status"]
        for e in surveys.events(surveys.settings.topics.surveys, "consultation.status_changed")
    ]
    assert changes == ["closed", "open", "closed", "archived"]


# ---------------------------------------------------------------- versions


def test_publish_freezes_a_version_and_tells_the_other_services(surveys):
    cid = surveys.open_consultation()
    [published] = surveys.events(surveys.settings.topics.surveys, "consultation.published")
    assert published.payload["survey_version"] == 1 and published.payload["min_cell_size"] == 10
    questions = {q["id"]: q for q in published.payload["questions"]}
    assert questions["safe"] == {
        "id": "safe",
        "type": "single_choice",
        "options": ["yes", "no"],
        "dimension": True,
        "min": None,
        "max": None,
        # The organisers' wording travels too, so a release can freeze it beside its figures.
        "label": {"en": "Do you feel safe now?", "ar": "هل تشعر بالأمان الآن؟"},
        "option_labels": {"yes": {"en": "Yes", "ar": "نعم"}, "no": {"en": "No", "ar": "لا"}},
    }
    assert questions["age"]["min"] == 16 and questions["support"]["max"] == 5
    # This consultation has one title for every language (no per-language titles to carry).
    assert published.payload["titles"] == {}
    versions = surveys.organiser("GET", f"{base(cid)}/versions", 200)
    assert [v["number"] for v in versions] == [1]
    assert (
        versions[0]["definition"]["sections"][1]["content_warning"]["ar"]
        == "هذه الأسئلة عن تجارب صعبة."
    )
    assert surveys.organiser("GET", f"{base(cid)}/versions/1", 200) == versions[0]
    surveys.organiser("GET", f"{base(cid)}/versions/2", 404)


def test_a_published_version_cannot_be_edited(surveys, unchanged):
    cid = surveys.open_consultation()
    edited = copy.deepcopy(SURVEY)
    edited["sections"][0]["questions"][0]["label"]["en"] = "Changed after publishing"
    with unchanged():
        problem = surveys.organiser(
            "PUT", f"{base(cid)}/versions/1", 409, json={"definition": edited}
        )
        assert "published" in problem["detail"] and problem["next_version"] == 2
        surveys.organiser("PUT", f"{base(cid)}/versions/7", 404, json={"definition": edited})
        surveys.organiser("POST", f"{base(cid)}/publish", 409)  # the draft is the same as version 1


def test_edits_make_a_new_version_and_responses_keep_theirs(surveys):
    cid = surveys.open_consultation()
    edited = copy.deepcopy(SURVEY)
    edited["sections"][0]["questions"][0]["label"]["en"] = "Do you feel safe today?"
    surveys.organiser("PUT", f"{base(cid)}/survey", 200, json={"survey": edited})
    assert (
        surveys.organiser("GET", base(cid), 200)["versions"][0]["definition"]["sections"][0][
            "questions"
        ][0]["label"]["en"]
        == "Do you feel safe now?"
    )
    published = surveys.organiser("POST", f"{base(cid)}/publish", 200)
    assert [v["number"] for v in published["versions"]] == [1, 2] and published["status"] == "open"
    assert (
        published["versions"][0]["definition"]
        == surveys.organiser("GET", f"{base(cid)}/versions/1", 200)["definition"]
    )
    assert (
        published["versions"][0]["definition"]["sections"][0]["questions"][0]["label"]["en"]
        == "Do you feel safe now?"
    )

    old, new = surveys.participant(cid), surveys.participant(cid)
    assert (
        surveys.submit(surveys.token(old, cid), {"safe": "yes"}, survey_version=1)["survey_version"]
        == 1
    )
    assert surveys.submit(surveys.token(new, cid), {"safe": "yes"})["survey_version"] == 2
    versions = [
        e.payload["survey_version"] for e in surveys.events(surveys.settings.topics.responses)
    ]
    assert versions == [1, 2]


def test_publishing_needs_every_translation_and_matching_languages(surveys, unchanged):
    partial = copy.deepcopy(SURVEY)
    del partial["sections"][0]["questions"][1]["options"][2]["label"]["ar"]
    partial["sections"][1]["content_warning"]["ar"] = "  "
    cid = surveys.create(partial)["consultation_id"]
    with unchanged():
        problem = surveys.organiser("POST", f"{base(cid)}/publish", 422)
    assert problem["errors"] == {
        "sections[0].questions[1].options[2].label": ["missing translation for 'ar'"],
        "sections[1].content_warning": ["missing translation for 'ar'"],
    }
    surveys.organiser("PATCH", base(cid), 200, json={"languages": ["en", "ar", "fr"]})
    with unchanged():
        problem = surveys.organiser("POST", f"{base(cid)}/publish", 422)
    surveys.organiser("PUT", f"{base(cid)}/survey", 200, json={"survey": SURVEY})
    with unchanged():
        problem = surveys.organiser("POST", f"{base(cid)}/publish", 422)
    assert "languages" in problem["errors"]
    surveys.organiser("PATCH", base(cid), 200, json={"languages": ["en", "ar"]})
    surveys.organiser("POST", f"{base(cid)}/publish", 200)


def test_a_draft_publishes_only_once_every_language_has_a_published_consent_text(
    surveys, unchanged
):
    cid = surveys.create(SURVEY, consent_texts=False, languages=["en", "ar"])["consultation_id"]
    with unchanged():
        problem = surveys.organiser("POST", f"{base(cid)}/publish", 409)
    assert problem["reason"] == "consent_text_missing" and problem["languages"] == ["en", "ar"]
    assert "en, ar" in problem["detail"]
    surveys.consent_texts_published(cid, ["ar"])
    surveys.consent_texts_published(cid, ["ar"])  # a replayed event changes nothing
    assert surveys.organiser("GET", base(cid), 200)["consent_languages"] == ["ar"]
    with unchanged():
        assert surveys.organiser("POST", f"{base(cid)}/publish", 409)["languages"] == ["en"]
    surveys.consent_texts_published(cid, ["en"])
    assert surveys.organiser("POST", f"{base(cid)}/publish", 200)["status"] == "open"


def test_an_empty_survey_cannot_be_published(surveys, unchanged):
    cid = surveys.create(None)["consultation_id"]
    with unchanged():
        problem = surveys.organiser("POST", f"{base(cid)}/publish", 422)
    assert "survey" in problem["errors"]


@pytest.mark.parametrize(
    "mutate, path",
    [
        (
            lambda s: (
                s["sections"][0]["questions"][1].update(dimension=True)
                or s["sections"][0]["questions"].append(
                    {
                        "id": "d3",
                        "type": "single_choice",
                        "label": t("A", "أ"),
                        "options": YES_NO,
                        "dimension": True,
                    }
                )
                or s["sections"][0]["questions"].append(
                    {
                        "id": "d4",
                        "type": "single_choice",
                        "label": t("B", "ب"),
                        "options": YES_NO,
                        "dimension": True,
                    }
                )
            ),
            "dimensions",
        ),
        (
            lambda s: s["sections"][0]["questions"][2].update(dimension=True),
            "sections[0].questions[2].dimension",
        ),
        (
            lambda s: s["sections"][0]["questions"][0].update(type="slider"),
            "sections[0].questions[0].type",
        ),
        (
            lambda s: s["sections"][0]["questions"][3].update(min=50, max=10),
            "sections[0].questions[3].max",
        ),
        (
            lambda s: s["sections"][1]["questions"][0].update(max_length=0),
            "sections[1].questions[0].max_length",
        ),
        (
            lambda s: s["sections"][0]["questions"][0].update(
                relevant={"question": "story", "op": "answered"}
            ),
            "sections[0].questions[0].relevant.question",
        ),
        (
            lambda s: s["sections"][0]["questions"][1].update(id="safe"),
            "sections[0].questions[1].id",
        ),
    ],
)
def test_an_invalid_draft_is_refused_and_the_old_one_kept(surveys, unchanged, mutate, path):
    cid = surveys.create(SURVEY)["consultation_id"]
    bad = copy.deepcopy(SURVEY)
    mutate(bad)
    with unchanged():
        problem = surveys.organiser("PUT", f"{base(cid)}/survey", 422, json={"survey": bad})
    assert path in problem["errors"]


# ---------------------------------------------------------------- who may do what


def test_another_organisation_sees_nothing_and_other_roles_cannot_organise(surveys, unchanged):
    cid = surveys.open_consultation()
    other = surveys.staff("org_b")
    with unchanged():
        for method, path, body in [
            ("GET", base(cid), None),
            ("PATCH", base(cid), {"title": "x"}),
            ("PUT", f"{base(cid)}/survey", {"survey": SURVEY}),
            ("GET", f"{base(cid)}/versions", None),
            ("PUT", f"{base(cid)}/versions/1", None),
            ("POST", f"{base(cid)}/publish", None),
            ("POST", f"{base(cid)}/invitations", {"kind": "link"}),
        ]:
            surveys.call(method, path, 404, headers=other, json=body)
        surveys.call(
            "POST",
            "/api/v1/consultations",
            403,
            headers=surveys.staff(role="policy"),
            json={"title": "x", "languages": ["en"]},
        )
        surveys.call("PATCH", base(cid), 401, json={"title": "x"})
    assert surveys.call("GET", "/api/v1/consultations", 200, headers=other) == []
    assert [
        c["consultation_id"] for c in surveys.organiser("GET", "/api/v1/consultations", 200)
    ] == [cid]
    assert surveys.call(
        "GET", base(cid), 200, headers=surveys.staff(role="admin", organisation_id=None)
    )


# ---------------------------------------------------------------- invitations


def test_a_single_use_code_gives_only_a_pseudonym_and_is_spent_by_the_first_stored_answers(
    surveys, unchanged
):
    cid = surveys.open_consultation()
    code = surveys.invite(cid, kind="single")
    opened = surveys.call("POST", f"/api/v1/invitations/{code.lower().replace('-', ' ')}/open", 201)
    assert set(opened) == {
        "pseudonym",
        "consultation_id",
        "title",
        "titles",
        "descriptions",
        "languages",
        "purposes",
        "min_age",
        "survey_version",
        "survey",
    }
    assert opened["pseudonym"].startswith("p_") and opened["survey_version"] == 1
    # Someone who left (quick exit, or "I do not want to take part") before answering opens it again.
    again = surveys.call("POST", f"/api/v1/invitations/{code}/open", 201)
    [invitation] = surveys.organiser("GET", f"{base(cid)}/invitations", 200)
    assert invitation["uses"] == 0 and "code" not in invitation and "code_hash" not in invitation

    saved = surveys.call(
        "POST",
        "/api/v1/resume",
        201,
        json={
            "consent_token": surveys.token(again["pseudonym"], cid),
            "answers": {},
            "section_id": None,
        },
    )
    assert saved["resume_code"]
    [invitation] = surveys.organiser("GET", f"{base(cid)}/invitations", 200)
    assert invitation["uses"] == 1 and "spent_by" not in invitation
    with unchanged():
        assert (
            surveys.call("POST", f"/api/v1/invitations/{code}/open", 410)["reason"]
            == "invitation_used"
        )
        # The other visit from the same code can no longer keep answers: one response per code.
        refused = surveys.submit(surveys.token(opened["pseudonym"], cid), {}, expect=410)
        assert refused["reason"] == "invitation_used"
    surveys.submit(surveys.token(again["pseudonym"], cid), {})  # the visit that spent it goes on


def test_a_link_opens_many_times_until_revoked(surveys, unchanged):
    cid = surveys.open_consultation()
    link = surveys.organiser(
        "POST", f"{base(cid)}/invitations", 201, json={"kind": "link", "label": "poster"}
    )
    pseudonyms = {
        surveys.call("POST", f"/api/v1/invitations/{link['code']}/open", 201)["pseudonym"]
        for _ in range(3)
    }
    assert len(pseudonyms) == 3
    revoked = surveys.organiser(
        "POST", f"{base(cid)}/invitations/{link['invitation_id']}/revoke", 200
    )
    assert revoked["revoked"] is True and revoked["uses"] == 3
    with unchanged():
        surveys.call("POST", f"/api/v1/invitations/{link['code']}/open", 410)
        surveys.call("POST", "/api/v1/invitations/not-a-code/open", 404)
        surveys.organiser("POST", f"{base(cid)}/invitations/i_missing/revoke", 404)


def test_answers_from_a_link_leave_the_link_as_it_was(surveys):
    cid = surveys.open_consultation()
    link = surveys.organiser("POST", f"{base(cid)}/invitations", 201, json={"kind": "link"})
    opened = surveys.call("POST", f"/api/v1/invitations/{link['code']}/open", 201)
    assert Participant.objects(pseudonym=opened["pseudonym"]).first().invitation_kind == "link"
    surveys.submit(surveys.token(opened["pseudonym"], cid), {})
    [invitation] = surveys.organiser("GET", f"{base(cid)}/invitations", 200)
    assert invitation["uses"] == 1 and not invitation["revoked"]


def test_a_participant_stored_before_the_invitation_kind_was_kept_still_spends_a_single_code(
    surveys,
):
    cid = surveys.open_consultation()
    code = surveys.invite(cid, kind="single")
    first = surveys.call("POST", f"/api/v1/invitations/{code}/open", 201)["pseudonym"]
    second = surveys.call("POST", f"/api/v1/invitations/{code}/open", 201)["pseudonym"]
    Participant.objects(pseudonym__in=[first, second]).update(unset__invitation_kind=True)
    surveys.submit(surveys.token(first, cid), {})
    refused = surveys.submit(surveys.token(second, cid), {}, expect=410)
    assert refused["reason"] == "invitation_used"


def test_a_consent_token_naming_another_consultation_than_the_participants_is_refused(
    surveys, unchanged
):
    cid, other = surveys.open_consultation(), surveys.open_consultation()
    pseudonym = surveys.call("POST", f"/api/v1/invitations/{surveys.invite(cid)}/open", 201)[
        "pseudonym"
    ]
    with unchanged():
        surveys.submit(surveys.token(pseudonym, other), {}, expect=403)


def test_invitations_follow_the_consultation_window(surveys, unchanged):
    later = isoformat(utcnow() + timedelta(days=3))
    cid = surveys.open_consultation(opens_at=later)
    code = surveys.invite(cid)
    with unchanged():
        problem = surveys.call("POST", f"/api/v1/invitations/{code}/open", 409)
    assert problem["opens_at"] and problem["reason"] == "not_open_yet"
    # A draft's invitations (printed ahead) have not opened yet either: not gone, not used.
    draft = surveys.create(SURVEY)["consultation_id"]
    draft_code = surveys.invite(draft)
    with unchanged():
        problem = surveys.call("POST", f"/api/v1/invitations/{draft_code}/open", 409)
    assert problem["reason"] == "not_open_yet" and "not opened yet" in problem["detail"]


def test_invitations_made_before_the_consultation_opens_say_so(surveys):
    draft = surveys.create(SURVEY)["consultation_id"]
    for path, body in (
        ("invitations", {"kind": "single"}),
        ("invitations/batch", {"kind": "link", "count": 2}),
    ):
        made = surveys.organiser("POST", f"/api/v1/consultations/{draft}/{path}", 201, json=body)
        assert made["usable_now"] is False and "still a draft" in made["warning"]
    later = utcnow() + timedelta(days=3)
    waiting = surveys.open_consultation(opens_at=isoformat(later))
    made = surveys.organiser(
        "POST",
        f"/api/v1/consultations/{waiting}/invitations/batch",
        201,
        json={"kind": "link", "count": 1},
    )
    assert made["usable_now"] is False and isoformat(later)[:16] in made["warning"]
    open_now = surveys.open_consultation()
    made = surveys.organiser(
        "POST", f"/api/v1/consultations/{open_now}/invitations", 201, json={"kind": "link"}
    )
    assert made["usable_now"] is True and made["warning"] is None
