"""Kafka or the document store goes away while the platform runs: not ready, nothing lost, recovers.

This module starts servers of its own (the run's shared ones must not be stopped under other
tests) and restarts them on the same ports with the same data, as an operator would.
"""

from __future__ import annotations

import pytest
import requests

from deploy.servers import DocumentStore, KafkaServer
from deploy.stack import SERVICES, Stack
from tests.e2e.conftest import (
    ONE_QUESTION_SURVEY,
    Api,
    eventually,
    open_consultation,
    participate,
    staff_token,
)
from tests.e2e.test_aggregation_withdrawal import progress


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    root = tmp_path_factory.mktemp("own-servers")
    store = DocumentStore(root / "store", root / "logs").start()
    kafka = KafkaServer(root / "kafka", root / "logs").start()
    stack = Stack(
        kafka_bootstrap=kafka.bootstrap,
        mongodb_uri=store.uri,
        log_dir=root / "logs",
        extra_env={"VOICES_ADMIN_TOKEN": "vt_admin_servers_lost_test"},
    )
    stack.start(timeout=120)
    yield store, kafka, stack
    stack.stop()
    kafka.stop()
    store.stop()


def readiness(stack: Stack, name: str) -> tuple[int, dict]:
    response = requests.get(f"{stack.service_url(name)}/readyz", timeout=15)
    return response.status_code, response.json()


def test_losing_kafka_is_reported_and_nothing_written_meanwhile_is_lost(own):
    _store, kafka, stack = own
    api = Api(stack.gateway_url)
    organiser = staff_token(api, "vt_admin_servers_lost_test", "organiser")["token"]
    cid, code = open_consultation(api, organiser)
    participate(api, code, {"got_help": "yes"})

    kafka.stop()
    for name in SERVICES:
        _status, body = eventually(
            lambda: (lambda r: r if r[0] == 503 else None)(readiness(stack, name))
        )
        assert body["checks"]["kafka"] == "unreachable", body
    # Writes still succeed: their events wait in the outbox.
    consultation = api.call(
        "POST",
        "/api/v1/consultations",
        organiser,
        json={
            "title": "Written while Kafka was away",
            "languages": ["en"],
            "purposes": ["participate"],
            "min_cell_size": 5,
            "survey": ONE_QUESTION_SURVEY,
        },
    )
    second = consultation["consultation_id"]

    kafka.start()
    for name in SERVICES:
        eventually(lambda: readiness(stack, name)[0] == 200, timeout=90)

    # The consent service learns of the consultation from the events that waited: it accepts a text.
    def text_accepted():
        r = api.session.post(
            f"{api.base}/api/v1/consent/consultations/{second}/texts",
            headers={"Authorization": f"Bearer {organiser}"},
            timeout=10,
            json={
                "version": 1,
                "language": "en",
                "title": "Consent",
                "body": "Body.",
                "purposes": {"participate": "Taking part."},
            },
        )
        return r.status_code == 201

    eventually(text_accepted, timeout=60)
    # And what was counted before is still counted.
    assert eventually(lambda: progress(api, organiser, cid) == 1, timeout=60)


def test_losing_the_store_is_reported_and_recovered(own):
    store, _kafka, stack = own
    store.stop()
    for name in SERVICES:
        _status, body = eventually(
            lambda: (lambda r: r if r[0] == 503 else None)(readiness(stack, name))
        )
        assert body["checks"]["mongodb"].startswith("unavailable"), body
    store.start()
    for name in SERVICES:
        eventually(lambda: readiness(stack, name)[0] == 200, timeout=60)
    api = Api(stack.gateway_url)
    organiser = staff_token(api, "vt_admin_servers_lost_test", "organiser")["token"]
    cid, code = open_consultation(api, organiser)  # consent learns of it from an event, as usual
    participate(api, code, {"got_help": "no"})
    eventually(lambda: progress(api, organiser, cid) == 1, timeout=60)
