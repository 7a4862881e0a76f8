"""The participant pages: invitation, welcome, consent, survey, save and resume, renewing an expired
consent, receipt, check, withdraw.

Every page works without JavaScript: plain links and POST forms, answered with a redirect on
success (so reloading never sends a form twice) or with the same page and its problems marked.
Views are thin: they read the form, call the services through `ParticipantApi`, keep the
participant's state in the sealed server-side session and render a template.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from babel import Locale
from babel.dates import format_date, format_timedelta
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
from werkzeug.exceptions import HTTPException

from gateway.guards import behind_tls
from gateway.ratelimit import code_key, retry_after
from gateway.web import survey_flow as flow
from gateway.web.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    NATIVE_NAMES,
    N_,
    supported,
    text_direction,
)
from gateway.web.participant_api import ServiceRefused
from gateway.web.sessions import COOKIE_NAME, WebSession
from shared.errors import Conflict, ServiceUnavailable, TooManyRequests

log = logging.getLogger("voices.gateway.web")

web = Blueprint(
    "web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets"
)

# Withdrawing it withdraws everything and deletes the answers.
REQUIRED_PURPOSE = "participate"
# Short names of the purposes, for pages that list what a receipt covers. The consent page itself
# shows the organisers' own versioned words for each purpose.
PURPOSE_NAMES = {
    "participate": N_("Keep my answers for this consultation"),
    "aggregate_reporting": N_("Count my answers in group totals"),
    "quote_anonymised": N_("Quote my words without my name"),
    "follow_up_contact": N_("Contact me again later"),
    "share_with_partners": N_("Share my answers with partner groups"),
}
GUARDIAN_RELATIONSHIPS = {
    "parent": N_("Parent"),
    "legal_guardian": N_("Legal guardian"),
    "foster_carer": N_("Foster carer"),
    "kinship_carer": N_("Family member who cares for me"),
    "social_worker": N_("Social worker"),
    "support_worker": N_("Support worker"),
    "other_accountable_adult": N_("Another responsible adult"),
}


class SessionEnded(Exception):
    """The page needs a session that does not exist (never started, expired, or ended by quick exit)."""


class StepMissing(Exception):
    """The page needs an earlier step first (e.g. the survey before consent): go to `endpoint`."""

    def __init__(self, endpoint: str, **values: Any) -> None:
        super().__init__(endpoint)
        self.endpoint = endpoint
        self.values = values


# ---------------------------------------------------------------- request plumbing


def _app():
    return current_app.extensions["voices_web"]


def _(message: str, **variables: Any) -> str:
    return _app().catalogs.gettext(g.get("web_lang", DEFAULT_LANGUAGE), message, **variables)


@web.before_request
def _prepare():
    if request.endpoint == "web.static":
        return  # stylesheet and script: no session, no language
    if request.method == "POST":
        _refuse_cross_site()
    g.web_session = _app().sessions.load(request.cookies.get(COOKIE_NAME))
    explicit = supported(request.values.get("lang"))
    session = g.web_session
    if explicit:
        g.web_lang = explicit
    elif session is not None and supported(session.state.get("lang")):
        g.web_lang = session.state["lang"]
    else:
        g.web_lang = request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE
    if session is not None and explicit and session.state.get("lang") != explicit:
        session.state["lang"] = explicit
        _save(session)


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
            secure=behind_tls(_app().settings),
            path="/",
        )
    elif g.get("web_clear_cookie"):
        response.delete_cookie(
            COOKIE_NAME,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=behind_tls(_app().settings),
        )
    return response


@web.app_template_global()
def page_url(endpoint: str, **values: Any) -> str:
    """A link within the pages; without a session the language travels in the link."""
    if g.get("web_session") is None:
        values.setdefault("lang", g.get("web_lang", DEFAULT_LANGUAGE))
    return url_for(endpoint, **values)


@web.context_processor
def _page_context() -> dict[str, Any]:
    lang = g.get("web_lang", DEFAULT_LANGUAGE)
    path = request.path
    return {
        "lang": lang,
        "dir": text_direction(lang),
        "exit_url": _app().exit_url,
        "languages": [
            {
                "code": code,
                "name": NATIVE_NAMES[code],
                "url": f"{path}?lang={code}",
                "current": code == lang,
            }
            for code in LANGUAGES
        ],
        "purpose_name": lambda purpose: _(PURPOSE_NAMES.get(purpose, purpose)),
        "in_session": g.get("web_session") is not None,
    }


def _render(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def _spend(kind: str, key: str) -> None:
    limits = current_app.extensions.get("voices_limits")
    if limits is None:
        return
    wait = limits.spend(kind, key)
    if wait:
        raise TooManyRequests("Too many tries.", retry_after=retry_after(wait))


def _spend_code(code: str, kind: str = "code") -> None:
    # Like the API: each code has its own bucket, so a flood of wrong codes never stops the holder of
    # a real one (opening an invitation, checking, withdrawing or continuing), and no code can be hammered.
    if code:
        _spend(kind, code_key(code))


def _spend_participant(session: WebSession) -> None:
    _spend("participant", f"web {session.session_hash[:24]}")


def _start_session(state: dict[str, Any]) -> WebSession:
    sessions = _app().sessions
    if g.get("web_session") is not None:
        sessions.end(g.web_session.cookie)
    session = sessions.create({"lang": g.web_lang, **state})
    g.web_session = session
    g.web_new_cookie = session.cookie
    return session


def _save(session: WebSession) -> None:
    _app().sessions.save(session)


def _session() -> WebSession:
    session = g.get("web_session")
    if session is None or not session.state.get("consultation_id"):
        raise SessionEnded()
    return session


def _consented() -> WebSession:
    session = _session()
    consent = session.state.get("consent")
    if not consent:
        raise StepMissing("web.consent")
    if not consent.get("token"):  # it expired: the receipt code brings a fresh one
        raise StepMissing("web.renew_consent")
    return session


def _survey_session() -> WebSession:
    session = _consented()
    if session.state.get("submitted"):
        raise StepMissing("web.receipt")
    return session


def _fallbacks(session: WebSession) -> list[str]:
    return list(
        session.state.get("survey", {}).get("languages") or session.state.get("languages") or []
    )


def _see_other(location: str) -> Response:
    return redirect(location, code=303)


# ---------------------------------------------------------------- errors, as pages


@web.errorhandler(SessionEnded)
def _session_ended(_exc):
    if COOKIE_NAME not in request.cookies:
        # No cookie at all: most likely Back after a quick exit without JavaScript (the exit deleted
        # it). Nothing of this site may show then, not even "your visit has ended": the neutral site.
        return redirect(_app().exit_url, code=303)
    g.web_clear_cookie = True  # an idle session ended: its cookie opens nothing any more
    return _see_other(page_url("web.start", ended=1))


@web.errorhandler(StepMissing)
def _step_missing(exc: StepMissing):
    return _see_other(page_url(exc.endpoint, **exc.values))


@web.errorhandler(ServiceUnavailable)
def _unavailable(exc: ServiceUnavailable):
    log.warning("participant page could not reach a service: %s", exc.detail)
    response = _render(
        "problem.html",
        503,
        heading=N_("Sorry, this is not working right now"),
        message=N_("Nothing you did caused this. Please try again in a few minutes."),
    )
    response.headers["Retry-After"] = str(exc.extra.get("retry_after") or 5)
    return response


@web.errorhandler(TooManyRequests)
def _too_many(exc: TooManyRequests):
    response = _render(
        "problem.html",
        429,
        heading=N_("Please wait a moment"),
        message=N_("There were many tries in a short time. Wait a minute, then try again."),
    )
    response.headers["Retry-After"] = str(exc.extra.get("retry_after") or 60)
    return response


@web.errorhandler(Conflict)
def _conflict(_exc):
    return _render(
        "problem.html",
        409,
        heading=N_("This page changed"),
        message=N_("It was changed in another tab or window. Please go back and try again."),
    )


@web.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if exc.code == 404:
        return _render(
            "problem.html",
            404,
            heading=N_("Page not found"),
            message=N_("This page does not exist. Check the link you used."),
        )
    if exc.code == 403:
        return _render(
            "problem.html",
            403,
            heading=N_("This form was sent from another site"),
            message=N_(
                "For your safety it was not accepted. Open this site directly and try again."
            ),
        )
    return _render(
        "problem.html",
        exc.code or 500,
        heading=N_("Sorry, something went wrong"),
        message=N_("Nothing you did caused this. Please try again in a few minutes."),
    )


@web.errorhandler(Exception)
def _unexpected(_exc: Exception):
    log.exception("participant page failed")
    return _render(
        "problem.html",
        500,
        heading=N_("Sorry, something went wrong"),
        message=N_("Nothing you did caused this. Please try again in a few minutes."),
    )


# ---------------------------------------------------------------- start, invitation, welcome


@web.get("/")
def start():
    """Where to go without an invitation link: continue with a code, check or withdraw consent."""
    return _render("start.html", ended=request.args.get("ended"))


@web.get("/i/<code>")
def invitation(code: str):
    """The invitation link. Opening it changes nothing: link previews must not use up an invitation."""
    return _render("invitation.html", code=code)


# What the session keeps of an opened invitation or of resumed answers.
CONSULTATION_KEYS = (
    "pseudonym",
    "consultation_id",
    "title",
    "titles",
    "descriptions",
    "languages",
    "purposes",
    "min_age",
    "survey_version",
    "survey",
)


@web.post("/i/<code>")
def open_invitation(code: str):
    return _open_invitation(
        code,
        "invitation.html",
        N_("This invitation link does not work. Check that you copied all of it."),
    )


@web.get("/code")
def invitation_code_form():
    """For a printed invitation: the code typed in, instead of a link opened."""
    return _render("invitation_code.html")


@web.post("/code")
def enter_invitation_code():
    code = (request.form.get("invitation_code") or "").strip()
    if not code:
        return _render(
            "invitation_code.html", 422, problem=N_("Please write the code from your invitation.")
        )
    return _open_invitation(
        code,
        "invitation_code.html",
        N_("This code does not work. Please check each character and try again."),
    )


def _open_invitation(code: str, template: str, not_found: str) -> Response:
    """Open an invitation and start the session (then the welcome page), or show `template` again with why not."""
    _spend_code(code, "invitation")
    try:
        opened = _app().api.open_invitation(code)
    except ServiceRefused as exc:
        message = (
            N_("This invitation has already been used or has been closed.")
            if exc.status == 410
            else N_("This consultation is not taking answers now.")
            if exc.status == 409
            else not_found
        )
        return _render(
            template,
            exc.status if exc.status in (404, 409, 410) else 422,
            code=code,
            problem=message,
        )
    _start_session(
        {key: opened.get(key) for key in CONSULTATION_KEYS}
        | {"answers": {}, "declined": [], "acknowledged": []}
    )
    return _see_other(url_for("web.welcome"))


@web.get("/welcome")
def welcome():
    session = _session()
    state = session.state
    # Older sessions and consultations have only the one `title` string.
    return _render(
        "welcome.html",
        title=flow.localise(
            state.get("titles") or state.get("title"), g.web_lang, _fallbacks(session)
        ),
        description=flow.localise(
            state.get("descriptions") or None, g.web_lang, _fallbacks(session)
        ),
    )


@web.post("/stop")
def stop():
    """The participant chose not to take part (or to stop): their session ends, nothing more is kept."""
    _app().sessions.end(request.cookies.get(COOKIE_NAME))
    g.web_session = None
    g.web_clear_cookie = True
    return _see_other(page_url("web.start", ended="stopped"))


# ---------------------------------------------------------------- consent


def _consent_text(session: WebSession) -> dict[str, Any]:
    """The published consent text in the participant's language, else in another language of the consultation."""
    cid = session.state["consultation_id"]
    for language in dict.fromkeys([g.web_lang, *(session.state.get("languages") or [])]):
        try:
            return _app().api.consent_text(cid, language)
        except ServiceRefused as exc:
            if exc.status not in (404, 422):
                raise ServiceUnavailable("consent text refused") from exc
    raise ServiceUnavailable("no consent text is published yet")


