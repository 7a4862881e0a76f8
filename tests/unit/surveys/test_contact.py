"""Follow-up contact details: only with consent to be contacted, sealed under the participant's key, gone on
withdrawal, erasure and retention; organisers of the consultation only, every read recorded without the details."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from services.surveys import erasure, participants
from services.surveys.models import Consultation, ContactAccess, FollowUpContact
from shared.events import utcnow
from tests.unit.surveys.conftest import ALL_PURPOSES

WITH_CONTACT = [*ALL_PURPOSES, "follow_up_contact"]
NUMBER = "+44 7700 900123"
DETAILS = {
    "method": "phone",
    "value": f"  {NUMBER} ",
    "best_time": "weekday mornings",
    "safe_to_leave_message": False,
}


@pytest.fixture
def cid(surveys):
    return surveys.open_consultation(purposes=WITH_CONTACT)


def joined(surveys, cid, purposes=WITH_CONTACT) -> tuple[str, str]:
    """A new participant of `cid`: (pseudonym, consent token)."""
    pseudonym = surveys.participant(cid)
    return pseudonym, surveys.token(pseudonym, cid, purposes=purposes)


def put(surveys, token, expect=200, **details):
    return surveys.call(
        "PUT", "/api/v1/contact", expect, json={"consent_token": token, **DETAILS, **details}
    )


def delete(surveys, token, expect=204):
    response = surveys.client.delete("/api/v1/contact", json={"consent_token": token})
    assert response.status_code == expect, response.get_data(as_text=True)


def contacts(surveys, cid, expect=200, organisation_id="org_a", query=""):
    return surveys.organiser(
        "GET", f"/api/v1/consultations/{cid}/follow-up-contacts{query}", expect, organisation_id
    )


def access_events(surveys):
    return surveys.events(surveys.settings.topics.surveys, "contacts.accessed")


def test_contact_details_are_stored_replaced_and_deleted(surveys, cid):
    pseudonym, token = joined(surveys, cid)
    saved = put(surveys, token)
    assert (saved["method"], saved["safe_to_leave_message"]) == ("phone", False)
    [item] = contacts(surveys, cid)["items"]
    assert item == {
        "pseudonym": pseudonym,
        "method": "phone",
        "value": NUMBER,
        "best_time": "weekday mornings",
        "safe_to_leave_message": False,
        "given_at": item["given_at"],
    }

    put(
        surveys,
        token,
        method="email",
        value="me@example.org",
        best_time=None,
        safe_to_leave_message=True,
    )
    page = contacts(surveys, cid)
    assert page["total"] == 1
    assert [
        (i["method"], i["value"], i["best_time"], i["safe_to_leave_message"]) for i in page["items"]
    ] == [("email", "me@example.org", None, True)]

    delete(surveys, token)
    delete(surveys, token)  # again: nothing left is fine
    assert contacts(surveys, cid)["items"] == [] and FollowUpContact.objects.count() == 0


def test_stored_details_are_ciphertext_only_and_no_event_carries_them(surveys, cid):
    _, token = joined(surveys, cid)
    put(surveys, token, best_time="after 6pm, ask for Amal")
    stored = json.dumps(surveys.snapshot(), default=str)
    # Whole values only: a short digit run like "7700" turns up in hex hashes by chance.
    for plaintext in (NUMBER, NUMBER.replace(" ", ""), "after 6pm", "Amal", '"phone"'):
        assert plaintext not in stored
    [document] = surveys.runtime.db["follow_up_contacts"].find()
    assert document["ciphertext"].startswith("v1.")
    contacts(surveys, cid)
    published = json.dumps(
        [
            e.to_dict()
            for topic in surveys.settings.topics.__dict__.values()
            if isinstance(topic, str)
            for e in surveys.events(topic)
        ]
    )
    assert (
        NUMBER not in published
        and NUMBER.replace(" ", "") not in published
        and "Amal" not in published
    )


def test_without_consent_to_be_contacted_nothing_is_stored(surveys, cid, unchanged):
    _, token = joined(surveys, cid, purposes=ALL_PURPOSES)
    with unchanged():
        problem = put(surveys, token, expect=403)
    assert "consent to be contacted" in problem["detail"]


def test_withdrawing_contact_consent_deletes_the_details_and_refuses_new_ones(
    surveys, cid, unchanged
):
    pseudonym, token = joined(surveys, cid)
    _, other_token = joined(surveys, cid)
    put(surveys, token)
    put(surveys, other_token, value="+1 555 0100 22")
    surveys.withdraw(pseudonym, cid, purposes=["follow_up_contact"], everything=False)
    surveys.withdraw(
        pseudonym, cid, purposes=["follow_up_contact"], everything=False
    )  # redelivered
    assert [i["value"] for i in contacts(surveys, cid)["items"]] == ["+1 555 0100 22"]
    with unchanged():
        put(surveys, token, expect=403)


def test_a_withdrawal_before_any_contact_refuses_it(surveys, cid, unchanged):
    pseudonym, token = joined(surveys, cid)
    surveys.withdraw(pseudonym, cid, purposes=["follow_up_contact"], everything=False)
    with unchanged():
        put(surveys, token, expect=403)
    everything, token_all = joined(surveys, cid)
    surveys.withdraw(everything, cid)
    put(surveys, token_all, expect=403)
    assert FollowUpContact.objects.count() == 0


def test_a_withdrawal_landing_while_the_details_are_written_removes_them(surveys, cid, monkeypatch):
    pseudonym, token = joined(surveys, cid)
    real_admit = participants.admit

    def admit_then_withdraw(*args, **kwargs):
        admission = real_admit(*args, **kwargs)
        surveys.withdraw(pseudonym, cid, purposes=["follow_up_contact"], everything=False)
        return admission

    monkeypatch.setattr(participants, "admit", admit_then_withdraw)
    put(surveys, token, expect=403)
    assert FollowUpContact.objects.count() == 0


def test_full_withdrawal_and_retention_delete_the_details(surveys, cid):
    pseudonym, token = joined(surveys, cid)
    put(surveys, token)
    surveys.withdraw(pseudonym, cid)  # everything
    assert FollowUpContact.objects.count() == 0

    _, token = joined(surveys, cid)
    put(surveys, token)
    surveys.organiser("POST", f"/api/v1/consultations/{cid}/status", 200, json={"status": "closed"})
    Consultation.objects(consultation_id=cid).update_one(
        set__closed_at=utcnow() - timedelta(days=400)
    )
    erasure.erase_expired(surveys.settings.topics.responses, "trace")
    assert FollowUpContact.objects.count() == 0


def test_other_organisations_and_other_roles_see_nothing(surveys, cid):
    _, token = joined(surveys, cid)
    put(surveys, token)
    contacts(surveys, cid, expect=404, organisation_id="org_b")
    surveys.call(
        "GET",
        f"/api/v1/consultations/{cid}/follow-up-contacts",
        403,
        headers=surveys.staff(role="policy"),
    )
    assert access_events(surveys) == [] and ContactAccess.objects.count() == 0


def test_each_organiser_read_is_recorded_without_contact_data(surveys, cid):
    for _ in range(3):
        put(surveys, joined(surveys, cid)[1])
    first = contacts(surveys, cid, query="?page=1&per_page=2")
    second = contacts(surveys, cid, query="?page=2&per_page=2")
    assert (first["total"], len(first["items"]), len(second["items"])) == (3, 2, 1)
    events = access_events(surveys)
    assert [e.payload["count"] for e in events] == [2, 1]
    assert events[0].payload.keys() == {
        "consultation_id",
        "organisation_id",
        "accessed_by",
        "count",
        "accessed_at",
    }
    assert (
        events[0].payload["consultation_id"],
        events[0].payload["organisation_id"],
        events[0].payload["accessed_by"],
    ) == (cid, "org_a", "u_1")
    published = json.dumps([e.to_dict() for e in events])
    assert NUMBER not in published and NUMBER.replace(" ", "") not in published


@pytest.mark.parametrize(
    "change, field",
    [
        ({"method": "pigeon"}, "method"),
        ({"method": "email", "value": "not-an-address"}, "value"),
        ({"method": "phone", "value": "call me"}, "value"),
        ({"method": "whatsapp", "value": "+12"}, "value"),
        ({"method": "signal", "value": "no spaces allowed"}, "value"),
        ({"value": "   "}, "value"),
        ({"value": "9" * 201, "method": "other"}, "value"),
        ({"best_time": "x" * 201}, "best_time"),
        ({"safe_to_leave_message": "maybe"}, "safe_to_leave_message"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
    surveys, cid, unchanged, change, field
):
    _, token = joined(surveys, cid)
    with unchanged():
        problem = put(surveys, token, expect=422, **change)
    assert field in json.dumps(problem["errors"])


def test_other_methods_accept_loose_shapes(surveys, cid):
    _, token = joined(surveys, cid)
    for method, value in (
        ("signal", "amal.42"),
        ("signal", "+33 6 12 34 56 78"),
        ("other", "ask at the centre"),
    ):
        put(surveys, token, method=method, value=value)
        assert contacts(surveys, cid)["items"][0]["value"] == value
