"""Event handlers of the surveys service."""
from __future__ import annotations

from typing import Any

from services.surveys import intake
from shared.events import Envelope


def erase_on_withdrawal(event: Envelope, ctx: Any) -> None:
    intake.apply_withdrawal(event.payload, ctx.settings.topics.responses, event.trace_id)


HANDLERS = {
    "consent.withdrawn": erase_on_withdrawal,
}