def _consent_page(
    session: WebSession, text: dict[str, Any], status: int = 200, **context: Any
) -> Response:
    # "participate" first: it is the one choice needed to take part.
    offered = sorted(
        session.state.get("purposes") or ["participate"], key=lambda p: p != "participate"
    )
    purposes = [
        {
            "code": p,
            "text": (text.get("purposes") or {}).get(p) or _(PURPOSE_NAMES.get(p, p)),
            "required": p == "participate",
        }
        for p in offered
    ]
    context.setdefault("chosen", set())
    context.setdefault("errors", {})
    if text.get("language") != g.web_lang:
        # The consultation has no text in the reader's language: say so, naming both in that language.
        names = Locale.parse(_babel_locale()).languages
        context["other_language"] = {
            "yours": names.get(g.web_lang, g.web_lang),
            "theirs": names.get(text["language"], text["language"]),
        }
    return _render(
        "consent.html",
        status,
        text=text,
        purposes=purposes,
        min_age=session.state.get("min_age"),
        relationships=GUARDIAN_RELATIONSHIPS,
        form=request.form if request.method == "POST" else {},
        **context,
    )


@web.get("/consent")
def consent():
    session = _session()
    if session.state.get("consent"):
        return _see_other(url_for("web.consent_code"))
    text = _consent_text(session)
    shown = {"version": text["version"], "language": text["language"]}
    if session.state.get("shown_text") != shown:
        session.state["shown_text"] = shown
        _save(session)
    return _consent_page(session, text)


