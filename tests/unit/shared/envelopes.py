"""Events the shared modules' tests send: an erasure is a small valid event with a response id."""

from __future__ import annotations

from shared.events import Envelope


def erased(i: int, cid: str = "c_1") -> Envelope:
    """The erasure of response `r<i>` of consultation `cid`."""
    return Envelope(
        type="response.erased",
        key=cid,
        producer="test",
        payload={
            "response_id": f"r{i}",
            "consultation_id": cid,
            "pseudonym": f"p{i}",
            "reason": "withdrawal",
            "erased_at": "2026-01-01T00:00:00Z",
        },
    )
