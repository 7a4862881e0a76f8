"""contacts.accessed: every organiser read of follow-up contact details becomes a ledger entry auditors can verify."""

from __future__ import annotations

import json

import pytest

from services.consent import handlers, verify
from shared.events import Envelope, isoformat, utcnow
from tests.unit.consent.platform_auditing import platform_auditor, platform_auditor_headers  # noqa: F401

pytestmark = pytest.mark.usefixtures("platform_auditor")


def accessed(consent, cid: str, count: int, event_id: str | None = None) -> Envelope:
    """A contacts.accessed event as the surveys service publishes it, delivered to the consent service."""
    event = Envelope(
        type="contacts.accessed",
        key=cid,
        producer="surveys",
        payload={
            "consultation_id": cid,
            "organisation_id": "org_a",
            "accessed_by": "acct_reader",
            "count": count,
            "accessed_at": isoformat(utcnow()),
        },
        **({"id": event_id} if event_id else {}),
    )
    consent.bus.publish(consent.topics.surveys, event)
    consent.settle()
    return event


def test_a_contacts_access_is_appended_once_and_the_export_verifies(consent):
    cid = consent.open_consultation()
    consent.grant(cid, "p_juliet")
    consent.settle()
    event = accessed(consent, cid, 3)
    accessed(consent, cid, 3, event_id=event.id)  # redelivered: still one entry
    handlers.record_contacts_access(event, consent.context)  # straight into the handler as well

    [entry] = [e for e in consent.ledger() if e["kind"] == "contacts.accessed"]
    assert entry["data"] == {
        "consultation_id": cid,
        "organisation_id": "org_a",
        "accessed_by": "acct_reader",
        "count": 3,
        "accessed_at": event.payload["accessed_at"],
    }

    response = consent.client.get(
        "/api/v1/ledger/export", headers=platform_auditor_headers(consent)
    )
    lines = response.get_data().splitlines(keepends=True)
    report = verify.verify_export(
        lines, verify.load_public_keys(consent.public_key_pem().encode()), strict=True
    )
    assert report.ok, report.message()
    assert any(json.loads(line).get("kind") == "contacts.accessed" for line in lines)
