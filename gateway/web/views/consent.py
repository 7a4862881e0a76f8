"""Consent: the organisers' consent text in the participant's language, the choices, the grant and
the receipt code it gives."""

from __future__ import annotations

from typing import Any

from babel import Locale
from flask import Response, g, request, url_for
from flask.typing import ResponseReturnValue

from gateway.web.i18n import N_
from gateway.web.participant_api import ServiceRefused
from gateway.web.participant_state import Consent, ShownText
from gateway.web.views.pages import (
    PURPOSE_NAMES,
    ParticipantSession,
    _,
    babel_locale,
    consented_session,
    current_session,
    granted_consent,
    render,
    save,
    see_other,
    spend_participant,
    web,
    web_app,
)
from shared.errors import ServiceUnavailable

GUARDIAN_RELATIONSHIPS = {
    "parent": N_("Parent"),
    "legal_guardian": N_("Legal guardian"),
    "foster_carer": N_("Foster carer"),
    "kinship_carer": N_("Family member who cares for me"),
    "social_worker": N_("Social worker"),
    "support_worker": N_("Support worker"),
    "other_accountable_adult": N_("Another responsible adult"),
}


def _consent_text(session: ParticipantSession) -> dict[str, Any]:
    """The published consent text in the participant's language, else in another language of the consultation."""
    cid = session.state.consultation_id or ""
    for language in dict.fromkeys([g.web_lang, *session.state.languages]):
        try:
            return web_app().api.consent_text(cid, language)
        except ServiceRefused as exc:
            if exc.status not in (404, 422):
                raise ServiceUnavailable("consent text refused") from exc
    raise ServiceUnavailable("no consent text is published yet")


def _shown(text: dict[str, Any]) -> ShownText:
    return ShownText(version=text["version"], language=text["language"])


def _consent_page(
    session: ParticipantSession, text: dict[str, Any], status: int = 200, **context: Any
) -> Response:
    # "participate" first: it is the one choice needed to take part.
    offered = sorted(session.state.purposes or ["participate"], key=lambda p: p != "participate")
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
        names = Locale.parse(babel_locale()).languages
        context["other_language"] = {
            "yours": names.get(g.web_lang, g.web_lang),
            "theirs": names.get(text["language"], text["language"]),
        }
    return render(
        "consent.html",
        status,
        text=text,
        purposes=purposes,
        min_age=session.state.min_age,
        relationships=GUARDIAN_RELATIONSHIPS,
        form=request.form if request.method == "POST" else {},
        **context,
    )


@web.get("/consent")
def consent() -> ResponseReturnValue:
    session = current_session()
    if session.state.consent is not None:
        return see_other(url_for("web.consent_code"))
    text = _consent_text(session)
    if session.state.shown_text != _shown(text):
        session.state.shown_text = _shown(text)
        save(session)
    return _consent_page(session, text)


def _read_consent_form(session: ParticipantSession) -> tuple[dict[str, Any], dict[str, str]]:
    """The grant body this form asks for and the problems to show (by field), from the form."""
    chosen = [p for p in session.state.purposes if p in request.form.getlist("purpose")]
    errors: dict[str, str] = {}
    if "participate" not in chosen:
        errors["purpose-participate"] = N_(
            "To take part, tick the box marked “Needed to take part”. Without it, we cannot keep any answers."
        )
    body: dict[str, Any] = {
        "pseudonym": session.state.pseudonym,
        "consultation_id": session.state.consultation_id,
        "purposes": chosen,
        "collection_method": "self",
    }
    min_age = session.state.min_age
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
def give_consent() -> ResponseReturnValue:
    session = current_session()
    if session.state.consent is not None:
        return see_other(url_for("web.consent_code"))
    spend_participant(session)
    shown = session.state.shown_text
    sent = ShownText(
        version=request.form.get("text_version", type=int),
        language=request.form.get("text_language"),
    )
    text = _consent_text(session)
    if shown is None or sent != shown or _shown(text) != shown:
        # What was read is not what is current (a newer version, or another tab): show the current text.
        session.state.shown_text = _shown(text)
        save(session)
        return _consent_page(
            session, text, 409, notice=N_("The consent text has changed. Please read it again.")
        )
    body, errors = _read_consent_form(session)
    chosen = set(body["purposes"])
    if errors:
        return _consent_page(session, text, 422, errors=errors, chosen=chosen)
    body.update(language=shown.language, text_version=shown.version)
    try:
        granted = web_app().api.grant(body)
    except ServiceRefused as exc:
        if exc.status == 409 and "already" in str(exc.body.get("detail", "")):
            return render(
                "problem.html",
                409,
                heading=N_("You have already given your consent"),
                message=N_("Please open your invitation link again to start a new answer."),
            )
        if exc.status == 409:
            return render(
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
    session.state.consent = Consent(
        token=granted["consent_token"],
        receipt_code=granted["receipt_code"],
        purposes=body["purposes"],
        text_version=shown.version,
        text_language=shown.language,
    )
    session.state.shown_text = None
    save(session)
    return see_other(url_for("web.consent_code"))


@web.get("/consent/code")
def consent_code() -> ResponseReturnValue:
    consent = granted_consent(consented_session())
    return render("consent_code.html", receipt_code=consent.receipt_code, purposes=consent.purposes)
