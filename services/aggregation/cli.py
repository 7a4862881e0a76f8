"""Flask CLI commands of the aggregation service: `flask --app services.aggregation.app aggregation rebuild`."""

from __future__ import annotations

import json
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup

from services.aggregation.models import ContributionDocument
from services.aggregation.rebuild import TopicsFromBeginning, clear_projection, replay
from shared.runtime import MongoOffsetStore, current_runtime

aggregation_cli = AppGroup("aggregation", help="Aggregation maintenance.")


@aggregation_cli.command("rebuild")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--show",
    "show",
    multiple=True,
    metavar="CONSULTATION_ID",
    help="Print the rebuilt count of these consultations as JSON lines on stdout.",
)
def rebuild_command(yes: bool, show: tuple[str, ...]) -> None:
    """Drop the projection and replay every subscribed topic from the beginning.

    Stop the aggregation service's consumers first. Releases and privacy budgets are kept.
    """
    runtime = current_runtime(current_app)
    if not yes:
        click.confirm(
            "This drops the projection and replays all events. Are the consumers stopped?",
            abort=True,
            err=True,
        )
    group = runtime.settings.consumer_group
    started = time.perf_counter()
    source = TopicsFromBeginning(runtime.settings.kafka, runtime.subscriptions)
    try:
        clear_projection(runtime.db, group)
        with click.progressbar(length=source.total, label="replaying", file=sys.stderr) as bar:
            report = replay(
                source,
                runtime.dispatcher,
                offsets=MongoOffsetStore(runtime.db, group),
                on_record=lambda: bar.update(1),
                dead_letters=runtime.dead_letters,
            )
    finally:
        source.close()
    click.echo(
        f"rebuilt from {report.handled} events ({report.invalid} invalid and "
        f"{report.rejected} rejected skipped, see `dlq list`) "
        f"in {time.perf_counter() - started:.1f}s",
        err=True,
    )
    for consultation_id in show:
        click.echo(
            json.dumps(
                {
                    "consultation_id": consultation_id,
                    "responses_counted": ContributionDocument.objects(
                        consultation_id=consultation_id
                    ).count(),
                }
            )
        )
