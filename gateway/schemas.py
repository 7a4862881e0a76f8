"""Schemas of the gateway's own API: organisations, accounts, tokens."""
from marshmallow import RAISE, Schema, fields, validate


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class OrganisationCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=120))


class OrganisationSchema(Schema):
    organisation_id = fields.String()
    name = fields.String()
    created_at = fields.DateTime()


class AccountCreateSchema(StrictSchema):
    email = fields.Email(required=True)
    role = fields.String(required=True, validate=validate.OneOf(["organiser", "policy", "auditor", "admin"]))
    organisation_id = fields.String(load_default=None)
    readable_organisations = fields.List(fields.String(), load_default=list)


class AccountSchema(Schema):
    account_id = fields.String()
    email = fields.String()
    role = fields.String()
    organisation_id = fields.String(allow_none=True)
    readable_organisations = fields.List(fields.String())
    created_at = fields.DateTime()


class TokenCreateSchema(StrictSchema):
    label = fields.String(load_default=None, validate=validate.Length(max=100))
    ttl_days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=365))
    account_id = fields.String(load_default=None, metadata={"description": "admins only: issue for another account"})


class TokenSchema(Schema):
    token_id = fields.String()
    account_id = fields.String()
    label = fields.String(allow_none=True)
    expires_at = fields.DateTime()
    revoked = fields.Boolean()


class TokenCreatedSchema(TokenSchema):
    token = fields.String(metadata={"description": "shown once; only its hash is stored"})


class MeSchema(Schema):
    subject = fields.String()
    role = fields.String()
    organisation_id = fields.String(allow_none=True)
