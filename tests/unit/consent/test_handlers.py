"""The consent service's event consumer: consultation rules in, ledger entries out, each exactly once."""

from __future__ import annotations

import pytest

from services.consent import handlers
from services.consent.models import ConsultationPolicy
from shared.events import Envelope, isoformat, utcnow
from tests.unit.consent.platform_auditing import platform_auditor  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("platform_auditor")


def test_consultations_are_learned_from_surveys_events(consent):
    cid = consent.consultation(languages=("en", "ar"), min_age=16, publish=False)
    policy = ConsultationPolicy.objects.get(consultation_id=cid)
    assert (policy.status, policy.languages, policy.min_age) == ("draft", ["en", "ar"], 16)
    consent.consultation(languages=("en", "ar"), min_age=16, cid=cid)
    assert ConsultationPolicy.objects.get(consultation_id=cid).status == "open"
    consent.status(cid, "closed")
    assert ConsultationPolicy.objects.get(consultation_id=cid).status == "closed"
    # A late consultation.created does not reopen or close anything.
    consent.consultation(languages=("en", "ar"), min_age=16, cid=cid, publish=False)
    assert ConsultationPolicy.objects.get(consultation_id=cid).status == "closed"


def test_a_redelivered_event_leaves_one_ledger_entry(consent):
    cid = consent.open_consultation()
    consent.grant(cid)
    consent.settle()
    before = consent.ledger()
    [granted] = consent.events("consent.granted")
    # The same event again: on the bus (dispatcher) and straight into the handler (ledger_store's own check).
    consent.bus.publish(consent.topics.consent, granted)
    consent.settle()
    handlers.record_grant(granted, consent.context)
    assert consent.ledger() == before


def test_release_sign_offs_and_erasures_become_entries_with_identifiers_only(consent):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_golf")
    consent.settle()
    consent.bus.publish(
        consent.topics.releases,
        Envelope(
            type="release.published",
            key=cid,
            producer="aggregation",
            payload={
                "release_id": "rel_1",
                "consultation_id": cid,
                "snapshot": 3,
                "signed_off_by": "u_9",
                "released_at": isoformat(utcnow()),
                "digest": "ab" * 32,
            },
        ),
    )
    consent.settle()
    consent.erased(cid, "p_golf", "r_1")
    consent.erased(cid, "p_golf", "r_1")  # the same erasure reported twice (a retried erasure)
    entries = consent.ledger()
    [release] = [e for e in entries if e["kind"] == "release.signed_off"]
    assert release["data"]["digest"] == "ab" * 32 and release["data"]["signed_off_by"] == "u_9"
    erasures = [e for e in entries if e["kind"] == "response.erased"]
    assert len(erasures) == 2 and {e["data"]["response_id"] for e in erasures} == {"r_1"}
    # The receipt lists the erased response once.
    receipt = consent.lookup(granted["receipt_code"])
    assert [e["responseId"] for e in receipt["events"] if e["eventType"] == "answers_erased"] == [
        "r_1"
    ]


def test_an_erasure_arriving_before_the_withdrawal_still_confirms_it(consent):
    """Topics are consumed independently: the ledger may record the erasure first."""
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_hotel")
    consent.settle()
    consent.erased(
        cid, "p_hotel", "r_5"
    )  # reason "withdrawal", recorded before the withdrawal entry
    consent.erased(
        cid, "p_hotel", "r_6", reason="retention"
    )  # earlier and for retention: no confirmation
    consent.withdraw(granted["receipt_code"])
    consent.settle()
    [item] = consent.auditor("GET", "/api/v1/ledger/erasure-report")["withdrawals"]
    assert item["confirmed"] is True
    assert [(e["response_id"], e["after_withdrawal"]) for e in item["erasures"]] == [("r_5", False)]


def test_the_consumer_signs_a_checkpoint_every_n_entries(consent):
    cid = consent.open_consultation()  # 1 entry (the text)
    for _ in range(8):
        consent.grant(cid)
    consent.settle()
    assert [c["tree_size"] for c in consent.auditor("GET", "/api/v1/ledger/checkpoints")] == [4, 8]


def processed(
    consent, cid: str, pseudonym: str, erased: int, event_id: str | None = None
) -> Envelope:
    """A withdrawal.processed event as the surveys service publishes it."""
    event = Envelope(
        type="withdrawal.processed",
        key=cid,
        producer="surveys",
        payload={
            "consultation_id": cid,
            "pseudonym": pseudonym,
            "responses_erased": erased,
            "key_shredded": True,
            "processed_at": isoformat(utcnow()),
        },
        **({"id": event_id} if event_id else {}),
    )
    consent.bus.publish(consent.topics.responses, event)
    consent.settle()
    return event


def test_withdrawal_processed_becomes_an_entry_and_confirms_a_withdrawal_with_nothing_stored(
    consent,
):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_india")
    consent.withdraw(granted["receipt_code"])
    consent.settle()
    report = consent.auditor("GET", "/api/v1/ledger/erasure-report")
    assert (report["confirmed"], report["unconfirmed"]) == (0, 1)

    event = processed(consent, cid, "p_india", 0)
    processed(consent, cid, "p_india", 0, event_id=event.id)  # redelivered: still one entry
    handlers.record_withdrawal_processed(
        event, consent.context
    )  # straight into the handler as well

    [entry] = [e for e in consent.ledger() if e["kind"] == "withdrawal.processed"]
    assert entry["data"] == {
        k: event.payload[k]
        for k in (
            "consultation_id",
            "pseudonym",
            "responses_erased",
            "key_shredded",
            "processed_at",
        )
    }
    report = consent.auditor("GET", "/api/v1/ledger/erasure-report")
    assert (report["confirmed"], report["unconfirmed"]) == (1, 0)
    [item] = report["withdrawals"]
    assert (
        item["pseudonym"],
        item["confirmed"],
        item["responses_erased"],
        item["key_shredded"],
    ) == ("p_india", True, 0, True)
    assert [(p["seq"], p["after_withdrawal"]) for p in item["processing"]] == [(entry["seq"], True)]
    assert item["erasures"] == []
    confirmed = consent.auditor("GET", "/api/v1/ledger/erasure-report?status=confirmed")
    assert [w["pseudonym"] for w in confirmed["withdrawals"]] == ["p_india"]


def test_a_confirmation_with_erasures_states_the_count(consent):
    cid = consent.open_consultation()
    granted = consent.grant(cid, "p_juliet")
    consent.settle()
    processed(
        consent, cid, "p_juliet", 1
    )  # appended before the withdrawal: topics are read independently
    consent.erased(cid, "p_juliet", "r_7")
    consent.withdraw(granted["receipt_code"])
    consent.settle()
    [item] = consent.auditor("GET", "/api/v1/ledger/erasure-report")["withdrawals"]
    assert (item["confirmed"], item["responses_erased"]) == (True, 1)
    assert [p["after_withdrawal"] for p in item["processing"]] == [False]
    assert [e["response_id"] for e in item["erasures"]] == ["r_7"]
