"""Participant sessions: issued when an invitation opens, bound to one consultation and pseudonym."""

from __future__ import annotations

import jwt
import pytest

from gateway.participant_sessions import ParticipantSessions, binding_violation
from services.consent.grants import new_receipt_code
from services.surveys.codes import new_resume_code
from shared.errors import Unauthorized
from tests.e2e.conftest import ONE_QUESTION_SURVEY
from tests.unit.gateway.test_accounts import rate

SECRET = "s" * 43


def test_a_session_names_its_consultation_and_pseudonym_only():
    sessions = ParticipantSessions(SECRET, ttl_s=60)
    session = sessions.verify(sessions.issue("c_1", "p_1"))
    assert (session.consultation_id, session.pseudonym) == ("c_1", "p_1")
    claims = jwt.decode(sessions.issue("c_1", "p_1"), options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "sub", "cid", "jti", "iat", "exp"}


def test_expired_forged_and_foreign_sessions_are_refused():
    sessions = ParticipantSessions(SECRET, ttl_s=60)
    token = sessions.issue("c_1", "p_1", now=1_000)
    assert sessions.verify(token, now=1_059).pseudonym == "p_1"
    with pytest.raises(Unauthorized, match="expired"):
        sessions.verify(token, now=1_060)
    with pytest.raises(Unauthorized):
        ParticipantSessions("t" * 43).verify(sessions.issue("c_1", "p_1"))
    forged = jwt.encode(
        {
            "sub": "p_1",
            "cid": "c_1",
            "aud": "voices:participant",
            "iss": "voices-gateway",
            "jti": "x",
            "iat": 1,
            "exp": 2**40,
        },
        None,
        algorithm="none",
    )
    with pytest.raises(Unauthorized):
        sessions.verify(forged)
    with pytest.raises(RuntimeError):
        ParticipantSessions("short")


def test_binding_refuses_other_consultations_and_pseudonyms():
    session = ParticipantSessions(SECRET).verify(ParticipantSessions(SECRET).issue("c_1", "p_1"))
    assert (
        binding_violation(session, {"cid": "c_1"}, {"pseudonym": "p_1", "consultation_id": "c_1"})
        is None
    )
    assert binding_violation(session, {"cid": "c_2"}, None)
    assert binding_violation(session, {}, {"consultation_id": "c_2"})
    assert binding_violation(session, {}, {"pseudonym": "p_2"})


def _open_consultation(platform) -> tuple[str, str]:
    """A published consultation with a consent text and a link invitation: (consultation id, link code)."""
    organiser = platform.staff("organiser", platform.organisation())["token"]
    cid = platform.call(
        "POST",
        "/api/v1/consultations",
        organiser,
        expect=201,
        json={
            "title": "Sessions",
            "languages": ["en"],
            "purposes": ["participate"],
            "min_cell_size": 5,
            "survey": ONE_QUESTION_SURVEY,
        },
    ).get_json()["consultation_id"]
    platform.deliver()
    platform.call(
        "POST",
        f"/api/v1/consent/consultations/{cid}/texts",
        organiser,
        expect=201,
        json={
            "version": 1,
            "language": "en",
            "title": "Consent",
            "body": "We keep your answers safe.",
            "purposes": {"participate": "To take part."},
        },
    )
    platform.call(
        "POST", f"/api/v1/consent/consultations/{cid}/texts/1/publish", organiser, expect=200
    )
    platform.deliver()
    platform.call("POST", f"/api/v1/consultations/{cid}/publish", organiser, expect=200)
    code = platform.call(
        "POST",
        f"/api/v1/consultations/{cid}/invitations",
        organiser,
        expect=201,
        json={"kind": "link"},
    ).get_json()["code"]
    platform.deliver()
    return cid, code


@pytest.fixture(scope="module")
def opened(platform):
    return _open_consultation(platform)


def test_opening_an_invitation_returns_a_session_bound_to_it(platform, opened):
    cid, code = opened
    body = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()
    session = platform.gateway.extensions["voices_participant_sessions"].verify(
        body["participant_session"]
    )
    assert (session.consultation_id, session.pseudonym) == (cid, body["pseudonym"])
    assert body["participant_session_expires_in"] > 0


def test_the_whole_participant_flow_works_with_and_after_a_session(platform, opened):
    cid, code = opened
    for with_session in (True, False):
        body = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()
        session = body["participant_session"]
        token = session if with_session else None
        platform.call(
            "GET", f"/api/v1/consent/consultations/{cid}/texts?language=en", token, expect=200
        )
        grant = platform.call(
            "POST",
            "/api/v1/consent/grants",
            session,
            expect=201,
            json={
                "pseudonym": body["pseudonym"],
                "consultation_id": cid,
                "purposes": ["participate"],
                "language": "en",
                "text_version": 1,
            },
        ).get_json()
        # Once consent is given, its token is what authorises the answers (the session may have expired).
        platform.call(
            "POST",
            "/api/v1/responses",
            token,
            expect=201,
            json={"consent_token": grant["consent_token"], "answers": {"got_help": "yes"}},
        )


