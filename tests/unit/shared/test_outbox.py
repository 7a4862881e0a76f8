"""The outbox relay: a broker outage loses nothing, and everything goes out once it is back."""

import threading

import mongoengine as me
import pytest

from shared import mongo
from shared.bus import PublishFailed
from shared.events import Envelope
from shared.in_process_bus import InProcessBus
from shared.outbox import OutboxDocument, OutboxRelay
from shared.settings import Settings


class Order(OutboxDocument):
    meta = {"db_alias": "outbox-test", "collection": "orders"}
    name = me.StringField()


@pytest.fixture
def store():
    mongo.connect(
        Settings(service="outbox-test", mongodb_uri="mongomock://localhost/t"), alias="outbox-test"
    )
    yield
    me.disconnect(alias="outbox-test")


def stage_orders(count: int) -> list[str]:
    ids = []
    for i in range(count):
        order = Order(name=f"o{i}")
        event = order.stage(
            "orders.events",
            Envelope(
                type="response.erased",
                key=f"o{i}",
                producer="test",
                payload={
                    "response_id": f"r{i}",
                    "consultation_id": "c",
                    "pseudonym": "p",
                    "reason": "withdrawal",
                    "erased_at": "2026-01-01T00:00:00Z",
                },
            ),
        )
        order.save()
        ids.append(event.id)
    return ids


def test_broker_down_keeps_every_event_and_publishes_when_back(store):
    bus = InProcessBus()
    relay = OutboxRelay(bus, [Order])
    ids = stage_orders(5)
    bus.fail_publish = True
    with pytest.raises(PublishFailed):
        relay.relay_once()
    assert relay.backlog() == 5
    assert bus.topics["orders.events"] == []

    bus.fail_publish = False
    assert relay.relay_once() == 5
    assert relay.backlog() == 0
    assert [e.id for e in bus.events("orders.events")] == ids
    assert relay.relay_once() == 0  # nothing is sent twice once acknowledged


def test_a_failure_midway_keeps_what_was_not_acknowledged(store):
    class FlakyBus(InProcessBus):
        def publish(self, topic, event):
            if len(self.topics[topic]) == 2:
                self.fail_publish = True
            super().publish(topic, event)

    bus = FlakyBus()
    relay = OutboxRelay(bus, [Order])
    ids = stage_orders(4)
    with pytest.raises(PublishFailed):
        relay.relay_once()
    assert relay.backlog() == 2
    bus.fail_publish = False
    bus.__class__ = InProcessBus
    relay.relay_once()
    assert [e.id for e in bus.events("orders.events")] == ids


