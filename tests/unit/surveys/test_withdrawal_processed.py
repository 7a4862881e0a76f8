"""withdrawal.processed: every full withdrawal is confirmed once, also when there was nothing to erase."""

from __future__ import annotations

from services.surveys import erasure
from services.surveys.models import Withdrawal
from shared.events import Envelope
from tests.unit.surveys.conftest import FULL_ANSWERS, withdraw_during_intake


def processed(surveys) -> list[Envelope]:
    return surveys.events(surveys.settings.topics.responses, "withdrawal.processed")


def test_a_full_withdrawal_is_confirmed_after_the_erasure(surveys):
    cid = surveys.open_consultation()
    pseudonym = surveys.participant(cid)
    surveys.submit(surveys.token(pseudonym, cid), FULL_ANSWERS)
    surveys.withdraw(pseudonym, cid)
    [event] = processed(surveys)
    assert (event.key, event.producer, event.version) == (cid, "surveys", 1)
    assert event.payload == {
        "consultation_id": cid,
        "pseudonym": pseudonym,
        "responses_erased": 1,
        "key_shredded": True,
        "processed_at": event.payload["processed_at"],
    }
    assert Envelope.parse(event.to_dict()) == event  # it honours the shared contract
    # Published after the erasure it confirms (same topic and key, so consumers see that order).
    types = [e.type for e in surveys.bus.events(surveys.settings.topics.responses)]
    assert types.index("response.erased") < types.index("withdrawal.processed")


def test_a_withdrawal_before_any_response_is_confirmed_with_nothing_erased(surveys):
    cid = surveys.open_consultation()
    pseudonym = surveys.participant(cid)
    surveys.withdraw(pseudonym, cid)
    [event] = processed(surveys)
    assert (event.payload["responses_erased"], event.payload["key_shredded"]) == (0, True)
    # A pseudonym this service never saw: no key was held, nothing erased, still confirmed.
    surveys.withdraw("p_never_seen", cid)
    assert [
        (e.payload["pseudonym"], e.payload["responses_erased"], e.payload["key_shredded"])
        for e in processed(surveys)
    ] == [(pseudonym, 0, True), ("p_never_seen", 0, True)]


def test_the_same_withdrawal_event_is_confirmed_once(surveys):
    cid = surveys.open_consultation()
    pseudonym = surveys.participant(cid)
    surveys.submit(surveys.token(pseudonym, cid), FULL_ANSWERS)
    payload = {
        "pseudonym": pseudonym,
        "consultation_id": cid,
        "purposes": ["participate"],
        "all": True,
    }
    topic = surveys.settings.topics.responses
    # As after a crash between the handler and the dispatcher's record: the handler runs again.
    erasure.apply_withdrawal(payload, topic, "t1", "e-1")
    erasure.apply_withdrawal(payload, topic, "t1", "e-1")
    assert len(processed(surveys)) == 1
    assert Withdrawal.objects.get(pseudonym=pseudonym).confirmed == ["e-1"]
    # And through the bus: the dispatcher drops the repeat as well.
    event = surveys.withdraw(pseudonym, cid)
    surveys.bus.publish(surveys.settings.topics.consent, event)
    surveys.bus.deliver()
    assert len(processed(surveys)) == 2


def test_a_partial_withdrawal_is_not_a_full_one(surveys):
    cid = surveys.open_consultation()
    pseudonym = surveys.participant(cid)
    surveys.submit(surveys.token(pseudonym, cid), FULL_ANSWERS)
    surveys.withdraw(pseudonym, cid, purposes=["quote_anonymised"], everything=False)
    assert processed(surveys) == []


def test_a_response_erased_after_the_confirmation_is_confirmed_again(surveys, monkeypatch):
    """The withdrawal is handled while the response is on its way: confirmed with 0, then with 1."""
    cid = surveys.open_consultation()
    pseudonym = surveys.participant(cid)
    token = surveys.token(pseudonym, cid)
    withdraw_during_intake(surveys, monkeypatch, pseudonym, cid)
    surveys.submit(token, FULL_ANSWERS, expect=403)
    assert [e.payload["responses_erased"] for e in processed(surveys)] == [0, 1]
