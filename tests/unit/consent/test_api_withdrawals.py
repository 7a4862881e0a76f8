"""Withdrawal with the receipt code through the consent API: partial, complete, repeated, and wrong codes."""

from __future__ import annotations

import pytest

from services.consent import grants
from services.consent.models import Grant
from tests.unit.consent.platform_auditing import platform_auditor  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("platform_auditor")


def _without_request_id(problem: dict) -> dict:
    return {k: v for k, v in problem.items() if k != "request_id"}


def test_withdrawing_one_purpose_then_everything_emits_one_event_each_and_keeps_the_receipt_current(
    consent,
):
    cid = consent.open_consultation()
    granted = consent.grant(
        cid, "p_echo", purposes=["participate", "aggregate_reporting", "quote_anonymised"]
    )
    code = granted["receipt_code"]
    partial = consent.withdraw(code, ["quote_anonymised"])
    assert (partial["withdrawn"], partial["remaining"], partial["all"], partial["changed"]) == (
        ["quote_anonymised"],
        ["participate", "aggregate_reporting"],
        False,
        True,
    )
    assert partial["receipt"]["consentStatus"] == "partially_withdrawn"
    everything = consent.withdraw(code)
    assert (everything["remaining"], everything["all"], everything["changed"]) == ([], True, True)
    first, second = consent.events("consent.withdrawn")
    assert first.key == second.key == "p_echo"
    assert (first.payload["purposes"], first.payload["all"]) == (["quote_anonymised"], False)
    assert (second.payload["purposes"], second.payload["all"]) == (
        ["participate", "aggregate_reporting"],
        True,
    )
    receipt = consent.lookup(code)
    assert receipt["consentStatus"] == "withdrawn"
    assert [e["eventType"] for e in receipt["events"]] == ["granted", "withdrawn", "withdrawn"]
    consent.settle()
    kinds = [e["kind"] for e in consent.ledger()]
    assert kinds.count("consent.withdrawn") == 2


def test_withdrawing_participate_withdraws_everything(consent):
    cid = consent.open_consultation()
    code = consent.grant(cid, purposes=["participate", "aggregate_reporting"])["receipt_code"]
    result = consent.withdraw(code, ["participate"])
    assert result["all"] is True and result["remaining"] == []
    assert consent.events("consent.withdrawn")[0].payload["purposes"] == [
        "participate",
        "aggregate_reporting",
    ]


def test_asking_again_changes_nothing_no_second_event_and_no_second_ledger_entry(consent):
    cid = consent.open_consultation()
    code = consent.grant(cid)["receipt_code"]
    consent.withdraw(code)
    consent.settle()
    ledger_before, events_before = consent.ledger(), consent.events("consent.withdrawn")
    stored_before = Grant.objects.get(
        receipt_hash=grants.receipt_code_hash(code, consent.context.code_pepper)
    )
    for purposes in (None, ["participate"], ["aggregate_reporting"]):
        again = consent.withdraw(code, purposes)
        assert (again["changed"], again["all"], again["remaining"]) == (False, True, [])
    consent.settle()
    assert consent.events("consent.withdrawn") == events_before and len(events_before) == 1
    assert consent.ledger() == ledger_before
    stored = Grant.objects.get(grant_id=stored_before.grant_id)
    assert stored.events == stored_before.events and not stored.pending_events


def test_a_wrong_code_is_404_and_says_nothing_about_whom_it_might_belong_to(consent, unchanged):
    cid = consent.open_consultation()
    code = consent.grant(cid, "p_foxtrot")["receipt_code"]
    unknown = grants.new_receipt_code()  # well formed, issued to nobody
    one_symbol_off = code[:-1] + ("0" if code[-1] != "0" else "1")
    with unchanged():
        answers = [
            consent.withdraw(c, expect=404)
            for c in (unknown, one_symbol_off, "not-a-code", "", "x" * 200, "🙂" * 28)
        ]
        answers += [consent.lookup(c, expect=404) for c in (unknown, "not-a-code", "")]
    bodies = [_without_request_id(a) for a in answers]
    assert all(body == bodies[0] for body in bodies), bodies
    assert "p_foxtrot" not in str(bodies) and cid not in str(bodies)
    assert consent.events("consent.withdrawn") == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"purposes": []}, "purposes"),
        ({"purposes": ["follow_up_contact"]}, "purposes"),  # never granted
        ({"purposes": ["sell_data"]}, "purposes"),
        ({"purposes": "participate"}, "purposes"),
        (
            {"reason": "changed my mind"},
            "reason",
        ),  # nothing beyond the code and the purposes is taken
    ],
)
def test_bad_withdrawals_are_refused_and_leave_consent_as_it_was(consent, unchanged, body, field):
    cid = consent.open_consultation()
    code = consent.grant(cid)["receipt_code"]
    consent.settle()
    with unchanged():
        problem = consent.call(
            "POST", "/api/v1/consent/withdrawals", 422, json={"receipt_code": code, **body}
        )
    assert field in problem["errors"]
    assert consent.lookup(code)["consentStatus"] == "active"


def test_a_missing_code_is_a_validation_error(consent):
    problem = consent.call("POST", "/api/v1/consent/withdrawals", 422, json={})
    assert "receipt_code" in problem["errors"]


def test_a_withdrawal_racing_another_applies_once(consent, monkeypatch):
    """Two requests read the grant before either writes: the compare-and-set lets one through."""
    from services.consent import consent_records

    cid = consent.open_consultation()
    code = consent.grant(cid)["receipt_code"]
    real_find = consent_records.find_by_receipt
    raced = []

    def find_then_race(*args):
        found = real_find(*args)
        if not raced:  # the other request writes between our read and our write
            raced.append(True)
            consent_records.withdraw(
                code, None, consent.context.code_pepper, consent.topics.consent, "t"
            )
        return found

    monkeypatch.setattr(consent_records, "find_by_receipt", find_then_race)
    result = consent.withdraw(code)
    assert result["changed"] is False and result["all"] is True
    assert len(consent.events("consent.withdrawn")) == 1
