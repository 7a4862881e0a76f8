"""Follow-up contact (optional): after sending their answers, a participant who agreed to be
contacted again may leave a way to reach them, and remove it again."""

from __future__ import annotations

from flask import Response, request, url_for
from flask.typing import ResponseReturnValue

from gateway.web.i18n import N_
from gateway.web.participant_api import ServiceRefused
from gateway.web.views.pages import (
    CONTACT_PURPOSE,
    ParticipantSession,
    StepMissing,
    _,
    consented_session,
    granted_consent,
    render,
    save,
    see_other,
    spend_participant,
    web,
    web_app,
)

CONTACT_METHODS = {
    "phone": N_("Phone call or text message"),
    "whatsapp": N_("WhatsApp"),
    "signal": N_("Signal"),
    "email": N_("Email"),
    "other": N_("Another way"),
}
# What the surveys service's field errors mean, in the participant's words.
CONTACT_PROBLEMS = {
    "method": N_("Please choose how we can reach you."),
    "value": N_(
        "Please check the number or address. It does not look right for the way you chose."
    ),
    "best_time": N_("Please write a shorter answer (200 characters at most)."),
    "safe_to_leave_message": N_("Please say if it is safe to leave you a message."),
}


def _contact_session() -> ParticipantSession:
    """A participant who sent their answers and agreed to be contacted again."""
    session = consented_session()
    if session.state.submitted is None:
        raise StepMissing("web.survey")
    if CONTACT_PURPOSE not in granted_consent(session).purposes:
        raise StepMissing("web.receipt")
    return session


@web.get("/contact")
def contact_form() -> ResponseReturnValue:
    _contact_session()
    return _contact_page(200, {}, {})


def _contact_page(status: int, form: dict[str, str], problems: dict[str, str]) -> Response:
    # The summary links each problem to the first control of its field.
    targets = {
        "method": "method-phone",
        "value": "value",
        "best_time": "best_time",
        "safe": "safe-yes",
    }
    summary = [(targets[field], _(problems[field])) for field in targets if field in problems]
    return render(
        "contact.html",
        status,
        methods=CONTACT_METHODS,
        form=form,
        problems=problems,
        summary=summary,
    )


@web.post("/contact")
def contact() -> ResponseReturnValue:
    session = _contact_session()
    spend_participant(session)
    form = {
        key: (request.form.get(key) or "").strip()
        for key in ("method", "value", "best_time", "safe")
    }
    problems = {}
    if form["method"] not in CONTACT_METHODS:
        problems["method"] = CONTACT_PROBLEMS["method"]
    if not form["value"]:
        problems["value"] = N_("Please write how we can reach you.")
    if form["safe"] not in ("yes", "no"):
        problems["safe"] = CONTACT_PROBLEMS["safe_to_leave_message"]
    if not problems:
        try:
            web_app().api.save_contact(
                {
                    "consent_token": granted_consent(session).token,
                    "method": form["method"],
                    "value": form["value"],
                    "best_time": form["best_time"] or None,
                    "safe_to_leave_message": form["safe"] == "yes",
                }
            )
        except ServiceRefused as exc:
            if exc.status != 422:
                return render(
                    "problem.html",
                    exc.status if exc.status in (401, 403, 410) else 409,
                    heading=N_("We could not keep your contact details"),
                    message=N_(
                        "Your consent to be contacted may have been withdrawn, or the "
                        "consultation has closed. Nothing was kept."
                    ),
                )
            for field in exc.errors:
                problems["safe" if field == "safe_to_leave_message" else field] = (
                    CONTACT_PROBLEMS.get(field, CONTACT_PROBLEMS["value"])
                )
    if problems:
        return _contact_page(422, form, problems)
    session.state.contact_given = True
    save(session)
    return see_other(url_for("web.receipt"))


@web.post("/contact/delete")
def contact_delete() -> ResponseReturnValue:
    session = _contact_session()
    spend_participant(session)
    try:
        web_app().api.delete_contact(granted_consent(session).token or "")
    except ServiceRefused:
        return render(
            "problem.html",
            409,
            heading=N_("We could not remove your contact details"),
            message=N_(
                "Please try again, or withdraw “Contact me again later” with your receipt code."
            ),
        )
    session.state.contact_given = False
    save(session)
    return see_other(url_for("web.receipt"))
