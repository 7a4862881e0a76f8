"""The gateway in-process, in front of the three services in-process, joined by one in-process bus.

The gateway's HTTP clients keep their real `requests` code path; a transport adapter hands each
call to the service's WSGI app instead of a socket.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import EnvironBuilder, run_wsgi_app

from shared.in_process_bus import InProcessBus
from tests.conftest import make_settings

SERVICES = ("surveys", "consent", "aggregation")


class WSGIAdapter(BaseAdapter):
    """A requests transport that calls a WSGI app in this process."""

    def __init__(self, app) -> None:
        super().__init__()
        self.app = app
        self.down = False  # tests flip this to make the service unreachable

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        if self.down:
            raise requests.ConnectionError("service down (test)")
        url = requests.utils.urlparse(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        builder = EnvironBuilder(
            path=url.path,
            query_string=url.query,
            method=request.method,
            headers=dict(request.headers),
            data=body,
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        app_iter, status, headers = run_wsgi_app(self.app, environ, buffered=True)
        response = requests.Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.headers = CaseInsensitiveDict(headers.items())
        response.raw = io.BytesIO(b"".join(app_iter))
        response.url = request.url
        response.request = request
        response.connection = self
        return response

    def close(self):
        pass


@dataclass
class Platform:
    gateway: Any
    services: dict[str, Any]
    bus: InProcessBus
    adapters: dict[str, WSGIAdapter]
    admin_token: str
    client: Any = None
    cache: dict = field(default_factory=dict)

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        expect: int | tuple | None = None,
        **kwargs,
    ):
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        if expect is not None:
            expected = (expect,) if isinstance(expect, int) else expect
            assert response.status_code in expected, (
                f"{method} {path}: {response.status_code} {response.get_data(True)}"
            )
        return response

    def deliver(self) -> None:
        """Relay every stored event and hand it to the consumers, until nothing moves."""
        while True:
            sent = sum(
                app.extensions["voices_runtime"].relay.relay_once()
                for app in self.services.values()
            )
            if not sent and not self.bus.deliver():
                return

    def staff(
        self, role: str, organisation_id: str | None, readable: list[str] | None = None
    ) -> dict:
        """A new staff account of `role` with an API token: {account_id, token, token_id}."""
        email = f"{role}-{secrets.token_hex(4)}@example.org"
        account = self.call(
            "POST",
            "/api/v1/accounts",
            self.admin_token,
            expect=201,
            json={
                "email": email,
                "role": role,
                "organisation_id": organisation_id,
                "readable_organisations": readable or [],
            },
        ).get_json()
        token = self.call(
            "POST",
            "/api/v1/tokens",
            self.admin_token,
            expect=201,
            json={"account_id": account["account_id"]},
        ).get_json()
        return {
            "account_id": account["account_id"],
            "email": email,
            "token": token["token"],
            "token_id": token["token_id"],
        }

    def organisation(self) -> str:
        return self.call(
            "POST",
            "/api/v1/organisations",
            self.admin_token,
            expect=201,
            json={"name": f"Org {secrets.token_hex(4)}"},
        ).get_json()["organisation_id"]


def build_platform(secrets_env: dict[str, str], **gateway_extra: str) -> Platform:
    from gateway.app import create_app as create_gateway
    from services.aggregation.app import create_app as create_aggregation
    from services.consent.app import create_app as create_consent
    from services.surveys.app import create_app as create_surveys

    bus = InProcessBus()
    factories = {
        "surveys": create_surveys,
        "consent": create_consent,
        "aggregation": create_aggregation,
    }
    services = {
        name: factories[name](make_settings(name, secrets_env), bus=bus) for name in SERVICES
    }
    admin_token = "vt_admin_" + secrets.token_urlsafe(16)
    gateway_settings = make_settings("gateway", secrets_env)
    extra = {
        **gateway_settings.extra,
        "ADMIN_TOKEN": admin_token,
        **{f"{name.upper()}_URL": f"http://{name}.internal" for name in SERVICES},
        # The matrix sends hundreds of calls with one token; limits have tests of their own.
        "RATE_STAFF": "100000/60",
        "RATE_ANONYMOUS": "100000/60",
        "RATE_PARTICIPANT": "100000/60",
        # Cheap password hashing keeps the module fast; the production cost is argon2's default.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "8192",
        **gateway_extra,
    }
    gateway = create_gateway(gateway_settings.with_(extra=extra))
    adapters = {}
    for name, client in gateway.extensions["voices_clients"].items():
        adapters[name] = WSGIAdapter(services[name])
        client.session.mount(client.base_url, adapters[name])
        client.probe_session.mount(client.base_url, adapters[name])
        client.retry_backoff_s = 0.0
    platform = Platform(gateway, services, bus, adapters, admin_token)
    platform.client = gateway.test_client()
    return platform


@pytest.fixture(scope="module")
def platform(secrets_env) -> Platform:
    return build_platform(secrets_env)
