"""The API gateway: the only public entry point. Authenticates, authorizes by one table, forwards."""
from __future__ import annotations

from flask import Flask, g, jsonify, request
from flask_smorest import Api

from gateway import accounts
from gateway.api import staff
from gateway.policy import allows, build_map, match
from gateway.proxy import ServiceClient
from shared import mongo
from shared.auth import ANONYMOUS, encode_principal
from shared.errors import Forbidden, NotFound, Unauthorized, register_problem_handlers
from shared.log import configure_logging
from shared.runtime import install_request_context
from shared.settings import Settings

SERVICES = ("surveys", "consent", "aggregation")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env("gateway")
    configure_logging("gateway", settings.log_level)
    mongo.connect(settings, alias="gateway")
    admin_token = settings.get("ADMIN_TOKEN")
    if admin_token:
        accounts.bootstrap_admin(admin_token)
    internal_secret = settings.require("INTERNAL_TOKEN").encode()

    app = Flask("voices.gateway")
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024, API_TITLE="Voices", API_VERSION="v1",
                      OPENAPI_VERSION="3.0.3")
    api = Api(app)
    api.register_blueprint(staff)
    clients = {name: ServiceClient(name, settings.require(f"{name.upper()}_URL")) for name in SERVICES}
    app.extensions["voices_clients"] = clients
    app.extensions["voices_settings"] = settings
    register_problem_handlers(app)
    install_request_context(app, "gateway")
    route_map = build_map()

    @app.before_request
    def authorize():
        g.principal = ANONYMOUS
        if not request.path.startswith("/api/"):
            return None
        matched = match(route_map, request.method, request.path)
        if matched is None:
            raise NotFound("There is no API resource at this path.")
        policy, _args = matched
        g.route_policy = policy
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            g.principal = accounts.authenticate_token(header[7:].strip())
        if not allows(policy, g.principal.role, g.principal.kind):
            if g.principal.anonymous:
                raise Unauthorized("Sign in or send an API token (Authorization: Bearer ...).")
            raise Forbidden("Your role may not use this resource.")
        return None

    def health():
        services = {}
        for name, client in clients.items():
            status, body = client.get_json("/readyz")
            services[name] = {"ready": status == 200, **body}
        ready = all(s["ready"] for s in services.values())
        return jsonify(status="ready" if ready else "degraded", services=services), (200 if ready else 503)

    app.add_url_rule("/healthz", "healthz", health)
    app.add_url_rule("/readyz", "readyz", health)

    @app.route("/api/v1/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def forward(rest: str):
        policy = g.route_policy
        if policy.service is None:
            raise NotFound("There is no API resource at this path.")
        return clients[policy.service].forward(request.path, encode_principal(g.principal, internal_secret))

    return app
