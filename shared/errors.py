"""Domain errors: what domain code raises on purpose, each with its HTTP status and title.

Plain exceptions, free of any web framework, so domain modules can raise them; `shared.problems`
maps them, and every HTTP error Flask or flask-smorest raises, to RFC 7807 problem+json.
"""

from __future__ import annotations

from typing import Any

PROBLEM_MIME = "application/problem+json"


class DomainError(Exception):
    """Base of every error a domain function may raise on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Unauthorized(DomainError):
    status, title = 401, "Unauthorized"


class Forbidden(DomainError):
    status, title = 403, "Forbidden"


class NotFound(DomainError):
    status, title = 404, "Not found"


class Conflict(DomainError):
    status, title = 409, "Conflict"


class Gone(DomainError):
    status, title = 410, "Gone"


class ValidationFailed(DomainError):
    """Input that parsed but breaks a rule; `errors` maps a path to messages."""

    status, title = 422, "Validation failed"


class PayloadTooLarge(DomainError):
    status, title = 413, "Payload too large"


class UnsupportedMediaType(DomainError):
    status, title = 415, "Unsupported media type"


class TooManyRequests(DomainError):
    """Pass `retry_after` (seconds): it becomes the Retry-After header and a body field."""

    status, title = 429, "Too many requests"


class ServiceUnavailable(DomainError):
    """Pass `retry_after` (seconds) when the caller should wait before trying again."""

    status, title = 503, "Service unavailable"
