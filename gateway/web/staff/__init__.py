"""The staff pages: sign-in and the staff layout (the shell), and the page modules built on it.

`init_staff(app, clients, settings, catalogs)` registers every staff blueprint under /staff.
How a page module plugs in: README.md in this folder.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import Flask

from gateway.proxy import ServiceClient
from gateway.web.i18n import Catalogs
from gateway.web.staff.calls import StaffApi
from gateway.web.staff.state import StaffWeb
from shared.settings import Settings

DEFAULT_IDLE_S = 30 * 60  # a staff page unused this long asks to sign in again


def init_staff(
    app: Flask, clients: dict[str, ServiceClient], settings: Settings, catalogs: Catalogs
) -> StaffWeb:
    """Register the staff pages on `app`.

    Settings: VOICES_SESSION_SECRET (required), VOICES_INTERNAL_TOKEN (required, signs the
    principal sent to the services), VOICES_STAFF_IDLE_S (idle time before a staff page asks to
    sign in again, default 30 minutes).
    """
    from gateway.web.staff.builder import builder
    from gateway.web.staff.operations.views import operations
    from gateway.web.staff.shell import assets, shell

    session_secret = settings.require("SESSION_SECRET").encode()
    state = StaffWeb(
        api=StaffApi(clients, settings.require("INTERNAL_TOKEN").encode()),
        catalogs=catalogs,
        settings=settings,
        secret=hmac.new(session_secret, b"staff-pages", hashlib.sha256).digest(),
        idle=timedelta(seconds=int(settings.get("STAFF_IDLE_S") or DEFAULT_IDLE_S)),
    )
    app.extensions["voices_staff_web"] = state
    for blueprint in (assets, shell, builder, operations):
        app.register_blueprint(blueprint)
    return state
