"""The authorization matrix, generated from the policy table: every route x every kind of caller.

Callers: each staff role of organisation A, no credentials, an expired token, a revoked token,
and a member of organisation B. Intended answers:
- no credentials: 401 unless the route is public; expired or revoked token: 401 everywhere;
- a role the row does not list: 403;
- organisation B on a route naming one of A's objects: exactly what a missing object gets, the
  same status, headers and body but for the request id (404, or the same validation error a
  missing object gets for a body the matrix leaves empty), never a success; A's organiser, with
  the same request, does not get 404;
- otherwise the call goes through: neither the gateway nor the service refuses it for who
  the caller is (no 401/403), and nothing fails (no 5xx).
The table must also cover every /api/ route that a service or the gateway serves, and nothing else.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest

from gateway.models import ApiToken
from gateway.policy import POLICY, RoutePolicy, route_shape
from tests.e2e.conftest import ONE_QUESTION_SURVEY

ROLES = ("organiser", "policy", "auditor", "platform_auditor", "admin")
ORGANISATION_LESS = ("platform_auditor", "admin")
CALLERS = (*ROLES, "none", "expired", "revoked", "other_org")
# Path parameters that name an object belonging to one organisation.
OWNED = {"cid", "iid", "token_id", "consultation_id", "invitation_id"}
PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def _row_id(row: RoutePolicy) -> str:
    return f"{row.method} {row.path}"


@pytest.fixture(scope="module")
def world(platform):
    """Organisation A with one account per role and objects of each kind; organisation B with an
    organiser and a policy analyst; spoiled tokens."""
    org_a, org_b = platform.organisation(), platform.organisation()
    people = {
        role: platform.staff(role, None if role in ORGANISATION_LESS else org_a) for role in ROLES
    }
    other = {role: platform.staff(role, org_b) for role in ("organiser", "policy", "auditor")}
    organiser = people["organiser"]["token"]
    cid = platform.call(
        "POST",
        "/api/v1/consultations",
        organiser,
        expect=201,
        json={
            "title": "Matrix",
            "languages": ["en"],
            "purposes": ["participate", "aggregate_reporting"],
            "min_cell_size": 5,
            "survey": ONE_QUESTION_SURVEY,
        },
    ).get_json()["consultation_id"]
    platform.deliver()
    platform.call(
        "POST",
        f"/api/v1/consent/consultations/{cid}/texts",
        organiser,
        expect=201,
        json={
            "version": 1,
            "language": "en",
            "title": "Your consent",
            "body": "We keep your answers safe.",
            "purposes": {"participate": "To take part.", "aggregate_reporting": "To be counted."},
        },
    )
    platform.call(
        "POST", f"/api/v1/consent/consultations/{cid}/texts/1/publish", organiser, expect=200
    )
    platform.deliver()
    platform.call("POST", f"/api/v1/consultations/{cid}/publish", organiser, expect=200)
    link = platform.call(
        "POST",
        f"/api/v1/consultations/{cid}/invitations",
        organiser,
        expect=201,
        json={"kind": "link"},
    ).get_json()
    single = platform.call(
        "POST",
        f"/api/v1/consultations/{cid}/invitations",
        organiser,
        expect=201,
        json={"kind": "single"},
    ).get_json()
    platform.deliver()
    # A second token of A's organiser: the one the revoke route may revoke.
    spare = platform.call(
        "POST", "/api/v1/tokens", organiser, expect=201, json={"label": "spare"}
    ).get_json()
    expired = platform.call(
        "POST", "/api/v1/tokens", organiser, expect=201, json={"label": "old"}
    ).get_json()
    ApiToken.objects(token_id=expired["token_id"]).update_one(
        set__expires_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    revoked = platform.call(
        "POST", "/api/v1/tokens", organiser, expect=201, json={"label": "gone"}
    ).get_json()
    platform.call("POST", f"/api/v1/tokens/{revoked['token_id']}/revoke", organiser, expect=200)
    values = {
        "cid": cid,
        "consultation_id": cid,
        "iid": single["invitation_id"],
        "invitation_id": single["invitation_id"],
        "code": link["code"],
        "token_id": spare["token_id"],
        "account_id": people["policy"]["account_id"],
    }
    return {
        "people": people,
        "other": other,
        "values": values,
        "expired": expired["token"],
        "revoked": revoked["token"],
    }


def _path(row: RoutePolicy, values: dict) -> str:
    def value(m: re.Match) -> str:
        converter, name = m.groups()
        if converter in ("int", "float"):
            return "1"
        return values.get(name, f"unknown-{name}")

    return PARAM.sub(value, row.path)


def _call(platform, row: RoutePolicy, token: str | None, values: dict):
    kwargs = {}
    if row.method in ("POST", "PUT", "PATCH"):
        if "application/json" in row.accepts:
            kwargs["json"] = {}
        else:
            kwargs["data"] = {"file": (io.BytesIO(b""), "empty.xlsx")}
    return platform.call(row.method, _path(row, values), token, **kwargs)


def _other_org_role(row: RoutePolicy) -> str | None:
    return next((r for r in ("organiser", "policy", "auditor") if r in row.allowed), None)


def _owns_object(row: RoutePolicy) -> bool:
    return any(name in OWNED for _conv, name in PARAM.findall(row.path))


# Headers that differ on every call whatever the object (ids of the request, sizes follow the body).
_PER_CALL_HEADERS = {"x-request-id", "x-trace-id", "content-length", "date"}


def _seen_from_outside(response) -> tuple:
    """What a caller can compare between two answers: status, headers, and the body without its request id."""
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        body.pop("request_id", None)
    headers = sorted(
        (k.lower(), v) for k, v in response.headers.items() if k.lower() not in _PER_CALL_HEADERS
    )
    return response.status_code, headers, body if body is not None else response.get_data()


def _assert_goes_through(response, why: str) -> None:
    status = response.status_code
    assert status not in (401, 403) and status < 500, (
        f"{why}: got {status} {response.get_data(True)[:300]}"
    )


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("row", POLICY, ids=_row_id)
def test_every_route_answers_every_caller_as_the_table_says(platform, world, row, caller):
    values = world["values"]
    if caller in ROLES:
        response = _call(platform, row, world["people"][caller]["token"], values)
        if row.public or caller in row.allowed:
            _assert_goes_through(response, f"{caller} may use {_row_id(row)}")
            if caller == "organiser" and _owns_object(row) and not row.public:
                assert response.status_code != 404, (
                    "the organiser of the owning organisation must see it"
                )
        else:
            assert response.status_code == 403, response.get_data(True)
    elif caller == "none":
        response = _call(platform, row, None, values)
        if row.public:
            _assert_goes_through(response, "public route")
        else:
            assert response.status_code == 401, response.get_data(True)
    elif caller in ("expired", "revoked"):
        response = _call(platform, row, world[caller], values)
        assert response.status_code == 401, response.get_data(True)
    else:  # a member of organisation B
        role = _other_org_role(row) or "organiser"
        response = _call(platform, row, world["other"][role]["token"], values)
        if row.public:
            _assert_goes_through(response, "public route")
        elif role not in row.allowed:
            assert response.status_code == 403, response.get_data(True)
        elif _owns_object(row):
            missing = _call(
                platform,
                row,
                world["other"][role]["token"],
                {**values, **dict.fromkeys(OWNED, "missing-0000")},
            )
            assert _seen_from_outside(response) == _seen_from_outside(missing), (
                f"{role} of another organisation must see exactly what a missing object gets"
            )
            assert response.status_code in (404, 422), response.get_data(True)[:300]
        else:
            _assert_goes_through(response, f"{role} of another organisation, no object named")
    if response.status_code != 204:
        assert response.mimetype in (
            "application/json",
            "application/problem+json",
            "application/x-ndjson",
            "application/x-pem-file",
        ), response.mimetype
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"


def _api_routes(app, owner: str | None) -> set[tuple[str, str, str | None]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule == "/api/v1/<path:rest>":
            continue  # the gateway's forwarder is not a resource of its own
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method, route_shape(rule.rule), owner))
    return routes


def test_the_table_covers_every_api_route_and_nothing_else(platform):
    served = _api_routes(platform.gateway, None)
    for name, app in platform.services.items():
        served |= _api_routes(app, name)
    listed = {(row.method, route_shape(row.path), row.service) for row in POLICY}
    assert not served - listed, (
        f"served but not in gateway/policy.py: {sorted(served - listed, key=str)}"
    )
    assert not listed - served, (
        f"in gateway/policy.py but served by no one: {sorted(listed - served, key=str)}"
    )


def test_rows_are_unique():
    keys = [(row.method, route_shape(row.path)) for row in POLICY]
    assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]


def test_another_organisation_lists_none_of_its_neighbours_consultations(platform, world):
    mine = platform.call(
        "GET", "/api/v1/consultations", world["people"]["organiser"]["token"], expect=200
    ).get_json()
    theirs = platform.call(
        "GET", "/api/v1/consultations", world["other"]["organiser"]["token"], expect=200
    ).get_json()
    assert world["values"]["cid"] in {c["consultation_id"] for c in mine}
    assert world["values"]["cid"] not in {c["consultation_id"] for c in theirs}


def test_a_number_too_large_for_the_store_matches_no_route():
    """Path numbers beyond 8 bytes would fail in the database driver (a 500); they are 404s."""
    from gateway.policy import build_map, match

    route_map = build_map()
    assert (
        match(route_map, "GET", "/api/v1/consent/consultations/c_x/texts/9223372036854775807")
        is not None
    )
    assert (
        match(route_map, "GET", "/api/v1/consent/consultations/c_x/texts/9223372036854775808")
        is None
    )


# A body each route accepts, so that the tenant check (not validation) decides the answer.
VALID_BODIES = {
    ("PATCH", "/api/v1/consultations/<cid>"): {"title": "Renamed"},
    ("PUT", "/api/v1/consultations/<cid>/survey"): {"survey": ONE_QUESTION_SURVEY},
    ("POST", "/api/v1/consultations/<cid>/status"): {"status": "closed"},
    ("POST", "/api/v1/consultations/<cid>/invitations"): {"kind": "single"},
    ("POST", "/api/v1/consultations/<cid>/quotes"): {
        "response_id": "r",
        "question_id": "q",
        "excerpt": "x",
    },
    ("POST", "/api/v1/consultations/<cid>/quotes/revocations"): {"quote_id": "q"},
    ("POST", "/api/v1/consent/consultations/<cid>/texts"): {
        "version": 2,
        "language": "en",
        "title": "T",
        "body": "B",
        "purposes": {"participate": "p", "aggregate_reporting": "a"},
    },
    ("POST", "/api/v1/releases"): {"consultation_id": "<cid>"},
}


@pytest.mark.parametrize("method,path", sorted(VALID_BODIES), ids=lambda v: v)
def test_another_organisation_sees_a_missing_object_also_with_a_valid_body(
    platform, world, method, path
):
    row = next(r for r in POLICY if (r.method, r.path) == (method, path))
    token = world["other"]["organiser"]["token"]

    def call(cid: str):
        body = {k: (cid if v == "<cid>" else v) for k, v in VALID_BODIES[(method, path)].items()}
        return platform.call(method, _path(row, {**world["values"], "cid": cid}), token, json=body)

    foreign, missing = call(world["values"]["cid"]), call("missing-0000")
    assert foreign.status_code == 404, foreign.get_data(True)
    assert _seen_from_outside(foreign) == _seen_from_outside(missing)
