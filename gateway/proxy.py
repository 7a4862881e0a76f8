"""Forwarding to the owning service over HTTP, with timeouts and problem+json when it is down."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

import requests
from flask import Response, g, request

from shared.errors import ServiceUnavailable

log = logging.getLogger("voices.gateway.proxy")

# Hop-by-hop headers (RFC 9110 section 7.6.1) and what the gateway sets itself.
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length",
                  "server", "date"}
_FORWARD_REQUEST = ("Content-Type", "Accept", "Accept-Language", "If-Match", "If-None-Match")


@dataclass
class ServiceClient:
    """A pooled HTTP client towards one service."""

    name: str
    base_url: str
    connect_timeout: float = 2.0
    read_timeout: float = 15.0
    session: requests.Session = field(default_factory=requests.Session)

    def forward(self, path: str, extra_headers: Mapping[str, str]) -> Response:
        headers = {h: request.headers[h] for h in _FORWARD_REQUEST if h in request.headers}
        headers.update(extra_headers)
        headers["X-Request-ID"] = g.request_id
        headers["X-Trace-ID"] = g.trace_id
        try:
            upstream = self.session.request(
                request.method, f"{self.base_url}{path}", params=request.query_string or None,
                data=request.get_data(), headers=headers, timeout=(self.connect_timeout, self.read_timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            log.warning("service %s unreachable: %s", self.name, type(exc).__name__)
            raise ServiceUnavailable(f"The {self.name} service is not reachable right now. Please try again shortly.",
                                     service=self.name) from exc
        response = Response(upstream.content, status=upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in _DROP_RESPONSE:
                response.headers[name] = value
        return response

    def get_json(self, path: str, timeout: float = 2.0) -> tuple[int, dict]:
        try:
            r = self.session.get(f"{self.base_url}{path}", timeout=timeout)
            return r.status_code, r.json()
        except (requests.RequestException, ValueError) as exc:
            return 503, {"status": "unreachable", "error": type(exc).__name__}
