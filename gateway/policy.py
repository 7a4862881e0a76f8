"""The one authorization table: which principals may call which public route.

Every public route must be listed; a path the table does not know is a 404 at
the gateway and is never forwarded. Services re-check tenant scope. The same
table filters the merged OpenAPI document and generates the authorization
matrix test (tests/unit/gateway/test_policy_matrix.py), which also fails when
a service or the gateway serves an /api/ route the table does not list.

A row may widen what the gateway accepts for one route: `accepts` (request
media types; JSON unless said otherwise, e.g. multipart for a file upload) and
`max_body` (bytes). `code_field` names the body field or path parameter holding
the code the caller proves itself with: callers without credentials are
rate-limited per code there (at the `code_rate` kind of gateway/ratelimit.py),
not per route (ratelimit.py says why). `own_rate_limit`:
the view limits callers without credentials itself (sign-in, per account and
browser), so the gateway does not spend its per-route bucket first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from shared.runtime import StorableInt

# Who may call: staff roles, "participant" (a session opened from an invitation), "public" (anyone).
STAFF = ("organiser", "policy", "auditor", "platform_auditor", "admin")
# Auditors read their own organisation's part of the ledger, platform auditors all of it (the
# consent service scopes the answers, the export included).
LEDGER_READERS = {"auditor", "platform_auditor"}
JSON = ("application/json",)
MULTIPART = ("multipart/form-data",)
DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: the largest survey definition is far smaller
UPLOAD_MAX_BODY = 5 * 1024 * 1024


@dataclass(frozen=True)
class RoutePolicy:
    method: str
    path: str  # werkzeug rule syntax
    allowed: frozenset[str]
    service: str | None  # None: handled by the gateway itself
    accepts: tuple[str, ...] = JSON
    max_body: int = DEFAULT_MAX_BODY
    code_field: str | None = None
    code_rate: str = "code"
    own_rate_limit: bool = False

    @property
    def public(self) -> bool:
        return "public" in self.allowed


def _p(
    method: str,
    path: str,
    allowed: set[str],
    service: str | None,
    *,
    accepts: tuple[str, ...] = JSON,
    max_body: int | None = None,
    code_field: str | None = None,
    code_rate: str = "code",
    own_rate_limit: bool = False,
) -> RoutePolicy:
    if max_body is None:
        max_body = UPLOAD_MAX_BODY if accepts != JSON else DEFAULT_MAX_BODY
    return RoutePolicy(
        method,
        path,
        frozenset(allowed),
        service,
        accepts,
        max_body,
        code_field,
        code_rate,
        own_rate_limit,
    )


POLICY: tuple[RoutePolicy, ...] = (
    # ---- surveys: organisers manage their organisation's consultations
    _p("GET", "/api/v1/consultations", {"organiser", "admin"}, "surveys"),
    _p("POST", "/api/v1/consultations", {"organiser"}, "surveys"),
    _p("GET", "/api/v1/consultations/<cid>", {"organiser", "admin"}, "surveys"),
    _p("PATCH", "/api/v1/consultations/<cid>", {"organiser"}, "surveys"),
    _p("PUT", "/api/v1/consultations/<cid>/survey", {"organiser"}, "surveys"),
    _p(
        "POST",
        "/api/v1/consultations/<cid>/survey/xlsform",
        {"organiser"},
        "surveys",
        accepts=MULTIPART,
    ),
    _p("GET", "/api/v1/consultations/<cid>/versions", {"organiser", "admin"}, "surveys"),
    _p(
        "GET",
        "/api/v1/consultations/<cid>/versions/<int:number>",
        {"organiser", "admin"},
        "surveys",
    ),
    _p("PUT", "/api/v1/consultations/<cid>/versions/<int:number>", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/publish", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/status", {"organiser"}, "surveys"),
    _p("GET", "/api/v1/consultations/<cid>/invitations", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/invitations", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/invitations/<iid>/revoke", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/invitations/batch", {"organiser"}, "surveys"),
    _p("GET", "/api/v1/consultations/<cid>/progress", {"organiser", "admin"}, "surveys"),
    _p("GET", "/api/v1/consultations/<cid>/quotable-answers", {"organiser"}, "surveys"),
    _p("GET", "/api/v1/consultations/<cid>/quotes", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/quotes", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/quotes/revocations", {"organiser"}, "surveys"),
    _p("GET", "/api/v1/consultations/<cid>/follow-up-contacts", {"organiser"}, "surveys"),
    # ---- surveys: participants
    _p(
        "POST",
        "/api/v1/invitations/<code>/open",
        {"public"},
        "surveys",
        code_field="code",
        code_rate="invitation",
    ),
    _p("POST", "/api/v1/resume", {"public"}, "surveys"),
    _p("POST", "/api/v1/resume/lookup", {"public"}, "surveys", code_field="resume_code"),
    _p("POST", "/api/v1/responses", {"public"}, "surveys"),
    _p("PUT", "/api/v1/contact", {"public"}, "surveys"),
    _p("DELETE", "/api/v1/contact", {"public"}, "surveys"),
    # ---- consent: texts (organisers), grants, receipts, withdrawals (participants)
    _p("GET", "/api/v1/consent/consultations/<cid>/texts", {"public"}, "consent"),
    _p("POST", "/api/v1/consent/consultations/<cid>/texts", {"organiser"}, "consent"),
    _p(
        "POST",
        "/api/v1/consent/consultations/<cid>/texts/<int:version>/publish",
        {"organiser"},
        "consent",
    ),
    _p("GET", "/api/v1/consent/consultations/<cid>/texts/<int:version>", {"public"}, "consent"),
    _p("GET", "/api/v1/consent/consultations/<cid>/texts/versions", {"organiser"}, "consent"),
    # A grant only for the pseudonym and consultation of the caller's session (checked with the session's
    # binding): a session is issued only when the surveys service admits a participant, so the
    # ledger never records consent for a made-up pseudonym.
    _p("POST", "/api/v1/consent/grants", {"participant"}, "consent"),
    _p("POST", "/api/v1/consent/receipts/lookup", {"public"}, "consent", code_field="receipt_code"),
    _p("POST", "/api/v1/consent/withdrawals", {"public"}, "consent", code_field="receipt_code"),
    _p("POST", "/api/v1/consent/tokens", {"public"}, "consent", code_field="receipt_code"),
    _p("GET", "/api/v1/consent/public-key", {"public"}, "consent"),
    _p("GET", "/api/v1/consent/public-key.pem", {"public"}, "consent"),
    # ---- consent: the ledger (auditors)
    _p("GET", "/api/v1/ledger/entries", LEDGER_READERS, "consent"),
    _p("GET", "/api/v1/ledger/checkpoints", LEDGER_READERS, "consent"),
    _p("POST", "/api/v1/ledger/checkpoints", {*LEDGER_READERS, "admin"}, "consent"),
    _p("GET", "/api/v1/ledger/proofs/inclusion/<int:seq>", LEDGER_READERS, "consent"),
    _p("GET", "/api/v1/ledger/proofs/consistency", LEDGER_READERS, "consent"),
    _p("GET", "/api/v1/ledger/export", LEDGER_READERS, "consent"),
    _p("GET", "/api/v1/ledger/erasure-report", LEDGER_READERS, "consent"),
    # ---- aggregation: progress, releases, insights
    _p("GET", "/api/v1/insights/consultations/<cid>/progress", {"organiser"}, "aggregation"),
    _p("GET", "/api/v1/insights/consultations/<cid>/freshness", {"organiser"}, "aggregation"),
    _p("GET", "/api/v1/insights/consultations/<cid>/privacy-budget", {"organiser"}, "aggregation"),
    _p("GET", "/api/v1/insights/consultations/<cid>/releases", {"organiser"}, "aggregation"),
    _p("POST", "/api/v1/releases", {"organiser"}, "aggregation"),
    _p("GET", "/api/v1/insights/consultations", {"policy", "organiser", "admin"}, "aggregation"),
    _p(
        "GET",
        "/api/v1/insights/consultations/<cid>",
        {"policy", "organiser", "admin"},
        "aggregation",
    ),
    _p(
        "GET",
        "/api/v1/insights/consultations/<cid>/questions/<qid>",
        {"policy", "organiser", "admin"},
        "aggregation",
    ),
    _p(
        "GET",
        "/api/v1/insights/consultations/<cid>/questions/<qid>/crosstab",
        {"policy", "organiser", "admin"},
        "aggregation",
    ),
    _p(
        "GET",
        "/api/v1/insights/consultations/<cid>/export.csv",
        {"policy", "organiser", "admin"},
        "aggregation",
    ),
    _p(
        "GET",
        "/api/v1/insights/consultations/<cid>/export.json",
        {"policy", "organiser", "admin"},
        "aggregation",
    ),
    _p(
        "GET",
        "/api/v1/insights/consultations/<cid>/quotes",
        {"policy", "organiser", "admin"},
        "aggregation",
    ),
    # ---- gateway: organisations, accounts, tokens, passwords, sign-in sessions
    _p("GET", "/api/v1/organisations", {"admin"}, None),
    _p("POST", "/api/v1/organisations", {"admin"}, None),
    _p("POST", "/api/v1/accounts", {"admin"}, None),
    _p("GET", "/api/v1/accounts", {"admin"}, None),
    _p("GET", "/api/v1/accounts/<account_id>", {"admin"}, None),
    _p("PATCH", "/api/v1/accounts/<account_id>", {"admin"}, None),
    _p("PUT", "/api/v1/accounts/<account_id>/password", {"admin"}, None),
    _p("POST", "/api/v1/accounts/<account_id>/password-links", {"admin"}, None),
    _p("GET", "/api/v1/tokens", {*STAFF}, None),
    _p("POST", "/api/v1/tokens", {*STAFF}, None),
    _p("POST", "/api/v1/tokens/<token_id>/revoke", {*STAFF}, None),
    _p("GET", "/api/v1/me", {*STAFF}, None),
    _p("PUT", "/api/v1/me/password", {*STAFF}, None),
    _p("POST", "/api/v1/sessions", {"public"}, None, own_rate_limit=True),
    _p("DELETE", "/api/v1/sessions/current", {*STAFF}, None),
    _p("POST", "/api/v1/password-links/redeem", {"public"}, None, code_field="code"),
)


def build_map(policy: tuple[RoutePolicy, ...] = POLICY) -> Map:
    """A werkzeug Map of the table; its endpoints are the rows themselves."""
    rules = [Rule(p.path, methods=[p.method], endpoint=p) for p in policy]
    return Map(rules, strict_slashes=False, merge_slashes=False, converters={"int": StorableInt})


def match(route_map: Map, method: str, path: str) -> tuple[RoutePolicy, dict] | None:
    """The policy for this request, or None when the path is unknown. Raises MethodNotAllowed."""
    adapter = route_map.bind("gateway")
    try:
        row, args = adapter.match(path, method=method)
    except NotFound:
        return None
    except MethodNotAllowed:
        raise
    return row, dict(args)


_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>|\{\w+\}")


def route_shape(path: str) -> str:
    """A path with every parameter replaced by `{}`, so `/x/<cid>`, `/x/<consultation_id>` and
    `/x/{consultation_id}` compare equal (services name their parameters as they like)."""
    return _PARAM.sub("{}", path)


def find(method: str, path: str, policy: tuple[RoutePolicy, ...] = POLICY) -> RoutePolicy | None:
    """The row for a route given in werkzeug or OpenAPI syntax, or None when the table lacks it."""
    shape = route_shape(path)
    for row in policy:
        if row.method == method.upper() and route_shape(row.path) == shape:
            return row
    return None


def allows(policy: RoutePolicy, principal_role: str | None, kind: str) -> bool:
    if "public" in policy.allowed:
        return True
    if kind == "participant":
        return "participant" in policy.allowed
    return kind == "staff" and principal_role in policy.allowed