def _read_consent_form(session: WebSession) -> tuple[dict[str, Any], dict[str, str]]:
    """The grant body this form asks for and the problems to show (by field), from the form."""
    offered = session.state.get("purposes") or []
    chosen = [p for p in offered if p in request.form.getlist("purpose")]
    errors: dict[str, str] = {}
    if "participate" not in chosen:
        errors["purpose-participate"] = N_(
            "To take part, tick the box marked “Needed to take part”. Without it, we cannot keep any answers."
        )
    body: dict[str, Any] = {
        "pseudonym": session.state["pseudonym"],
        "consultation_id": session.state["consultation_id"],
        "purposes": chosen,
        "collection_method": "self",
    }
    min_age = session.state.get("min_age")
    if min_age is not None:
        age = request.form.get("age")
        if age == "over":
            body["age_band"] = f"{min_age}+"
        elif age == "under":
            body["age_band"] = f"under {min_age}"
            relationship = request.form.get("guardian_relationship")
            if relationship not in GUARDIAN_RELATIONSHIPS:
                errors["guardian_relationship"] = N_("Please choose who the adult with you is.")
            if request.form.get("guardian_agrees") != "1":
                errors["guardian_agrees"] = N_(
                    "The adult with you must agree too. Please tick the box together."
                )
            body.update(
                collection_method="guardian",
                participant_assent=True,
                guardian={"relationship": relationship, "attested": True},
            )
        else:
            errors["age"] = N_("Please tell us if you are younger or older than this age.")
    return body, errors


