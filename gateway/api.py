"""The gateway's own endpoints: organisations, staff accounts, API tokens, passwords, sign-in sessions."""

from __future__ import annotations

from datetime import timedelta

from flask import Response, current_app, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from gateway import accounts
from gateway.guards import behind_tls
from gateway.models import Account, Organisation
from gateway.schemas import (
    AccountCreateSchema,
    AccountSchema,
    AccountUpdateSchema,
    MeSchema,
    OrganisationCreateSchema,
    OrganisationSchema,
    PasswordChangeSchema,
    PasswordLinkRedeemSchema,
    PasswordLinkSchema,
    PasswordSetSchema,
    SessionSchema,
    SignInSchema,
    TokenCreatedSchema,
    TokenCreateSchema,
    TokenQuerySchema,
    TokenSchema,
)
from gateway.sign_in import mark_device, spend_sign_in_attempt
from shared.auth import current_principal
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.runtime import MAX_PAGE_SIZE, PAGE_SIZE, QueryPage

staff = Blueprint(
    "staff",
    __name__,
    url_prefix="/api/v1",
    description="Organisations, staff accounts and API tokens",
)
sessions = Blueprint(
    "sessions",
    __name__,
    url_prefix="/api/v1",
    description="Staff sign-in with email and password, and setting passwords",
)

SESSION_COOKIE = "voices_session"
# The known-browser cookie (gateway/sign_in.py) is sent only to the sign-in route.
DEVICE_COOKIE_PATH = "/api/v1/sessions"


def _require_body() -> None:
    """Raises ValidationFailed for a request without a body where the document requires one: a body
    whose every field is optional would otherwise let a missing body pass as `{}`."""
    if not request.get_data(cache=True).strip():
        raise ValidationFailed(
            "This request needs a JSON body; send {} to take every default.",
            errors={"body": ["missing"]},
        )


@staff.route("/organisations")
class Organisations(MethodView):
    @staff.response(200, OrganisationSchema(many=True))
    def get(self):
        return list(Organisation.objects.order_by("name"))

    @staff.arguments(OrganisationCreateSchema)
    @staff.response(201, OrganisationSchema)
    def post(self, data):
        return accounts.create_organisation(data["name"])


@staff.route("/accounts")
class Accounts(MethodView):
    @staff.response(200, AccountSchema(many=True))
    @staff.paginate(QueryPage, page_size=PAGE_SIZE, max_page_size=MAX_PAGE_SIZE)
    def get(self):
        """Staff accounts by email address, a page at a time (X-Pagination header)."""
        return Account.objects.order_by("email")

    @staff.arguments(AccountCreateSchema)
    @staff.response(201, AccountSchema)
    def post(self, data):
        return accounts.create_account(**data)


@staff.route("/accounts/<account_id>")
class AccountItem(MethodView):
    @staff.response(200, AccountSchema)
    def get(self, account_id):
        return accounts.get_account(account_id)

    @staff.arguments(AccountUpdateSchema)
    @staff.response(200, AccountSchema)
    def patch(self, data, account_id):
        """Change the role, disable or enable, or grant a policy account read access to other
        organisations' releases."""
        _require_body()
        return accounts.update_account(account_id, data)


@staff.route("/accounts/<account_id>/password")
class AccountPassword(MethodView):
    @staff.arguments(PasswordSetSchema)
    @staff.response(204)
    def put(self, data, account_id):
        """Set an initial password (the account's sessions end)."""
        accounts.set_password(account_id, data["password"])


@staff.route("/accounts/<account_id>/password-links")
class AccountPasswordLinks(MethodView):
    @staff.response(201, PasswordLinkSchema)
    def post(self, account_id):
        """A one-time code with which the account holder sets their own password; earlier codes stop working."""
        link, code = accounts.create_password_link(account_id)
        settings = current_app.extensions["voices_settings"]
        # VOICES_PUBLIC_URL when set (what the account holder opens), else this request's origin.
        origin = (
            settings.get("PUBLIC_URL")
            or f"{'https' if behind_tls(settings) else request.scheme}://{request.host}"
        )
        return {
            "code": code,
            "account_id": link.account_id,
            "expires_at": link.expires_at,
            "url": origin.rstrip("/") + url_for("shell.set_password", code=code),
        }


