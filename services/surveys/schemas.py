"""Request and response schemas of the surveys API (also its OpenAPI document)."""
from marshmallow import RAISE, Schema, fields, validate

from shared.events import PURPOSES

UN_LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class ConsultationCreateSchema(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    languages = fields.List(fields.String(validate=validate.OneOf(UN_LANGUAGES)), required=True,
                            validate=validate.Length(min=1))
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), load_default=lambda: ["participate", "aggregate_reporting"],
                           validate=validate.ContainsOnly(PURPOSES))
    min_cell_size = fields.Integer(load_default=10, validate=validate.Range(min=5, max=1000),
                                   metadata={"description": "k: the smallest group size ever shown to policy users (never below 5)"})
    min_age = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=0, max=25))
    retention_days = fields.Integer(load_default=365, validate=validate.Range(min=1, max=3650))
    opens_at = fields.AwareDateTime(allow_none=True, load_default=None)
    closes_at = fields.AwareDateTime(allow_none=True, load_default=None)
    survey = fields.Dict(load_default=None, metadata={"description": "survey definition: languages and sections of questions"})


class SurveyDraftSchema(StrictSchema):
    survey = fields.Dict(required=True)


class StatusChangeSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["open", "closed", "archived"]))


class VersionSchema(Schema):
    number = fields.Integer()
    published_at = fields.String()
    definition = fields.Dict()


class ConsultationSchema(Schema):
    consultation_id = fields.String()
    organisation_id = fields.String()
    title = fields.String()
    description = fields.String(allow_none=True)
    status = fields.String()
    languages = fields.List(fields.String())
    purposes = fields.List(fields.String())
    min_cell_size = fields.Integer()
    min_age = fields.Integer(allow_none=True)
    retention_days = fields.Integer()
    created_at = fields.DateTime()
    opened_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    draft = fields.Dict()
    versions = fields.List(fields.Nested(VersionSchema))
    revision = fields.Integer()


class InvitationCreateSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(["single", "link"]))
    label = fields.String(validate=validate.Length(max=100), load_default=None)


class InvitationSchema(Schema):
    invitation_id = fields.String()
    consultation_id = fields.String()
    kind = fields.String()
    label = fields.String(allow_none=True)
    uses = fields.Integer()
    revoked = fields.Boolean()
    created_at = fields.DateTime()


class InvitationCreatedSchema(InvitationSchema):
    code = fields.String(metadata={"description": "shown once; only its hash is stored"})


class OpenedInvitationSchema(Schema):
    pseudonym = fields.String()
    consultation_id = fields.String()
    title = fields.String()
    languages = fields.List(fields.String())
    purposes = fields.List(fields.String())
    min_age = fields.Integer(allow_none=True)
    survey_version = fields.Integer()
    survey = fields.Dict()


class ResponseCreateSchema(StrictSchema):
    consent_token = fields.String(required=True, validate=validate.Length(min=10, max=4096))
    survey_version = fields.Integer(load_default=None)
    answers = fields.Dict(keys=fields.String(), load_default=dict)
    declined = fields.List(fields.String(), load_default=list)


class ResponseReceiptSchema(Schema):
    response_id = fields.String()
    consultation_id = fields.String()
    survey_version = fields.Integer()
    submitted_at = fields.DateTime()