@web.post("/consent")
def give_consent():
    session = _session()
    if session.state.get("consent"):
        return _see_other(url_for("web.consent_code"))
    _spend_participant(session)
    shown = session.state.get("shown_text") or {}
    sent = {
        "version": request.form.get("text_version", type=int),
        "language": request.form.get("text_language"),
    }
    text = _consent_text(session)
    if sent != shown or {"version": text["version"], "language": text["language"]} != shown:
        # What was read is not what is current (a newer version, or another tab): show the current text.
        session.state["shown_text"] = {"version": text["version"], "language": text["language"]}
        _save(session)
        return _consent_page(
            session, text, 409, notice=N_("The consent text has changed. Please read it again.")
        )
    body, errors = _read_consent_form(session)
    chosen = set(body["purposes"])
    if errors:
        return _consent_page(session, text, 422, errors=errors, chosen=chosen)
    body.update(language=shown["language"], text_version=shown["version"])
    try:
        granted = _app().api.grant(body)
    except ServiceRefused as exc:
        if exc.status == 409 and "already" in str(exc.body.get("detail", "")):
            return _render(
                "problem.html",
                409,
                heading=N_("You have already given your consent"),
                message=N_("Please open your invitation link again to start a new answer."),
            )
        if exc.status == 409:
            return _render(
                "problem.html",
                409,
                heading=N_("This consultation is not taking answers now"),
                message=N_("Please try again later."),
            )
        return _consent_page(
            session,
            text,
            422,
            chosen=chosen,
            errors={
                "form": N_("Your choices could not be saved. Please check them and try again.")
            },
        )
    session.state["consent"] = {
        "token": granted["consent_token"],
        "receipt_code": granted["receipt_code"],
        "purposes": body["purposes"],
        "text_version": shown["version"],
        "text_language": shown["language"],
    }
    session.state.pop("shown_text", None)
    _save(session)
    return _see_other(url_for("web.consent_code"))


@web.get("/consent/code")
def consent_code():
    session = _consented()
    return _render(
        "consent_code.html",
        receipt_code=session.state["consent"].get("receipt_code"),
        purposes=session.state["consent"]["purposes"],
    )


# ---------------------------------------------------------------- the survey


def _section_location(session: WebSession, section_id: str | None) -> str:
    """Where going to a section leads: its content warning first (once per session), else the section."""
    if section_id is None:
        return url_for("web.finish")
    defn = session.state["survey"]
    section = flow.section(defn, section_id) or {}
    if section.get("content_warning") and section_id not in session.state.get("acknowledged", []):
        return url_for("web.section_notice", section_id=section_id)
    return url_for("web.section", section_id=section_id)


def _known_section(session: WebSession, section_id: str) -> dict:
    section = flow.section(session.state["survey"], section_id)
    if section is None:
        abort(404)
    return section


@web.get("/survey")
def survey():
    session = _survey_session()
    defn, answers = session.state["survey"], session.state.get("answers", {})
    current = session.state.get("section")
    if current not in flow.visible_sections(defn, answers):
        current = flow.first_section(defn, answers)
    return _see_other(_section_location(session, current))


@web.get("/survey/<section_id>/notice")
def section_notice(section_id: str):
    session = _survey_session()
    section = _known_section(session, section_id)
    warning = flow.localise(section.get("content_warning"), g.web_lang, _fallbacks(session))
    if warning is None:
        return _see_other(url_for("web.section", section_id=section_id))
    return _render(
        "notice.html",
        section_id=section_id,
        warning=warning,
        title=flow.localise(section.get("title"), g.web_lang, _fallbacks(session)),
    )


