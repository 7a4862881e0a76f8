"""Staff pages calling the services as the signed-in person, under the same rules as the API.

A call is first looked up in the gateway's one authorization table (gateway/policy.py): a route
the table does not list, or one the person's role may not use, is refused here exactly as the
API would refuse it. The call then goes through the gateway's `ServiceClient` (circuit breaker,
timeouts, metrics) with the signed principal header, so the service applies its own tenancy,
lifecycle and validation rules, and answers with its own problem+json.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import Map

from gateway.policy import allows, build_map, match
from gateway.proxy import ServiceClient
from gateway.web.participant_api import ServiceRefused, call_service
from shared.auth import Principal, encode_principal


class StaffApi:
    """The services' public API, called for one principal at a time. Every method may raise
    ServiceRefused (the table or the service said no) or ServiceUnavailable."""

    def __init__(
        self, clients: dict[str, ServiceClient], internal_secret: bytes, routes: Map | None = None
    ) -> None:
        self._clients = clients
        self._secret = internal_secret
        self._routes = routes or build_map()

    def call(
        self,
        principal: Principal,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        answer_headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON answer of `method path` (an /api/v1/ path) called as `principal`; the
        answer's headers (X-Pagination, say) are copied into `answer_headers` when given."""
        matched = match(self._routes, method, path)
        if matched is None:
            raise LookupError(f"{method} {path} is not in the authorization table")
        policy, _args = matched
        if policy.service is None:
            raise LookupError(f"{method} {path} is the gateway's own route: use gateway.accounts")
        if not allows(policy, principal.role, principal.kind):
            raise ServiceRefused(
                403,
                {
                    "type": "about:blank",
                    "title": "Forbidden",
                    "status": 403,
                    "detail": "Your role may not use this resource.",
                },
            )
        return call_service(
            self._clients[policy.service],
            method,
            path,
            json=json,
            params=params,
            headers=encode_principal(principal, self._secret),
            files=files,
            answer_headers=answer_headers,
        )
