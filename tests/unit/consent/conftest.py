"""Fixtures shared by the consent domain tests: keys and realistic ledgers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.consent import ledger, tokens

BASE_TIME = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
PURPOSES = ["participate", "aggregate_reporting", "quote_anonymised", "follow_up_contact", "share_with_partners"]


def ledger_data(i: int, at: str) -> tuple[str, dict]:
    """A plausible entry (kind, data) for position i: mostly grants, some of every other kind."""
    pseudonym, grant_id, consultation = f"p-{i // 3:06x}", f"g-{i // 3:06x}", f"c-{i % 7}"
    choice = i % 20
    if choice == 0:
        return "consent_text.published", {"consultation_id": consultation, "text_version": 1 + i % 4,
                                          "language": ["en", "fr", "cy"][i % 3], "text_sha256": f"{i:064x}"}
    if choice == 1:
        return "release.signed_off", {"release_id": f"r-{i}", "consultation_id": consultation, "snapshot": i,
                                      "signed_off_by": f"staff-{i % 5}", "digest": f"{i * 31:064x}"}
    if choice == 2:
        return "response.erased", {"response_id": f"resp-{i}", "consultation_id": consultation,
                                   "pseudonym": pseudonym, "reason": "withdrawal", "erased_at": at}
    if choice in (3, 9, 15):
        return "consent.withdrawn", {"grant_id": grant_id, "pseudonym": pseudonym, "consultation_id": consultation,
                                     "purposes": ["quote_anonymised"], "remaining": ["participate"], "all": False,
                                     "withdrawn_at": at}
    return "consent.granted", {"grant_id": grant_id, "pseudonym": pseudonym, "consultation_id": consultation,
                               "purposes": PURPOSES[: 1 + i % 5], "text_version": 1 + i % 2,
                               "language": ["en", "fr", "cy"][i % 3], "text_sha256": f"{i * 7:064x}",
                               "collection_method": ["self", "guardian", "facilitator"][i % 3],
                               "guardian": i % 3 == 1, "granted_at": at}


def build_entries(n: int) -> list[dict]:
    entries, prev = [], None
    for i in range(n):
        at = BASE_TIME + timedelta(seconds=37 * i)
        kind, data = ledger_data(i, ledger.format_timestamp(at))
        prev = ledger.make_entry(prev, kind, data, at)
        entries.append(prev)
    return entries


@pytest.fixture(scope="session")
def signing_key():
    return tokens.generate_signing_key()


@pytest.fixture(scope="session")
def other_key():
    return tokens.generate_signing_key()
