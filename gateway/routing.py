"""Which service owns which public path. The gateway forwards; it holds no business logic."""
from __future__ import annotations

# Every public API path lives under /api/v1; a prefix owns itself and what lies below it.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/v1/consent", "consent"),
    ("/api/v1/ledger", "consent"),
    ("/api/v1/insights", "aggregation"),
    ("/api/v1/releases", "aggregation"),
    ("/api/v1/consultations", "surveys"),
    ("/api/v1/invitations", "surveys"),
    ("/api/v1/responses", "surveys"),
    ("/api/v1/resume", "surveys"),
)


def owner_of(path: str) -> str | None:
    """The service that owns `path`, or None when no route matches."""
    for prefix, service in sorted(ROUTES, key=lambda route: -len(route[0])):
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None
