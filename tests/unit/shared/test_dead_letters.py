"""Malformed events go to <topic>.dlq and the consumer keeps going."""

import json

from shared.events import Envelope
from shared.in_process_bus import InProcessBus


def valid(i: int) -> Envelope:
    return Envelope(
        type="response.erased",
        key="c",
        producer="test",
        payload={
            "response_id": f"r{i}",
            "consultation_id": "c",
            "pseudonym": "p",
            "reason": "withdrawal",
            "erased_at": "2026-01-01T00:00:00Z",
        },
    )


def test_malformed_events_are_dead_lettered_and_the_rest_delivered():
    bus = InProcessBus()
    seen = []
    bus.subscribe(["responses.events"], lambda e: seen.append(e.payload["response_id"]))
    bus.publish("responses.events", valid(1))
    bus.publish_raw("responses.events", b"{not json")
    bus.publish_raw(
        "responses.events",
        json.dumps({**valid(2).to_dict(), "payload": {"free_text": "x"}}).encode(),
    )
    bus.publish("responses.events", valid(3))
    bus.deliver()
    assert seen == ["r1", "r3"]
    assert len(bus.topics["responses.events.dlq"]) == 2
    assert bus.topics["responses.events.dlq"][0] == b"{not json"
