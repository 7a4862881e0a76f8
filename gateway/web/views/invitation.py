"""Start, invitation, welcome, stopping, and the quick exit."""

from __future__ import annotations

from typing import Any

from flask import Response, g, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse

from gateway.web import survey_flow as flow
from gateway.web.i18n import N_
from gateway.web.participant_api import ServiceRefused
from gateway.web.participant_state import CONSULTATION_KEYS, ParticipantState
from gateway.web.views.pages import (
    current_session,
    end_session,
    page_url,
    render,
    see_other,
    spend_code,
    start_session,
    web,
    web_app,
)


def consultation_state(described: dict[str, Any]) -> ParticipantState:
    """A fresh state for the consultation the services `described` (an opened invitation, or
    resumed answers), in their own names."""
    return ParticipantState.from_dict({key: described.get(key) for key in CONSULTATION_KEYS})


@web.get("/")
def start() -> ResponseReturnValue:
    """Where to go without an invitation link: continue with a code, check or withdraw consent."""
    return render("start.html", ended=request.args.get("ended"))


@web.get("/i/<code>")
def invitation(code: str) -> ResponseReturnValue:
    """The invitation link. Opening it changes nothing: link previews must not use up an invitation."""
    return render("invitation.html", code=code)


@web.post("/i/<code>")
def open_invitation(code: str) -> ResponseReturnValue:
    return _open_invitation(
        code,
        "invitation.html",
        N_("This invitation link does not work. Check that you copied all of it."),
    )


@web.get("/code")
def invitation_code_form() -> ResponseReturnValue:
    """For a printed invitation: the code typed in, instead of a link opened."""
    return render("invitation_code.html")


@web.post("/code")
def enter_invitation_code() -> ResponseReturnValue:
    code = (request.form.get("invitation_code") or "").strip()
    if not code:
        return render(
            "invitation_code.html", 422, problem=N_("Please write the code from your invitation.")
        )
    return _open_invitation(
        code,
        "invitation_code.html",
        N_("This code does not work. Please check each character and try again."),
    )


def _open_invitation(code: str, template: str, not_found: str) -> BaseResponse:
    """Open an invitation and start the session (then the welcome page), or show `template` again with why not."""
    spend_code(code, "invitation")
    try:
        opened = web_app().api.open_invitation(code)
    except ServiceRefused as exc:
        message = (
            N_("This invitation has already been used or has been closed.")
            if exc.status == 410
            # A draft, or before its opening time: the invitation was handed out ahead.
            else N_(
                "This consultation has not opened yet. Keep your invitation: it will work once "
                "the consultation opens."
            )
            if exc.status == 409 and exc.body.get("reason") == "not_open_yet"
            else N_("This consultation is not taking answers now.")
            if exc.status == 409
            else not_found
        )
        return render(
            template,
            exc.status if exc.status in (404, 409, 410) else 422,
            code=code,
            problem=message,
        )
    start_session(consultation_state(opened))
    return see_other(url_for("web.welcome"))


@web.get("/welcome")
def welcome() -> ResponseReturnValue:
    state = current_session().state
    # Older sessions and consultations have only the one `title` string.
    return render(
        "welcome.html",
        title=flow.localise(state.titles or state.title, g.web_lang, state.survey_languages),
        description=flow.localise(state.descriptions or None, g.web_lang, state.survey_languages),
    )


@web.post("/stop")
def stop() -> ResponseReturnValue:
    """The participant chose not to take part (or to stop): their session ends, nothing more is kept."""
    end_session()
    return see_other(page_url("web.start", ended="stopped"))


@web.route("/exit", methods=["GET", "POST"])
def leave() -> ResponseReturnValue:
    """Quick exit: the session ends and its cookie goes. A link (no JavaScript) is sent on to the
    neutral site; the script's background POST only needs the session ended (204)."""
    end_session()
    response = (
        Response(status=204) if request.method == "POST" else redirect(web_app().exit_url, code=303)
    )
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response