def test_consent_is_granted_only_to_a_participant_the_surveys_service_admitted(platform, opened):
    cid, code = opened
    body = {
        "pseudonym": "p_made_up_000000000000",
        "consultation_id": cid,
        "purposes": ["participate"],
        "language": "en",
        "text_version": 1,
    }
    session = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()[
        "participant_session"
    ]
    platform.deliver()
    before = _stored(platform)
    anonymous = platform.call("POST", "/api/v1/consent/grants", json=body)
    assert anonymous.status_code == 401 and anonymous.mimetype == "application/problem+json"
    # A real session, but the pseudonym is not the one the surveys service gave it.
    platform.call("POST", "/api/v1/consent/grants", session, expect=403, json=body)
    platform.deliver()
    assert _stored(platform) == before  # no grant, no consent.granted ledger entry


def test_a_session_is_refused_for_another_consultation_or_pseudonym(platform, opened):
    cid, code = opened
    body = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()
    token = body["participant_session"]
    platform.call(
        "GET", "/api/v1/consent/consultations/c_other/texts?language=en", token, expect=403
    )
    platform.call(
        "POST",
        "/api/v1/consent/grants",
        token,
        expect=403,
        json={
            "pseudonym": "p_someone_else",
            "consultation_id": cid,
            "purposes": ["participate"],
            "language": "en",
            "text_version": 1,
        },
    )


def test_an_expired_or_forged_session_is_a_401_even_on_public_routes(platform, opened):
    cid, _code = opened
    sessions = platform.gateway.extensions["voices_participant_sessions"]
    stale = sessions.issue(cid, "p_x", now=1_000)
    response = platform.call("GET", f"/api/v1/consent/consultations/{cid}/texts?language=en", stale)
    assert response.status_code == 401 and "expired" in response.get_json()["detail"]
    platform.call(
        "GET", f"/api/v1/consent/consultations/{cid}/texts?language=en", "a.b.c", expect=401
    )


def test_each_participant_session_has_its_own_rate_limit(platform, opened):
    cid, code = opened
    first = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()[
        "participant_session"
    ]
    second = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()[
        "participant_session"
    ]
    with rate(platform, "participant", "2/3600"):
        path = f"/api/v1/consent/consultations/{cid}/texts?language=en"
        platform.call("GET", path, first, expect=200)
        platform.call("GET", path, first, expect=200)
        limited = platform.call("GET", path, first, expect=429)
        assert int(limited.headers["Retry-After"]) >= 1
        platform.call("GET", path, second, expect=200)


def _stored(platform) -> dict:
    """Every document of every service, to show that a refused call changed nothing."""
    stored = {}
    for name, app in platform.services.items():
        db = app.extensions["voices_runtime"].db
        stored[name] = {
            c: sorted(map(str, db[c].find())) for c in sorted(db.list_collection_names())
        }
    return stored


def test_a_session_carries_no_credentials_of_another_consultation(platform, opened):
    _cid, code = opened
    other_cid, other_code = _open_consultation(platform)
    other = platform.call("POST", f"/api/v1/invitations/{other_code}/open", expect=201).get_json()
    other_session = other["participant_session"]
    grant = platform.call(
        "POST",
        "/api/v1/consent/grants",
        other_session,
        expect=201,
        json={
            "pseudonym": other["pseudonym"],
            "consultation_id": other_cid,
            "purposes": ["participate"],
            "language": "en",
            "text_version": 1,
        },
    ).get_json()
    token, receipt_code = grant["consent_token"], grant["receipt_code"]
    resume_code = platform.call(
        "POST", "/api/v1/resume", other_session, expect=201, json={"consent_token": token}
    ).get_json()["resume_code"]
    session = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()[
        "participant_session"
    ]
    by_token = [
        ("POST", "/api/v1/responses", {"consent_token": token, "answers": {"got_help": "yes"}}),
        ("POST", "/api/v1/resume", {"consent_token": token}),
        (
            "PUT",
            "/api/v1/contact",
            {
                "consent_token": token,
                "method": "email",
                "value": "a@example.org",
                "safe_to_leave_message": False,
            },
        ),
        ("DELETE", "/api/v1/contact", {"consent_token": token}),
    ]
    by_code = [  # (method, path, the other consultation's code, an unknown code of the same kind)
        (
            "POST",
            "/api/v1/resume/lookup",
            {"resume_code": resume_code},
            {"resume_code": new_resume_code()},
        ),
        (
            "POST",
            "/api/v1/consent/receipts/lookup",
            {"receipt_code": receipt_code},
            {"receipt_code": new_receipt_code()},
        ),
        (
            "POST",
            "/api/v1/consent/tokens",
            {"receipt_code": receipt_code},
            {"receipt_code": new_receipt_code()},
        ),
    ]
    platform.deliver()
    before = _stored(platform)
    for method, path, body in by_token:
        refused = platform.call(method, path, session, json=body)
        assert refused.status_code == 401, (path, refused.get_data(True))
        assert "different consultation" in refused.get_json()["detail"]
    for method, path, body, unknown_body in by_code:
        refused = platform.call(method, path, session, json=body)
        # Another consultation's code answers exactly like an unknown one: nothing says it exists.
        unknown = platform.call(method, path, session, json=unknown_body)
        assert refused.status_code == 404, (path, refused.get_data(True))
        assert refused.get_json()["detail"] == unknown.get_json()["detail"]
    platform.deliver()
    assert _stored(platform) == before
    # The credentials still work in their own consultation's session.
    for method, path, body in [row[:3] for row in by_code] + by_token[:1]:
        assert platform.call(method, path, other_session, json=body).status_code in (200, 201), path
