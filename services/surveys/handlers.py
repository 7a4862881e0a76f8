"""Event handlers of the surveys service."""

from __future__ import annotations

from typing import Any

from services.surveys import erasure, invitations
from shared.events import Envelope


def erase_on_withdrawal(event: Envelope, ctx: Any) -> None:
    """consent.withdrawn: erase or restrict, revoke quotes, and confirm a full withdrawal (once per event)."""
    erasure.apply_withdrawal(event.payload, ctx.settings.topics.responses, event.trace_id, event.id)


def note_consent_text(event: Envelope, ctx: Any) -> None:
    """consent_text.published: that language no longer holds back publishing the consultation."""
    invitations.note_consent_text(event.payload["consultation_id"], event.payload["language"])


HANDLERS = {
    "consent.withdrawn": erase_on_withdrawal,
    "consent_text.published": note_consent_text,
}
