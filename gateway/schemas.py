"""Schemas of the gateway's own API: organisations, accounts, tokens, passwords, sessions."""

from marshmallow import Schema, fields, validate

from shared.auth import ROLES
from shared.schemas import StrictSchema, UTCDateTime


class OrganisationCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=120))


class OrganisationSchema(Schema):
    organisation_id = fields.String()
    name = fields.String()
    created_at = UTCDateTime()


class AccountCreateSchema(StrictSchema):
    email = fields.Email(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    organisation_id = fields.String(load_default=None)
    readable_organisations = fields.List(fields.String(), load_default=list)


class AccountSchema(Schema):
    account_id = fields.String()
    email = fields.String()
    role = fields.String()
    organisation_id = fields.String(allow_none=True)
    readable_organisations = fields.List(fields.String())
    disabled = fields.Boolean()
    has_password = fields.Function(lambda account: bool(account.password_hash))
    created_at = UTCDateTime()


class AccountUpdateSchema(StrictSchema):
    role = fields.String(validate=validate.OneOf(ROLES))
    disabled = fields.Boolean()
    readable_organisations = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        metadata={
            "description": "policy accounts: organisations whose releases they may also read"
        },
    )


class PasswordSetSchema(StrictSchema):
    password = fields.String(required=True, validate=validate.Length(min=12, max=256))


class PasswordChangeSchema(StrictSchema):
    current_password = fields.String(required=True, validate=validate.Length(max=256))
    new_password = fields.String(required=True, validate=validate.Length(min=12, max=256))


class PasswordLinkSchema(Schema):
    code = fields.String(
        metadata={"description": "one-time; shown only here, send it to the account holder"}
    )
    account_id = fields.String()
    expires_at = UTCDateTime()
    url = fields.String(
        metadata={"description": "the staff page where the account holder sets the password"}
    )


class PasswordLinkRedeemSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=128))
    password = fields.String(required=True, validate=validate.Length(min=12, max=256))


class SignInSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class SessionSchema(Schema):
    account_id = fields.String()
    email = fields.String()
    role = fields.String()
    organisation_id = fields.String(allow_none=True)
    expires_at = UTCDateTime()


class TokenQuerySchema(StrictSchema):
    account_id = fields.String(
        load_default=None, metadata={"description": "admins only: another account's tokens"}
    )


class TokenCreateSchema(StrictSchema):
    label = fields.String(load_default=None, validate=validate.Length(max=100))
    ttl_days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=365))
    account_id = fields.String(
        load_default=None, metadata={"description": "admins only: issue for another account"}
    )


class TokenSchema(Schema):
    token_id = fields.String()
    account_id = fields.String()
    label = fields.String(allow_none=True)
    expires_at = UTCDateTime()
    revoked = fields.Boolean()
    created_at = UTCDateTime()


class TokenCreatedSchema(TokenSchema):
    token = fields.String(metadata={"description": "shown once; only its hash is stored"})


class MeSchema(Schema):
    subject = fields.String()
    role = fields.String()
    organisation_id = fields.String(allow_none=True)
    readable_organisations = fields.List(fields.String())


class ParticipantSessionSchema(Schema):
    """What the gateway adds to an opened invitation."""

    participant_session = fields.String(
        metadata={
            "description": "send as Authorization: Bearer on participant "
            "calls; bound to this consultation"
        }
    )
    participant_session_expires_in = fields.Integer(metadata={"description": "seconds"})
