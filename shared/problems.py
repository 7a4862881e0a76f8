"""The one mapping of errors to RFC 7807 problem+json, for every process.

`register_problem_handlers` turns the domain errors of `shared.errors`, and every HTTP error Flask
or flask-smorest raises, into the same body shape.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, has_request_context, json
from flask.typing import ResponseReturnValue
from marshmallow import INCLUDE, Schema, fields
from werkzeug.exceptions import HTTPException

from shared.errors import PROBLEM_MIME, DomainError


class ProblemSchema(Schema):
    """The body of every error response (RFC 7807); documents the `default` response of each operation.

    Domain errors may add their own members (RFC 7807 section 3.2), hence INCLUDE.
    """

    class Meta:
        unknown = INCLUDE

    type = fields.String(metadata={"description": "always about:blank"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Raw(metadata={"description": "validation messages keyed by field"})
    request_id = fields.String()
    retry_after = fields.Integer(metadata={"description": "seconds to wait (429, 503)"})
    service = fields.String(metadata={"description": "the service that could not be reached (503)"})


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> Response:
    """A problem+json response; `type` stays about:blank (RFC 7807 section 4.2)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    # The id set by the request context (validated there), never a raw header echoed back.
    rid = g.get("request_id") if has_request_context() else None
    if rid:
        body.setdefault("request_id", rid)
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    if isinstance(body.get("retry_after"), int):
        resp.headers["Retry-After"] = str(body["retry_after"])
    return resp


def _from_http_exception(exc: HTTPException) -> Response:
    extra: dict[str, Any] = {}
    # flask-smorest attaches marshmallow messages as exc.data["messages"].
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if messages:
        # Messages come keyed by location ("json", "query"); flatten one level.
        if isinstance(messages, dict) and len(messages) == 1:
            messages = next(iter(messages.values()))
        extra["errors"] = messages
    detail = exc.description if exc.description and not messages else None
    if messages:
        detail = "The request does not match the expected schema."
    status = exc.code or 500
    # Unprocessable JSON from flask-smorest is a validation failure for our clients.
    resp = problem(status, exc.name, detail, **extra)
    for header, value in exc.get_headers() if hasattr(exc, "get_headers") else []:
        if header.lower() in {"allow", "retry-after", "www-authenticate"}:
            resp.headers[header] = value
    return resp


def register_problem_handlers(app: Flask) -> None:
    """Map DomainError, HTTPException and anything unexpected to problem+json.

    Registered after flask-smorest's own handler so this one wins.
    """

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> ResponseReturnValue:
        return problem(exc.status, exc.title, exc.detail, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        return _from_http_exception(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        app.logger.error("unhandled error", exc_info=exc)
        return problem(
            500,
            "Internal error",
            "An unexpected error occurred. It has been logged with the request id.",
        )
