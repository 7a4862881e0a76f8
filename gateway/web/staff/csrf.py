"""CSRF tokens for the staff forms: an HMAC of what the browser holds, checked on every POST.

A token is bound to the staff session cookie when signed in, and before that to a random cookie
of its own (so the sign-in and set-password forms are protected too). Another site can neither
read the cookie nor compute the token, so it cannot forge a form that passes. The cookies are
SameSite=Strict as well; the token is what protects browsers that ignore that attribute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_FIELD = "csrf_token"  # noqa: S105 (the name of a form field, not a secret)


def new_binding() -> str:
    """A random value for the cookie that binds tokens before signing in."""
    return secrets.token_urlsafe(32)


def token_for(secret: bytes, binding: str) -> str:
    """The token forms carry for a browser holding `binding` (a session or pre-session cookie)."""
    return hmac.new(secret, b"staff-csrf:" + binding.encode(), hashlib.sha256).hexdigest()


def token_matches(secret: bytes, binding: str | None, sent: str | None) -> bool:
    """Whether `sent` is the token for `binding` (compared in constant time)."""
    if not binding or not sent:
        return False
    return hmac.compare_digest(token_for(secret, binding).encode(), sent.encode())
