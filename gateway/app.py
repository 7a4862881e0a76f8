"""The API gateway: the only public entry point."""
from __future__ import annotations

from flask import Flask, jsonify, request

from gateway.proxy import ServiceClient
from gateway.routing import owner_of
from shared.errors import NotFound, register_problem_handlers
from shared.log import configure_logging
from shared.runtime import install_request_context
from shared.settings import Settings

SERVICES = ("surveys", "consent", "aggregation")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env("gateway")
    configure_logging("gateway", settings.log_level)
    app = Flask("voices.gateway")
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024)
    clients = {name: ServiceClient(name, settings.require(f"{name.upper()}_URL")) for name in SERVICES}
    app.extensions["voices_clients"] = clients
    app.extensions["voices_settings"] = settings
    register_problem_handlers(app)
    install_request_context(app, "gateway")

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
        path = request.path
        service = owner_of(path)
        if service is None:
            raise NotFound("There is no API resource at this path.")
        return clients[service].forward(path, {})

    return app
