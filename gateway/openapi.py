"""One OpenAPI document for the whole public API, merged at run time, and a docs page to read it.

Each service serves its own document (flask-smorest, from its marshmallow schemas); the gateway
merges them with its own, keeps only the operations the policy table lists (for the service the
table names), and adds what only the gateway knows: who may call each operation (security and
`x-voices-roles`), the errors the gateway itself answers, and the participant session it adds
to an opened invitation. Nothing in the document is written by hand.

The docs page (/docs) is Swagger UI served from the `swagger-ui-bundle` package's files, so no
script comes from another origin; without that package it falls back to a plain HTML listing.
"""

from __future__ import annotations

import copy
import html
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, jsonify, send_from_directory

from gateway.participant_sessions import OPENING_ROUTE
from gateway.policy import POLICY, RoutePolicy, find, route_shape
from shared.errors import PROBLEM_MIME

METHODS = ("get", "put", "post", "patch", "delete")
CACHE_TTL_S = 60.0
SECURITY_SCHEMES = {
    "apiToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API token (vt_...)",
        "description": "A staff API token, shown once when issued.",
    },
    "staffSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "voices_session",
        "description": "The cookie set by POST /api/v1/sessions (staff sign-in).",
    },
    "participantSession": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The participant_session returned when an invitation is opened; "
        "optional, bound to one consultation.",
    },
}
_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")


