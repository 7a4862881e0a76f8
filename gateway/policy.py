"""The one authorization table: which principals may call which public route.

Every public route must be listed; a path the table does not know is a 404 at
the gateway and is never forwarded. Services re-check tenant scope.
"""
from __future__ import annotations

from dataclasses import dataclass

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

# Who may call: staff roles, "participant" (a session opened from an invitation), "public" (anyone).
STAFF = ("organiser", "policy", "auditor", "admin")


@dataclass(frozen=True)
class RoutePolicy:
    method: str
    path: str  # werkzeug rule syntax
    allowed: frozenset[str]
    service: str | None  # None: handled by the gateway itself


def _p(method: str, path: str, allowed: set[str], service: str | None) -> RoutePolicy:
    return RoutePolicy(method, path, frozenset(allowed), service)


POLICY: tuple[RoutePolicy, ...] = (
    # ---- surveys: organisers manage their organisation's consultations
    _p("GET", "/api/v1/consultations", {"organiser", "admin"}, "surveys"),
    _p("POST", "/api/v1/consultations", {"organiser"}, "surveys"),
    _p("GET", "/api/v1/consultations/<cid>", {"organiser", "admin"}, "surveys"),
    _p("PUT", "/api/v1/consultations/<cid>/survey", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/publish", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/status", {"organiser"}, "surveys"),
    _p("GET", "/api/v1/consultations/<cid>/invitations", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/invitations", {"organiser"}, "surveys"),
    _p("POST", "/api/v1/consultations/<cid>/invitations/<iid>/revoke", {"organiser"}, "surveys"),
    # ---- surveys: participants
    _p("POST", "/api/v1/invitations/<code>/open", {"public"}, "surveys"),
    _p("POST", "/api/v1/responses", {"public"}, "surveys"),
    # ---- consent: texts (organisers), grants, receipts, withdrawals (participants)
    _p("GET", "/api/v1/consent/consultations/<cid>/texts", {"public"}, "consent"),
    _p("POST", "/api/v1/consent/consultations/<cid>/texts", {"organiser"}, "consent"),
    _p("POST", "/api/v1/consent/consultations/<cid>/texts/<int:version>/publish", {"organiser"}, "consent"),
    _p("POST", "/api/v1/consent/grants", {"public"}, "consent"),
    _p("POST", "/api/v1/consent/receipts/lookup", {"public"}, "consent"),
    _p("POST", "/api/v1/consent/withdrawals", {"public"}, "consent"),
    _p("GET", "/api/v1/consent/public-key", {"public"}, "consent"),
    # ---- consent: the ledger (auditors)
    _p("GET", "/api/v1/ledger/entries", {"auditor"}, "consent"),
    _p("GET", "/api/v1/ledger/checkpoints", {"auditor"}, "consent"),
    _p("POST", "/api/v1/ledger/checkpoints", {"auditor", "admin"}, "consent"),
    _p("GET", "/api/v1/ledger/proofs/inclusion/<int:seq>", {"auditor"}, "consent"),
    _p("GET", "/api/v1/ledger/proofs/consistency", {"auditor"}, "consent"),
    _p("GET", "/api/v1/ledger/export", {"auditor"}, "consent"),
    # ---- aggregation: progress, releases, insights
    _p("GET", "/api/v1/insights/consultations/<cid>/progress", {"organiser"}, "aggregation"),
    # ---- gateway: organisations, accounts, tokens
    _p("GET", "/api/v1/organisations", {"admin"}, None),
    _p("POST", "/api/v1/organisations", {"admin"}, None),
    _p("POST", "/api/v1/accounts", {"admin"}, None),
    _p("GET", "/api/v1/accounts", {"admin"}, None),
    _p("POST", "/api/v1/tokens", {*STAFF}, None),
    _p("POST", "/api/v1/tokens/<token_id>/revoke", {*STAFF}, None),
    _p("GET", "/api/v1/me", {*STAFF}, None),
)


def build_map(policy: tuple[RoutePolicy, ...] = POLICY) -> Map:
    rules = [Rule(p.path, methods=[p.method], endpoint=index) for index, p in enumerate(policy)]
    return Map(rules, strict_slashes=False, merge_slashes=False)


def match(route_map: Map, method: str, path: str) -> tuple[RoutePolicy, dict] | None:
    """The policy for this request, or None when the path is unknown. Raises MethodNotAllowed."""
    adapter = route_map.bind("gateway")
    try:
        index, args = adapter.match(path, method=method)
    except NotFound:
        return None
    except MethodNotAllowed:
        raise
    return POLICY[index], args


def allows(policy: RoutePolicy, principal_role: str | None, kind: str) -> bool:
    if "public" in policy.allowed:
        return True
    if kind == "participant":
        return "participant" in policy.allowed
    return kind == "staff" and principal_role in policy.allowed
