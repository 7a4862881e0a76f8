"""What the gateway checks on every request and adds to every response, before and after routing.

- bodies: at most the route's `max_body` bytes (413), and only the media types the route
  accepts (415): JSON everywhere, multipart only where a row says so; a JSON body must parse
  (400) and stay within what any real request needs (422: nesting depth, digits in a number,
  no lone surrogates, no invisible control characters), so no service ever parses or stores a
  hostile document;
- security headers on every response: a CSP without third-party origins, no referrer, no
  framing, no sniffing; HSTS only behind TLS;
- CORS: off unless VOICES_CORS_ORIGINS lists origins;
- the request head: a URI of at most 4096 bytes (414), at most 100 header fields of at most
  8190 bytes each (431), answered here as problem+json below gunicorn's own, higher limits
  (deploy/gunicorn.conf.py, whose refusals are problem+json too).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import BadRequest, RequestHeaderFieldsTooLarge, RequestURITooLarge

from gateway.policy import RoutePolicy
from shared.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from shared.settings import Settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Far above any real link of ours (codes and ids are short); under gunicorn's 8190-byte line.
MAX_URI_BYTES = 4096
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_BYTES = 8190
# The deepest real document (a survey: sections, questions, options, translations) is under 10.
MAX_JSON_DEPTH = 32
# Integers fit in 64 bits (what MongoDB stores); floats need no more digits than this either.
MAX_NUMBER_CHARS = 40
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters that hide or reorder what a reader sees (NUL and other C0/C1 controls but tab and line
# breaks; bidi embeddings, overrides and isolates; zero-width space, word joiner, BOM): a title with
# one can show participants something else than its organisers meant. The zero-width (non-)joiners
# and the left-to-right and right-to-left marks stay allowed: Arabic, Persian and Indic text need them.
_HIDDEN_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def trusted_proxies(settings: Settings) -> frozenset[str]:
    return frozenset(
        a.strip() for a in (settings.get("TRUSTED_PROXIES") or "").split(",") if a.strip()
    )


def behind_tls(settings: Settings) -> bool:
    """True when the client reached us over HTTPS: directly, through a proxy that says so
    (X-Forwarded-Proto, believed only from an address in VOICES_TRUSTED_PROXIES: anyone else
    could send it), or because the installation declares it (VOICES_BEHIND_TLS)."""
    if _truthy(settings.get("BEHIND_TLS")) or request.is_secure:
        return True
    if request.remote_addr not in trusted_proxies(settings):
        return False
    return request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"


def install_request_head_limits(app: Flask) -> None:
    """Refuse an over-long URI (414) or too many or too large header fields (431) on every
    path, before any view reads them."""

    @app.before_request
    def _request_head_within_limits() -> None:
        environ = request.environ
        uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        if len(uri.encode("latin-1", "replace")) > MAX_URI_BYTES:
            raise RequestURITooLarge(
                f"The URI is longer than {MAX_URI_BYTES} bytes; send long values in a body."
            )
        fields = list(request.headers.items())
        if len(fields) > MAX_HEADER_FIELDS:
            raise RequestHeaderFieldsTooLarge(
                f"The request has more than {MAX_HEADER_FIELDS} header fields."
            )
        for name, value in fields:
            if len(name) + 2 + len(value.encode("latin-1", "replace")) > MAX_HEADER_FIELD_BYTES:
                raise RequestHeaderFieldsTooLarge(
                    f"The header {name[:64]} is longer than {MAX_HEADER_FIELD_BYTES} bytes."
                )


def check_body(row: RoutePolicy) -> None:
    """Raises PayloadTooLarge or UnsupportedMediaType for a body this route does not take."""
    length = request.content_length
    if length is not None and length > row.max_body:
        raise PayloadTooLarge(f"The request body is larger than {row.max_body} bytes.")
    # A chunked body has no length to check up front, and Werkzeug stops reading it at the limit
    # without an error (it would be forwarded cut short): read one byte past the limit to tell a
    # body of exactly the limit from a longer one.
    request.max_content_length = row.max_body + 1
    chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    if chunked and len(request.get_data(cache=True)) > row.max_body:
        raise PayloadTooLarge(f"The request body is larger than {row.max_body} bytes.")
    has_body = bool(length) or chunked
    if request.method not in _BODY_METHODS or not has_body:
        return
    mimetype = request.mimetype
    accepted = mimetype in row.accepts or (
        "application/json" in row.accepts
        and mimetype.startswith("application/")
        and mimetype.endswith("+json")
    )
    if not accepted:
        raise UnsupportedMediaType(
            f"This resource takes {' or '.join(row.accepts)}, not {mimetype or 'an untyped body'}."
        )
    if mimetype != "multipart/form-data":
        g.json_body = parse_json_body(request.get_data(cache=True))


def _number(text: str) -> Any:
    # Checked before converting: int() of thousands of digits is slow, then fails (Python's digit limit).
    number = (
        None
        if len(text) > MAX_NUMBER_CHARS
        else float(text)
        if any(c in text for c in ".eE")
        else int(text)
    )
    if number is None or not math.isfinite(number):
        raise ValidationFailed(
            "A number in the request body is too large.",
            errors={"body": [f"numbers have at most {MAX_NUMBER_CHARS} characters and are finite"]},
        )
    return number


def _not_json(constant: str) -> Any:
    raise BadRequest(f"The request body is not valid JSON ({constant} is not a JSON value).")


def parse_json_body(raw: bytes) -> Any:
    """The parsed body, or None when it is empty. Raises BadRequest (not UTF-8 JSON) or
    ValidationFailed (nested deeper than MAX_JSON_DEPTH, a number longer than MAX_NUMBER_CHARS,
    a lone surrogate or a hidden control character in a string or a key; `errors` names where),
    before any of it reaches a service."""
    if not raw.strip():
        return None
    try:
        document = json.loads(
            raw.decode("utf-8"), parse_int=_number, parse_float=_number, parse_constant=_not_json
        )
    except RecursionError:  # nested past the interpreter's limit: far deeper than MAX_JSON_DEPTH
        raise _too_deep() from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    # Iterative walk: the check itself must not recurse on hostile input.
    pending: list[tuple[Any, tuple]] = [(document, ())]
    while pending:
        value, path = pending.pop()
        if isinstance(value, (dict, list)):
            if len(path) >= MAX_JSON_DEPTH:
                raise _too_deep()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key, path)
                pending.append((item, (*path, key)))
        elif isinstance(value, str):
            _check_text(value, path)
    return document


def _too_deep() -> ValidationFailed:
    return ValidationFailed(
        "The request body is nested too deeply.",
        errors={"body": [f"at most {MAX_JSON_DEPTH} levels of objects and arrays"]},
    )


def _check_text(text: str, path: tuple) -> None:
    where = ".".join(map(str, path)) or "body"
    if _LONE_SURROGATE.search(text):
        raise ValidationFailed(
            "The request body holds a string that is not valid Unicode (a lone surrogate).",
            errors={where: ["strings must be valid Unicode"]},
        )
    hidden = _HIDDEN_CONTROL.search(text)
    if hidden:
        raise ValidationFailed(
            "The request body holds an invisible control character.",
            errors={
                where: [
                    f"U+{ord(hidden.group()):04X} is not allowed: it can hide or reorder what readers see"
                ]
            },
        )


def cors_origins(settings: Settings) -> frozenset[str]:
    return frozenset(
        o.strip().rstrip("/") for o in (settings.get("CORS_ORIGINS") or "").split(",") if o.strip()
    )


def preflight(settings: Settings) -> Response | None:
    """The answer to a CORS preflight from an allowed origin, or None (then OPTIONS is a 405 like any
    method the table does not list)."""
    origin = request.headers.get("Origin", "")
    if request.method != "OPTIONS" or origin not in cors_origins(settings):
        return None
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE"
    response.headers["Access-Control-Allow-Headers"] = (
        "Authorization, Content-Type, X-Request-ID, X-Trace-ID"
    )
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def install_response_headers(app: Flask, settings: Settings) -> None:
    """Security headers (and CORS headers for allowed origins) on every response of the gateway.

    A page that needs its own CSP (e.g. with nonces) sets it; `frame-ancestors 'none'` is added
    to it when missing, since no page of ours is ever to be framed.
    """
    origins = cors_origins(settings)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        csp = headers.get("Content-Security-Policy")
        if not csp:
            headers["Content-Security-Policy"] = CSP
        elif "frame-ancestors" not in csp:
            headers["Content-Security-Policy"] = f"{csp}; frame-ancestors 'none'"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
        )
        if request.path.startswith("/api/") or request.path in ("/healthz", "/readyz", "/livez"):
            headers.setdefault(
                "Cache-Control", "no-store"
            )  # health answers are live state, never cached
        if behind_tls(settings):
            headers["Strict-Transport-Security"] = HSTS
        origin = request.headers.get("Origin", "")
        if origin and origin in origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers.add("Vary", "Origin")
        return response
