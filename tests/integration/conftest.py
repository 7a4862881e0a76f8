import pytest

from shared.embedded import EmbeddedBroker


@pytest.fixture(scope="session")
def broker():
    with EmbeddedBroker() as running:
        yield running
