"""Event handlers of the surveys service."""
from __future__ import annotations

from typing import Any

from services.surveys import intake
from shared.events import Envelope


def erase_on_withdrawal(event: Envelope, ctx: Any) -> None:
    """consent.withdrawn: erase or restrict, revoke quotes, and confirm a full withdrawal (once per event)."""
    intake.apply_withdrawal(event.payload, ctx.settings.topics.responses, event.trace_id, event.id)


HANDLERS = {
    "consent.withdrawn": erase_on_withdrawal,
}
