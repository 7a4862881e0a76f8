"""Renewing an expired consent: the receipt code brings a fresh consent token, and the participant
goes back to where they were. Nothing they agreed to changes."""

from __future__ import annotations

from flask import request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse

from gateway.web.i18n import N_
from gateway.web.participant_api import ServiceRefused
from gateway.web.views.pages import (
    ParticipantSession,
    current_session,
    granted_consent,
    receipt_code_refused,
    render,
    save,
    see_other,
    spend_code,
    spend_participant,
    web,
    web_app,
)


def ask_for_receipt_code(session: ParticipantSession, then: str) -> BaseResponse:
    """Drop the expired token and send the participant to the receipt-code page; `then` is where
    they go once a fresh token came (the page they were on, or the one they had saved)."""
    granted_consent(session).token = None
    session.state.after_renewal = then
    save(session)
    return see_other(url_for("web.renew_consent"))


def _after_renewal(session: ParticipantSession) -> str:
    return session.state.after_renewal or url_for("web.survey")


@web.get("/consent/renew")
def renew_consent_form() -> ResponseReturnValue:
    session = current_session()
    if granted_consent(session).token:
        return see_other(_after_renewal(session))
    return render("renew_consent.html")


@web.post("/consent/renew")
def renew_consent() -> ResponseReturnValue:
    """A fresh consent token from the receipt code; nothing the participant agreed to changes."""
    session = current_session()
    consent = granted_consent(session)
    if consent.token:
        return see_other(_after_renewal(session))
    spend_participant(session)
    code = (request.form.get("receipt_code") or "").strip()
    spend_code(code)  # like checking or withdrawing: receipt codes are tried here
    if not code:
        return render("renew_consent.html", 422, problem=N_("Please write your receipt code."))
    try:
        renewed = web_app().api.renew_consent(code)
    except ServiceRefused as exc:
        if exc.status == 409:
            withdrawn = exc.body.get("reason") == "consent_withdrawn"
            return render(
                "problem.html",
                409,
                heading=N_("These answers can no longer be sent"),
                message=N_("You withdrew your consent to take part, so nothing more can be kept.")
                if withdrawn
                else N_("The consultation has closed."),
            )
        return render("renew_consent.html", 422, problem=receipt_code_refused(exc), code=code)
    state = session.state
    if (renewed.get("pseudonym"), renewed.get("consultation_id")) != (
        state.pseudonym,
        state.consultation_id,
    ):
        # A real code, but for another consent: its token must never carry these answers.
        return render(
            "renew_consent.html",
            422,
            code=code,
            problem=N_(
                "This code is for other answers. Please use the code you got when you started these answers."
            ),
        )
    # The code just proved to be theirs; the receipt page shows it again like after a first consent.
    consent.token = renewed["consent_token"]
    consent.purposes = list(renewed.get("purposes") or [])
    consent.receipt_code = code
    then = _after_renewal(session)
    state.after_renewal = None
    save(session)
    return see_other(then)
