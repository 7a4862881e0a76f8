"""The consent ledger records one sign-off per snapshot of a consultation."""

from __future__ import annotations

import pytest

from services.consent import handlers
from shared.errors import Conflict
from shared.events import Envelope, isoformat, utcnow
from tests.unit.consent.platform_auditing import platform_auditor  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("platform_auditor")


def signed_off(cid: str, snapshot: int, digest: str, release_id: str) -> Envelope:
    return Envelope(
        type="release.published",
        key=cid,
        producer="aggregation",
        payload={
            "release_id": release_id,
            "consultation_id": cid,
            "snapshot": snapshot,
            "signed_off_by": "u_9",
            "released_at": isoformat(utcnow()),
            "digest": digest,
        },
    )


def sign_offs(consent) -> list[tuple[int, str]]:
    return [
        (e["data"]["snapshot"], e["data"]["digest"])
        for e in consent.ledger()
        if e["kind"] == "release.signed_off"
    ]


def test_a_second_sign_off_of_a_snapshot_is_refused_unless_it_is_the_same(consent):
    cid = consent.open_consultation()
    consent.bus.publish(consent.topics.releases, signed_off(cid, 1, "ab" * 32, "rel_1"))
    consent.settle()
    # The same snapshot again, as a release service that lost its releases would announce it.
    same = signed_off(cid, 1, "ab" * 32, "rel_1b")
    other = signed_off(cid, 1, "cd" * 32, "rel_2")
    consent.bus.publish(consent.topics.releases, same)
    consent.bus.publish(consent.topics.releases, other)
    consent.bus.publish(consent.topics.releases, signed_off(cid, 2, "cd" * 32, "rel_3"))
    consent.settle()
    assert sign_offs(consent) == [(1, "ab" * 32), (2, "cd" * 32)]
    (letter,) = consent.runtime.dead_letters.letters()
    assert letter["_id"] == other.id and letter["kind"] == "rejected"
    assert "already signed off" in letter["reason"]
    with pytest.raises(Conflict):
        handlers.record_sign_off(other, consent.context)
    handlers.record_sign_off(same, consent.context)  # idempotent for the same digest
    assert sign_offs(consent) == [(1, "ab" * 32), (2, "cd" * 32)]
