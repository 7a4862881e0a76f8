"""What the staff pages share within one gateway process, kept apart so page modules can name it
without importing the package that registers them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gateway.web.i18n import Catalogs
from gateway.web.staff.calls import StaffApi
from shared.settings import Settings


@dataclass
class StaffWeb:
    """What the staff pages share within one gateway process (app.extensions["voices_staff_web"])."""

    api: StaffApi
    catalogs: Catalogs
    settings: Settings
    secret: bytes  # keys CSRF tokens and the one-time messages
    idle: timedelta
