"""JSON log lines carrying the trace id of the request or event being handled."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)


# Client addresses must never reach a log line, whoever writes it (gunicorn logs "Invalid request
# from ip=..." at WARNING). Addresses with a port are kept: those are our own listeners and brokers.
_IPV4 = re.compile(r"(?<![\w.:])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|:\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){3,7}[0-9A-Fa-f]{0,4}(?![\w:])|(?<![\w:])::1\b")
# Concrete URLs carry invitation and resume codes; third-party loggers (gunicorn's "Error handling
# request <uri>", urllib3's debug lines) would print them. Our own lines name route patterns only.
_URL_PATH = re.compile(r"/(?:api|i)/[^\s\"']*")


def redact(text: str, paths: bool = True) -> str:
    """`text` without client addresses and, when `paths`, without concrete URL paths."""
    text = _IPV6.sub("[addr]", _IPV4.sub("[addr]", text))
    return _URL_PATH.sub("[path]", text) if paths else text


class RedactingFilter(logging.Filter):
    """Rewrites every record's message through `redact` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name.startswith("voices")
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 a broken format string still must not leak its arguments
            message = str(record.msg)
        record.msg, record.args = redact(message, paths=not ours), None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        trace_id = getattr(record, "trace_id", None) or trace_id_var.get()
        if trace_id:
            line["trace_id"] = trace_id
        for key in ("event_id", "event_type", "topic", "route", "status", "duration_ms"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (ours, gunicorn's, kafka's) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # gunicorn's error log has its own handler; inside a worker it goes through ours instead.
    gunicorn_error = logging.getLogger("gunicorn.error")
    gunicorn_error.handlers[:] = [handler]
    gunicorn_error.propagate = False
    # Never a gunicorn access log: it would print client addresses, user agents and full URLs.
    logging.getLogger("gunicorn.access").handlers[:] = []
    logging.getLogger("gunicorn.access").disabled = True
    # kafka-python is chatty at INFO about every connection attempt.
    logging.getLogger("kafka").setLevel(os.environ.get("KAFKA_LOG_LEVEL", "WARNING"))
    # Werkzeug's access log prints client addresses; we never log those.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
