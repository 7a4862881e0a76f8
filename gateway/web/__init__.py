"""The web app: participant and staff pages in six languages, served by the gateway.

`init_web(app, clients, settings)` attaches it to the gateway app. The pages live outside /api/
and reach the services only through the gateway's service clients, over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, g, has_app_context

from gateway.proxy import ServiceClient
from gateway.web.i18n import DEFAULT_LANGUAGE, Catalogs
from gateway.web.participant_api import ParticipantApi
from gateway.web.sessions import DEFAULT_TTL_S, WebSessions
from shared.settings import Settings

# A busy, neutral site to land on after a quick exit (VOICES_QUICK_EXIT_URL changes it).
DEFAULT_EXIT_URL = "https://www.bbc.co.uk/weather"


@dataclass
class WebApp:
    """What the pages share within one gateway process (kept in app.extensions["voices_web"])."""

    api: ParticipantApi
    sessions: WebSessions
    catalogs: Catalogs
    exit_url: str
    settings: Settings


def init_web(app: Flask, clients: dict[str, ServiceClient], settings: Settings) -> WebApp:
    """Register the participant pages, their catalogs and their session store on `app`.

    Settings: VOICES_SESSION_SECRET (required, shared with participant API sessions),
    VOICES_WEB_SESSION_TTL_S (idle time before a page session ends, default 2 hours),
    VOICES_QUICK_EXIT_URL (where quick exit leads).
    """
    from gateway.web.staff import init_staff
    from gateway.web.views import web

    state = WebApp(
        api=ParticipantApi(clients),
        sessions=WebSessions(
            settings.require("SESSION_SECRET"),
            int(settings.get("WEB_SESSION_TTL_S") or DEFAULT_TTL_S),
        ),
        catalogs=Catalogs(),
        exit_url=settings.get("QUICK_EXIT_URL") or DEFAULT_EXIT_URL,
        settings=settings,
    )
    app.extensions["voices_web"] = state
    _install_gettext(app, state.catalogs)
    app.register_blueprint(web)
    init_staff(app, clients, settings, state.catalogs)
    # The oversight pages plug into the staff shell from here: the shell never imports them.
    from gateway.web.oversight import blueprints as oversight_blueprints

    for blueprint in oversight_blueprints():
        app.register_blueprint(blueprint)
    return state


def _install_gettext(app: Flask, catalogs: Catalogs) -> None:
    """Templates translate with {{ _("...") }} in the language of the current page."""

    def language() -> str:
        return g.get("web_lang", DEFAULT_LANGUAGE) if has_app_context() else DEFAULT_LANGUAGE

    def gettext(message: str) -> str:
        return catalogs.get(language()).gettext(message)

    def ngettext(singular: str, plural: str, n: int) -> str:
        return catalogs.get(language()).ngettext(singular, plural, n)

    app.jinja_env.add_extension("jinja2.ext.i18n")
    # The i18n extension added just above attaches this method to the environment at run time.
    app.jinja_env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
