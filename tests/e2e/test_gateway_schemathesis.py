"""Property-based calls against the merged OpenAPI document of the running platform.

Every row of the policy table gets a bounded number of generated requests against its operation
in the merged document, sent with the credentials of a role the table allows for it. No answer
may be a 5xx, and every answer must match the document: a documented status, a documented media
type, a body that fits the schema.
"""

from __future__ import annotations

import os
import secrets

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