def _rename_refs(node: Any, renames: Mapping[str, str]) -> Any:
    """`node` with every `#/components/<kind>/<name>` reference renamed per `renames` (keyed by the ref)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rename_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def _merge_components(target: dict, spec: dict, prefix: str) -> dict:
    """Add `spec`'s components into `target`; a name already taken by a different definition gets
    `prefix` in front. Returns `spec` with its references rewritten accordingly."""
    components = spec.get("components", {})
    renames: dict[str, str] = {}
    for kind, entries in components.items():
        taken = target.setdefault(kind, {})
        for name, definition in entries.items():
            if name in taken and taken[name] != definition:
                renames[f"#/components/{kind}/{name}"] = f"#/components/{kind}/{prefix}{name}"
    spec = _rename_refs(spec, renames) if renames else spec
    for kind, entries in spec.get("components", {}).items():
        for name, definition in entries.items():
            ref = f"#/components/{kind}/{name}"
            new_name = renames.get(ref, ref).rsplit("/", 1)[1]
            target[kind].setdefault(new_name, definition)
    return spec


def _security(row: RoutePolicy) -> list[dict]:
    if row.public:
        # Anyone may call; a participant may send their session (it gets its own rate-limit bucket).
        return [{}, {"participantSession": []}] if row.service else [{}]
    return [{"apiToken": []}, {"staffSession": []}]


def _gateway_responses(row: RoutePolicy, method: str) -> dict:
    """The errors the gateway answers itself for this route, before any service sees the call."""
    problem = {"$ref": "#/components/responses/Problem"}
    responses = {"429": problem}
    if not row.public:
        responses.update({"401": problem, "403": problem})
    if method in ("post", "put", "patch"):
        responses.update({"413": problem, "415": problem})
    if row.service:
        responses["503"] = problem
    return responses


def _annotate(operation: dict, row: RoutePolicy, method: str) -> dict:
    operation = dict(operation)
    operation["security"] = _security(row)
    operation["x-voices-roles"] = sorted(row.allowed)
    responses = dict(operation.get("responses", {}))
    for status, response in _gateway_responses(row, method).items():
        responses.setdefault(status, response)
    operation["responses"] = responses
    if row.accepts and "requestBody" in operation:
        content = operation["requestBody"].get("content", {})
        operation["requestBody"] = {
            **operation["requestBody"],
            "content": {k: v for k, v in content.items() if k in row.accepts} or content,
        }
    return operation


def _add_participant_session(operation: dict, schemas: dict) -> None:
    """The opened-invitation answer also carries the session the gateway issues: documented as one
    object with both sets of properties (an allOf of two closed schemas would refuse every answer)."""
    session_properties = schemas["ParticipantSession"]["properties"]
    for status, response in operation.get("responses", {}).items():
        media = (
            response.get("content", {}).get("application/json") if status.startswith("2") else None
        )
        if not media or "schema" not in media:
            continue
        name = media["schema"].get("$ref", "").rsplit("/", 1)[-1]
        answer = copy.deepcopy(schemas[name] if name else media["schema"])
        answer["properties"] = {**answer.get("properties", {}), **session_properties}
        if name:
            schemas[f"{name}WithSession"] = answer
            media["schema"] = {"$ref": f"#/components/schemas/{name}WithSession"}
        else:
            media["schema"] = answer


def merge_documents(
    own: dict,
    services: Mapping[str, dict | None],
    policy: Iterable[RoutePolicy] = POLICY,
    title: str = "Voices API",
    version: str = "v1",
) -> dict:
    """The public API document: `own` (the gateway's spec) and each service's spec (None: unreachable),
    filtered to the operations the policy table gives to that service (or to the gateway)."""
    policy = tuple(policy)
    merged: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": version,
            "description": "The public API of Voices. Every error is application/problem+json (RFC 7807).",
        },
        "paths": {},
        "tags": [],
        "components": {"securitySchemes": dict(SECURITY_SCHEMES)},
    }
    missing = [name for name, spec in services.items() if spec is None]
    sources = [(None, own), *((name, spec) for name, spec in services.items() if spec is not None)]
    seen_tags: set[str] = set()
    for service, spec in sources:
        spec = _merge_components(
            merged["components"], copy.deepcopy(spec), (service or "gateway").capitalize()
        )
        for tag in spec.get("tags", []):
            if tag.get("name") not in seen_tags:
                seen_tags.add(tag.get("name"))
                merged["tags"].append(tag)
        for path, item in spec.get("paths", {}).items():
            for method in METHODS:
                if method not in item:
                    continue
                row = find(method, path, policy)
                if row is None or row.service != service:
                    continue  # not public, or served by someone else
                operation = _annotate(item[method], row, method)
                if (row.method, row.path) == OPENING_ROUTE:
                    _add_participant_session(operation, merged["components"]["schemas"])
                target = merged["paths"].setdefault(path, {})
                if "parameters" in item:
                    target["parameters"] = item["parameters"]
                target[method] = operation
    merged["components"].setdefault("responses", {})["Problem"] = {
        "description": "An error answered by the gateway (authentication, authorization, limits, a service down)",
        "content": {PROBLEM_MIME: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        "headers": {
            "Retry-After": {
                "description": "seconds to wait (429, 503)",
                "schema": {"type": "integer"},
            }
        },
    }
    if missing:
        merged["info"]["x-voices-incomplete"] = sorted(missing)
    return merged


def documented_routes(document: dict) -> set[tuple[str, str]]:
    """(METHOD, route shape) of every operation in a document."""
    return {
        (method.upper(), route_shape(path))
        for path, item in document.get("paths", {}).items()
        for method in METHODS
        if method in item
    }


class MergedDocument:
    """Builds the merged document on demand and keeps a complete one for CACHE_TTL_S."""

    def __init__(
        self,
        own: Callable[[], dict],
        fetchers: Mapping[str, Callable[[], dict | None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._own, self._fetchers, self._clock = own, fetchers, clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None

    def get(self) -> dict:
        with self._lock:
            if self._cached and self._clock() - self._cached[0] < CACHE_TTL_S:
                return self._cached[1]
        document = merge_documents(
            self._own(), {name: fetch() for name, fetch in self._fetchers.items()}
        )
        if "x-voices-incomplete" not in document["info"]:
            with self._lock:
                self._cached = (self._clock(), document)
        return document


def _assets_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    path = Path(swagger_ui_bundle.swagger_ui_path)
    return path if (path / "swagger-ui-bundle.js").exists() else None


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Voices API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>
"""

# Kept in a file of its own, not inline, so the CSP needs no 'unsafe-inline' for scripts.
# validatorUrl null: Swagger UI would otherwise send the document to a third-party validator.
_DOCS_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
    validatorUrl: null, presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
});
"""


def _plain_page(document: dict) -> str:
    rows = []
    for path, item in sorted(document.get("paths", {}).items()):
        for method in METHODS:
            if method in item:
                op = item[method]
                rows.append(
                    f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                    f"<td>{html.escape(', '.join(op.get('x-voices-roles', [])))}</td>"
                    f"<td>{html.escape(op.get('summary', ''))}</td></tr>"
                )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Voices API</title></head><body>'
        '<h1>Voices API</h1><p>The full document: <a href="/openapi.json">/openapi.json</a></p>'
        "<table><thead><tr><th>method</th><th>path</th><th>who</th><th>what</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>"
    )


def init_openapi(app: Flask, document: MergedDocument) -> None:
    """Serve /openapi.json and the docs page (/docs) from `document`."""
    bp = Blueprint("public_openapi", __name__)
    assets = _assets_dir()

    @bp.get("/openapi.json")
    def openapi_json():
        response = jsonify(document.get())
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/docs")
    def docs():
        if assets is None:
            return Response(_plain_page(document.get()), mimetype="text/html")
        return Response(_DOCS_PAGE, mimetype="text/html")

    @bp.get("/docs/init.js")
    def docs_init():
        return Response(_DOCS_INIT, mimetype="text/javascript")

    @bp.get("/docs/assets/<name>")
    def docs_asset(name: str) -> Response:
        if assets is None or name not in _ASSETS:
            abort(404)
        return send_from_directory(assets, name, max_age=3600)

    app.register_blueprint(bp)
