"""Fixtures shared by every test layer."""

from __future__ import annotations

import base64
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from deploy.secrets import generate_secrets
from deploy.servers import local_servers
from shared.settings import Settings


@dataclass
class Servers:
    """Where the Kafka cluster and the MongoDB-protocol server of this test run listen."""

    kafka_bootstrap: str
    mongodb_uri: str

    def namespace(self) -> str:
        """A fresh namespace: databases, topics and consumer groups no other stack uses."""
        return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """Apache Kafka and the document store, started once for the whole test run.

    MONGODB_URI and KAFKA_BOOTSTRAP_SERVERS, when set, name servers to use instead (for example
    the real MongoDB and Kafka of docker-compose); otherwise both are started here.
    """
    with local_servers(
        tmp_path_factory.mktemp("servers"),
        os.environ.get("MONGODB_URI"),
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
    ) as (bootstrap, mongodb_uri):
        yield Servers(bootstrap, mongodb_uri)


@pytest.fixture(scope="session")
def secrets_env() -> dict[str, str]:
    """One set of keys and peppers for the test session, as the services read them (VOICES_* names)."""
    return generate_secrets()


def make_settings(service: str, secrets_env: dict[str, str], **changes) -> Settings:
    """Settings for an in-process service app: mongomock store, no background threads."""
    extra = {k[len("VOICES_") :]: v for k, v in secrets_env.items()}
    base = Settings(
        service=service,
        mongodb_uri="mongomock://localhost/voices",
        run_background=False,
        extra=extra,
    )
    return base.with_(**changes)


@pytest.fixture(scope="session")
def consent_keys(secrets_env):
    """(private PEM, public PEM) of the session's consent signing key."""
    return (
        base64.b64decode(secrets_env["VOICES_CONSENT_SIGNING_KEY"]),
        base64.b64decode(secrets_env["VOICES_CONSENT_PUBLIC_KEY"]),
    )


def pytest_collection_modifyitems(config, items):
    # Layers are marked by folder so `-m "not e2e"` gives the quick loop.
    for item in items:
        path = str(item.fspath)
        for layer in ("integration", "e2e", "browser", "fault"):
            if f"{os.sep}tests{os.sep}{layer}{os.sep}" in path:
                item.add_marker(getattr(pytest.mark, layer))


@contextmanager
def store_unchanged(snapshot):
    """`with store_unchanged(service.snapshot): <refused request>` asserts the store is exactly as before."""
    before = snapshot()
    yield
    assert snapshot() == before


def call_json(client, method: str, path: str, expect: int, headers: dict | None = None, **kwargs):
    """The JSON body of a test-client call that must answer `expect`; errors must be problem+json."""
    from shared.errors import PROBLEM_MIME

    response = client.open(path, method=method, headers=headers or {}, **kwargs)
    assert response.status_code == expect, (
        f"{method} {path}: {response.status_code} {response.get_data(as_text=True)[:500]}"
    )
    if expect >= 400:
        assert response.mimetype == PROBLEM_MIME, response.mimetype
        body = response.get_json()
        assert body["status"] == expect and body["title"]
        return body
    return response.get_json()
