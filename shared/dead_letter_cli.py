"""`dlq list`, `dlq redrive` and `dlq discard`: a service's dead letters on the command line."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup

from shared.bus import Dispatch
from shared.dead_letters import MongoDeadLetters


def dead_letter_commands(store: MongoDeadLetters, dispatch: Dispatch) -> AppGroup:
    """The `dlq` command group over a service's dead-letter store; redriven letters go to
    `dispatch`, the service's event handlers."""
    commands = AppGroup("dlq", help="Events this service could not accept (dead letters).")

    @commands.command("list")
    @click.option("--all", "every", is_flag=True, help="Also list redriven and discarded letters.")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    def dlq_list(every: bool, as_json: bool) -> None:
        """List the dead letters, oldest first (open ones only unless --all)."""
        for doc in store.letters(None if every else "open"):
            row = {
                "id": str(doc["_id"]),
                "state": doc.get("state"),
                "kind": doc.get("kind"),
                "event_type": doc.get("event_type"),
                "consultation_id": doc.get("consultation_id"),
                "source": f"{doc.get('topic')}/{doc.get('partition')}/{doc.get('offset')}",
                "deliveries": doc.get("deliveries"),
                "blocks_releases": bool(doc.get("blocks_releases")),
                "first_at": doc["first_at"].isoformat() if doc.get("first_at") else None,
                "reason": doc.get("reason"),
            }
            if as_json:
                click.echo(json.dumps(row, ensure_ascii=False))
            else:
                click.echo(
                    f"{row['id']}  {row['state']}  {row['kind']}  {row['event_type'] or '-'}  "
                    f"{row['source']}  {'BLOCKS RELEASES  ' if row['blocks_releases'] else ''}"
                    f"{row['reason']}"
                )

    @commands.command("redrive")
    @click.argument("ids", nargs=-1)
    @click.option("--all", "every", is_flag=True, help="Re-drive every open dead letter.")
    def dlq_redrive(ids: tuple[str, ...], every: bool) -> None:
        """Hand dead letters to this service's handlers again (after the cause was fixed).

        Idempotent: handled letters are marked redriven and not handed over again, and an event
        handled before is not applied twice. Exits with 1 when any letter still fails.
        """
        if not ids and not every:
            raise click.UsageError("name the dead letters to re-drive, or pass --all")

        def show(letter_id: str, outcome: str, reason: str) -> None:
            click.echo(f"{letter_id}  {outcome}{'  ' + reason if reason else ''}")

        counts = store.redrive(dispatch, list(ids) if ids else None, on_result=show)
        click.echo(
            f"redriven {counts['redriven']}, still failing {counts['still_failing']}, "
            f"skipped {counts['skipped']}",
            err=True,
        )
        if counts["still_failing"]:
            sys.exit(1)

    @commands.command("discard")
    @click.argument("letter_id")
    @click.option("--reason", required=True, help="Why it may be dropped (kept with the letter).")
    def dlq_discard(letter_id: str, reason: str) -> None:
        """Drop one open dead letter after checking it can never be applied (junk, a test record)."""
        if not store.resolve(letter_id, "discarded", reason):
            raise click.ClickException(f"no open dead letter {letter_id}")
        click.echo(f"{letter_id}  discarded")

    return commands