@web.post("/survey/<section_id>/notice")
def answer_notice(section_id: str):
    session = _survey_session()
    _known_section(session, section_id)
    _spend_participant(session)
    defn = session.state["survey"]
    if request.form.get("action") == "skip":
        answers, declined = flow.forget_section(
            defn, session.state.get("answers", {}), session.state.get("declined", []), section_id
        )
        session.state.update(answers=answers, declined=declined)
        following = flow.next_section(defn, answers, section_id)
        session.state["section"] = following
        _save(session)
        return _see_other(_section_location(session, following))
    acknowledged = session.state.setdefault("acknowledged", [])
    if section_id not in acknowledged:
        acknowledged.append(section_id)
    session.state["section"] = section_id
    _save(session)
    return _see_other(url_for("web.section", section_id=section_id))


def _section_page(
    session: WebSession,
    section_id: str,
    shown: list[str],
    values: dict[str, Any],
    declined: list[str],
    problems: dict[str, flow.Problem],
    status: int = 200,
    added: bool = False,
) -> Response:
    defn = session.state["survey"]
    section = _known_section(session, section_id)
    answers = session.state.get("answers", {})
    position, total = flow.progress(defn, answers, section_id)
    questions = flow.question_views(
        defn, shown, g.web_lang, _fallbacks(session), values, declined, problems
    )
    return _render(
        "section.html",
        status,
        section_id=section_id,
        title=flow.localise(section.get("title"), g.web_lang, _fallbacks(session)),
        questions=questions,
        shown=shown,
        position=position,
        total=total,
        added=added,
        has_previous=flow.previous_section(defn, answers, section_id) is not None,
    )


@web.get("/survey/<section_id>")
def section(section_id: str):
    session = _survey_session()
    section = _known_section(session, section_id)
    defn, answers = session.state["survey"], session.state.get("answers", {})
    shown = flow.visible_in_section(defn, answers, section_id)
    if not shown:  # skip logic hides this section now
        return _see_other(url_for("web.survey"))
    if section.get("content_warning") and section_id not in session.state.get("acknowledged", []):
        return _see_other(url_for("web.section_notice", section_id=section_id))
    if session.state.get("section") != section_id:
        session.state["section"] = section_id
        _save(session)
    return _section_page(
        session,
        section_id,
        shown,
        answers,
        session.state.get("declined", []),
        {},
        added=request.args.get("added") == "1",
    )


@web.post("/survey/<section_id>")
def answer_section(section_id: str):
    session = _survey_session()
    section = _known_section(session, section_id)
    _spend_participant(session)
    defn = session.state["survey"]
    known = {q["id"] for q in section["questions"]}
    shown = [qid for qid in request.form.getlist("shown") if qid in known]
    given = flow.read_section_form(defn, shown, request.form)
    answers, declined = flow.merge_section(
        defn, session.state.get("answers", {}), session.state.get("declined", []), shown, given
    )
    normalised, declined, problems = flow.check(defn, answers, declined)
    problems.update({qid: flow.CLASH for qid in given.clashes})
    problems = {qid: problem for qid, problem in problems.items() if qid in shown}
    if problems:
        return _section_page(
            session,
            section_id,
            shown,
            {**normalised, **given.raw},
            sorted(set(declined) | given.clashes),
            problems,
            status=422,
        )
    session.state.update(answers=normalised, declined=declined, section=section_id)
    action = request.form.get("action", "next")
    if action == "save":
        return _save_progress(session, section_id)
    if action == "back":
        _save(session)
        previous = flow.previous_section(defn, normalised, section_id)
        return _see_other(
            _section_location(session, previous)
            if previous
            else url_for("web.section", section_id=section_id)
        )
    added = [
        qid for qid in flow.visible_in_section(defn, normalised, section_id) if qid not in shown
    ]
    if added:
        # An answer on this page brought up a follow-up question: show the page again with it.
        _save(session)
        return _see_other(url_for("web.section", section_id=section_id, added=1))
    following = flow.next_section(defn, normalised, section_id)
    session.state["section"] = following
    _save(session)
    return _see_other(_section_location(session, following))


def _save_progress(session: WebSession, section_id: str) -> Response:
    state = session.state
    try:
        saved = _app().api.save_progress(
            {
                "consent_token": state["consent"]["token"],
                "survey_version": state.get("survey_version"),
                "answers": state.get("answers", {}),
                "declined": state.get("declined", []),
                "section_id": section_id,
                # Sealed with the answers, to be shown again after resuming.
                "receipt_code": state["consent"].get("receipt_code"),
            }
        )
    except ServiceRefused as exc:
        return _refused_while_answering(exc, session, url_for("web.section", section_id=section_id))
    state["resume"] = {"code": saved["resume_code"], "expires_at": saved["expires_at"]}
    _save(session)
    return _see_other(url_for("web.saved"))


