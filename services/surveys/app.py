"""Surveys service: consultations, survey versions, invitations, response intake, erasure."""
from __future__ import annotations

import base64
from dataclasses import dataclass

from flask import Flask

from services.surveys.api import consultations, participation
from services.surveys.consultations import SurveysKeys
from services.surveys.handlers import HANDLERS
from services.surveys.models import Consultation, Erasure, Response
from shared.auth import install_principal
from shared.bus import Bus
from shared.runtime import ServiceRuntime, create_service_app
from shared.settings import Settings


@dataclass
class SurveysContext:
    settings: Settings
    keys: SurveysKeys


def load_keys(settings: Settings) -> SurveysKeys:
    return SurveysKeys(
        code_pepper=base64.b64decode(settings.require("CODE_PEPPER")),
        key_wrapping_key=base64.b64decode(settings.require("DATA_KEY_WRAPPING_KEY")),
        consent_public_key_pem=base64.b64decode(settings.require("CONSENT_PUBLIC_KEY")),
    )


def create_app(settings: Settings | None = None, bus: Bus | None = None) -> Flask:
    settings = settings or Settings.from_env("surveys")
    context = SurveysContext(settings, load_keys(settings))
    runtime = ServiceRuntime(settings, handlers=HANDLERS, subscriptions=[settings.topics.consent],
                             outbox_models=[Consultation, Response, Erasure], context=context, bus=bus)
    app = create_service_app(settings, title="Voices surveys", blueprints=[consultations, participation],
                             runtime=runtime)
    install_principal(app, settings.require("INTERNAL_TOKEN").encode())
    return app
