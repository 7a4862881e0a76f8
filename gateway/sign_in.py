"""Sign-in limits and the known-browser cookie, shared by the API's sign-in and the staff pages.

Attempts are limited per email address, and separately per browser that signed in to that
account before (or set its password from a link): wrong passwords sent from elsewhere never lock
the owner out of a browser they used. The browser is marked with a cookie sent only to the
sign-in route that set it (`path`).
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Response, current_app, request

from gateway import accounts
from gateway.guards import behind_tls
from gateway.models import Account
from gateway.ratelimit import retry_after
from shared.errors import TooManyRequests

DEVICE_COOKIE = "voices_device"


def _device_secret() -> bytes:
    secret = current_app.extensions["voices_settings"].require("SESSION_SECRET")
    return hmac.new(secret.encode(), b"staff-device", hashlib.sha256).digest()


def spend_sign_in_attempt(email: str) -> bool:
    """Whether the browser is one the owner used before for this address (its password check then
    runs in the known browsers' turn too). Raises TooManyRequests when this attempt is over its
    budget: the browser's own for such a browser, otherwise the address's and the route's (shared
    by new browsers)."""
    limits = current_app.extensions["voices_limits"]
    device = accounts.device_key(request.cookies.get(DEVICE_COOKIE), email, _device_secret())
    if device is not None:
        spent = [limits.spend("sign_in", device)]
    else:
        # Named by a hash: an email address is never a key in memory or in a log.
        address = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        spent = [limits.spend("anonymous", rule), limits.spend("sign_in", address)]
    wait = max(spent)
    if wait:
        raise TooManyRequests(
            "Too many sign-in attempts for this account. Please wait, sign in from a browser you "
            "used before, or ask an admin for a set-password link.",
            retry_after=retry_after(wait),
        )
    return device is not None


def mark_device(response: Response, account: Account, path: str) -> None:
    """Mark this browser as one the owner of `account` used (unless it is already), for `path`."""
    if (
        accounts.device_key(request.cookies.get(DEVICE_COOKIE), account.email, _device_secret())
        is not None
    ):
        return
    settings = current_app.extensions["voices_settings"]
    response.set_cookie(
        DEVICE_COOKIE,
        accounts.device_cookie(account.email, _device_secret()),
        max_age=int(accounts.DEVICE_TTL.total_seconds()),
        path=path,
        httponly=True,
        samesite="Strict",
        secure=behind_tls(settings),
    )
