"""`dlq list`, `dlq redrive` and `dlq discard` over a service's dead-letter store."""

from __future__ import annotations

import json

import mongomock
from flask import Flask

from shared.dead_letter_cli import dead_letter_commands
from shared.dead_letters import MongoDeadLetters
from shared.delivery import DeadLetter, Rejection
from shared.events import Envelope
from tests.unit.shared.envelopes import erased

TOPIC = "responses.events"


def cli_over(handled: list[str], refused: set[str]):
    """A store holding two dead letters (r1, r2), and a runner for the `dlq` commands over it
    whose handler refuses the responses named in `refused`."""
    store = MongoDeadLetters(mongomock.MongoClient()["voices_test"], "consent.events")
    events = [erased(1), erased(2)]
    for offset, event in enumerate(events):
        value = json.dumps(event.to_dict()).encode()
        store.record(DeadLetter.of(TOPIC, 0, offset, "c_1", value, Rejection("rejected", "no")))

    def dispatch(event: Envelope) -> None:
        if event.payload["response_id"] in refused:
            raise ValueError("still broken")
        handled.append(event.payload["response_id"])

    app = Flask(__name__)
    app.cli.add_command(dead_letter_commands(store, dispatch))
    return app.test_cli_runner(), [event.id for event in events]


def test_list_redrive_and_discard_act_on_the_store_they_were_given():
    handled: list[str] = []
    runner, (first, second) = cli_over(handled, refused={"r2"})

    listed = runner.invoke(args=["dlq", "list", "--json"])
    assert listed.exit_code == 0
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == [first, second]

    redriven = runner.invoke(args=["dlq", "redrive", "--all"])
    assert redriven.exit_code == 1  # one letter still fails
    assert handled == ["r1"] and "redriven 1, still failing 1" in redriven.output

    discarded = runner.invoke(args=["dlq", "discard", second, "--reason", "checked: test data"])
    assert discarded.exit_code == 0 and f"{second}  discarded" in discarded.output
    assert runner.invoke(args=["dlq", "list"]).output == ""
    every = runner.invoke(args=["dlq", "list", "--all", "--json"]).output.splitlines()
    assert {json.loads(line)["state"] for line in every} == {"redriven", "discarded"}


def test_bad_invocations_are_refused_and_change_nothing():
    handled: list[str] = []
    runner, (first, _second) = cli_over(handled, refused=set())

    nothing_named = runner.invoke(args=["dlq", "redrive"])
    assert nothing_named.exit_code == 2 and "--all" in nothing_named.output
    unknown = runner.invoke(args=["dlq", "discard", "no-such-letter", "--reason", "x"])
    assert unknown.exit_code == 1 and "no open dead letter no-such-letter" in unknown.output
    without_reason = runner.invoke(args=["dlq", "discard", first])
    assert without_reason.exit_code == 2 and "--reason" in without_reason.output
    assert handled == [] and len(runner.invoke(args=["dlq", "list"]).output.splitlines()) == 2
