"""Administration: organisations, staff accounts and roles, set-password links, API tokens.

The gateway's own routes are not called over HTTP: each action is first checked against the
authorization table (gateway/policy.py) for the signed-in person, exactly as the API checks it,
then done with gateway.accounts, and input is validated with the API's own schemas. Secrets (a
password link, a new token) are shown once, on the page that answers the form, and never again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, abort, request, url_for
from marshmallow import Schema, ValidationError

from gateway import accounts
from gateway.models import Account, ApiToken, Organisation
from gateway.policy import allows, build_map, match
from gateway.schemas import (
    AccountCreateSchema,
    AccountUpdateSchema,
    OrganisationCreateSchema,
    TokenCreateSchema,
)
from gateway.web.i18n import N_
from gateway.web.staff.forms import Form
from gateway.web.staff.pages import (
    _,
    add_nav,
    flash,
    principal,
    render,
    see_other,
    signed_in,
    staff_blueprint,
)
from gateway.web.staff.shell import ROLE_NAMES
from shared.auth import ROLES
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed

admin = staff_blueprint("admin", __name__)
add_nav("admin.organisations", N_("Organisations"), {"admin"}, order=60)
add_nav("admin.accounts_page", N_("Staff accounts"), {"admin"}, order=61)


_ROUTES = build_map()
# Form fields named as the API's schemas name them.
FIELDS = {name: name for name in ("name", "email", "role", "organisation_id", "label", "ttl_days")}


def permitted(method: str, path: str) -> None:
    """Refuse (403) what the authorization table does not let the signed-in person do."""
    matched = match(_ROUTES, method, path)
    who = principal()
    if matched is None or not allows(matched[0], who.role, who.kind):
        abort(403)


def _validated(schema: Schema, data: dict[str, Any], form: Form) -> dict[str, Any] | None:
    try:
        return schema.load(data)
    except ValidationError as exc:
        form.take_refusal(None, exc.messages, fields=FIELDS)
        return None


def _refusal(form: Form, exc: ValidationFailed | Conflict, fields: dict[str, str]) -> None:
    form.take_refusal(exc.detail, exc.extra.get("errors") or {}, fields=fields)


def _organisations() -> list[Organisation]:
    return list(Organisation.objects.order_by("name"))


@admin.route("/admin/organisations", methods=["GET", "POST"])
@signed_in("admin")
def organisations() -> Response:
    permitted("GET", "/api/v1/organisations")
    form = Form()
    if request.method == "POST":
        permitted("POST", "/api/v1/organisations")
        form = Form.of(request.form)
        data = _validated(OrganisationCreateSchema(), {"name": form.value("name").strip()}, form)
        if data is not None:
            try:
                created = accounts.create_organisation(data["name"])
            except Conflict as exc:
                form.add_error("name", exc.detail)
            else:
                flash(_("Organisation %(name)s was created.", name=created.name))
                return see_other(url_for("admin.organisations"))
    status = 200 if form.ok else 400
    return render("oversight/organisations.html", status, form=form, organisations=_organisations())


def _role_options() -> list[tuple[str, str]]:
    return [(role, _(ROLE_NAMES[role])) for role in ROLES]


@admin.route("/admin/accounts", methods=["GET", "POST"])
@signed_in("admin")
def accounts_page() -> Response:
    permitted("GET", "/api/v1/accounts")
    form = Form()
    if request.method == "POST":
        permitted("POST", "/api/v1/accounts")
        form = Form.of(request.form)
        body = {
            "email": form.value("email").strip(),
            "role": form.value("role"),
            "organisation_id": form.value("organisation_id") or None,
        }
        data = _validated(AccountCreateSchema(), body, form)
        if data is not None:
            try:
                created = accounts.create_account(**data)
            except (ValidationFailed, Conflict) as exc:
                _refusal(form, exc, FIELDS)
                if isinstance(exc, Conflict):
                    form.problems.clear()
                    form.add_error("email", exc.detail)
            else:
                flash(
                    _(
                        "The account %(email)s was created. Give its holder a set-password link.",
                        email=created.email,
                    )
                )
                return see_other(url_for("admin.account", account_id=created.account_id))
    status = 200 if form.ok else 400
    names = {o.organisation_id: o.name for o in _organisations()}
    return render(
        "oversight/accounts.html",
        status,
        form=form,
        accounts=list(Account.objects.order_by("email")),
        organisations=names,
        role_options=_role_options(),
        role_names={role: _(name) for role, name in ROLE_NAMES.items()},
    )


def _account(account_id: str) -> Account:
    try:
        return accounts.get_account(account_id)
    except NotFound:
        abort(404)


def _account_page(account: Account, status: int = 200, **extra: Any) -> Response:
    organisation = (
        Organisation.objects(organisation_id=account.organisation_id).first()
        if account.organisation_id
        else None
    )
    tokens = list(ApiToken.objects(account_id=account.account_id).order_by("-created_at"))
    return render(
        "oversight/account.html",
        status,
        account=account,
        organisation=organisation,
        role_name=_(ROLE_NAMES.get(account.role, account.role)),
        tokens=tokens,
        token_form=extra.pop("token_form", Form.of({"ttl_days": "90"})),
        role_form=extra.pop(
            "role_form",
            Form.of({"role": account.role, "disabled": "on" if account.disabled else None}),
        ),
        role_options=_role_options(),
        **extra,
    )


@admin.route("/admin/accounts/<account_id>")
@signed_in("admin")
def account(account_id: str) -> Response:
    permitted("GET", f"/api/v1/accounts/{account_id}")
    return _account_page(_account(account_id))


@admin.route("/admin/accounts/<account_id>/role", methods=["POST"])
@signed_in("admin")
def change_role(account_id: str) -> Response:
    """Change an account's role or disable it (its sign-in sessions end either way)."""
    permitted("PATCH", f"/api/v1/accounts/{account_id}")
    holder = _account(account_id)
    form = Form.of(request.form)
    body = {"role": form.value("role"), "disabled": form.value("disabled") == "on"}
    data = _validated(AccountUpdateSchema(), body, form)
    if data is not None:
        try:
            changed = accounts.update_account(account_id, data)
        except ValidationFailed as exc:
            _refusal(form, exc, FIELDS)
        else:
            flash(_("The account %(email)s was changed.", email=changed.email))
            return see_other(url_for("admin.account", account_id=account_id))
    return _account_page(holder, 400, role_form=form)