def _refused_while_answering(exc: ServiceRefused, session: WebSession, then: str) -> Response:
    if exc.status == 401 and exc.body.get("reason") == "expired":
        # The answers stay in the session; the receipt code brings a fresh token, then `then` again.
        return _ask_for_receipt_code(session, then)
    if exc.status == 401:
        return _render(
            "problem.html",
            401,
            heading=N_("Your consent has expired"),
            message=N_(
                "For your safety, consent lasts a limited time. "
                "Please open your invitation link again."
            ),
        )
    if exc.status == 410 and exc.body.get("reason") == "invitation_used":
        return _render(
            "problem.html",
            410,
            heading=N_("Answers from this invitation were already kept"),
            message=N_(
                "They were saved or sent in another visit. To go on with them, use the code "
                "you got when you saved them."
            ),
        )
    if exc.status == 410:
        return _render(
            "problem.html",
            410,
            heading=N_("These answers can no longer be sent"),
            message=N_("The consent was withdrawn, or the consultation has closed."),
        )
    if exc.status == 409:
        return _render(
            "problem.html",
            409,
            heading=N_("Your answers were already sent"),
            message=N_("You do not need to do anything more."),
        )
    return _render(
        "problem.html",
        exc.status if 400 <= exc.status < 500 else 500,
        heading=N_("Your answers could not be taken"),
        message=N_("Please go back, check your answers and try again."),
    )


@web.get("/saved")
def saved():
    session = _survey_session()
    resume = session.state.get("resume")
    if not resume:
        return _see_other(url_for("web.survey"))
    expires = datetime.fromisoformat(resume["expires_at"].replace("Z", "+00:00"))
    valid_for = format_timedelta(
        expires - datetime.now(timezone.utc), threshold=2, locale=_babel_locale()
    )
    return _render("saved.html", resume_code=resume["code"], valid_for=valid_for)


def _babel_locale() -> str:
    return {"zh": "zh_Hans"}.get(g.web_lang, g.web_lang)


@web.get("/finish")
def finish():
    session = _survey_session()
    defn = session.state["survey"]
    answers, declined = session.state.get("answers", {}), session.state.get("declined", [])
    sections = flow.visible_sections(defn, answers)
    return _render(
        "finish.html",
        counts=flow.tally(defn, answers, declined),
        last_section=sections[-1] if sections else None,
    )


@web.post("/finish")
def submit():
    session = _survey_session()
    _spend_participant(session)
    state = session.state
    try:
        response = _app().api.submit(
            {
                "consent_token": state["consent"]["token"],
                "survey_version": state.get("survey_version"),
                "answers": state.get("answers", {}),
                "declined": state.get("declined", []),
            }
        )
    except ServiceRefused as exc:
        return _refused_while_answering(exc, session, url_for("web.finish"))
    # Sent: the answers leave the session; what remains is what the receipt page shows.
    for key in ("answers", "declined", "resume", "section", "acknowledged", "survey"):
        state.pop(key, None)
    state["submitted"] = {
        "response_id": response.get("response_id"),
        "submitted_at": response.get("submitted_at"),
    }
    _save(session)
    return _see_other(url_for("web.receipt"))


@web.get("/receipt")
def receipt():
    session = _consented()
    if not session.state.get("submitted"):
        return _see_other(url_for("web.survey"))
    consent = session.state["consent"]
    return _render(
        "receipt.html",
        receipt_code=consent.get("receipt_code"),
        purposes=consent.get("purposes") or [],
        offer_contact=CONTACT_PURPOSE in (consent.get("purposes") or []),
        contact_given=bool(session.state.get("contact_given")),
    )


# ---------------------------------------------------------------- follow-up contact (optional)

CONTACT_PURPOSE = "follow_up_contact"
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


def _contact_session() -> WebSession:
    """A participant who sent their answers and agreed to be contacted again."""
    session = _consented()
    if not session.state.get("submitted"):
        raise StepMissing("web.survey")
    if CONTACT_PURPOSE not in (session.state["consent"].get("purposes") or []):
        raise StepMissing("web.receipt")
    return session


@web.get("/contact")
def contact_form():
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
    return _render(
        "contact.html",
        status,
        methods=CONTACT_METHODS,
        form=form,
        problems=problems,
        summary=summary,
    )


