"""What every participant page shares: the blueprint, request plumbing, rendering, rate limits and
the participant's session (sealed in the store, typed as a `ParticipantState` while a page runs)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from gateway.guards import behind_tls
from gateway.ratelimit import code_key, retry_after
from gateway.web.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    N_,
    NATIVE_NAMES,
    Catalogs,
    supported,
    text_direction,
)
from gateway.web.participant_api import ParticipantApi, ServiceRefused
from gateway.web.participant_state import Consent, ParticipantState
from gateway.web.sessions import COOKIE_NAME, WebSession, WebSessions
from shared.errors import TooManyRequests
from shared.settings import Settings

log = logging.getLogger("voices.gateway.web")

web = Blueprint(
    "web",
    "gateway.web",
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

# Withdrawing it withdraws everything and deletes the answers.
REQUIRED_PURPOSE = "participate"
# Offered after the answers are sent, to those who agreed to be contacted again.
CONTACT_PURPOSE = "follow_up_contact"
# Short names of the purposes, for pages that list what a receipt covers. The consent page itself
# shows the organisers' own versioned words for each purpose.
PURPOSE_NAMES = {
    "participate": N_("Keep my answers for this consultation"),
    "aggregate_reporting": N_("Count my answers in group totals"),
    "quote_anonymised": N_("Quote my words without my name"),
    "follow_up_contact": N_("Contact me again later"),
    "share_with_partners": N_("Share my answers with partner groups"),
}


class SessionEnded(Exception):
    """The page needs a session that does not exist (never started, expired, or ended by quick exit)."""


class StepMissing(Exception):
    """The page needs an earlier step first (e.g. the survey before consent): go to `endpoint`."""

    def __init__(self, endpoint: str, **values: Any) -> None:
        super().__init__(endpoint)
        self.endpoint = endpoint
        self.values = values


class PageServices(Protocol):
    """What the pages use of the web app's shared objects (`gateway.web.WebApp`)."""

    api: ParticipantApi
    sessions: WebSessions
    catalogs: Catalogs
    exit_url: str
    settings: Settings


@dataclass
class ParticipantSession:
    """A participant's session while a page runs: its sealed store entry and the typed state the
    page reads and changes (`save` seals the state again)."""

    stored: WebSession
    state: ParticipantState


# ---------------------------------------------------------------- request plumbing


def web_app() -> PageServices:
    """The participant pages' shared objects: service clients, session store, catalogs."""
    return current_app.extensions["voices_web"]


def _(message: str, **variables: Any) -> str:
    return web_app().catalogs.gettext(g.get("web_lang", DEFAULT_LANGUAGE), message, **variables)


@web.before_request
def _prepare() -> None:
    if request.endpoint == "web.static":
        return  # stylesheet and script: no session, no language
    if request.method == "POST":
        _refuse_cross_site()
    g.web_session = web_app().sessions.load(request.cookies.get(COOKIE_NAME))
    explicit = supported(request.values.get("lang"))
    stored = g.web_session
    if explicit:
        g.web_lang = explicit
    elif stored is not None and supported(stored.state.get("lang")):
        g.web_lang = stored.state["lang"]
    else:
        g.web_lang = request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE
    if stored is not None and explicit and stored.state.get("lang") != explicit:
        stored.state["lang"] = explicit
        web_app().sessions.save(stored)


def _refuse_cross_site() -> None:
    # The cookie is SameSite=Strict, so another site cannot act within a session; this also stops
    # it from starting sessions or sending codes through a participant's browser.
    site = request.headers.get("Sec-Fetch-Site")
    if site and site not in ("same-origin", "none"):
        abort(403)
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        abort(403)


@web.after_request
def _finish(response: Response) -> Response:
    # Nothing of these pages may stay in the browser's cache, and no proxy may keep them.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    if g.get("web_new_cookie"):
        response.set_cookie(
            COOKIE_NAME,
            g.web_new_cookie,
            httponly=True,
            samesite="Strict",
            secure=behind_tls(web_app().settings),
            path="/",
        )
    elif g.get("web_clear_cookie"):
        response.delete_cookie(
            COOKIE_NAME,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=behind_tls(web_app().settings),
        )
    return response


