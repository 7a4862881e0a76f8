"""A new invitation's answer carries the whole participant link, not only its code."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.unit.gateway.conftest import build_platform
from tests.unit.web.conftest import open_demo_consultation


@pytest.mark.parametrize("kind", ["single", "link"])
def test_the_invitation_answer_has_the_participant_url(platform, kind):
    demo = open_demo_consultation(platform)
    created = platform.call(
        "POST",
        f"/api/v1/consultations/{demo.consultation_id}/invitations",
        demo.organiser_token,
        expect=201,
        json={"kind": kind},
        base_url="https://localhost",
    ).get_json()
    assert created["url"] == f"https://localhost/i/{quote(created['code'], safe='')}"
    page = platform.gateway.test_client().get(created["url"].removeprefix("https://localhost"))
    assert page.status_code == 200 and b'data-page="invitation"' in page.data


def test_a_configured_public_url_is_used(secrets_env):
    platform = build_platform(secrets_env, PUBLIC_URL="https://voices.example.org/")
    demo = open_demo_consultation(platform)
    created = platform.call(
        "POST",
        f"/api/v1/consultations/{demo.consultation_id}/invitations",
        demo.organiser_token,
        expect=201,
        json={"kind": "single"},
    ).get_json()
    assert created["url"] == f"https://voices.example.org/i/{created['code']}"
