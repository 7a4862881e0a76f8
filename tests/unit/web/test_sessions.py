"""The sealed server-side session store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mongoengine
import pytest

from gateway.web.models import WebSessionDocument
from gateway.web.sessions import WebSessions
from shared import mongo
from shared.errors import Conflict
from tests.conftest import make_settings

SECRET = "s" * 40


@pytest.fixture(autouse=True)
def store(secrets_env):
    mongo.connect(make_settings("gateway", secrets_env), alias="gateway")
    WebSessionDocument.objects.delete()
    yield
    WebSessionDocument.objects.delete()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_session_opens_only_with_its_cookie():
    sessions = WebSessions(SECRET)
    created = sessions.create({"pseudonym": "p_123", "answers": {"q1": "Leeds"}})
    loaded = sessions.load(created.cookie)
    assert loaded.state == {"pseudonym": "p_123", "answers": {"q1": "Leeds"}}
    assert sessions.load(created.cookie[:-1] + ("A" if created.cookie[-1] != "A" else "B")) is None
    assert (
        sessions.load("") is None
        and sessions.load(None) is None
        and sessions.load("x" * 500) is None
    )
    # Another installation (another secret) cannot open it even with the cookie.
    assert WebSessions("t" * 40).load(created.cookie) is None


def test_the_database_holds_neither_the_cookie_nor_the_state():
    sessions = WebSessions(SECRET)
    created = sessions.create(
        {"pseudonym": "p_123", "answers": {"q1": "My sister's flat in Leeds"}}
    )
    raw = mongoengine.get_db("gateway")["participant_web_sessions"].find_one()
    dumped = repr(raw).encode() + bytes(raw["sealed"])
    assert (
        b"Leeds" not in dumped and b"p_123" not in dumped and created.cookie.encode() not in dumped
    )
    assert raw["_id"] != created.cookie


def test_a_changed_session_is_saved_and_a_stale_copy_is_refused():
    sessions = WebSessions(SECRET)
    created = sessions.create({"step": 1})
    first, second = sessions.load(created.cookie), sessions.load(created.cookie)
    first.state["step"] = 2
    sessions.save(first)
    second.state["step"] = 3
    with pytest.raises(Conflict):
        sessions.save(second)  # it would undo the first change unseen
    assert sessions.load(created.cookie).state == {"step": 2}


def test_an_idle_session_expires_and_is_removed():
    clock = Clock()
    sessions = WebSessions(SECRET, ttl_s=60, clock=clock)
    created = sessions.create({"step": 1})
    clock.now += timedelta(seconds=59)
    session = sessions.load(created.cookie)
    sessions.save(session)  # activity extends the session
    clock.now += timedelta(seconds=59)
    assert sessions.load(created.cookie) is not None
    clock.now += timedelta(seconds=61)
    assert sessions.load(created.cookie) is None
    assert WebSessionDocument.objects.count() == 0


def test_ending_a_session_deletes_it_and_saving_it_afterwards_fails():
    sessions = WebSessions(SECRET)
    created = sessions.create({"step": 1})
    sessions.end(created.cookie)
    sessions.end(created.cookie)  # twice is harmless
    assert sessions.load(created.cookie) is None
    with pytest.raises(Conflict):
        sessions.save(created)


def test_a_short_secret_is_refused():
    with pytest.raises(RuntimeError):
        WebSessions("short")
