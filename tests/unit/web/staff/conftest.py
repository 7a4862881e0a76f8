"""The staff pages in-process: the gateway and the three services joined by WSGI and one bus.

`staff_browser(role)` gives a test client signed in through the sign-in page, which fills in the
CSRF token of the page it last read on every form it sends, as a browser would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.unit.gateway.conftest import Platform, build_platform

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class StaffBrowser:
    """A browser of the staff pages: cookies, and the CSRF token of the last page read."""

    platform: Platform
    client: Any
    email: str = ""
    account_id: str = ""
    token: str = ""  # an API token of the same account, for setting up data through the API
    csrf: str = ""
    last: Any = None
    pages: list[str] = field(default_factory=list)

    def get(self, path: str, **kwargs: Any):
        response = self.client.get(path, **kwargs)
        self._read(response)
        return response

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kwargs: Any):
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        response = self.client.post(path, data=form, **kwargs)
        self._read(response)
        return response

    def _read(self, response) -> None:
        self.last = response
        if response.mimetype == "text/html":
            found = _CSRF.search(response.get_data(as_text=True))
            if found:
                self.csrf = found.group(1)

    def sign_in(self, email: str | None = None, password: str = PASSWORD):
        self.get("/staff/sign-in")
        return self.post("/staff/sign-in", {"email": email or self.email, "password": password})


@pytest.fixture(scope="module")
def platform(secrets_env) -> Platform:
    return build_platform(secrets_env, RATE_SIGN_IN="1000/60")


@pytest.fixture(scope="module")
def organisation(platform) -> str:
    return platform.organisation()


def make_account(platform: Platform, role: str, organisation_id: str | None) -> dict:
    """A new account of `role` with the password PASSWORD and an API token."""
    person = platform.staff(role, organisation_id)
    platform.call(
        "PUT",
        f"/api/v1/accounts/{person['account_id']}/password",
        platform.admin_token,
        expect=204,
        json={"password": PASSWORD},
    )
    return person


@pytest.fixture
def new_browser(platform) -> Callable[[], StaffBrowser]:
    """A factory of browsers with empty cookie jars."""
    return lambda: StaffBrowser(platform, platform.gateway.test_client())


@pytest.fixture
def staff_browser(platform, organisation, new_browser) -> Callable[[str], StaffBrowser]:
    """A factory: a browser signed in as a new account of `role` (in the module's organisation,
    none for admins and platform auditors)."""

    def make(role: str = "organiser") -> StaffBrowser:
        org = None if role in ("admin", "platform_auditor") else organisation
        person = make_account(platform, role, org)
        browser = new_browser()
        browser.email, browser.account_id, browser.token = (
            person["email"],
            person["account_id"],
            person["token"],
        )
        response = browser.sign_in()
        assert response.status_code == 303, response.get_data(as_text=True)
        return browser

    return make
