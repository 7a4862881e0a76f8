"""Who is calling: the gateway authenticates, services re-check scope.

The gateway forwards the authenticated principal in `X-Voices-Principal`
(base64url JSON) with an HMAC-SHA256 over it in `X-Voices-Principal-Sig`,
keyed by the internal secret every process shares. A request that reaches a
service directly, without a valid signature, is anonymous.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field

from flask import Flask, g, request

from shared.errors import Forbidden, NotFound, Unauthorized

HEADER = "X-Voices-Principal"
SIG_HEADER = "X-Voices-Principal-Sig"
# An auditor reads the ledger entries of their own organisation's consultations; a platform auditor,
# an account only an admin creates and in no organisation, reads every organisation's.
ROLES = ("organiser", "policy", "auditor", "platform_auditor", "admin")
ORGANISATION_LESS_ROLES = ("platform_auditor", "admin")


@dataclass(frozen=True)
class Principal:
    kind: str  # "staff" | "participant" | "anonymous"
    subject: str = ""
    role: str | None = None
    organisation_id: str | None = None
    # Organisations whose releases a policy user may also read.
    readable_organisations: tuple[str, ...] = field(default_factory=tuple)
    consultation_id: str | None = None  # participant sessions are bound to one consultation

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Principal(kind="anonymous")


def encode_principal(principal: Principal, secret: bytes) -> dict[str, str]:
    """Headers carrying `principal`, signed with `secret`."""
    raw = json.dumps(asdict(principal), separators=(",", ":"), sort_keys=True).encode()
    value = base64.urlsafe_b64encode(raw).decode()
    signature = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    return {HEADER: value, SIG_HEADER: signature}


def decode_principal(value: str | None, signature: str | None, secret: bytes) -> Principal:
    if not value or not signature:
        return ANONYMOUS
    expected = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return ANONYMOUS
    data = json.loads(base64.urlsafe_b64decode(value.encode()))
    data["readable_organisations"] = tuple(data.get("readable_organisations") or ())
    return Principal(**data)


def install_principal(app: Flask, secret: bytes) -> None:
    """Decode the forwarded principal once per request into `g.principal`."""

    @app.before_request
    def _principal():
        g.principal = decode_principal(
            request.headers.get(HEADER), request.headers.get(SIG_HEADER), secret
        )


def current_principal() -> Principal:
    return g.get("principal", ANONYMOUS)


def session_consultation() -> str | None:
    """The consultation the calling participant session is bound to; None for any other caller.

    Consent tokens and codes are checked against it, so a session for one consultation cannot
    carry another consultation's credentials."""
    principal = current_principal()
    return principal.consultation_id if principal.kind == "participant" else None


def require_staff(*roles: str) -> Principal:
    """The calling staff member, if they hold one of `roles`. Raises Unauthorized or Forbidden."""
    principal = current_principal()
    if principal.kind != "staff":
        raise Unauthorized("Sign in with a staff account or API token.")
    if roles and principal.role not in roles:
        raise Forbidden(f"This action needs one of the roles: {', '.join(roles)}.")
    return principal


def require_same_organisation(principal: Principal, organisation_id: str) -> None:
    """Tenant scope: another organisation's object looks exactly like a missing one."""
    if principal.role != "admin" and principal.organisation_id != organisation_id:
        raise NotFound("No such resource.")
