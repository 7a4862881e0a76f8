"""The staff shell's own pages: sign in and out, home, change password, set a password from a link.

Sign-in uses the gateway's accounts (argon2, the sign-in limits per address and per known
browser, server-side sessions); the session cookie is the staff pages' own (path /staff), apart
from the participant pages' cookie and the API's.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request, url_for

from gateway import accounts
from gateway.ratelimit import code_key, retry_after
from gateway.sign_in import mark_device, spend_sign_in_attempt
from gateway.web.i18n import N_
from gateway.web.staff.forms import Form
from gateway.web.staff.pages import (
    COOKIE_PATH,
    _,
    add_nav,
    flash,
    local_target,
    principal,
    render,
    see_other,
    signed_in,
    staff_blueprint,
)
from shared.auth import ROLES
from shared.errors import ServiceUnavailable, TooManyRequests, Unauthorized, ValidationFailed

assets = Blueprint(
    "staff_assets",
    __name__,
    static_folder="static",
    static_url_path="/assets",
    url_prefix=COOKIE_PATH,
)
shell = staff_blueprint("shell", __name__)

add_nav("shell.home", N_("Home"), set(ROLES), order=0)
add_nav("shell.password", N_("Change password"), set(ROLES), order=90)

ROLE_NAMES = {
    "organiser": N_("Organiser"),
    "policy": N_("Policy analyst"),
    "auditor": N_("Auditor"),
    "platform_auditor": N_("Platform auditor"),
    "admin": N_("Administrator"),
}


def _password_problems(form: Form, exc: ValidationFailed, field: str) -> None:
    form.take_refusal(exc.detail, exc.extra.get("errors"), {"password": field})


@shell.route("/")
@signed_in()
def home() -> Response:
    """Where signing in leads: the pages of the person's role."""
    role = principal().role or ""
    for endpoint in HOME_BY_ROLE.get(role, ()):
        if endpoint in current_app.view_functions:
            return see_other(url_for(endpoint))
    account = accounts.get_account(principal().subject)
    return render("staff/home.html", email=account.email, role_name=_(ROLE_NAMES.get(role, role)))


# A role's own start page, when a page module provides it (the first registered one wins).
HOME_BY_ROLE: dict[str, list[str]] = {role: [] for role in ROLES}


@shell.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response:
    target = local_target(request.values.get("next"), url_for("shell.home"))
    if g.staff_principal is not None and request.method == "GET":
        return see_other(target)
    if request.method == "GET":
        return _sign_in_page(Form.of({"email": request.args.get("email", "")}), target)
    form = Form.of({"email": request.form.get("email", "").strip()})
    password = request.form.get("password", "")
    if not form.value("email"):
        form.add_error("email", _("Enter your email address."))
    if not password:
        form.add_error("password", _("Enter your password."))
    if not form.ok:
        return _sign_in_page(form, target, 400)
    try:
        known_browser = spend_sign_in_attempt(form.value("email"))
        _session, value, account = accounts.sign_in(
            form.value("email"), password, known_browser=known_browser
        )
    except TooManyRequests as exc:
        form.add_error(
            None,
            _(
                "Too many sign-in attempts for this account. Wait %(minutes)s minutes, sign in "
                "from a browser you used before, or ask an admin for a set-password link.",
                minutes=max(1, -(-int(exc.extra.get("retry_after") or 60) // 60)),
            ),
        )
        return _sign_in_page(form, target, 429)
    except ServiceUnavailable:
        form.add_error(None, _("Signing in is busy. Please try again in a moment."))
        return _sign_in_page(form, target, 503)
    except Unauthorized:
        form.add_error("password", _("The email address or password is not correct."))
        return _sign_in_page(form, target, 401)
    g.staff_new_session = value
    g.staff_clear_session = False
    response = see_other(target)
    mark_device(response, account, url_for("shell.sign_in"))
    return response


def _sign_in_page(form: Form, target: str, status: int = 200) -> Response:
    return render("staff/sign_in.html", status, form=form, next=target)


@shell.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    if g.staff_cookie:
        accounts.sign_out(g.staff_cookie)
    g.staff_clear_session = True
    flash(_("You are signed out."))
    return see_other(url_for("shell.sign_in"))


@shell.route("/password", methods=["GET", "POST"])
@signed_in()
def password() -> Response:
    form = Form()
    if request.method == "GET":
        return render("staff/password.html", form=form)
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    if not current:
        form.add_error("current_password", _("Enter your current password."))
    if new != request.form.get("confirm_password", ""):
        form.add_error("confirm_password", _("The two new passwords are not the same."))
    if form.ok:
        try:
            accounts.change_own_password(principal().subject, current, new)
        except Unauthorized:
            form.add_error("current_password", _("The current password is not correct."))
        except ValidationFailed as exc:
            _password_problems(form, exc, "new_password")
        except ServiceUnavailable:
            form.add_error(None, _("Signing in is busy. Please try again in a moment."))
    if not form.ok:
        return render("staff/password.html", 400, form=form)
    # Every session of the account ended with the change, this one too.
    g.staff_clear_session = True
    flash(_("Your password was changed. Please sign in with the new one."))
    return see_other(url_for("shell.sign_in"))


@shell.route("/set-password/<code>", methods=["GET", "POST"])
def set_password(code: str) -> Response:
    """The page of a set-password link an admin handed out (first password, or a forgotten one)."""
    form = Form()
    if request.method == "GET":
        return render("staff/set_password.html", form=form, code=code)
    limits = current_app.extensions.get("voices_limits")
    wait = limits.spend("code", code_key(code)) if limits else 0
    if wait:
        raise TooManyRequests("Too many tries.", retry_after=retry_after(wait))
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        form.add_error("confirm_password", _("The two new passwords are not the same."))
    account = None
    if form.ok:
        try:
            account = accounts.redeem_password_link(code, new)
        except ValidationFailed as exc:
            _password_problems(form, exc, "new_password")
        except Unauthorized:
            form.add_error(
                None, _("This set-password link is not valid any more. Ask an admin for a new one.")
            )
    if account is None:
        return render("staff/set_password.html", 400, form=form, code=code)
    flash(_("Your password is set. You can sign in now."))
    response = see_other(url_for("shell.sign_in", email=account.email))
    mark_device(response, account, url_for("shell.sign_in"))
    return response
