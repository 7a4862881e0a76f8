"""gunicorn configuration shared by every service and the gateway, in every run mode.

Two workers by default (WEB_CONCURRENCY); each runs its own outbox relay and joins the
service's Kafka consumer group, so partitions are shared between them.
"""

import os
from typing import Any

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
