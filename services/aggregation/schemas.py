"""Request and response schemas of the insights API (also its OpenAPI document)."""

from marshmallow import Schema, fields, validate


class ProgressSchema(Schema):
    consultation_id = fields.String(required=True)
    responses_counted = fields.Integer(required=True)
    last_counted_at = fields.String(
        allow_none=True, metadata={"description": "when the latest response was counted"}
    )
    as_of = fields.String(required=True)


class PrivacySpendSchema(Schema):
    snapshot = fields.Integer(required=True)
    epsilon = fields.Float(required=True)
    at = fields.String(allow_none=True, metadata={"description": "when the snapshot spent it"})


class PrivacyBudgetSchema(Schema):
    consultation_id = fields.String(required=True)
    epsilon_total = fields.Float(
        allow_none=True,
        metadata={
            "description": "what the consultation's snapshots may spend in total; null: differential privacy not offered"
        },
    )
    epsilon_spent = fields.Float(required=True)
    remaining = fields.Float(allow_none=True)
    spent = fields.List(
        fields.Nested(PrivacySpendSchema), required=True, metadata={"description": "oldest first"}
    )


class ReleaseRequestSchema(Schema):
    consultation_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    # Differential privacy: this snapshot spends epsilon of the consultation's budget. Required when the
    # consultation has a budget (every release spends), refused when it has none.
    epsilon = fields.Float(
        load_default=None,
        allow_none=True,
        allow_nan=False,
        validate=validate.Range(min=0, min_inclusive=False, max=10),
    )


class ReleaseSummarySchema(Schema):
    release_id = fields.String(required=True)
    consultation_id = fields.String(required=True)
    title = fields.String(allow_none=True)
    snapshot = fields.Integer(required=True)
    released_at = fields.String(required=True)
    digest = fields.String(required=True)
    signed_off_by = fields.String(required=True)


class ReleaseCreatedSchema(ReleaseSummarySchema):
    contributors = fields.Dict(
        required=True, metadata={"description": "published form of the total"}
    )
    privacy = fields.Dict(
        allow_none=True, metadata={"description": "differential-privacy parameters, if any"}
    )
    epsilon_remaining = fields.Float(
        allow_none=True,
        metadata={
            "description": "what is left of the consultation's privacy budget; null: differential privacy not offered"
        },
    )


class ReleaseHistoryItemSchema(ReleaseSummarySchema):
    epsilon = fields.Float(
        allow_none=True, metadata={"description": "what this snapshot spent; null: exact"}
    )
    contributors = fields.Dict(metadata={"description": "published form of the total"})


class ReleaseHistorySchema(Schema):
    consultation_id = fields.String(required=True)
    k = fields.Integer(
        required=True, metadata={"description": "the minimum cell size every release keeps"}
    )
    epsilon_total = fields.Float(allow_none=True)
    epsilon_remaining = fields.Float(
        allow_none=True, metadata={"description": "null: differential privacy not offered"}
    )
    releases = fields.List(
        fields.Nested(ReleaseHistoryItemSchema), metadata={"description": "newest first"}
    )


class ReleasedListSchema(Schema):
    releases = fields.List(fields.Nested(ReleaseSummarySchema), required=True)


class SnapshotSchema(Schema):
    """A released snapshot: suppressed figures have value null, suppressed true and a reason."""

    release = fields.Nested(ReleaseSummarySchema, required=True)
    snapshot = fields.Dict(
        required=True, metadata={"description": "the snapshot document (its digest covers it)"}
    )


class ResultSchema(Schema):
    release = fields.Nested(ReleaseSummarySchema, required=True)
    k = fields.Integer(required=True)
    result = fields.Dict(required=True)
    # The words of the question and of every breakdown dimension it involves, frozen at release:
    # {question_id: {label: {lang: text}, options: {code: {lang: text}}}}.
    wording = fields.Dict(
        keys=fields.String(), values=fields.Dict(), load_default=dict, dump_default=dict
    )


class CrosstabQuerySchema(Schema):
    by = fields.String(
        required=True, metadata={"description": "one dimension, or two separated by a comma"}
    )


class QuoteSchema(Schema):
    quote_id = fields.String(required=True)
    question_id = fields.String(allow_none=True)
    text = fields.String(required=True)
    approved_at = fields.String(allow_none=True)


class QuotesSchema(Schema):
    release = fields.Nested(ReleaseSummarySchema, required=True)
    quotes = fields.List(fields.Nested(QuoteSchema), required=True)


class FreshnessSchema(Schema):
    consultation_id = fields.String(required=True)
    responses = fields.Integer(required=True)  # counted as they arrived: what p50/p95 measure
    replayed = fields.Integer(required=True)  # counted by a replay: not in p50/p95
    p50_seconds = fields.Float(allow_none=True)
    p95_seconds = fields.Float(allow_none=True)


class ExportQuerySchema(Schema):
    # Language of the labels in the CSV; a language the release lacks falls back to its first.
    lang = fields.String(
        load_default="en", validate=validate.Regexp(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    )
