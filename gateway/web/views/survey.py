"""The survey: one section at a time with its content warning first, saving to continue later,
the summary before sending, sending, and the receipt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from babel.dates import format_timedelta
from flask import Response, abort, g, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse

from gateway.web import survey_flow as flow
from gateway.web.i18n import N_
from gateway.web.participant_api import ServiceRefused
from gateway.web.participant_state import SavedProgress, Submitted
from gateway.web.views.pages import (
    CONTACT_PURPOSE,
    ParticipantSession,
    babel_locale,
    consented_session,
    granted_consent,
    render,
    save,
    see_other,
    spend_participant,
    survey_session,
    web,
    web_app,
)
from gateway.web.views.renewal import ask_for_receipt_code


def survey_of(session: ParticipantSession) -> dict[str, Any]:
    """The survey definition being answered. A session without one (sent already) has no sections."""
    if session.state.survey is None:
        abort(404)
    return session.state.survey


def section_location(session: ParticipantSession, section_id: str | None) -> str:
    """Where going to a section leads: its content warning first (once per session), else the section."""
    if section_id is None:
        return url_for("web.finish")
    section = flow.section(survey_of(session), section_id) or {}
    if section.get("content_warning") and section_id not in session.state.acknowledged:
        return url_for("web.section_notice", section_id=section_id)
    return url_for("web.section", section_id=section_id)


def _known_section(session: ParticipantSession, section_id: str) -> dict:
    section = flow.section(survey_of(session), section_id)
    if section is None:
        abort(404)
    return section


@web.get("/survey")
def survey() -> ResponseReturnValue:
    session = survey_session()
    defn, answers = survey_of(session), session.state.answers
    current = session.state.section
    if current not in flow.visible_sections(defn, answers):
        current = flow.first_section(defn, answers)
    return see_other(section_location(session, current))


@web.get("/survey/<section_id>/notice")
def section_notice(section_id: str) -> ResponseReturnValue:
    session = survey_session()
    section = _known_section(session, section_id)
    fallbacks = session.state.survey_languages
    warning = flow.localise(section.get("content_warning"), g.web_lang, fallbacks)
    if warning is None:
        return see_other(url_for("web.section", section_id=section_id))
    return render(
        "notice.html",
        section_id=section_id,
        warning=warning,
        title=flow.localise(section.get("title"), g.web_lang, fallbacks),
    )


@web.post("/survey/<section_id>/notice")
def answer_notice(section_id: str) -> ResponseReturnValue:
    session = survey_session()
    _known_section(session, section_id)
    spend_participant(session)
    state, defn = session.state, survey_of(session)
    if request.form.get("action") == "skip":
        state.answers, state.declined = flow.forget_section(
            defn, state.answers, state.declined, section_id
        )
        following = flow.next_section(defn, state.answers, section_id)
        state.section = following
        save(session)
        return see_other(section_location(session, following))
    if section_id not in state.acknowledged:
        state.acknowledged.append(section_id)
    state.section = section_id
    save(session)
    return see_other(url_for("web.section", section_id=section_id))


def _section_page(
    session: ParticipantSession,
    section_id: str,
    shown: list[str],
    values: dict[str, Any],
    declined: list[str],
    problems: dict[str, flow.Problem],
    status: int = 200,
    added: bool = False,
) -> Response:
    defn = survey_of(session)
    section = _known_section(session, section_id)
    answers, fallbacks = session.state.answers, session.state.survey_languages
    position, total = flow.progress(defn, answers, section_id)
    questions = flow.question_views(defn, shown, g.web_lang, fallbacks, values, declined, problems)
    return render(
        "section.html",
        status,
        section_id=section_id,
        title=flow.localise(section.get("title"), g.web_lang, fallbacks),
        questions=questions,
        shown=shown,
        position=position,
        total=total,
        added=added,
        has_previous=flow.previous_section(defn, answers, section_id) is not None,
    )


@web.get("/survey/<section_id>")
def section(section_id: str) -> ResponseReturnValue:
    session = survey_session()
    section = _known_section(session, section_id)
    state, defn = session.state, survey_of(session)
    shown = flow.visible_in_section(defn, state.answers, section_id)
    if not shown:  # skip logic hides this section now
        return see_other(url_for("web.survey"))
    if section.get("content_warning") and section_id not in state.acknowledged:
        return see_other(url_for("web.section_notice", section_id=section_id))
    if state.section != section_id:
        state.section = section_id
        save(session)
    return _section_page(
        session,
        section_id,
        shown,
        state.answers,
        state.declined,
        {},
        added=request.args.get("added") == "1",
    )


@web.post("/survey/<section_id>")
def answer_section(section_id: str) -> ResponseReturnValue:
    session = survey_session()
    section = _known_section(session, section_id)
    spend_participant(session)
    state, defn = session.state, survey_of(session)
    known = {q["id"] for q in section["questions"]}
    shown = [qid for qid in request.form.getlist("shown") if qid in known]
    given = flow.read_section_form(defn, shown, request.form)
    answers, declined = flow.merge_section(defn, state.answers, state.declined, shown, given)
    normalised, declined, problems = flow.check(defn, answers, declined)
    problems.update(dict.fromkeys(given.clashes, flow.CLASH))
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
    state.answers, state.declined, state.section = normalised, declined, section_id
    action = request.form.get("action", "next")
    if action == "save":
        return _save_progress(session, section_id)
    if action == "back":
        save(session)
        previous = flow.previous_section(defn, normalised, section_id)
        return see_other(
            section_location(session, previous)
            if previous
            else url_for("web.section", section_id=section_id)
        )
    added = [
        qid for qid in flow.visible_in_section(defn, normalised, section_id) if qid not in shown
    ]
    if added:
        # An answer on this page brought up a follow-up question: show the page again with it.
        save(session)
        return see_other(url_for("web.section", section_id=section_id, added=1))
    following = flow.next_section(defn, normalised, section_id)
    state.section = following
    save(session)
    return see_other(section_location(session, following))


def _save_progress(session: ParticipantSession, section_id: str) -> BaseResponse:
    state, consent = session.state, granted_consent(session)
    try:
        saved = web_app().api.save_progress(
            {
                "consent_token": consent.token,
                "survey_version": state.survey_version,
                "answers": state.answers,
                "declined": state.declined,
                "section_id": section_id,
                # Sealed with the answers, to be shown again after resuming.
                "receipt_code": consent.receipt_code,
            }
        )
    except ServiceRefused as exc:
        return _refused_while_answering(exc, session, url_for("web.section", section_id=section_id))
    state.resume = SavedProgress(code=saved["resume_code"], expires_at=saved["expires_at"])
    save(session)
    return see_other(url_for("web.saved"))


def _refused_while_answering(
    exc: ServiceRefused, session: ParticipantSession, then: str
) -> BaseResponse:
    if exc.status == 401 and exc.body.get("reason") == "expired":
        # The answers stay in the session; the receipt code brings a fresh token, then `then` again.
        return ask_for_receipt_code(session, then)
    if exc.status == 401:
        return render(
            "problem.html",
            401,
            heading=N_("Your consent has expired"),
            message=N_(
                "For your safety, consent lasts a limited time. "
                "Please open your invitation link again."
            ),
        )
    if exc.status == 410 and exc.body.get("reason") == "invitation_used":
        return render(
            "problem.html",
            410,
            heading=N_("Answers from this invitation were already kept"),
            message=N_(
                "They were saved or sent in another visit. To go on with them, use the code "
                "you got when you saved them."
            ),
        )
    if exc.status == 410:
        return render(
            "problem.html",
            410,
            heading=N_("These answers can no longer be sent"),
            message=N_("The consent was withdrawn, or the consultation has closed."),
        )
    if exc.status == 409:
        return render(
            "problem.html",
            409,
            heading=N_("Your answers were already sent"),
            message=N_("You do not need to do anything more."),
        )
    return render(
        "problem.html",
        exc.status if 400 <= exc.status < 500 else 500,
        heading=N_("Your answers could not be taken"),
        message=N_("Please go back, check your answers and try again."),
    )


@web.get("/saved")
def saved() -> ResponseReturnValue:
    resume = survey_session().state.resume
    if resume is None:
        return see_other(url_for("web.survey"))
    expires = datetime.fromisoformat(resume.expires_at)
    valid_for = format_timedelta(expires - datetime.now(UTC), threshold=2, locale=babel_locale())
    return render("saved.html", resume_code=resume.code, valid_for=valid_for)


@web.get("/finish")
def finish() -> ResponseReturnValue:
    session = survey_session()
    defn, state = survey_of(session), session.state
    sections = flow.visible_sections(defn, state.answers)
    return render(
        "finish.html",
        counts=flow.tally(defn, state.answers, state.declined),
        last_section=sections[-1] if sections else None,
    )


@web.post("/finish")
def submit() -> ResponseReturnValue:
    session = survey_session()
    spend_participant(session)
    state = session.state
    try:
        response = web_app().api.submit(
            {
                "consent_token": granted_consent(session).token,
                "survey_version": state.survey_version,
                "answers": state.answers,
                "declined": state.declined,
            }
        )
    except ServiceRefused as exc:
        return _refused_while_answering(exc, session, url_for("web.finish"))
    state.forget_answers()
    state.submitted = Submitted(
        response_id=response.get("response_id"), submitted_at=response.get("submitted_at")
    )
    save(session)
    return see_other(url_for("web.receipt"))


@web.get("/receipt")
def receipt() -> ResponseReturnValue:
    session = consented_session()
    if session.state.submitted is None:
        return see_other(url_for("web.survey"))
    consent = granted_consent(session)
    return render(
        "receipt.html",
        receipt_code=consent.receipt_code,
        purposes=consent.purposes,
        offer_contact=CONTACT_PURPOSE in consent.purposes,
        contact_given=session.state.contact_given,
    )
