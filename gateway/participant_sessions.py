"""Participant sessions: participants have no accounts; opening an invitation gives a short-lived session.

The session is a JWT (HS256, keyed by VOICES_SESSION_SECRET) bound to one consultation and one
pseudonym. It carries nothing about the person. It lets the gateway rate-limit each participant
on their own bucket and refuse calls about another consultation or pseudonym; the consent token
still is what authorises a response submission.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from shared.auth import Principal
from shared.errors import Unauthorized

AUDIENCE = "voices:participant"
ISSUER = "voices-gateway"
DEFAULT_TTL_S = (
    2 * 60 * 60
)  # long enough to answer a survey in one sitting; resume codes cover the rest
# The route whose success opens a session (the gateway adds the session to its answer).
OPENING_ROUTE = ("POST", "/api/v1/invitations/<code>/open")


@dataclass(frozen=True)
class ParticipantSession:
    session_id: str
    consultation_id: str
    pseudonym: str
    expires_at: int

    def principal(self) -> Principal:
        return Principal(
            kind="participant", subject=self.pseudonym, consultation_id=self.consultation_id
        )


class ParticipantSessions:
    """Issues and verifies participant session tokens with one secret."""

    def __init__(self, secret: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        if len(secret) < 32:
            raise RuntimeError("VOICES_SESSION_SECRET must be at least 32 characters")
        self._secret = secret
        self.ttl_s = ttl_s

    def issue(self, consultation_id: str, pseudonym: str, now: float | None = None) -> str:
        """A signed session token for one participant in one consultation."""
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": pseudonym,
            "cid": consultation_id,
            "jti": secrets.token_urlsafe(12),
            "iat": issued,
            "exp": issued + self.ttl_s,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str, now: float | None = None) -> ParticipantSession:
        """The session behind `token`. Raises Unauthorized when it is forged, malformed or expired."""
        options: jwt.types.Options = {"require": ["exp", "iat", "sub", "jti", "aud", "iss"]}
        try:
            if now is None:
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    audience=AUDIENCE,
                    issuer=ISSUER,
                    options=options,
                )
            else:  # tests pass a clock; PyJWT checks expiry against its own, so check by hand
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    audience=AUDIENCE,
                    issuer=ISSUER,
                    options={**options, "verify_exp": False},
                )
                if claims["exp"] <= now:
                    raise jwt.ExpiredSignatureError()
        except jwt.ExpiredSignatureError:
            raise Unauthorized(
                "Your session has expired. Open your invitation link again."
            ) from None
        except jwt.PyJWTError:
            raise Unauthorized("The participant session is not valid.") from None
        cid = claims.get("cid")
        if not isinstance(cid, str) or not cid:
            raise Unauthorized("The participant session is not valid.")
        return ParticipantSession(claims["jti"], cid, claims["sub"], claims["exp"])


def looks_like_session(token: str) -> bool:
    """API tokens start with vt_; a participant session is a three-part JWT."""
    return not token.startswith("vt_") and token.count(".") == 2


def binding_violation(session: ParticipantSession, path_args: dict, body: object) -> str | None:
    """Why a request does not belong to this session (another consultation or pseudonym), or None."""
    consultation = path_args.get("cid")
    if consultation is not None and consultation != session.consultation_id:
        return "This session belongs to another consultation."
    if isinstance(body, dict):
        if "consultation_id" in body and body["consultation_id"] != session.consultation_id:
            return "This session belongs to another consultation."
        if "pseudonym" in body and body["pseudonym"] != session.pseudonym:
            return "This session belongs to another participant."
    return None
