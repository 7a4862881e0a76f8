"""Property-based calls against the merged OpenAPI document of the running platform.

Every row of the policy table gets a bounded number of generated requests against its operation
in the merged document, sent with the credentials of a role the table allows for it. No answer
may be a 5xx, and every answer must match the document: a documented status, a documented media
type, a body that fits the schema.
"""

from __future__ import annotations

import json
import os
import secrets
import socket

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.policy import POLICY, RoutePolicy, route_shape
from tests.e2e.conftest import open_consultation

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
ROLE_ORDER = ("organiser", "policy", "auditor", "platform_auditor", "admin", "participant")
# Bounded so the suite stays quick; FUZZ_EXAMPLES=200 explores further before a release.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))


@pytest.fixture(scope="module")
def tokens(api, stack) -> dict[str, str]:
    organisation = api.call(
        "POST",
        "/api/v1/organisations",
        stack.admin_token,
        json={"name": f"Fuzz {secrets.token_hex(3)}"},
    )["organisation_id"]
    out = {"admin": stack.admin_token}
    for role in ("organiser", "policy", "auditor", "platform_auditor"):
        account = api.call(
            "POST",
            "/api/v1/accounts",
            stack.admin_token,
            json={
                "email": f"{role}-{secrets.token_hex(3)}@example.org",
                "role": role,
                "organisation_id": None if role == "platform_auditor" else organisation,
            },
        )
        out[role] = api.call(
            "POST", "/api/v1/tokens", stack.admin_token, json={"account_id": account["account_id"]}
        )["token"]
    # Routes for participants only (consent grants) take the session an opened invitation gives.
    _cid, code = open_consultation(api, out["organiser"])
    out["participant"] = api.call("POST", f"/api/v1/invitations/{code}/open")["participant_session"]
    return out


@pytest.fixture(scope="module")
def merged_schema(stack):
    return schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json", timeout=20)


def _openapi_path(row: RoutePolicy, documented: set[str]) -> str | None:
    """The merged document's path for a row (services name their parameters as they like)."""
    shape = route_shape(row.path)
    return next((p for p in documented if route_shape(p) == shape), None)


@pytest.mark.parametrize("row", POLICY, ids=lambda r: f"{r.method} {r.path}")
def test_every_operation_answers_within_its_documented_contract(row, merged_schema, stack, tokens):
    raw_paths = merged_schema.raw_schema["paths"]
    path = _openapi_path(row, set(raw_paths))
    assert path is not None and row.method.lower() in raw_paths[path], (
        f"in the policy table but not in the merged document: {row.method} {row.path}"
    )
    operation = merged_schema[path][row.method]
    headers = {}
    if not row.public:
        role = next(r for r in ROLE_ORDER if r in row.allowed)
        headers["Authorization"] = f"Bearer {tokens[role]}"

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def answers_within_contract(case):
        case.call_and_validate(
            base_url=stack.gateway_url, headers=headers, checks=CHECKS, timeout=20
        )

    answers_within_contract()


def _raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send most of these) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _get(target: str, extra_headers: str = "") -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: voices.test\r\n{extra_headers}Connection: close\r\n\r\n"
    ).encode("latin-1")


def _post_chunked(codings: str) -> bytes:
    return (
        f"POST /api/v1/consent/withdrawals HTTP/1.1\r\nHost: x\r\n"
        f"Transfer-Encoding: {codings}\r\n\r\n0\r\n\r\n"
    ).encode("latin-1")


def _many(count: int) -> str:
    return "".join(f"X-Filler-{i}: {i}\r\n" for i in range(count))


# What a client can provoke before any view runs: the gateway's own limits answer first (with
# a request id), gunicorn's higher ones and its parser after them; every answer is problem+json.
HEAD_REFUSALS = {
    "uri over the gateway's limit": (_get("/api/v1/consultations?q=" + "a" * 5000), 414, True),
    "request line over gunicorn's limit": (_get("/healthz?q=" + "a" * 9000), 414, False),
    "header over the gateway's limit": (_get("/healthz", f"X-Big: {'b' * 10000}\r\n"), 431, True),
    "header over gunicorn's limit": (_get("/healthz", f"X-Big: {'b' * 20000}\r\n"), 431, False),
    "fields over the gateway's count": (_get("/healthz", _many(150)), 431, True),
    "fields over gunicorn's count": (_get("/healthz", _many(250)), 431, False),
    "malformed request line": (b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400, False),
    "invalid method": (b"G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, False),
    "invalid http version": (b"GET /healthz HTTP/9.z\r\nHost: x\r\n\r\n", 400, False),
    "invalid header name": (_get("/healthz", "Bad Header: x\r\n"), 400, False),
    "chunked not last": (_post_chunked("chunked, gzip"), 400, False),
    "unsupported transfer coding": (_post_chunked("voices-unknown, chunked"), 501, False),
}


@pytest.mark.parametrize("case", list(HEAD_REFUSALS))
def test_what_a_client_sends_before_any_view_is_refused_as_problem_json(case, stack):
    request, status, by_gateway = HEAD_REFUSALS[case]
    answered, headers, body = _raw_exchange(stack.gateway_port, request)
    assert (answered, headers.get("content-type")) == (status, "application/problem+json"), body
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert b"aaaa" not in body and b"bbbb" not in body  # nothing of the request echoed back
    # Refused by the gateway itself: with its request id and security headers.
    assert ("request_id" in problem) == by_gateway
    assert headers.get("x-content-type-options") == "nosniff"