@web.post("/contact")
def contact():
    session = _contact_session()
    _spend_participant(session)
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
            _app().api.save_contact(
                {
                    "consent_token": session.state["consent"]["token"],
                    "method": form["method"],
                    "value": form["value"],
                    "best_time": form["best_time"] or None,
                    "safe_to_leave_message": form["safe"] == "yes",
                }
            )
        except ServiceRefused as exc:
            if exc.status != 422:
                return _render(
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
    session.state["contact_given"] = True
    _save(session)
    return _see_other(url_for("web.receipt"))


@web.post("/contact/delete")
def contact_delete():
    session = _contact_session()
    _spend_participant(session)
    try:
        _app().api.delete_contact(session.state["consent"]["token"])
    except ServiceRefused:
        return _render(
            "problem.html",
            409,
            heading=N_("We could not remove your contact details"),
            message=N_(
                "Please try again, or withdraw “Contact me again later” with your receipt code."
            ),
        )
    session.state.pop("contact_given", None)
    _save(session)
    return _see_other(url_for("web.receipt"))


# ---------------------------------------------------------------- continue later


@web.get("/resume")
def resume_form():
    return _render("resume.html")


@web.post("/resume")
def resume():
    code = (request.form.get("resume_code") or "").strip()
    _spend_code(code)
    if not code:
        return _render("resume.html", 422, problem=N_("Please write your code."))
    try:
        saved = _app().api.resume(code)
    except ServiceRefused as exc:
        message = (
            N_("This code is not complete or has a typo. Please check it.")
            if exc.status in (400, 422)
            else N_("This saved answer has ended. It may have expired or been sent already.")
            if exc.status == 410
            else N_("This code does not work. A code stops working when you save again.")
        )
        return _render(
            "resume.html", 422 if exc.status in (400, 422) else 404, problem=message, code=code
        )
    token_valid = bool(saved.get("consent_token_valid") and saved.get("consent_token"))
    session = _start_session(
        {
            **{key: saved.get(key) for key in CONSULTATION_KEYS},
            "answers": saved.get("answers") or {},
            "declined": saved.get("declined") or [],
            "acknowledged": [],
            "section": saved.get("section_id"),
            "consent": {
                "token": saved["consent_token"] if token_valid else None,
                "receipt_code": saved.get("receipt_code"),
                "purposes": saved.get("granted_purposes") or [],
            },
        }
    )
    defn = session.state["survey"]
    target = saved.get("section_id")
    if target not in flow.visible_sections(defn, session.state["answers"]):
        target = flow.first_section(defn, session.state["answers"])
    if not token_valid:
        return _ask_for_receipt_code(session, _section_location(session, target))
    return _see_other(_section_location(session, target))


# ---------------------------------------------------------------- renew an expired consent


def _ask_for_receipt_code(session: WebSession, then: str) -> Response:
    """Drop the expired token and send the participant to the receipt-code page; `then` is where
    they go once a fresh token came (the page they were on, or the one they had saved)."""
    session.state["consent"]["token"] = None
    session.state["after_renewal"] = then
    _save(session)
    return _see_other(url_for("web.renew_consent"))


def _expired_consent() -> tuple[WebSession, dict[str, Any]]:
    session = _session()
    consent = session.state.get("consent")
    if not consent:
        raise StepMissing("web.consent")
    return session, consent


def _after_renewal(session: WebSession) -> str:
    return session.state.get("after_renewal") or url_for("web.survey")


@web.get("/consent/renew")
def renew_consent_form():
    session, consent = _expired_consent()
    if consent.get("token"):
        return _see_other(_after_renewal(session))
    return _render("renew_consent.html")


@web.post("/consent/renew")
def renew_consent():
    """A fresh consent token from the receipt code; nothing the participant agreed to changes."""
    session, consent = _expired_consent()
    if consent.get("token"):
        return _see_other(_after_renewal(session))
    _spend_participant(session)
    code = (request.form.get("receipt_code") or "").strip()
    _spend_code(code)  # like checking or withdrawing: receipt codes are tried here
    if not code:
        return _render("renew_consent.html", 422, problem=N_("Please write your receipt code."))
    try:
        renewed = _app().api.renew_consent(code)
    except ServiceRefused as exc:
        if exc.status == 409:
            withdrawn = exc.body.get("reason") == "consent_withdrawn"
            return _render(
                "problem.html",
                409,
                heading=N_("These answers can no longer be sent"),
                message=N_("You withdrew your consent to take part, so nothing more can be kept.")
                if withdrawn
                else N_("The consultation has closed."),
            )
        return _render("renew_consent.html", 422, problem=_receipt_code_refused(exc), code=code)
    state = session.state
    if (renewed.get("pseudonym"), renewed.get("consultation_id")) != (
        state["pseudonym"],
        state["consultation_id"],
    ):
        # A real code, but for another consent: its token must never carry these answers.
        return _render(
            "renew_consent.html",
            422,
            code=code,
            problem=N_(
                "This code is for other answers. Please use the code you got when you started these answers."
            ),
        )
    # The code just proved to be theirs; the receipt page shows it again like after a first consent.
    consent.update(
        token=renewed["consent_token"], purposes=renewed.get("purposes") or [], receipt_code=code
    )
    then = _after_renewal(session)
    state.pop("after_renewal", None)
    _save(session)
    return _see_other(then)


# ---------------------------------------------------------------- check and withdraw consent


def _receipt_view(receipt: dict[str, Any]) -> dict[str, Any]:
    """What the pages show of a consent receipt: each purpose's status, when, and what happened since."""
    order = list(PURPOSE_NAMES)
    status = dict(
        sorted(
            (receipt.get("purposeStatus") or {}).items(),
            key=lambda item: order.index(item[0]) if item[0] in order else len(order),
        )
    )
    events = receipt.get("events") or []
    history = [
        {
            "type": event.get("eventType"),
            "date": _date(event.get("eventTime")),
            "purposes": event.get("purposes") or [],
        }
        for event in events
    ]
    return {
        "given": [p for p, s in status.items() if s == "given"],
        "withdrawn": [p for p, s in status.items() if s == "withdrawn"],
        "status": receipt.get("consentStatus"),
        "history": history,
        "granted": _date(receipt.get("consentTimestamp")),
        "erasure": _erasure_view(events),
    }


def _erasure_view(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """After a full withdrawal, whether the answers are deleted yet: {"state": "pending"}, or
    {"state": "deleted", "count": responses erased} once the surveys service confirmed it; else None."""
    full = [e for e in events if e.get("eventType") == "withdrawn" and e.get("all")]
    if not full or full[-1].get("erasureStatus") not in ("pending_confirmation", "confirmed"):
        return None
    confirmations = [e for e in events if e.get("eventType") == "erasure_confirmed"]
    if full[-1]["erasureStatus"] == "pending_confirmation" or not confirmations:
        return {"state": "pending"}
    # Each confirmation counts every response erased so far, so the latest one is the total.
    return {"state": "deleted", "count": int(confirmations[-1].get("responsesErased") or 0)}


def _date(value: Any) -> str:
    """A date in the page's language, from epoch seconds or an ISO-8601 string ('' when unreadable)."""
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value, tz=timezone.utc)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return format_date(moment.date(), format="long", locale=_babel_locale())


def _lookup_receipt(code: str) -> tuple[dict[str, Any] | None, str | None]:
    """(receipt, None) or (None, the problem to show) for a typed receipt code."""
    if not code:
        return None, N_("Please write your receipt code.")
    try:
        return _app().api.receipt(code), None
    except ServiceRefused as exc:
        return None, _receipt_code_refused(exc)


def _receipt_code_refused(exc: ServiceRefused) -> str:
    """What to tell someone whose receipt code the consent service refused (never whether it exists)."""
    if exc.status in (400, 422):
        return N_("This code is not complete or has a typo. Please check it.")
    return N_("No consent matches this code. Please check it and try again.")


@web.get("/check")
def check_form():
    return _render("check.html")


@web.post("/check")
def check():
    code = (request.form.get("receipt_code") or "").strip()
    _spend_code(code)
    receipt, problem = _lookup_receipt(code)
    if problem:
        return _render("check.html", 422, problem=problem, code=code)
    return _render("check.html", receipt=_receipt_view(receipt))


@web.get("/withdraw")
def withdraw_form():
    return _render("withdraw.html", step="code")


@web.post("/withdraw")
def withdraw():
    code = (request.form.get("receipt_code") or "").strip()
    _spend_code(code)
    receipt, problem = _lookup_receipt(code)
    if problem:
        return _render("withdraw.html", 422, step="code", problem=problem, code=code)
    view = _receipt_view(receipt)
    step = request.form.get("step")
    if step not in ("confirm", "confirmed"):
        return _render("withdraw.html", step="choose", code=code, receipt=view)
    scope = request.form.get("scope")
    chosen = [p for p in request.form.getlist("purpose") if p in view["given"]]
    if scope not in ("all", "some") or (scope == "some" and not chosen):
        return _render(
            "withdraw.html",
            422,
            step="choose",
            code=code,
            receipt=view,
            chosen=set(chosen),
            problem=N_("Please choose everything, or tick at least one use to withdraw."),
        )
    if step == "confirm" and (scope == "all" or REQUIRED_PURPOSE in chosen):
        # Deleting the answers cannot be undone: it takes a second, explicit yes.
        return _render(
            "withdraw.html", step="confirm", code=code, receipt=view, scope=scope, chosen=chosen
        )
    try:
        result = _app().api.withdraw(code, None if scope == "all" else chosen)
    except ServiceRefused:
        return _render(
            "withdraw.html",
            422,
            step="code",
            code=code,
            problem=N_("No consent matches this code. Please check it and try again."),
        )
    return _render(
        "withdraw.html",
        step="done",
        result=result,
        receipt=_receipt_view(result.get("receipt") or {}),
    )


# ---------------------------------------------------------------- quick exit


@web.route("/exit", methods=["GET", "POST"])
def leave():
    """Quick exit: the session ends and its cookie goes. A link (no JavaScript) is sent on to the
    neutral site; the script's background POST only needs the session ended (204)."""
    _app().sessions.end(request.cookies.get(COOKIE_NAME))
    g.web_session = None
    g.web_clear_cookie = True
    response = (
        Response(status=204) if request.method == "POST" else redirect(_app().exit_url, code=303)
    )
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response
