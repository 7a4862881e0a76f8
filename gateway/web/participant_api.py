"""The participant pages' calls to the services: the same public routes the API forwards to.

The pages never reach into a service's code or database. They call the surveys and consent
services over HTTP with the gateway's own `ServiceClient`s, so the circuit breaker, timeouts and
upstream metrics apply to them exactly as to forwarded API calls.
"""

from __future__ import annotations

import time
from typing import Any

import requests
from flask import g, has_request_context

from gateway.proxy import CircuitOpen, ServiceClient, service_failed
from shared.errors import ServiceUnavailable

_UNAVAILABLE_STATUSES = {502, 503, 504}


class ServiceRefused(Exception):
    """A service answered with an error: `status` and the problem+json body, for the page to explain in its own words."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body.get('detail') or body.get('title') or ''}")
        self.status = status
        self.body = body

    @property
    def errors(self) -> dict[str, Any]:
        errors = self.body.get("errors")
        return errors if isinstance(errors, dict) else {}


def call_service(
    client: ServiceClient,
    method: str,
    path: str,
    json: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    files: dict[str, tuple[str, bytes, str]] | None = None,
    answer_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON answer of one call to a service (`headers` added to the request, `files` sent as
    multipart/form-data instead of `json`; the answer's headers copied into `answer_headers`).

    Raises ServiceRefused for any other error answer (4xx, 500), ServiceUnavailable when the
    service cannot be reached, answers 502/503/504 or its circuit is open (a 503 problem+json of
    its own is relayed that way too, without counting against its circuit). A read is tried once more after a connection failure.
    """
    headers = {"Accept": "application/json", **(headers or {})}
    if has_request_context() and g.get("request_id"):
        headers["X-Request-ID"] = g.request_id
        headers["X-Trace-ID"] = g.get("trace_id") or g.request_id
    attempts = 2 if method == "GET" else 1
    for attempt in range(attempts):
        try:
            client.breaker.before_call()
        except CircuitOpen as exc:
            _outcome(client, "rejected")
            raise ServiceUnavailable(
                f"The {client.name} service is paused.",
                service=client.name,
                retry_after=max(1, int(exc.retry_after_s)),
            ) from None
        try:
            response = client.session.request(
                method,
                f"{client.base_url}{path}",
                json=json,
                params=params,
                files=files,
                headers=headers,
                allow_redirects=False,
                timeout=(client.connect_timeout, client.read_timeout),
            )
        except requests.RequestException as exc:
            client.breaker.record_failure()
            _outcome(client, "failed")
            if attempt + 1 < attempts and not isinstance(exc, requests.ReadTimeout):
                time.sleep(client.retry_backoff_s)
                continue
            raise ServiceUnavailable(
                f"The {client.name} service is not reachable.", service=client.name, retry_after=1
            ) from exc
        if service_failed(response):
            client.breaker.record_failure()
            _outcome(client, "failed")
            raise ServiceUnavailable(
                f"The {client.name} service failed.", service=client.name, retry_after=1
            )
        client.breaker.record_success()  # it answered, even a 503 of its own: it is up
        _outcome(client, "ok")
        if response.status_code in _UNAVAILABLE_STATUSES:
            raise ServiceUnavailable(
                f"The {client.name} service cannot do this right now.",
                service=client.name,
                retry_after=1,
            )
        if answer_headers is not None:
            answer_headers.update(response.headers)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if response.status_code >= 400:
            raise ServiceRefused(response.status_code, body if isinstance(body, dict) else {})
        return body
    raise AssertionError("unreachable")  # the loop returns or raises


def _outcome(client: ServiceClient, outcome: str) -> None:
    if client.on_outcome is not None:
        client.on_outcome(client.name, outcome)


class ParticipantApi:
    """What a participant can do, as calls to the owning services. Every method may raise
    ServiceRefused (the service said no) or ServiceUnavailable (it could not answer)."""

    def __init__(self, clients: dict[str, ServiceClient]) -> None:
        self.surveys = clients["surveys"]
        self.consent = clients["consent"]

    def open_invitation(self, code: str) -> dict[str, Any]:
        """A fresh pseudonym, the consultation and its current survey (surveys service)."""
        return call_service(
            self.surveys, "POST", f"/api/v1/invitations/{requests.utils.quote(code, safe='')}/open"
        )

    def consent_text(self, consultation_id: str, language: str) -> dict[str, Any]:
        """The current published consent text in one language."""
        return call_service(
            self.consent,
            "GET",
            f"/api/v1/consent/consultations/{consultation_id}/texts",
            params={"language": language},
        )

    def grant(self, body: dict[str, Any]) -> dict[str, Any]:
        """Consent for the chosen purposes: consent token, receipt code (shown once) and receipt."""
        return call_service(self.consent, "POST", "/api/v1/consent/grants", json=body)

    def save_progress(self, body: dict[str, Any]) -> dict[str, Any]:
        """Partial answers kept by the surveys service: {resume_code, expires_at}."""
        return call_service(self.surveys, "POST", "/api/v1/resume", json=body)

    def resume(self, resume_code: str) -> dict[str, Any]:
        """Saved progress behind a resume code: answers so far, survey and consent context."""
        return call_service(
            self.surveys, "POST", "/api/v1/resume/lookup", json={"resume_code": resume_code}
        )

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """The finished response: {response_id, consultation_id, survey_version, submitted_at}."""
        return call_service(self.surveys, "POST", "/api/v1/responses", json=body)

    def save_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        """Contact details for follow-up, with the consent token: {method, safe_to_leave_message, given_at}."""
        return call_service(self.surveys, "PUT", "/api/v1/contact", json=body)

    def delete_contact(self, consent_token: str) -> None:
        """Remove the contact details left with this consent token (none left is fine)."""
        call_service(
            self.surveys, "DELETE", "/api/v1/contact", json={"consent_token": consent_token}
        )

    def receipt(self, receipt_code: str) -> dict[str, Any]:
        """The consent receipt and its history."""
        return call_service(
            self.consent,
            "POST",
            "/api/v1/consent/receipts/lookup",
            json={"receipt_code": receipt_code},
        )

    def withdraw(self, receipt_code: str, purposes: list[str] | None) -> dict[str, Any]:
        """Withdraw some purposes, or everything when `purposes` is None."""
        body: dict[str, Any] = {"receipt_code": receipt_code}
        if purposes is not None:
            body["purposes"] = purposes
        return call_service(self.consent, "POST", "/api/v1/consent/withdrawals", json=body)

    def renew_consent(self, receipt_code: str) -> dict[str, Any]:
        """A fresh consent token for the grant behind a receipt code, when the first one expired:
        {consent_token, expires_in, purposes (still given), consultation_id, pseudonym}."""
        return call_service(
            self.consent, "POST", "/api/v1/consent/tokens", json={"receipt_code": receipt_code}
        )
