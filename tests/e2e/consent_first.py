"""Opening a consultation in the order the platform requires: its consent text is published first.

The consent service learns of a new consultation, and the surveys service of a published consent
text, from events; each step waits for the event the next one needs.
"""
from __future__ import annotations

from tests.e2e.conftest import Api, eventually


def publish_consent_text(api: Api, token: str, cid: str, languages, purposes) -> None:
    """Post and publish consent text version 1 in each language; returns once the surveys service knows."""
    headers = {"Authorization": f"Bearer {token}"}

    def text_saved(language: str) -> bool:
        response = api.session.post(f"{api.base}/api/v1/consent/consultations/{cid}/texts", headers=headers,
                                    timeout=10, json={
                                        "version": 1, "language": language, "title": "Your consent",
                                        "body": "We keep your answers safe. You may skip anything and withdraw later.",
                                        "purposes": {p: f"Explanation of {p}." for p in purposes}})
        return response.status_code == 201

    for language in languages:
        eventually(lambda: text_saved(language))
    api.call("POST", f"/api/v1/consent/consultations/{cid}/texts/1/publish", token)
    eventually(lambda: set(api.call("GET", f"/api/v1/consultations/{cid}", token)["consent_languages"])
               >= set(languages))


def publish_consent_then_consultation(api: Api, token: str, cid: str, languages, purposes) -> dict:
    """Consent text version 1 in each language, then the consultation published; returns the consultation."""
    publish_consent_text(api, token, cid, languages, purposes)
    return api.call("POST", f"/api/v1/consultations/{cid}/publish", token)
