"""Malformed events go to <topic>.dlq and the consumer keeps going."""

import json

from shared.in_process_bus import InProcessBus
from tests.unit.shared.envelopes import erased


def test_malformed_events_are_dead_lettered_and_the_rest_delivered():
    bus = InProcessBus()
    seen = []
    bus.subscribe(["responses.events"], lambda e: seen.append(e.payload["response_id"]))
    bus.publish("responses.events", erased(1))
    bus.publish_raw("responses.events", b"{not json")
    bus.publish_raw(
        "responses.events",
        json.dumps({**erased(2).to_dict(), "payload": {"free_text": "x"}}).encode(),
    )
    bus.publish("responses.events", erased(3))
    bus.deliver()
    assert seen == ["r1", "r3"]
    assert len(bus.topics["responses.events.dlq"]) == 2
    assert bus.topics["responses.events.dlq"][0] == b"{not json"
