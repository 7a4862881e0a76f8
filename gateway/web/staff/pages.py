"""What every staff page shares: the blueprint factory and its request plumbing.

`staff_blueprint(name)` gives a Blueprint under /staff whose requests all go through the same
steps: the interface language (?lang=, then the language cookie, then the browser's), the staff
session (with its idle timeout), the staff rate limit, and for every POST the same-site check and
the CSRF token. Views declare who may see them with `@signed_in(...)`, call the services with
`call(...)`, and answer with `render(...)` or `see_other(...)`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    render_template,
    request,
    url_for,
)
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.exceptions import HTTPException

from gateway import accounts
from gateway.guards import behind_tls
from gateway.ratelimit import retry_after
from gateway.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, NATIVE_NAMES, supported, text_direction
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff import csrf
from gateway.web.staff.forms import Form, field_id
from shared.auth import Principal
from shared.errors import ServiceUnavailable, TooManyRequests, Unauthorized

if TYPE_CHECKING:
    from gateway.web.staff.state import StaffWeb

log = logging.getLogger("voices.gateway.web.staff")

SESSION_COOKIE = "voices_staff"  # the staff pages' session; the API's cookie is another one
BINDING_COOKIE = "voices_staff_csrf"  # binds CSRF tokens before signing in
LANGUAGE_COOKIE = "voices_staff_lang"
FLASH_COOKIE = "voices_staff_flash"
COOKIE_PATH = "/staff"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str  # an N_() message, translated when shown
    roles: frozenset[str]
    order: int


# The navigation of the staff layout; page modules add their entries with `add_nav`.
NAV: list[NavItem] = []


def add_nav(endpoint: str, label: str, roles: set[str] | frozenset[str], order: int = 50) -> None:
    """Show a link to `endpoint` in the staff navigation to the given roles (lower `order` first)."""
    if not any(item.endpoint == endpoint for item in NAV):
        NAV.append(NavItem(endpoint, label, frozenset(roles), order))
        NAV.sort(key=lambda item: item.order)


class CsrfRefused(Exception):
    """A POST without the right CSRF token, or sent from another site."""


class SignInNeeded(Exception):
    """The page needs a signed-in person and there is none (never signed in, ended, idle)."""


def state() -> StaffWeb:
    return current_app.extensions["voices_staff_web"]


def _(message: str, **variables: Any) -> str:
    """`message` in the page's language (with %(name)s variables filled in)."""
    text = state().catalogs.get(g.get("web_lang", DEFAULT_LANGUAGE)).gettext(message)
    return text % variables if variables else text


def principal() -> Principal:
    """The signed-in person of this request (views behind `@signed_in` always have one)."""
    return g.staff_principal


def call(method: str, path: str, **kwargs: Any) -> Any:
    """Call a service's public API as the signed-in person (see calls.StaffApi.call)."""
    return state().api.call(principal(), method, path, **kwargs)


