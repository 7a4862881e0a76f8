"""gunicorn configuration shared by every service and the gateway, in every run mode.

Two workers by default (WEB_CONCURRENCY); each runs its own outbox relay and joins the
service's Kafka consumer group, so partitions are shared between them.
"""

import json
import os
from typing import Any

from gunicorn import util  # type: ignore[import-untyped]

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 10
keepalive = 5
# No access log: gunicorn's would print client addresses and full URLs with codes.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
preload_app = False
# gunicorn 25+ opens a control socket at one default path per user; several gunicorns on one
# host (the services of `make run`) would fight over it, and nothing here uses it.
control_socket_disable = True
# gunicorn's parser refuses requests beyond these before any application sees them. They are
# above the gateway's own limits (gateway/guards.py: URI 4096 bytes, 100 header fields of at most
# 8190 bytes each), which answer first, as problem+json with a request id; the request line is
# at gunicorn's maximum.
limit_request_line = 8190
limit_request_fields = 200
limit_request_field_size = 16380

# What gunicorn answers itself (a request line or header it cannot parse or that is over its
# limits, a transfer coding it does not support) is its own HTML page unless replaced: every error
# of every process is problem+json. The detail never echoes the request, which may carry codes.
_PARSE_ERROR_DETAILS = {
    400: "The request could not be read: its request line or a header is malformed.",
    403: "The request was refused before it was read.",
    414: "The request line is too long: the URI must stay under 4096 bytes.",
    417: "The Expect header asks for something this server does not do.",
    431: "The request's headers are too many or too large.",
    501: "The request's transfer coding is not supported.",
}


def problem_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's `util.write_error`, answering problem+json instead of an HTML page."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": reason,
            "status": status_int,
            "detail": _PARSE_ERROR_DETAILS.get(status_int, "The request could not be handled."),
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


util.write_error = problem_error  # workers call it as util.write_error, after they fork


def _service_runtime(worker: Any) -> Any:
    """The worker's service runtime (`shared.runtime`), or None: the gateway has none, and a
    worker that failed to boot has no app at all."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", None) or {}
    return extensions.get("voices_runtime")


def post_worker_init(worker: Any) -> None:
    """Start the outbox relay and the event consumer inside each worker, after it forked:
    Kafka and MongoDB clients must not be shared across a fork."""
    runtime = _service_runtime(worker)
    if runtime is not None:
        runtime.start_background()


def worker_exit(server: Any, worker: Any) -> None:
    # A worker that failed to boot has no app; gunicorn still calls this hook for it.
    runtime = _service_runtime(worker)
    if runtime is not None:
        runtime.stop()
