"""Request and response schemas of the insights API (also its OpenAPI document)."""
from marshmallow import Schema, fields


class ProgressSchema(Schema):
    consultation_id = fields.String(required=True)
    responses_counted = fields.Integer(required=True)
    as_of = fields.String(required=True)