def signed_in(*roles: str) -> Callable[[F], F]:
    """Only for signed-in staff; with `roles`, only for those roles (others get a 403 page)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if g.get("staff_principal") is None:
                raise SignInNeeded()
            if roles and g.staff_principal.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def render(template: str, status: int = 200, **context: Any) -> Response:
    form = context.get("form")
    if isinstance(form, Form):
        form.reword_left_empty(_left_empty)
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def _left_empty(most: int | None) -> str:
    if most is None:
        return _("Fill this in.")
    return _("Fill this in (at most %(count)s characters).", count=most)


def see_other(location: str) -> Response:
    """The answer to a form that worked: reloading the next page never sends the form again."""
    return Response(status=303, headers={"Location": location})


def flash(message: str) -> None:
    """A message shown once at the top of the next page (already in the page's language)."""
    g.setdefault("staff_flash_out", []).append(message)


def local_target(target: str | None, default: str) -> str:
    """`target` when it is a staff page of this site (never another site), else `default`."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(COOKIE_PATH + "/"):
        return default
    return target


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(state().secret, salt="staff-flash")


def staff_blueprint(name: str, import_name: str) -> Blueprint:
    """A Blueprint under /staff with the staff pages' request plumbing, layout context and error pages."""
    blueprint = Blueprint(name, import_name, url_prefix=COOKIE_PATH)
    blueprint.before_request(_prepare)
    blueprint.after_request(_finish)
    blueprint.context_processor(_layout_context)
    blueprint.add_app_template_global(field_id, "staff_field_id")
    blueprint.register_error_handler(SignInNeeded, _sign_in_needed)
    blueprint.register_error_handler(CsrfRefused, _csrf_refused)
    blueprint.register_error_handler(ServiceUnavailable, _unavailable)
    blueprint.register_error_handler(TooManyRequests, _too_many)
    blueprint.register_error_handler(ServiceRefused, _refused)
    blueprint.register_error_handler(HTTPException, _http_error)
    return blueprint


# ---------------------------------------------------------------- request plumbing


def _prepare() -> None:
    if request.endpoint and request.endpoint.endswith(".static"):
        return
    explicit = supported(request.args.get("lang"))
    g.web_lang = (
        explicit
        or supported(request.cookies.get(LANGUAGE_COOKIE))
        or request.accept_languages.best_match(LANGUAGES)
        or DEFAULT_LANGUAGE
    )
    g.staff_new_lang = explicit if explicit != request.cookies.get(LANGUAGE_COOKIE) else None
    g.staff_principal = None
    g.staff_cookie = None
    value = request.cookies.get(SESSION_COOKIE)
    if value:
        try:
            g.staff_principal = accounts.authenticate_session(value, idle=state().idle)
            g.staff_cookie = value
        except accounts.IdleSessionEnded:
            g.staff_clear_session = True
            g.staff_idle_ended = True
        except Unauthorized:
            g.staff_clear_session = True
    if g.staff_cookie:
        binding = g.staff_cookie
    else:
        binding = request.cookies.get(BINDING_COOKIE) or ""
        if not binding:
            binding = g.staff_new_binding = csrf.new_binding()
    g.staff_csrf = csrf.token_for(state().secret, binding)
    if request.method == "POST":
        _check_post(binding)
    if g.staff_principal is not None:
        limits = current_app.extensions.get("voices_limits")
        wait = limits.spend("staff", accounts.credential_key(g.staff_cookie)) if limits else 0
        if wait:
            raise TooManyRequests("Too many requests.", retry_after=retry_after(wait))


def _check_post(binding: str) -> None:
    site = request.headers.get("Sec-Fetch-Site")
    if site and site not in ("same-origin", "none"):
        raise CsrfRefused()
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise CsrfRefused()
    if not csrf.token_matches(state().secret, binding, request.form.get(csrf.TOKEN_FIELD)):
        if g.get("staff_clear_session"):
            # The form belonged to a session that ended meanwhile: nothing is done, and the
            # person is asked to sign in again rather than told the form was forged.
            raise SignInNeeded()
        raise CsrfRefused()


def _finish(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    secure = behind_tls(state().settings)

    def keep(name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )

    def drop(name: str) -> None:
        response.delete_cookie(
            name, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=secure
        )

    if g.get("staff_new_lang"):
        keep(LANGUAGE_COOKIE, g.staff_new_lang, max_age=365 * 86400)
    if g.get("staff_new_binding"):
        keep(BINDING_COOKIE, g.staff_new_binding)
    if g.get("staff_new_session"):
        keep(SESSION_COOKIE, g.staff_new_session, int(accounts.SESSION_TTL.total_seconds()))
    elif g.get("staff_clear_session"):
        drop(SESSION_COOKIE)
    outgoing = g.get("staff_flash_out")
    if outgoing:
        keep(FLASH_COOKIE, _serializer().dumps(outgoing))
    elif g.get("staff_flash_shown"):
        drop(FLASH_COOKIE)
    return response


def _flashed() -> list[str]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or g.get("staff_flash_out"):
        return []
    try:
        messages = _serializer().loads(raw)
    except BadSignature:
        messages = []
    g.staff_flash_shown = True
    return [m for m in messages if isinstance(m, str)]


def _layout_context() -> dict[str, Any]:
    lang = g.get("web_lang", DEFAULT_LANGUAGE)
    who = g.get("staff_principal")
    return {
        "lang": lang,
        "dir": text_direction(lang),
        "languages": [
            {
                "code": code,
                "name": NATIVE_NAMES[code],
                "url": f"{request.path}?lang={code}",
                "current": code == lang,
            }
            for code in LANGUAGES
        ],
        "csrf_field": csrf.TOKEN_FIELD,
        "csrf_token": g.get("staff_csrf", ""),
        "principal": who,
        "nav": [
            {"url": url_for(item.endpoint), "label": item.label, "endpoint": item.endpoint}
            for item in NAV
            if who is not None and who.role in item.roles
        ],
        "flashes": _flashed(),
    }


# ---------------------------------------------------------------- error pages


def _problem(status: int, heading: str, message: str, **context: Any) -> Response:
    return render("staff/problem.html", status, heading=heading, message=message, **context)


def _sign_in_needed(_exc: SignInNeeded) -> Response:
    if g.get("staff_idle_ended"):
        flash(_("You were signed out after a time without activity. Please sign in again."))
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return see_other(url_for("shell.sign_in", next=target) if target else url_for("shell.sign_in"))


def _csrf_refused(_exc: CsrfRefused) -> Response:
    return _problem(
        400,
        _("This form could not be accepted"),
        _(
            "It was open too long or sent from another site. Go back, reload the page and send "
            "it again."
        ),
    )


def _unavailable(exc: ServiceUnavailable) -> Response:
    log.warning("staff page could not reach a service: %s", exc.detail)
    response = _problem(
        503,
        _("A service is not answering"),
        _("Nothing was changed. Please try again in a minute."),
    )
    response.headers["Retry-After"] = str(exc.extra.get("retry_after") or 5)
    return response


def _too_many(exc: TooManyRequests) -> Response:
    response = _problem(
        429,
        _("Please wait a moment"),
        _("There were many requests in a short time. Wait a minute, then try again."),
    )
    response.headers["Retry-After"] = str(exc.extra.get("retry_after") or 60)
    return response


def _refused(exc: ServiceRefused) -> Response:
    # A refusal no form could place (e.g. a page of another organisation's consultation).
    detail = exc.body.get("detail") or exc.body.get("title") or ""
    if exc.status == 404:
        return _problem(404, _("Not found"), detail or _("This page does not exist."))
    if exc.status == 403:
        return _problem(403, _("Not allowed"), detail)
    return _problem(exc.status, _("This was refused"), detail)


def _http_error(exc: HTTPException) -> Response:
    if exc.code == 404:
        return _problem(404, _("Not found"), _("This page does not exist."))
    if exc.code == 403:
        return _problem(403, _("Not allowed"), _("Your role may not use this page."))
    if exc.code == 405:
        return _problem(405, _("Not found"), _("This page does not exist."))
    return _problem(exc.code or 500, _("This was refused"), exc.description or "")
