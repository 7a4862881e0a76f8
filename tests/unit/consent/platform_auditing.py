"""Consent tests that read the whole ledger do so as a platform auditor: an auditor reads only the
entries of their own organisation's consultations (tests/unit/consent/test_ledger_scope.py)."""

from __future__ import annotations

import pytest


def platform_auditor_headers(consent) -> dict:
    return consent.staff("platform_auditor", None, subject="u_platform_auditor")


@pytest.fixture
def platform_auditor(consent):
    """`consent.auditor(...)`, and so `consent.ledger()`, call as a platform auditor."""

    def as_platform_auditor(method: str, path: str, expect: int = 200, **kwargs):
        return consent.call(
            method, path, expect, headers=platform_auditor_headers(consent), **kwargs
        )

    # A patch of its own: a test's `monkeypatch.undo()` must not take it away.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(consent, "auditor", as_platform_auditor)
        yield
