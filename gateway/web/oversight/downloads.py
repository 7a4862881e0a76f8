"""Files the services serve as they are (CSV, JSON, JSON lines, PEM), passed on to a staff page.

`call()` of the staff shell reads JSON answers; an export must reach the person byte for byte
(its digest and signatures cover those bytes). The route is checked against the gateway's
authorization table first, exactly as `call()` does, then fetched with the signed principal.
"""

from __future__ import annotations

from flask import Response, current_app
from requests import RequestException

from gateway.policy import allows, build_map, match
from gateway.proxy import CircuitOpen
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff.pages import principal, state
from shared.auth import encode_principal
from shared.errors import ServiceUnavailable

_ROUTES = build_map()


def download(path: str, filename: str, params: dict[str, str] | None = None) -> Response:
    """The service's answer to GET `path` as an attachment named `filename`.

    Raises ServiceRefused (403 for a role the table does not allow; the service's own refusal)
    or ServiceUnavailable, which the staff pages show as error pages.
    """
    who = principal()
    matched = match(_ROUTES, "GET", path)
    if matched is None or matched[0].service is None:
        raise LookupError(f"GET {path} is not a service route of the authorization table")
    policy = matched[0]
    if not allows(policy, who.role, who.kind):
        raise ServiceRefused(403, {"status": 403, "detail": "Your role may not use this resource."})
    client = current_app.extensions["voices_clients"][policy.service]
    secret = state().settings.require("INTERNAL_TOKEN").encode()
    try:
        client.breaker.before_call()
        upstream = client.session.get(
            f"{client.base_url}{path}",
            params=params,
            headers=encode_principal(who, secret),
            timeout=(client.connect_timeout, client.read_timeout),
        )
    except RequestException as exc:
        client.breaker.record_failure()
        raise ServiceUnavailable(
            f"The {client.name} service is not reachable.", retry_after=1
        ) from exc
    except CircuitOpen as exc:
        raise ServiceUnavailable(
            f"The {client.name} service is paused.", retry_after=max(1, int(exc.retry_after_s))
        ) from exc
    if upstream.status_code >= 500:
        client.breaker.record_failure()
        raise ServiceUnavailable(f"The {client.name} service failed.", retry_after=1)
    client.breaker.record_success()
    if upstream.status_code >= 400:
        try:
            body = upstream.json()
        except ValueError:
            body = {}
        raise ServiceRefused(upstream.status_code, body if isinstance(body, dict) else {})
    response = Response(upstream.content, mimetype=upstream.headers.get("Content-Type"))
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    for name in ("X-Snapshot-Digest",):
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    return response
