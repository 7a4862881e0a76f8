"""Continuing later: the resume code opens a new session with the saved answers."""

from __future__ import annotations

from flask import request
from flask.typing import ResponseReturnValue

from gateway.web import survey_flow as flow
from gateway.web.i18n import N_
from gateway.web.participant_api import ServiceRefused
from gateway.web.participant_state import Consent
from gateway.web.views.invitation import consultation_state
from gateway.web.views.pages import (
    render,
    see_other,
    spend_code,
    start_session,
    web,
    web_app,
)
from gateway.web.views.renewal import ask_for_receipt_code
from gateway.web.views.survey import section_location, survey_of


@web.get("/resume")
def resume_form() -> ResponseReturnValue:
    return render("resume.html")


@web.post("/resume")
def resume() -> ResponseReturnValue:
    code = (request.form.get("resume_code") or "").strip()
    spend_code(code)
    if not code:
        return render("resume.html", 422, problem=N_("Please write your code."))
    try:
        saved = web_app().api.resume(code)
    except ServiceRefused as exc:
        message = (
            N_("This code is not complete or has a typo. Please check it.")
            if exc.status in (400, 422)
            else N_("This saved answer has ended. It may have expired or been sent already.")
            if exc.status == 410
            else N_("This code does not work. A code stops working when you save again.")
        )
        return render(
            "resume.html", 422 if exc.status in (400, 422) else 404, problem=message, code=code
        )
    token_valid = bool(saved.get("consent_token_valid") and saved.get("consent_token"))
    state = consultation_state(saved)
    state.answers = dict(saved.get("answers") or {})
    state.declined = list(saved.get("declined") or [])
    state.section = saved.get("section_id")
    state.consent = Consent(
        token=saved["consent_token"] if token_valid else None,
        receipt_code=saved.get("receipt_code"),
        purposes=list(saved.get("granted_purposes") or []),
    )
    session = start_session(state)
    defn = survey_of(session)
    target = saved.get("section_id")
    if target not in flow.visible_sections(defn, state.answers):
        target = flow.first_section(defn, state.answers)
    if not token_valid:
        return ask_for_receipt_code(session, section_location(session, target))
    return see_other(section_location(session, target))
