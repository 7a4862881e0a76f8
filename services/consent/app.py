"""Consent service: texts, grants, tokens, receipts, withdrawals and the verifiable ledger."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask

from services.consent import ledger_store, tokens
from services.consent.api import audit, consent
from services.consent.handlers import HANDLERS
from services.consent.ledger_store import LedgerTree
from services.consent.models import ConsentText, Grant
from shared.auth import install_principal
from shared.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app
from shared.settings import Settings

log = logging.getLogger("voices.consent")


@dataclass
class ConsentContext:
    settings: Settings
    signing_key: Any
    code_pepper: bytes
    token_ttl_s: int
    checkpoint_every: int
    consultation_wait_s: (
        float  # how long organiser calls wait for a just-created consultation to arrive
    )
    ledger_tree: LedgerTree  # this process's Merkle tree over the ledger, extended as it grows


def create_app(settings: Settings | None = None, bus: Bus | None = None) -> Flask:
    settings = settings or Settings.from_env("consent")
    context = ConsentContext(
        settings=settings,
        signing_key=tokens.load_private_key(
            base64.b64decode(settings.require("CONSENT_SIGNING_KEY"))
        ),
        code_pepper=base64.b64decode(settings.require("CODE_PEPPER")),
        token_ttl_s=int(settings.get("CONSENT_TOKEN_TTL_S", "86400")),
        checkpoint_every=int(settings.get("LEDGER_CHECKPOINT_EVERY", "100")),
        # Without a background consumer (in-process tests) nothing can arrive while a request waits.
        consultation_wait_s=float(settings.get("CONSULTATION_WAIT_S", "3"))
        if settings.run_background
        else 0.0,
        ledger_tree=LedgerTree(),
    )
    topics = settings.topics
    runtime = ServiceRuntime(
        settings,
        handlers=HANDLERS,
        subscriptions=[topics.surveys, topics.consent, topics.responses, topics.releases],
        outbox_models=[ConsentText, Grant],
        context=context,
        bus=bus,
    )
    app = create_service_app(
        settings, title="Voices consent", blueprints=[consent, audit], runtime=runtime
    )
    install_principal(app, settings.require("INTERNAL_TOKEN").encode())
    if ledger_store.needs_key_migration():
        # A ledger written before entries were keyed by string: re-key it before serving.
        log.warning("re-keying the consent ledger's entries (once)")
        log.warning("re-keyed %d ledger entries", ledger_store.migrate_keys())
    return app
