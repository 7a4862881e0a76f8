"""Aggregation service: consented projections, disclosure control, releases."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from services.aggregation.api import insights, releases_blp
from services.aggregation.cli import aggregation_cli
from services.aggregation.handlers import BATCH_HANDLERS, FRESHNESS, HANDLERS
from services.aggregation.models import Release
from services.aggregation.repository import migrate_to_keys
from shared.auth import install_principal
from shared.bus import Bus
from shared.metrics import metrics_of
from shared.runtime import ServiceRuntime, create_service_app
from shared.settings import Settings


@dataclass
class AggregationContext:
    settings: Settings


def create_app(settings: Settings | None = None, bus: Bus | None = None) -> Flask:
    settings = settings or Settings.from_env("aggregation")
    topics = settings.topics
    runtime = ServiceRuntime(
        settings,
        handlers=HANDLERS,
        batch_handlers=BATCH_HANDLERS,
        subscriptions=[topics.surveys, topics.responses, topics.consent],
        outbox_models=[Release],
        context=AggregationContext(settings),
        bus=bus,
    )
    app = create_service_app(
        settings, title="Voices aggregation", blueprints=[insights, releases_blp], runtime=runtime
    )
    install_principal(app, settings.require("INTERNAL_TOKEN").encode())
    metrics = metrics_of(app)
    if metrics is not None:
        metrics.register(FRESHNESS)  # also in the default registry; here so /metrics shows it
    app.cli.add_command(aggregation_cli)
    # Once, for a projection stored before per-participant keys; a no-op read afterwards.
    migrate_to_keys()
    return app
