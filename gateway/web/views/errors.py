"""Errors as pages: each failure a participant can meet, told in their language, never a stack trace."""

from __future__ import annotations

from flask import g, redirect, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from gateway.web.i18n import N_
from gateway.web.sessions import COOKIE_NAME
from gateway.web.views.pages import (
    SessionEnded,
    StepMissing,
    log,
    page_url,
    render,
    see_other,
    web,
    web_app,
)
from shared.errors import Conflict, ServiceUnavailable, TooManyRequests


@web.errorhandler(SessionEnded)
def _session_ended(_exc: SessionEnded) -> ResponseReturnValue:
    if COOKIE_NAME not in request.cookies:
        # No cookie at all: most likely Back after a quick exit without JavaScript (the exit deleted
        # it). Nothing of this site may show then, not even "your visit has ended": the neutral site.
        return redirect(web_app().exit_url, code=303)
    g.web_clear_cookie = True  # an idle session ended: its cookie opens nothing any more
    return see_other(page_url("web.start", ended=1))


@web.errorhandler(StepMissing)
def _step_missing(exc: StepMissing) -> ResponseReturnValue:
    return see_other(page_url(exc.endpoint, **exc.values))


@web.errorhandler(ServiceUnavailable)
def _unavailable(exc: ServiceUnavailable) -> ResponseReturnValue:
    log.warning("participant page could not reach a service: %s", exc.detail)
    response = render(
        "problem.html",
        503,
        heading=N_("Sorry, this is not working right now"),
        message=N_("Nothing you did caused this. Please try again in a few minutes."),
    )
    response.headers["Retry-After"] = str(exc.extra.get("retry_after") or 5)
    return response


@web.errorhandler(TooManyRequests)
def _too_many(exc: TooManyRequests) -> ResponseReturnValue:
    response = render(
        "problem.html",
        429,
        heading=N_("Please wait a moment"),
        message=N_("There were many tries in a short time. Wait a minute, then try again."),
    )
    response.headers["Retry-After"] = str(exc.extra.get("retry_after") or 60)
    return response


@web.errorhandler(Conflict)
def _conflict(_exc: Conflict) -> ResponseReturnValue:
    return render(
        "problem.html",
        409,
        heading=N_("This page changed"),
        message=N_("It was changed in another tab or window. Please go back and try again."),
    )


@web.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    if exc.code == 404:
        return render(
            "problem.html",
            404,
            heading=N_("Page not found"),
            message=N_("This page does not exist. Check the link you used."),
        )
    if exc.code == 403:
        return render(
            "problem.html",
            403,
            heading=N_("This form was sent from another site"),
            message=N_(
                "For your safety it was not accepted. Open this site directly and try again."
            ),
        )
    return render(
        "problem.html",
        exc.code or 500,
        heading=N_("Sorry, something went wrong"),
        message=N_("Nothing you did caused this. Please try again in a few minutes."),
    )


@web.errorhandler(Exception)
def _unexpected(exc: Exception) -> ResponseReturnValue:
    log.error("participant page failed", exc_info=exc)
    return render(
        "problem.html",
        500,
        heading=N_("Sorry, something went wrong"),
        message=N_("Nothing you did caused this. Please try again in a few minutes."),
    )
