"""Every operation of the merged OpenAPI document answers within its contract, for every caller the
policy table lets in: schemathesis sends generated requests (naming real objects, so answers carry
real bodies) and checks that no answer is a 5xx and that each has a documented status, media type,
headers and a body that fits the schema. The e2e suite does the same against the real processes.

FUZZ_EXAMPLES=200 explores further, with fresh examples each run, before a release; the default keeps
the quick loop quick and the same from run to run.
"""

from __future__ import annotations

import os

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
from tests.unit.gateway.test_policy_matrix import world  # noqa: F401 (a fixture: organisation A's callers and objects)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
EXPLORING = "FUZZ_EXAMPLES" in os.environ


def _callers(row: RoutePolicy) -> list[str]:
    return ["anonymous", "participant"] if row.public else sorted(row.allowed)


@pytest.fixture(scope="module")
def answered(platform, world) -> dict:
    """The matrix's organisation A (a caller per role, an object of each kind) with answers and a
    released snapshot, so that reads answer with real bodies; plus a participant session."""
    cid, code = world["values"]["cid"], world["values"]["code"]
    for answer in ["yes"] * 6 + ["no"] * 6:
        opened = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()
        grant = platform.call(
            "POST",
            "/api/v1/consent/grants",
            opened["participant_session"],
            expect=201,
            json={
                "pseudonym": opened["pseudonym"],
                "consultation_id": cid,
                "purposes": ["participate", "aggregate_reporting"],
                "language": "en",
                "text_version": 1,
            },
        ).get_json()
        platform.call(
            "POST",
            "/api/v1/responses",
            expect=201,
            json={"consent_token": grant["consent_token"], "answers": {"got_help": answer}},
        )
    platform.deliver()
    platform.call(
        "POST",
        "/api/v1/releases",
        world["people"]["organiser"]["token"],
        expect=201,
        json={"consultation_id": cid},
    )
    platform.call(
        "POST", "/api/v1/ledger/checkpoints", world["people"]["auditor"]["token"], expect=201
    )
    platform.deliver()
    session = platform.call("POST", f"/api/v1/invitations/{code}/open", expect=201).get_json()
    tokens = {role: person["token"] for role, person in world["people"].items()}
    tokens.update(anonymous=None, participant=session["participant_session"])
    objects = {
        **world["values"],
        "number": 1,
        "version": 1,
        "seq": 0,
        "question_id": "got_help",
        "qid": "got_help",
    }
    return {"tokens": tokens, "objects": objects}


@pytest.fixture(scope="module")
def document(platform, answered):
    return schemathesis.openapi.from_wsgi("/openapi.json", platform.gateway)


@pytest.mark.parametrize(
    "row,caller",
    [(row, caller) for row in POLICY for caller in _callers(row)],
    ids=lambda v: f"{v.method} {v.path}" if isinstance(v, RoutePolicy) else v,
)
def test_every_operation_answers_within_its_documented_contract(document, answered, row, caller):
    paths = document.raw_schema["paths"]
    path = next((p for p in paths if route_shape(p) == route_shape(row.path)), None)
    assert path is not None and row.method.lower() in paths[path], (
        f"not in the document: {row.method} {row.path}"
    )
    operation = document[path][row.method]
    token = answered["tokens"][caller]
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=not EXPLORING,
    )
    def answers_within_contract(case):
        # Name real objects, so that answers carry real bodies (random ids only ever meet a 404).
        case.path_parameters = {
            name: answered["objects"].get(name, value)
            for name, value in (case.path_parameters or {}).items()
        }
        case.call_and_validate(headers=headers, checks=CHECKS)

    answers_within_contract()
