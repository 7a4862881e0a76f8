"""The API gateway: the only public entry point. Authenticates, authorizes by one table, forwards.

Per /api/ request, in order: CORS preflight (only for configured origins), the route's row in
the policy table (404/405 otherwise), body size and media type (413/415), credentials (401),
the row's roles (403), a participant session's binding to its consultation (403), the caller's
rate limit (429), then the gateway's own view or the owning service behind its circuit breaker
(503 while open). Every answer carries the security headers; every error is problem+json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, jsonify, request, url_for

from gateway import accounts
from gateway.api import SESSION_COOKIE, sessions, staff
from gateway.guards import (
    behind_tls,
    check_body,
    install_request_head_limits,
    install_response_headers,
    preflight,
)
from gateway.openapi import MergedDocument, init_openapi
from gateway.participant_sessions import (
    OPENING_ROUTE,
    ParticipantSessions,
    binding_violation,
    looks_like_session,
)
from gateway.policy import RoutePolicy, allows, build_map, match
from gateway.proxy import CircuitBreaker, ServiceClient
from gateway.ratelimit import Limits, code_key, retry_after
from gateway.schemas import ParticipantSessionSchema
from gateway.web import init_web
from shared import mongo
from shared.auth import ANONYMOUS, Principal, encode_principal
from shared.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from shared.health import HealthBounds
from shared.log import configure_logging
from shared.metrics import GaugeCollector, metrics_of
from shared.problems import register_problem_handlers
from shared.request_context import install_request_context
from shared.runtime import problem_api, use_storable_int_routes
from shared.settings import Settings

SERVICES = ("surveys", "consent", "aggregation")
# A new invitation's answer gains the participant link, which only the gateway can spell.
INVITING_ROUTE = ("POST", "/api/v1/consultations/<cid>/invitations")
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env("gateway")
    configure_logging("gateway", settings.log_level)
    mongo.connect(settings, alias="gateway")
    accounts.configure_password_hashing(
        int(settings.get("ARGON2_TIME_COST") or 0) or None,
        int(settings.get("ARGON2_MEMORY_KIB") or 0) or None,
    )
    admin_token = settings.get("ADMIN_TOKEN")
    if admin_token:
        accounts.bootstrap_admin(admin_token)
    internal_secret = settings.require("INTERNAL_TOKEN").encode()
    participant_sessions = ParticipantSessions(
        settings.require("SESSION_SECRET"), int(settings.get("PARTICIPANT_SESSION_TTL_S") or 7200)
    )

    app = Flask("voices.gateway")
    use_storable_int_routes(app)
    app.config.update(
        MAX_CONTENT_LENGTH=1024 * 1024,
        API_TITLE="Voices gateway",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
    )
    api = problem_api(app)
    api.spec.components.schema("ParticipantSession", schema=ParticipantSessionSchema)
    api.register_blueprint(staff)
    api.register_blueprint(sessions)
    clients = {name: _client(name, settings) for name in SERVICES}
    app.extensions["voices_clients"] = clients
    app.extensions["voices_settings"] = settings
    init_web(app, clients, settings)  # participant pages, outside /api/
    app.extensions["voices_participant_sessions"] = participant_sessions
    limits = Limits.from_settings(settings)
    app.extensions["voices_limits"] = limits
    register_problem_handlers(app)
    install_request_context(app, "gateway")
    install_request_head_limits(app)
    install_response_headers(app, settings)
    rate_limited = _install_gateway_metrics(app, clients)
    init_openapi(
        app,
        MergedDocument(
            api.spec.to_dict,
            {name: _spec_fetcher(client) for name, client in clients.items()},
        ),
    )
    route_map = build_map()

    @app.before_request
    def authorize():
        g.principal = ANONYMOUS
        if not request.path.startswith("/api/"):
            return None
        answer = preflight(settings)
        if answer is not None:
            return answer
        matched = match(route_map, request.method, request.path)
        if matched is None:
            raise NotFound("There is no API resource at this path.")
        policy, args = matched
        g.route_policy = policy
        g.route_pattern = policy.path  # logs and metrics name the row, never the concrete URL
        check_body(policy)
        principal, bucket = _authenticate(policy, participant_sessions, limits)
        g.principal = principal
        if not allows(policy, principal.role, principal.kind):
            if principal.anonymous:
                raise Unauthorized("Sign in or send an API token (Authorization: Bearer ...).")
            raise Forbidden("Your role may not use this resource.")
        if principal.kind == "participant":
            why = binding_violation(g.participant_session, args, g.get("json_body"))
            if why:
                raise Forbidden(why)
        code = _sent_code(policy, args, g.get("json_body"))
        if principal.anonymous and code:
            bucket = (
                policy.code_rate,
                code_key(code),
            )  # a flood of other codes never blocks this code's holder
        if principal.anonymous and policy.own_rate_limit:
            return None
        wait = limits.spend(*bucket)
        if wait:
            rate_limited.labels(bucket[0]).inc()
            raise TooManyRequests(
                "Too many requests. Please wait a moment and try again.",
                retry_after=retry_after(wait),
            )
        return None

    probe_timeout = readiness_probe_timeout(settings)

    def health():
        # In parallel, so the gateway answers within one service's bound rather than their sum.
        with ThreadPoolExecutor(len(clients)) as pool:
            answers = dict(
                zip(
                    clients,
                    pool.map(lambda c: c.get_json("/readyz", probe_timeout), clients.values()),
                    strict=True,
                )
            )
        services = {}
        for name, client in clients.items():
            status, body = answers[name]
            services[name] = {"ready": status == 200, **body, "circuit": client.breaker.state}
        ready = all(s["ready"] for s in services.values())
        return jsonify(status="ready" if ready else "degraded", services=services), (
            200 if ready else 503
        )

    def alive():
        # What the orchestrator's probes ask: this process answers. Never the services' readiness:
        # a paused broker must neither restart the gateway nor take it out of its load balancer,
        # since the services answer much without it.
        return jsonify(status="ok", service="gateway")

    app.add_url_rule("/healthz", "healthz", health)
    app.add_url_rule("/readyz", "readyz", health)
    app.add_url_rule("/livez", "livez", alive)

    @app.route("/api/v1/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def forward(rest: str) -> Response:
        policy: RoutePolicy = g.route_policy
        if policy.service is None:
            raise NotFound("There is no API resource at this path.")
        response = clients[policy.service].forward(
            request.path, encode_principal(g.principal, internal_secret)
        )
        if (policy.method, policy.path) == OPENING_ROUTE and response.status_code == 201:
            response = _with_participant_session(response, participant_sessions)
        if (policy.method, policy.path) == INVITING_ROUTE and response.status_code == 201:
            response = _with_invitation_url(response, settings)
        return response

    return app


def readiness_probe_timeout(settings: Settings) -> float:
    """How long the gateway waits for a service's /readyz: longer than the service may itself
    wait for a silent broker (its connect and its answer, per bootstrap server), so a service that
    says "not ready" is reported as such, never as unreachable."""
    brokers = max(1, len(settings.kafka.bootstrap_servers.split(",")))
    return 2 * HealthBounds.from_settings(settings).broker_ack_s * brokers + 3.0


def _client(name: str, settings: Settings) -> ServiceClient:
    breaker = CircuitBreaker(
        failure_threshold=int(settings.get("CIRCUIT_FAILURES") or 5),
        cooldown_s=float(settings.get("CIRCUIT_COOLDOWN_S") or 10),
    )
    return ServiceClient(
        name,
        settings.require(f"{name.upper()}_URL"),
        breaker=breaker,
        read_timeout=float(settings.get("SERVICE_TIMEOUT_S") or 15),
    )


def _spec_fetcher(client: ServiceClient) -> Callable[[], dict | None]:
    def fetch() -> dict | None:
        status, body = client.get_json("/openapi.json", timeout=5.0)
        return body if status == 200 and "paths" in body else None

    return fetch


def _install_gateway_metrics(app: Flask, clients: dict[str, ServiceClient]) -> Any:
    metrics = metrics_of(app)
    if metrics is None:
        raise RuntimeError("install_request_context installs the metrics before this")
    upstream = metrics.counter(
        "voices_gateway_upstream_calls", "Calls to services by outcome", ["target", "outcome"]
    )
    for client in clients.values():
        client.on_outcome = lambda service, outcome: upstream.labels(service, outcome).inc()
    metrics.register(
        GaugeCollector(
            "voices_gateway_circuit_state",
            "0 closed, 1 half-open, 2 open",
            ["target"],
            lambda: (
                ((name,), float(_CIRCUIT_STATES[c.breaker.state])) for name, c in clients.items()
            ),
        )
    )
    return metrics.counter(
        "voices_gateway_rate_limited", "Requests refused by a rate limit", ["caller"]
    )


def _authenticate(
    policy: RoutePolicy, participant_sessions: ParticipantSessions, limits: Limits
) -> tuple[Principal, tuple[str, str]]:
    """The caller and the rate-limit bucket they spend from. Raises Unauthorized for credentials
    that are sent but not valid (also on public routes: a bad credential is never ignored),
    Forbidden for a cross-site call made with a session cookie."""
    g.participant_session = None
    header = request.headers.get("Authorization")
    try:
        if header is not None:
            scheme, _, credential = header.strip().partition(" ")
            credential = credential.strip()
            if scheme.lower() != "bearer" or not credential:
                raise Unauthorized("Send credentials as Authorization: Bearer <token>.")
            if looks_like_session(credential):
                session = participant_sessions.verify(credential)
                g.participant_session = session
                return session.principal(), ("participant", session.session_id)
            return accounts.authenticate_token(credential), (
                "staff",
                accounts.credential_key(credential),
            )
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            try:
                principal = accounts.authenticate_session(cookie)
            except Unauthorized:
                if policy.public:
                    return ANONYMOUS, (
                        "anonymous",
                        policy.path,
                    )  # a stale cookie must not block signing in
                raise
            origin = request.headers.get("Origin")
            if (
                request.method not in _SAFE_METHODS
                and origin
                and urlsplit(origin).netloc != request.host
            ):
                raise Forbidden("Cross-site requests with a session cookie are refused.")
            return principal, ("staff", accounts.credential_key(cookie))
    except Unauthorized:
        # Guessing credentials spends from the anonymous bucket, so it cannot run unbounded.
        wait = limits.spend("anonymous", "failed-credentials")
        if wait:
            raise TooManyRequests(
                "Too many failed sign-ins. Please wait.", retry_after=retry_after(wait)
            ) from None
        raise
    return ANONYMOUS, ("anonymous", policy.path)


def _sent_code(policy: RoutePolicy, path_args: dict, body: object) -> str | None:
    """The code the caller proves itself with on this route (path or body), or None."""
    if not policy.code_field:
        return None
    value = path_args.get(policy.code_field)
    if value is None and isinstance(body, dict):
        value = body.get(policy.code_field)
    return value if isinstance(value, str) and value.strip() else None


def _with_participant_session(
    response: Response, participant_sessions: ParticipantSessions
) -> Response:
    """The opened invitation's answer plus a participant session bound to its consultation and pseudonym."""
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("consultation_id") or not body.get("pseudonym"):
        return response
    return _with_fields(
        response,
        body,
        {
            "participant_session": participant_sessions.issue(
                body["consultation_id"], body["pseudonym"]
            ),
            "participant_session_expires_in": participant_sessions.ttl_s,
        },
    )


def _with_invitation_url(response: Response, settings: Settings) -> Response:
    """The new invitation's answer plus `url`: its participant page, the link to hand out."""
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("code"):
        return response
    # VOICES_PUBLIC_URL when set (what participants type or scan), else this request's own origin.
    origin = (
        settings.get("PUBLIC_URL")
        or f"{'https' if behind_tls(settings) else request.scheme}://{request.host}"
    )
    return _with_fields(
        response, body, {"url": origin.rstrip("/") + url_for("web.invitation", code=body["code"])}
    )


def _with_fields(response: Response, body: dict, fields: dict) -> Response:
    response.set_data(json.dumps({**body, **fields}, ensure_ascii=False).encode())
    return response