class CountingBus(InProcessBus):
    """Counts the waits for the broker; fails once `fail_after` events went out."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.waits = 0
        self.fail_after = fail_after

    def publish_many(self, messages):
        self.waits += 1
        super().publish_many(messages)

    def publish(self, topic, event):
        if self.fail_after is not None and len(self.topics[topic]) == self.fail_after:
            self.fail_publish = True
        super().publish(topic, event)


def test_events_stored_together_wait_for_the_broker_once(store):
    bus = CountingBus()
    relay = OutboxRelay(bus, [Order])
    relay.relay_stored()  # drain what earlier tests staged
    bus.waits = 0
    ids = stage_orders(5)
    assert relay.relay_stored() == 5
    assert bus.waits == 1
    assert [e.id for e in bus.events("orders.events")[-5:]] == ids


def test_a_failure_in_a_group_takes_off_only_what_was_acknowledged(store):
    bus = CountingBus()
    relay = OutboxRelay(bus, [Order])
    relay.relay_stored()
    already = len(bus.topics["orders.events"])
    bus.fail_after = already + 3
    ids = stage_orders(5)
    with pytest.raises(PublishFailed) as failed:
        relay.relay_stored()
    assert failed.value.acknowledged == 3
    assert relay.backlog() == 2  # the two not acknowledged are still stored
    bus.fail_publish, bus.fail_after = False, None
    assert relay.relay_stored() == 2  # first in line again, without a sweep
    assert [e.id for e in bus.events("orders.events")[already:]] == ids  # each once, in order


def test_running_in_its_thread_it_takes_off_what_it_sent_by_the_time_it_stops(store):
    published = threading.Event()

    class SignallingBus(InProcessBus):
        def publish(self, topic, event):
            super().publish(topic, event)
            if len(self.topics[topic]) >= 3:
                published.set()

    bus = SignallingBus()
    relay = OutboxRelay(bus, [Order], interval_s=0.05)
    relay.start()
    try:
        ids = stage_orders(3)
        relay.nudge()
        assert published.wait(10)
    finally:
        relay.stop()
    assert relay.backlog() == 0
    assert [e.id for e in bus.events("orders.events")][-3:] == ids
    assert len(bus.topics["orders.events"]) == len(set(bus.topics["orders.events"]))


def test_the_state_change_and_its_event_are_one_document(store):
    stage_orders(1)
    raw = Order._get_collection().find_one()
    assert raw["name"] == "o0"
    assert raw["pending_events"][0]["envelope"]["type"] == "response.erased"


def test_documents_stored_here_are_published_by_key_without_a_sweep(store):
    bus = InProcessBus()
    relay = OutboxRelay(bus, [Order])
    relay.relay_stored()  # drain what earlier tests staged
    ids = stage_orders(3)
    unsaved = Order(name="never saved")
    unsaved.stage(
        "orders.events",
        Envelope(
            type="response.erased",
            key="x",
            producer="test",
            payload={
                "response_id": "rx",
                "consultation_id": "c",
                "pseudonym": "p",
                "reason": "withdrawal",
                "erased_at": "2026-01-01T00:00:00Z",
            },
        ),
    )
    collection = Order._get_collection()
    find = collection.find
    filters = []

    def find_by_key_only(filter=None, *args, **kwargs):
        filters.append(filter)
        return find(filter, *args, **kwargs)

    # The fast path must not search the collection by anything but the key.
    collection.find = find_by_key_only
    try:
        assert relay.relay_stored() == 3
    finally:
        collection.find = find
    assert filters and all(set(f) == {"_id"} for f in filters), filters
    assert [e.id for e in bus.events("orders.events")] == ids
    assert relay.backlog() == 0
    assert relay.relay_stored() == 0 and relay.relay_once() == 0  # nothing twice


def test_a_sweep_finds_what_no_fast_path_saw(store):
    stage_orders(2)
    bus = InProcessBus()
    relay = OutboxRelay(bus, [Order])
    from shared import outbox

    outbox._stored[Order].clear()  # as after a crash, or events stored by another process
    assert relay.relay_stored() == 0
    assert relay.relay_once() == 2 and relay.last_backlog == 0


def test_a_relay_pass_between_staging_and_saving_loses_nothing(store):
    bus = InProcessBus()
    relay = OutboxRelay(bus, [Order])
    relay.relay_stored()
    order = Order(name="late")
    event = order.stage(
        "orders.events",
        Envelope(
            type="response.erased",
            key="o",
            producer="test",
            payload={
                "response_id": "r",
                "consultation_id": "c",
                "pseudonym": "p",
                "reason": "withdrawal",
                "erased_at": "2026-01-01T00:00:00Z",
            },
        ),
    )
    assert relay.relay_stored() == 0  # staged, not stored: nothing to look for yet
    order.save()
    assert relay.relay_stored() == 1 and [e.id for e in bus.events("orders.events")] == [event.id]


def test_events_pushed_by_a_query_update_are_found_once_remembered(store):
    from shared import outbox

    bus = InProcessBus()
    relay = OutboxRelay(bus, [Order])
    order = Order(name="o").save()
    relay.relay_stored()
    Order.objects(id=order.id).update_one(
        push__pending_events={
            "topic": "orders.events",
            "envelope": Envelope(
                type="response.erased",
                key="o",
                producer="test",
                payload={
                    "response_id": "r",
                    "consultation_id": "c",
                    "pseudonym": "p",
                    "reason": "withdrawal",
                    "erased_at": "2026-01-01T00:00:00Z",
                },
            ).to_dict(),
        }
    )
    assert relay.relay_stored() == 0
    outbox.remember(Order, order.pk)
    assert relay.relay_stored() == 1