@web.app_template_global()
def page_url(endpoint: str, **values: Any) -> str:
    """A link within the pages; without a session the language travels in the link."""
    if g.get("web_session") is None:
        values.setdefault("lang", g.get("web_lang", DEFAULT_LANGUAGE))
    return url_for(endpoint, **values)


def purpose_name(purpose: str) -> str:
    """A purpose's short name in the page's language (its code when it has none)."""
    return _(PURPOSE_NAMES.get(purpose) or purpose)


@web.context_processor
def _page_context() -> dict[str, Any]:
    lang = g.get("web_lang", DEFAULT_LANGUAGE)
    path = request.path
    return {
        "lang": lang,
        "dir": text_direction(lang),
        "exit_url": web_app().exit_url,
        "languages": [
            {
                "code": code,
                "name": NATIVE_NAMES[code],
                "url": f"{path}?lang={code}",
                "current": code == lang,
            }
            for code in LANGUAGES
        ],
        "purpose_name": purpose_name,
        "in_session": g.get("web_session") is not None,
    }


def render(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def see_other(location: str) -> BaseResponse:
    return redirect(location, code=303)


def babel_locale() -> str:
    """The page's language as Babel names its locale data."""
    return {"zh": "zh_Hans"}.get(g.web_lang, g.web_lang)


def receipt_code_refused(exc: ServiceRefused) -> str:
    """What to tell someone whose receipt code the consent service refused (never whether it exists)."""
    if exc.status in (400, 422):
        return N_("This code is not complete or has a typo. Please check it.")
    return N_("No consent matches this code. Please check it and try again.")


# ---------------------------------------------------------------- rate limits


def _spend(kind: str, key: str) -> None:
    limits = current_app.extensions.get("voices_limits")
    if limits is None:
        return
    wait = limits.spend(kind, key)
    if wait:
        raise TooManyRequests("Too many tries.", retry_after=retry_after(wait))


def spend_code(code: str, kind: str = "code") -> None:
    # Like the API: each code has its own bucket, so a flood of wrong codes never stops the holder of
    # a real one (opening an invitation, checking, withdrawing or continuing), and no code can be hammered.
    if code:
        _spend(kind, code_key(code))


def spend_participant(session: ParticipantSession) -> None:
    _spend("participant", f"web {session.stored.session_hash[:24]}")


# ---------------------------------------------------------------- the participant's session


def start_session(state: ParticipantState) -> ParticipantSession:
    """A new session holding `state` (in the page's language), replacing the browser's old one."""
    sessions = web_app().sessions
    if g.get("web_session") is not None:
        sessions.end(g.web_session.cookie)
    state.lang = g.web_lang
    stored = sessions.create(state.to_dict())
    g.web_session = stored
    g.web_new_cookie = stored.cookie
    session = ParticipantSession(stored, state)
    g.participant_session = session
    return session


def end_session() -> None:
    """The browser's session ends and its cookie goes (ending twice is harmless)."""
    web_app().sessions.end(request.cookies.get(COOKIE_NAME))
    g.web_session = None
    g.participant_session = None
    g.web_clear_cookie = True


def save(session: ParticipantSession) -> None:
    """Seal the changed state. Raises Conflict when another tab changed the session meanwhile."""
    session.stored.state = session.state.to_dict()
    web_app().sessions.save(session.stored)


def current_session() -> ParticipantSession:
    """The participant's session. Raises SessionEnded when there is none."""
    session = g.get("participant_session")
    if session is None:
        stored = g.get("web_session")
        if stored is None:
            raise SessionEnded()
        session = ParticipantSession(stored, ParticipantState.from_dict(stored.state))
        g.participant_session = session
    if not session.state.consultation_id:
        raise SessionEnded()
    return session


def granted_consent(session: ParticipantSession) -> Consent:
    """The session's consent. Raises StepMissing (to the consent page) when none was given yet."""
    if session.state.consent is None:
        raise StepMissing("web.consent")
    return session.state.consent


def consented_session() -> ParticipantSession:
    """A session whose consent is given and current. Raises StepMissing otherwise."""
    session = current_session()
    if not granted_consent(session).token:  # it expired: the receipt code brings a fresh one
        raise StepMissing("web.renew_consent")
    return session


def survey_session() -> ParticipantSession:
    """A consented session whose answers are not sent yet. Raises StepMissing otherwise."""
    session = consented_session()
    if session.state.submitted is not None:
        raise StepMissing("web.receipt")
    return session