@admin.route("/admin/accounts/<account_id>/password-link", methods=["POST"])
@signed_in("admin")
def password_link(account_id: str) -> Response:
    permitted("POST", f"/api/v1/accounts/{account_id}/password-links")
    holder = _account(account_id)
    try:
        link, code = accounts.create_password_link(account_id)
    except (ValidationFailed, Conflict) as exc:
        form = Form()
        form.add_error(None, exc.detail)
        return _account_page(holder, 400, link_form=form)
    url = url_for("shell.set_password", code=code, _external=True)
    return _account_page(holder, link_url=url, link_expires=link.expires_at)


@admin.route("/admin/accounts/<account_id>/tokens", methods=["POST"])
@signed_in("admin")
def create_token(account_id: str) -> Response:
    permitted("POST", "/api/v1/tokens")
    holder = _account(account_id)
    form = Form.of(request.form)
    body: dict[str, Any] = {"label": form.value("label").strip() or None}
    if form.value("ttl_days").strip():
        body["ttl_days"] = form.value("ttl_days").strip()
    data = _validated(TokenCreateSchema(), body, form)
    if data is None:
        return _account_page(holder, 400, token_form=form)
    try:
        record, token = accounts.issue_token(
            holder, data["label"], timedelta(days=data["ttl_days"])
        )
    except (ValidationFailed, Conflict, Forbidden) as exc:
        form.add_error(None, exc.detail)
        return _account_page(holder, 400, token_form=form)
    return _account_page(holder, new_token=token, new_token_label=record.label)


@admin.route("/admin/accounts/<account_id>/tokens/<token_id>/revoke", methods=["POST"])
@signed_in("admin")
def revoke_token(account_id: str, token_id: str) -> Response:
    permitted("POST", f"/api/v1/tokens/{token_id}/revoke")
    _account(account_id)
    try:
        revoked = accounts.revoke_token(token_id, principal())
    except (NotFound, Forbidden):
        abort(404)
    flash(_("The token %(label)s was revoked.", label=revoked.label or revoked.token_id))
    return see_other(url_for("admin.account", account_id=account_id))
