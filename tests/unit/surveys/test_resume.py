"""Save and resume on the server: a resume code, encrypted partial answers, expiry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.surveys import codes, resume
from services.surveys.app import create_app, resume_ttl
from services.surveys.models import ResumeDraft
from shared.errors import Gone
from shared.events import utcnow
from shared.in_process_bus import InProcessBus
from tests.conftest import make_settings


@pytest.fixture
def open_cid(surveys):
    return surveys.open_consultation()


def save(surveys, token, answers, expect=201, **extra):
    return surveys.call(
        "POST", "/api/v1/resume", expect, json={"consent_token": token, "answers": answers, **extra}
    )


def lookup(surveys, code, expect=200):
    return surveys.call("POST", "/api/v1/resume/lookup", expect, json={"resume_code": code})


def test_partial_answers_are_kept_under_a_code_and_come_back(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    token = surveys.token(pseudonym, open_cid)
    partial = {"safe": "no", "needs": ["health"], "story": "My neighbour helped me"}
    saved = save(
        surveys,
        token,
        partial,
        declined=["age"],
        section_id="story_section",
        receipt_code="RCPT-CODE-1234",
    )
    code = saved["resume_code"]
    expires = datetime.fromisoformat(saved["expires_at"])
    assert timedelta(hours=71) < expires - utcnow() <= timedelta(hours=72)

    resumed = lookup(surveys, code.lower())  # typed codes are forgiving
    assert resumed["answers"] == partial and resumed["declined"] == ["age"]
    assert resumed["section_id"] == "story_section" and resumed["survey_version"] == 1
    assert resumed["pseudonym"] == pseudonym and resumed["consultation_id"] == open_cid
    assert resumed["consent_token"] == token and resumed["consent_token_valid"] is True
    assert resumed["granted_purposes"] == ["participate", "aggregate_reporting", "quote_anonymised"]
    assert resumed["survey"]["sections"][1]["id"] == "story_section"
    assert resumed["receipt_code"] == "RCPT-CODE-1234"  # to show it again after resuming

    # Only ciphertext and the code's hash are stored: nothing a database reader could use.
    [draft] = ResumeDraft.objects
    stored = json.dumps(surveys.snapshot(), default=str)
    for secret in ("My neighbour", code, code.replace("-", ""), token, "RCPT-CODE-1234"):
        assert secret not in stored
    assert draft.code_hash == codes.hash_code(
        codes.CodeKind.RESUME, code, surveys.runtime.context.keys.code_pepper
    )

    # Continue and submit: the draft is not needed any more.
    surveys.submit(resumed["consent_token"], {**resumed["answers"], "age": 40})
    assert ResumeDraft.objects.count() == 0
    lookup(surveys, code, expect=404)


def test_saving_again_replaces_the_draft_and_the_old_code(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    token = surveys.token(pseudonym, open_cid)
    first = save(surveys, token, {"safe": "no"})["resume_code"]
    second = save(surveys, token, {"safe": "no", "age": "33"})["resume_code"]
    assert first != second and ResumeDraft.objects.count() == 1
    lookup(surveys, first, expect=404)
    assert lookup(surveys, second)["answers"] == {"safe": "no", "age": "33"}
    # Another participant's draft is separate.
    other = surveys.participant(open_cid)
    save(surveys, surveys.token(other, open_cid), {"safe": "yes"})
    assert ResumeDraft.objects.count() == 2


def test_answers_made_irrelevant_by_a_change_are_dropped_on_save(surveys, open_cid):
    token = surveys.token(surveys.participant(open_cid), open_cid)
    code = save(surveys, token, {"safe": "yes", "story": "written before changing safe"})[
        "resume_code"
    ]
    assert lookup(surveys, code)["answers"] == {"safe": "yes"}


def test_expired_progress_is_gone(surveys, open_cid):
    token = surveys.token(surveys.participant(open_cid), open_cid, ttl=timedelta(days=10))
    code = save(surveys, token, {"safe": "no"})["resume_code"]
    keys = surveys.runtime.context.keys
    assert resume.resume_progress(code, keys, now=utcnow() + timedelta(hours=71))["answers"] == {
        "safe": "no"
    }
    with pytest.raises(Gone):  # 410: read before any save deleted it
        resume.resume_progress(code, keys, now=utcnow() + timedelta(hours=72, seconds=1))
    assert ResumeDraft.objects.count() == 0
    lookup(surveys, code, expect=404)


def test_a_save_deletes_expired_progress_of_anyone_at_most_once_a_minute(
    surveys, open_cid, monkeypatch
):
    minutes = [0.0]
    monkeypatch.setattr(resume.expired_drafts_purge, "clock", lambda: minutes[0] * 60)
    monkeypatch.setattr(resume.expired_drafts_purge, "_last", None)
    token = surveys.token(surveys.participant(open_cid), open_cid)
    code = save(surveys, token, {"safe": "no"})["resume_code"]
    ResumeDraft.objects.update(set__expires_at=utcnow() - timedelta(seconds=1))
    assert ResumeDraft.objects.count() == 1
    # Within the minute another save leaves the expired draft (unreadable all the same).
    save(surveys, surveys.token(surveys.participant(open_cid), open_cid), {"safe": "yes"})
    assert ResumeDraft.objects.count() == 2
    lookup(surveys, code, expect=410)
    # A minute later the next save deletes it, not merely hides it.
    minutes[0] = 1.0
    save(surveys, surveys.token(surveys.participant(open_cid), open_cid), {"safe": "yes"})
    assert ResumeDraft.objects.count() == 2  # three saved, the expired one gone
    lookup(surveys, code, expect=404)


def test_an_expired_consent_token_is_not_handed_back(surveys, open_cid):
    pseudonym = surveys.participant(open_cid)
    code = save(surveys, surveys.token(pseudonym, open_cid, ttl=60), {"safe": "no"})["resume_code"]
    # Ten minutes later the one-minute token has expired; the draft (72 hours) has not.
    result = resume.resume_progress(
        code, surveys.runtime.context.keys, now=utcnow() + timedelta(minutes=10)
    )
    assert result["consent_token_valid"] is False and result["consent_token"] is None
    assert result["granted_purposes"] is None
    assert result["answers"] == {"safe": "no"} and result["pseudonym"] == pseudonym


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"answers": {"safe": "perhaps"}}, 422, "safe"),
        ({"answers": {"ghost": 1}}, 422, "ghost"),
        ({"answers": {}, "section_id": "nowhere"}, 422, "section_id"),
        ({"answers": {}, "survey_version": 9}, 422, "survey_version"),
        ({"answers": {}, "resume_code": "ABCD"}, 422, "resume_code"),
    ],
)
def test_bad_saves_store_nothing(surveys, unchanged, open_cid, body, status, field):
    token = surveys.token(surveys.participant(open_cid), open_cid)
    with unchanged():
        problem = surveys.call(
            "POST", "/api/v1/resume", status, json={"consent_token": token, **body}
        )
    assert field in problem["errors"]


def test_saving_needs_a_valid_consent_token(surveys, unchanged, open_cid):
    pseudonym = surveys.participant(open_cid)
    with unchanged():
        save(
            surveys,
            surveys.token(pseudonym, open_cid, purposes=["aggregate_reporting"]),
            {},
            expect=401,
        )
        save(surveys, "forged.token.value", {}, expect=401)
    surveys.withdraw(pseudonym, open_cid)
    with unchanged():
        save(surveys, surveys.token(pseudonym, open_cid), {"safe": "no"}, expect=403)


def test_codes_are_checked_before_any_lookup(surveys, unchanged, open_cid):
    with unchanged():
        typo = lookup(surveys, "ABCD-EFGH", expect=422)
        assert "code" in typo["errors"]
        lookup(surveys, codes.new_resume_code(), expect=404)
        surveys.call("POST", "/api/v1/resume/lookup", 422, json={})
    # The code never travels in a URL: there is no such route.
    surveys.call("GET", f"/api/v1/resume/{codes.new_resume_code()}", 404)


def test_progress_of_a_closed_consultation_cannot_be_resumed(surveys, open_cid):
    token = surveys.token(surveys.participant(open_cid), open_cid)
    code = save(surveys, token, {"safe": "no"})["resume_code"]
    surveys.organiser(
        "POST", f"/api/v1/consultations/{open_cid}/status", 200, json={"status": "closed"}
    )
    lookup(surveys, code, expect=410)


def test_the_time_to_keep_progress_is_a_setting(secrets_env):
    assert resume_ttl(make_settings("surveys", secrets_env)) == timedelta(hours=72)
    env = {**secrets_env, "VOICES_RESUME_TTL_HOURS": "6"}
    app = create_app(make_settings("surveys", env), bus=InProcessBus())
    assert app.extensions["voices_runtime"].context.resume_ttl == timedelta(hours=6)
    for bad in ("0", "-1", "soon", "100000"):
        with pytest.raises(RuntimeError):
            resume_ttl(make_settings("surveys", {**secrets_env, "VOICES_RESUME_TTL_HOURS": bad}))


def test_progress_expires_after_the_configured_time(secrets_env, consent_keys):
    from tests.unit.surveys.conftest import Surveys

    bus = InProcessBus()
    app = create_app(
        make_settings("surveys", {**secrets_env, "VOICES_RESUME_TTL_HOURS": "2"}), bus=bus
    )
    short = Surveys(app, bus, secrets_env, consent_keys[0])
    cid = short.open_consultation()
    saved = save(short, short.token(short.participant(cid), cid), {"safe": "no"})
    left = datetime.fromisoformat(saved["expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=1, minutes=59) < left <= timedelta(hours=2)


def test_submitting_looks_for_a_draft_only_when_the_participant_may_have_one(
    surveys, open_cid, monkeypatch
):
    from services.surveys import intake
    from services.surveys.models import Participant

    # Opened from a link: the record says there is no draft, so none is looked for.
    link = surveys.invite(open_cid)
    never_saved = surveys.call("POST", f"/api/v1/invitations/{link}/open", 201)["pseudonym"]
    assert Participant.objects(pseudonym=never_saved).first().has_draft is False

    class NoDrafts:
        @property
        def objects(self):
            raise AssertionError("looked for a draft")

    with monkeypatch.context() as patched:
        patched.setattr(intake, "ResumeDraft", NoDrafts())
        surveys.submit(surveys.token(never_saved, open_cid), {"safe": "yes"})

    # One who saved: flagged before the draft is stored, and the draft goes at submission.
    saver = surveys.call("POST", f"/api/v1/invitations/{link}/open", 201)["pseudonym"]
    save(surveys, surveys.token(saver, open_cid), {"safe": "no"})
    assert Participant.objects(pseudonym=saver).first().has_draft is True
    surveys.submit(surveys.token(saver, open_cid), {"safe": "no"})
    assert ResumeDraft.objects(pseudonym=saver).count() == 0

    # A record from before the flag was kept: looked for, and deleted.
    older = surveys.call("POST", f"/api/v1/invitations/{link}/open", 201)["pseudonym"]
    save(surveys, surveys.token(older, open_cid), {"safe": "no"})
    Participant.objects(pseudonym=older).update(unset__has_draft=True)
    surveys.submit(surveys.token(older, open_cid), {"safe": "no"})
    assert ResumeDraft.objects.count() == 0
