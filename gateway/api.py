"""The gateway's own endpoints: organisations, staff accounts, API tokens."""
from __future__ import annotations

from datetime import timedelta

from flask.views import MethodView
from flask_smorest import Blueprint

from gateway import accounts
from gateway.models import Account, Organisation
from gateway.schemas import (
    AccountCreateSchema, AccountSchema, MeSchema, OrganisationCreateSchema, OrganisationSchema, TokenCreatedSchema,
    TokenCreateSchema, TokenSchema,
)
from shared.auth import current_principal
from shared.errors import Forbidden, NotFound

staff = Blueprint("staff", __name__, url_prefix="/api/v1", description="Organisations, staff accounts and API tokens")


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
    def get(self):
        return list(Account.objects.order_by("email"))

    @staff.arguments(AccountCreateSchema)
    @staff.response(201, AccountSchema)
    def post(self, data):
        return accounts.create_account(**data)


@staff.route("/tokens")
class Tokens(MethodView):
    @staff.arguments(TokenCreateSchema)
    @staff.response(201, TokenCreatedSchema)
    def post(self, data):
        """A new API token for yourself (admins: for any account). The token is shown only here."""
        principal = current_principal()
        account_id = data["account_id"] or principal.subject
        if account_id != principal.subject and principal.role != "admin":
            raise Forbidden("Only admins issue tokens for other accounts.")
        account = Account.objects(account_id=account_id).first()
        if account is None:
            raise NotFound("No such account.")
        record, token = accounts.issue_token(account, data["label"], timedelta(days=data["ttl_days"]))
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
