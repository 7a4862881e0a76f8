"""The receipt tells what happened after a full withdrawal: pending until the surveys service confirms the erasure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.consent import handlers
from services.consent.models import Grant
from shared.events import Envelope, isoformat, utcnow
from tests.unit.consent.platform_auditing import platform_auditor  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("platform_auditor")


def processed(
    consent,
    cid: str,
    pseudonym: str,
    erased: int,
    event_id: str | None = None,
    key_shredded: bool = True,
    later_s: int = 0,
) -> Envelope:
    """A withdrawal.processed event as the surveys service publishes it, delivered to the consent service."""
    event = Envelope(
        type="withdrawal.processed",
        key=cid,
        producer="surveys",
        payload={
            "consultation_id": cid,
            "pseudonym": pseudonym,
            "responses_erased": erased,
            "key_shredded": key_shredded,
            "processed_at": isoformat(utcnow() + timedelta(seconds=later_s)),
        },
        **({"id": event_id} if event_id else {}),
    )
    consent.bus.publish(consent.topics.responses, event)
    consent.settle()
    return event


def of_type(receipt: dict, event_type: str) -> list[dict]:
    return [e for e in receipt["events"] if e["eventType"] == event_type]


def test_a_full_withdrawal_is_pending_until_confirmed_then_shows_the_confirmation(consent):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_kilo")
    code = granted["receipt_code"]
    withdrawn = consent.withdraw(code)
    consent.settle()

    # The withdrawal's own answer and a later lookup: nothing confirmed yet.
    for receipt in (withdrawn["receipt"], consent.lookup(code)):
        [withdrawal] = of_type(receipt, "withdrawn")
        assert withdrawal["all"] is True and withdrawal["erasureStatus"] == "pending_confirmation"
        assert of_type(receipt, "erasure_confirmed") == []

    event = processed(consent, cid, "p_kilo", 2)
    receipt = consent.lookup(code)
    [withdrawal] = of_type(receipt, "withdrawn")
    assert withdrawal["erasureStatus"] == "confirmed"
    assert of_type(receipt, "erasure_confirmed") == [
        {
            "eventType": "erasure_confirmed",
            "eventTime": event.payload["processed_at"],
            "eventBy": "service",
            "responsesErased": 2,
            "keyShredded": True,
        }
    ]
    assert (
        receipt["events"][-1]["eventType"] == "erasure_confirmed"
    )  # after the withdrawal it confirms


def test_a_redelivered_confirmation_is_stored_once_and_a_later_one_adds_to_the_history(consent):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_lima")
    consent.withdraw(granted["receipt_code"])
    consent.settle()
    event = processed(consent, cid, "p_lima", 0)
    processed(consent, cid, "p_lima", 0, event_id=event.id)  # redelivered on the bus
    handlers.record_withdrawal_processed(event, consent.context)  # and straight into the handler
    grant = Grant.objects.get(consultation_id=cid, pseudonym="p_lima")
    assert [e["event_id"] for e in grant.events if e["event"] == "erasure_confirmed"] == [event.id]

    # A response that arrived late was erased too: the surveys service confirms again with the new total.
    later = processed(consent, cid, "p_lima", 1, later_s=5)
    confirmations = of_type(consent.lookup(granted["receipt_code"]), "erasure_confirmed")
    assert [(c["eventTime"], c["responsesErased"]) for c in confirmations] == [
        (event.payload["processed_at"], 0),
        (later.payload["processed_at"], 1),
    ]
    assert len([e for e in consent.ledger() if e["kind"] == "withdrawal.processed"]) == 2


def test_a_confirmation_for_a_partial_withdrawal_or_an_unknown_participant_changes_no_receipt(
    consent,
):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_mike")
    code = granted["receipt_code"]
    consent.withdraw(code, ["aggregate_reporting"])
    consent.settle()
    before = consent.lookup(code)

    processed(consent, cid, "p_mike", 1)  # only some purposes were withdrawn: nothing to confirm
    processed(consent, cid, "p_nobody", 3)  # no grant at all
    assert consent.lookup(code) == before
    assert "erasureStatus" not in of_type(before, "withdrawn")[0]
    assert Grant.objects(pseudonym="p_nobody").count() == 0
    # Both still reach the ledger: it records what the surveys service reported.
    assert {
        e["data"]["pseudonym"] for e in consent.ledger() if e["kind"] == "withdrawal.processed"
    } == {"p_mike", "p_nobody"}

    # The stray confirmation does not count for a full withdrawal made afterwards.
    consent.withdraw(code)
    consent.settle()
    receipt = consent.lookup(code)
    assert [w.get("erasureStatus") for w in of_type(receipt, "withdrawn")] == [
        None,
        "pending_confirmation",
    ]
    assert of_type(receipt, "erasure_confirmed") == []


def test_a_grant_never_withdrawn_ignores_a_confirmation(consent):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_november")
    consent.settle()
    before = consent.lookup(granted["receipt_code"])
    processed(consent, cid, "p_november", 0)
    assert consent.lookup(granted["receipt_code"]) == before
    assert before["consentStatus"] == "active"
