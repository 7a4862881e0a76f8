"""Integration fixtures: the run's Apache Kafka (see tests/conftest.py) and fresh topics on it."""

import uuid

import pytest
from kafka.admin import KafkaAdminClient, NewTopic


@pytest.fixture(scope="session")
def bootstrap(servers) -> str:
    return servers.kafka_bootstrap


@pytest.fixture
def new_topic(bootstrap):
    """Creates a topic of one partition (order is checked) and its dead-letter topic; returns its name.

    The broker creates no topic on first use, as in production."""

    def create() -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            admin.create_topics([NewTopic(name, 1, 1), NewTopic(f"{name}.dlq", 1, 1)])
        finally:
            admin.close()
        return name

    return create