@staff.route("/tokens")
class Tokens(MethodView):
    @staff.arguments(TokenQuerySchema, location="query")
    @staff.response(200, TokenSchema(many=True))
    def get(self, query):
        """Your API tokens (admins: any account's), without the tokens themselves."""
        principal = current_principal()
        account_id = query["account_id"] or principal.subject
        if account_id != principal.subject and principal.role != "admin":
            raise Forbidden("Only admins list other accounts' tokens.")
        return accounts.tokens_of(account_id)

    @staff.arguments(TokenCreateSchema)
    @staff.response(201, TokenCreatedSchema)
    def post(self, data):
        """A new API token for yourself (admins: for any account). The token is shown only here."""
        _require_body()
        principal = current_principal()
        account_id = data["account_id"] or principal.subject
        if account_id != principal.subject and principal.role != "admin":
            raise Forbidden("Only admins issue tokens for other accounts.")
        account = Account.objects(account_id=account_id).first()
        if account is None:
            raise NotFound("No such account.")
        record, token = accounts.issue_token(
            account, data["label"], timedelta(days=data["ttl_days"])
        )
        return {**record.to_mongo().to_dict(), "token_id": record.token_id, "token": token}


@staff.route("/tokens/<token_id>/revoke")
class RevokeToken(MethodView):
    @staff.response(200, TokenSchema)
    def post(self, token_id):
        return accounts.revoke_token(token_id, current_principal())


@staff.route("/me")
class Me(MethodView):
    @staff.response(200, MeSchema)
    def get(self):
        return current_principal()


@staff.route("/me/password")
class MyPassword(MethodView):
    @staff.arguments(PasswordChangeSchema)
    @staff.response(204)
    def put(self, data):
        """Change your own password; every session of yours ends, including this one."""
        accounts.change_own_password(
            current_principal().subject, data["current_password"], data["new_password"]
        )


@sessions.route("/sessions")
class Sessions(MethodView):
    @sessions.arguments(SignInSchema)
    @sessions.response(201, SessionSchema)
    def post(self, data):
        """Sign in with email and password: sets an HttpOnly, SameSite=Strict session cookie.

        Attempts are limited per email address, and separately per browser that signed in to that
        account before (or set its password from a link): wrong passwords sent from elsewhere never
        lock the owner out of a browser they used."""
        known_browser = spend_sign_in_attempt(data["email"])
        session, value, account = accounts.sign_in(
            data["email"], data["password"], known_browser=known_browser
        )
        response = SessionSchema().dump(
            {
                **account.to_mongo().to_dict(),
                "account_id": account.account_id,
                "expires_at": session.expires_at,
            }
        )
        response = current_app.response_class(
            current_app.json.dumps(response), status=201, mimetype="application/json"
        )
        settings = current_app.extensions["voices_settings"]
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(accounts.SESSION_TTL.total_seconds()),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=behind_tls(settings),
        )
        mark_device(response, account, DEVICE_COOKIE_PATH)
        return response


@sessions.route("/sessions/current")
class CurrentSession(MethodView):
    @sessions.response(204)
    def delete(self):
        """Sign out: the session ends on the server and its cookie is cleared."""
        value = request.cookies.get(SESSION_COOKIE)
        if value:
            accounts.sign_out(value)
        response = Response(status=204)
        settings = current_app.extensions["voices_settings"]
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="Strict", secure=behind_tls(settings)
        )
        return response


@sessions.route("/password-links/redeem")
class RedeemPasswordLink(MethodView):
    @sessions.arguments(PasswordLinkRedeemSchema)
    @sessions.response(204)
    def post(self, data):
        """Set your password with the one-time code an admin gave you. The browser is then one its
        owner used: sign-in attempts from it have their own budget."""
        account = accounts.redeem_password_link(data["code"], data["password"])
        response = Response(status=204)
        mark_device(response, account, DEVICE_COOKIE_PATH)
        return response
