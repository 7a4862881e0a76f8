"""Surveys service: consultations, survey versions, invitations, response intake, erasure."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import timedelta

import click
from flask import Flask

from services.surveys import erasure, survey_format
from services.surveys.api import consultations, participation
from services.surveys.consultations import SurveysKeys
from services.surveys.handlers import HANDLERS
from services.surveys.models import (
    ApprovedQuote,
    Consultation,
    ContactAccess,
    Erasure,
    Response,
    Withdrawal,
)
from services.surveys.resume import DEFAULT_TTL
from shared.auth import install_principal
from shared.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app
from shared.settings import Settings


@dataclass
class SurveysContext:
    settings: Settings
    keys: SurveysKeys
    # How long saved progress stays on the server (VOICES_RESUME_TTL_HOURS).
    resume_ttl: timedelta = DEFAULT_TTL


def load_keys(settings: Settings) -> SurveysKeys:
    return SurveysKeys(
        code_pepper=base64.b64decode(settings.require("CODE_PEPPER")),
        key_wrapping_key=base64.b64decode(settings.require("DATA_KEY_WRAPPING_KEY")),
        consent_public_key_pem=base64.b64decode(settings.require("CONSENT_PUBLIC_KEY")),
    )


def resume_ttl(settings: Settings) -> timedelta:
    """VOICES_RESUME_TTL_HOURS (default 72) as a duration; a bad value stops the service at start."""
    raw = settings.get("RESUME_TTL_HOURS")
    if raw is None or raw == "":
        return DEFAULT_TTL
    try:
        hours = float(raw)
    except ValueError:
        raise RuntimeError(f"RESUME_TTL_HOURS must be a number of hours, not {raw!r}") from None
    if not 0 < hours <= 24 * 90:
        raise RuntimeError("RESUME_TTL_HOURS must be more than 0 and at most 2160 (90 days)")
    return timedelta(hours=hours)


def register_commands(app: Flask, settings: Settings) -> None:
    @app.cli.command("erase-expired")
    def erase_expired_command() -> None:
        """Erase raw responses of consultations closed longer ago than their retention period.

        Aggregates stay. The response.erased events are stored with the
        erasures; the running service's outbox relay publishes them.
        """
        report = erasure.erase_expired(settings.topics.responses, uuid.uuid4().hex)
        if not report:
            click.echo("Nothing to erase.")
        for consultation_id, count in sorted(report.items()):
            click.echo(f"{consultation_id}: {count} response{'s' if count != 1 else ''} erased")


def create_app(settings: Settings | None = None, bus: Bus | None = None) -> Flask:
    settings = settings or Settings.from_env("surveys")
    context = SurveysContext(settings, load_keys(settings), resume_ttl(settings))
    runtime = ServiceRuntime(
        settings,
        handlers=HANDLERS,
        subscriptions=[settings.topics.consent],
        outbox_models=[Consultation, Response, Erasure, Withdrawal, ApprovedQuote, ContactAccess],
        context=context,
        bus=bus,
    )
    app = create_service_app(
        settings, title="Voices surveys", blueprints=[consultations, participation], runtime=runtime
    )
    install_principal(app, settings.require("INTERNAL_TOKEN").encode())
    register_commands(app, settings)
    # The survey format is checked by `questionnaire`, not by marshmallow: document it by hand.
    spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec
    for name, schema in survey_format.component_schemas().items():
        spec.components.schema(name, schema)
    return app
