"""Request and response schemas of the consent API (also its OpenAPI document)."""
from marshmallow import RAISE, Schema, fields, validate

from shared.events import PURPOSES


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class ControllerSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(max=200))
    contact = fields.String(validate=validate.Length(max=200))
    address = fields.String(validate=validate.Length(max=500))
    email = fields.Email()


class ConsentTextCreateSchema(StrictSchema):
    version = fields.Integer(load_default=None, validate=validate.Range(min=1))
    language = fields.String(required=True, validate=validate.OneOf(["ar", "zh", "en", "fr", "ru", "es"]))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    purposes = fields.Dict(keys=fields.String(validate=validate.OneOf(PURPOSES)),
                           values=fields.String(validate=validate.Length(min=1, max=2000)), required=True,
                           metadata={"description": "plain-language explanation of each purpose offered"})
    policy_url = fields.Url(load_default=None)
    controller = fields.Nested(ControllerSchema, load_default=None)
    jurisdiction = fields.String(load_default=None, validate=validate.Length(max=100))


class ConsentTextSchema(Schema):
    consultation_id = fields.String()
    version = fields.Integer()
    language = fields.String()
    title = fields.String()
    body = fields.String()
    purposes = fields.Dict()
    policy_url = fields.String(allow_none=True)
    sha256 = fields.String()
    published_at = fields.DateTime(allow_none=True)


class TextQuerySchema(StrictSchema):
    language = fields.String(required=True, validate=validate.OneOf(["ar", "zh", "en", "fr", "ru", "es"]))


class GuardianSchema(StrictSchema):
    relationship = fields.String(required=True)
    attested = fields.Boolean(required=True)


class GrantCreateSchema(StrictSchema):
    pseudonym = fields.String(required=True, validate=validate.Length(min=3, max=64))
    consultation_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True)
    language = fields.String(required=True)
    text_version = fields.Integer(required=True, validate=validate.Range(min=1))
    collection_method = fields.String(load_default="self", validate=validate.OneOf(["self", "guardian", "facilitator"]))
    age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=130))
    age_band = fields.String(load_default=None, validate=validate.Length(max=20))
    guardian = fields.Nested(GuardianSchema, load_default=None)
    participant_assent = fields.Boolean(load_default=None)


class GrantCreatedSchema(Schema):
    grant_id = fields.String()
    consent_token = fields.String(metadata={"description": "Ed25519-signed; present it when submitting answers"})
    receipt_code = fields.String(metadata={"description": "shown once: keep it to check or withdraw consent"})
    expires_in = fields.Integer()
    receipt = fields.Dict()


class ReceiptCodeSchema(StrictSchema):
    receipt_code = fields.String(required=True, validate=validate.Length(min=10, max=80))


class WithdrawalSchema(ReceiptCodeSchema):
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), load_default=None,
                           metadata={"description": "omit to withdraw everything"})


class WithdrawalResultSchema(Schema):
    withdrawn = fields.List(fields.String())
    remaining = fields.List(fields.String())
    all = fields.Boolean()
    changed = fields.Boolean()
    receipt = fields.Dict()


class PublicKeySchema(Schema):
    key_id = fields.String()
    algorithm = fields.String()
    public_key_pem = fields.String()


class RangeQuerySchema(StrictSchema):
    start = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


class LedgerPageSchema(Schema):
    start = fields.Integer()
    size = fields.Integer()
    entries = fields.List(fields.Dict())


class CheckpointSchema(Schema):
    tree_size = fields.Integer()
    root_hash = fields.String()
    timestamp = fields.String()
    signature = fields.String()
    key_id = fields.String()


class InclusionQuerySchema(StrictSchema):
    tree_size = fields.Integer(load_default=None, validate=validate.Range(min=1))


class InclusionProofSchema(Schema):
    seq = fields.Integer()
    tree_size = fields.Integer()
    leaf_hash = fields.String()
    root_hash = fields.String()
    entry = fields.Dict()
    audit_path = fields.List(fields.String())


class ConsistencyQuerySchema(StrictSchema):
    first = fields.Integer(required=True, validate=validate.Range(min=1))
    second = fields.Integer(required=True, validate=validate.Range(min=1))


class ConsistencyProofSchema(Schema):
    first = fields.Integer()
    second = fields.Integer()
    first_root = fields.String()
    second_root = fields.String()
    proof = fields.List(fields.String())
