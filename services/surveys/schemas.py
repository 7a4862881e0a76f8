"""Request and response schemas of the surveys API (also its OpenAPI document)."""

import re
from typing import Any

from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.surveys.survey_format import EXAMPLE_SURVEY, SURVEY_DEFINITION, ref
from shared.events import PURPOSES
from shared.schemas import StrictSchema, UTCDateTime

UN_LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")
# The consultation.published contract accepts budgets up to this; larger ones would add little protection.
EPSILON_BUDGET_MAX = 10.0
EPSILON_BUDGET_DOC = (
    "differential privacy: the total epsilon the consultation's released snapshots may spend "
    "(0 < x <= 10); null: snapshots are released without noise only. Fixed once it has opened"
)


TITLES_DOC = (
    "the title in each language of the consultation, as participants see it ({language: text}); "
    "without it they see `title`. Once given, publishing needs every language"
)
DESCRIPTIONS_DOC = "the description in each language, like `titles`"


def survey_definition(**kwargs: Any) -> fields.Dict:
    """A survey definition: checked by `questionnaire`, documented as the SurveyDefinition schema.
    Request fields carry the example too, or documentation tools make one up from the bare mapping."""
    metadata = {"allOf": [ref(SURVEY_DEFINITION)], **kwargs.pop("metadata", {})}
    return fields.Dict(metadata=metadata, **kwargs)


def by_language() -> fields.Dict:
    return fields.Dict(
        keys=fields.String(), values=fields.String(), metadata={"description": "by language"}
    )


def _translations(max_length: int, doc: str, **kwargs: Any) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=validate.OneOf(UN_LANGUAGES)),
        values=fields.String(validate=validate.Length(min=1, max=max_length)),
        metadata={"description": doc},
        **kwargs,
    )


class ConsultationCreateSchema(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    titles = _translations(200, TITLES_DOC, load_default=dict)
    description = fields.String(validate=validate.Length(max=5000))
    descriptions = _translations(5000, DESCRIPTIONS_DOC, load_default=dict)
    languages = fields.List(
        fields.String(validate=validate.OneOf(UN_LANGUAGES)),
        required=True,
        validate=validate.Length(min=1),
    )
    purposes = fields.List(
        fields.String(validate=validate.OneOf(PURPOSES)),
        load_default=lambda: ["participate", "aggregate_reporting"],
        validate=validate.ContainsOnly(PURPOSES),
    )
    min_cell_size = fields.Integer(
        load_default=10,
        validate=validate.Range(min=5, max=1000),
        metadata={
            "description": "k: the smallest group size ever shown to policy users (never below 5)"
        },
    )
    min_age = fields.Integer(
        allow_none=True, load_default=None, validate=validate.Range(min=0, max=25)
    )
    retention_days = fields.Integer(load_default=365, validate=validate.Range(min=1, max=3650))
    epsilon_budget = fields.Float(
        allow_none=True,
        load_default=None,
        allow_nan=False,
        validate=validate.Range(min=0, min_inclusive=False, max=EPSILON_BUDGET_MAX),
        metadata={"description": EPSILON_BUDGET_DOC},
    )
    opens_at = fields.AwareDateTime(allow_none=True, load_default=None)
    closes_at = fields.AwareDateTime(allow_none=True, load_default=None)
    survey = survey_definition(
        load_default=None,
        metadata={
            "description": "survey definition (optional: write it later with PUT .../survey)",
            "example": EXAMPLE_SURVEY,
        },
    )


class ConsultationUpdateSchema(StrictSchema):
    """Only the given settings change. Languages, purposes, min_age, min_cell_size and epsilon_budget only while a
    draft."""

    title = fields.String(validate=validate.Length(min=1, max=200))
    titles = _translations(200, TITLES_DOC)
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    descriptions = _translations(5000, DESCRIPTIONS_DOC)
    languages = fields.List(
        fields.String(validate=validate.OneOf(UN_LANGUAGES)), validate=validate.Length(min=1)
    )
    purposes = fields.List(
        fields.String(validate=validate.OneOf(PURPOSES)), validate=validate.Length(min=1)
    )
    min_cell_size = fields.Integer(validate=validate.Range(min=5, max=1000))
    min_age = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=25))
    retention_days = fields.Integer(validate=validate.Range(min=1, max=3650))
    epsilon_budget = fields.Float(
        allow_none=True,
        allow_nan=False,
        validate=validate.Range(min=0, min_inclusive=False, max=EPSILON_BUDGET_MAX),
        metadata={"description": EPSILON_BUDGET_DOC},
    )
    opens_at = fields.AwareDateTime(allow_none=True)
    closes_at = fields.AwareDateTime(allow_none=True)

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise ValidationError("send at least one setting to change")


class SurveyDraftSchema(StrictSchema):
    survey = survey_definition(required=True, metadata={"example": EXAMPLE_SURVEY})


class StatusChangeSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["open", "closed", "archived"]))


class VersionSchema(Schema):
    number = fields.Integer()
    published_at = fields.String()
    definition = survey_definition()


class XLSFormUploadSchema(Schema):
    file = Upload(
        required=True,
        metadata={"description": "an .xlsx or .xls XLSForm (survey, choices, settings sheets)"},
    )


class XLSFormQuerySchema(StrictSchema):
    default_language = fields.String(
        load_default=None,
        validate=validate.Length(max=40),
        metadata={
            "description": "language of label/hint columns without one, e.g. 'en' (the settings sheet wins; "
            "without either, the consultation's language that no label column of the sheet has)"
        },
    )


class ImportProblemSchema(Schema):
    sheet = fields.String(allow_none=True)
    row = fields.Integer(allow_none=True)
    name = fields.String(allow_none=True)
    reason = fields.String()


class XLSFormImportedSchema(Schema):
    consultation_id = fields.String()
    form_title = fields.String(allow_none=True)
    draft = fields.Dict(
        metadata={"description": "the new draft survey; publish it to make it a version"}
    )
    warnings = fields.List(
        fields.Nested(ImportProblemSchema),
        metadata={
            "description": "what was skipped, ignored or renamed, and translations "
            "still missing, by sheet and row"
        },
    )
    revision = fields.Integer()


class ConsultationSchema(Schema):
    consultation_id = fields.String()
    organisation_id = fields.String()
    title = fields.String()
    titles = by_language()
    description = fields.String(allow_none=True)
    descriptions = by_language()
    status = fields.String()
    languages = fields.List(fields.String())
    consent_languages = fields.List(
        fields.String(),
        metadata={
            "description": "languages with a published consent text; a draft publishes only when it lists every language"
        },
    )
    purposes = fields.List(fields.String())
    min_cell_size = fields.Integer()
    min_age = fields.Integer(allow_none=True)
    retention_days = fields.Integer()
    epsilon_budget = fields.Float(allow_none=True)
    opens_at = UTCDateTime(allow_none=True)
    closes_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    opened_at = UTCDateTime(allow_none=True)
    closed_at = UTCDateTime(allow_none=True)
    # A draft may still lack parts (no sections yet, say), so it is not held to the published format.
    draft = fields.Dict(
        metadata={
            "description": "the survey being edited, in the SurveyDefinition format once "
            "complete; publishing makes it the next version"
        }
    )
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
    created_at = UTCDateTime()


class _UsableNow:
    usable_now = fields.Boolean(
        metadata={
            "description": "whether a participant can open the invitations now: false while the "
            "consultation is a draft or before its opening time (they work once it opens)"
        }
    )
    warning = fields.String(
        allow_none=True,
        metadata={
            "description": "why the invitations cannot be used yet (when usable_now is false)"
        },
    )


class InvitationCreatedSchema(InvitationSchema):
    code = fields.String(metadata={"description": "shown once; only its hash is stored"})
    usable_now = _UsableNow.usable_now
    warning = _UsableNow.warning
    url = fields.String(
        metadata={
            "description": "the participant link for the code (added by the gateway, from VOICES_PUBLIC_URL or "
            "the request's own origin): hand it out, print it, or make it a QR code"
        }
    )


MAX_INVITATION_BATCH = 500


class InvitationBatchCreateSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(["single", "link"]))
    count = fields.Integer(
        required=True,
        validate=validate.Range(min=1, max=MAX_INVITATION_BATCH),
        metadata={"description": f"how many invitations, 1 to {MAX_INVITATION_BATCH}"},
    )
    label = fields.String(validate=validate.Length(max=100), load_default=None)


class InvitationBatchCreatedSchema(Schema):
    invitations = fields.List(
        fields.Nested(InvitationCreatedSchema),
        metadata={"description": "each with its code, shown only in this answer"},
    )
    usable_now = _UsableNow.usable_now
    warning = _UsableNow.warning


class ProgressPointSchema(Schema):
    start = UTCDateTime(metadata={"description": "start of the period (UTC)"})
    submitted = fields.Integer(metadata={"description": "responses sent in the period"})
    total = fields.Integer(metadata={"description": "responses kept up to the end of the period"})


class SectionProgressSchema(Schema):
    section_id = fields.String()
    title = by_language()
    shown = fields.Integer(metadata={"description": "responses that skip logic showed it to"})
    answered = fields.Integer(metadata={"description": "responses with an answer in it"})
    completed = fields.Integer(
        metadata={"description": "responses that answered or declined every question shown in it"}
    )
    stopped_here = fields.Integer(
        metadata={
            "description": "responses whose last answer is in it although later sections were shown"
        }
    )


class ProgressReportSchema(Schema):
    consultation_id = fields.String()
    status = fields.String()
    survey_version = fields.Integer(allow_none=True)
    as_of = UTCDateTime()
    opened = fields.Integer(metadata={"description": "participants an invitation admitted"})
    submitted = fields.Integer(metadata={"description": "responses kept (erased ones not counted)"})
    erased = fields.Integer(metadata={"description": "responses erased (withdrawal, retention)"})
    last_submitted_at = UTCDateTime(
        allow_none=True, metadata={"description": "when the latest response was stored (UTC)"}
    )
    unit = fields.String(
        validate=validate.OneOf(["hour", "day", "week"]),
        metadata={"description": "width of each over_time period"},
    )
    over_time = fields.List(fields.Nested(ProgressPointSchema))
    sections = fields.List(
        fields.Nested(SectionProgressSchema),
        metadata={"description": "sections of the current version, in survey order"},
    )


class OpenedInvitationSchema(Schema):
    pseudonym = fields.String()
    consultation_id = fields.String()
    title = fields.String()
    titles = by_language()
    descriptions = by_language()
    languages = fields.List(fields.String())
    purposes = fields.List(fields.String())
    min_age = fields.Integer(allow_none=True)
    survey_version = fields.Integer()
    survey = survey_definition()


class ResponseCreateSchema(StrictSchema):
    consent_token = fields.String(required=True, validate=validate.Length(min=10, max=4096))
    survey_version = fields.Integer(load_default=None)
    answers = fields.Dict(keys=fields.String(), load_default=dict)
    declined = fields.List(fields.String(), load_default=list)


class ResponseReceiptSchema(Schema):
    response_id = fields.String()
    consultation_id = fields.String()
    survey_version = fields.Integer()
    submitted_at = UTCDateTime()


class ResumeSaveSchema(StrictSchema):
    consent_token = fields.String(required=True, validate=validate.Length(min=10, max=4096))
    survey_version = fields.Integer(load_default=None)
    answers = fields.Dict(keys=fields.String(), load_default=dict)
    declined = fields.List(fields.String(), load_default=list)
    section_id = fields.String(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "where the participant was, to continue there"},
    )
    receipt_code = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=64),
        metadata={
            "description": "the consent receipt code, kept sealed with the answers so it can be shown again after "
            "resuming (it is not checked here)"
        },
    )


class ResumeSavedSchema(Schema):
    resume_code = fields.String(
        metadata={"description": "shown once; saving again issues a new one"}
    )
    expires_at = UTCDateTime()


class ResumeLookupSchema(StrictSchema):
    resume_code = fields.String(required=True, validate=validate.Length(min=1, max=100))


class ResumedSchema(Schema):
    consultation_id = fields.String()
    pseudonym = fields.String()
    title = fields.String()
    titles = by_language()
    descriptions = by_language()
    languages = fields.List(fields.String())
    purposes = fields.List(
        fields.String(), metadata={"description": "purposes the consultation asks about"}
    )
    min_age = fields.Integer(allow_none=True)
    survey_version = fields.Integer()
    survey = survey_definition()
    answers = fields.Dict()
    declined = fields.List(fields.String())
    section_id = fields.String(allow_none=True)
    consent_token = fields.String(
        allow_none=True,
        metadata={"description": "null once expired: give consent again to continue"},
    )
    consent_token_valid = fields.Boolean()
    receipt_code = fields.String(
        allow_none=True, metadata={"description": "as saved with the answers, if it was"}
    )
    consent_expires_at = fields.String(allow_none=True)
    granted_purposes = fields.List(fields.String(), allow_none=True)
    expires_at = fields.String()


class QuotableQuerySchema(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class QuotableAnswerSchema(Schema):
    question_id = fields.String()
    text = fields.String(
        metadata={"description": "the participant's answer; approve a contiguous part of it"}
    )


class QuotableResponseSchema(Schema):
    response_id = fields.String()
    survey_version = fields.Integer()
    submitted_at = UTCDateTime()
    answers = fields.List(fields.Nested(QuotableAnswerSchema))


class QuotablePageSchema(Schema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer(
        metadata={"description": "responses with quotable free text, on all pages"}
    )
    items = fields.List(fields.Nested(QuotableResponseSchema))


class QuoteApproveSchema(StrictSchema):
    response_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    question_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    excerpt = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={
            "description": "a contiguous part of the answer (whitespace differences ignored): shorten it to remove "
            "identifying details, never rewrite it"
        },
    )


class QuoteRevokeSchema(StrictSchema):
    quote_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class QuoteSchema(Schema):
    quote_id = fields.String()
    consultation_id = fields.String()
    response_id = fields.String()
    question_id = fields.String()
    text = fields.String(
        allow_none=True, metadata={"description": "the approved excerpt; null once revoked"}
    )
    approved_by = fields.String()
    approved_at = UTCDateTime()
    revoked = fields.Boolean()
    revoked_by = fields.String(allow_none=True)
    revoked_at = UTCDateTime(allow_none=True)


# ---- follow-up contact ----------------------------------------------------------

CONTACT_METHODS = ("phone", "email", "signal", "whatsapp", "other")
# Loose shapes: enough to catch a slip of the finger, never to reject a real address or number.
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_SHAPE = re.compile(r"^\+?[0-9][0-9 ()./-]*$")
_SIGNAL_USERNAME_SHAPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[0-9]{2,}$")


def _is_phone(value: str) -> bool:
    return bool(_PHONE_SHAPE.match(value)) and 6 <= sum(ch.isdigit() for ch in value) <= 15


class TrimmedString(fields.String):
    """A string without surrounding whitespace; length rules apply to the trimmed text."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class ContactSaveSchema(StrictSchema):
    consent_token = fields.String(required=True, validate=validate.Length(min=10, max=4096))
    method = fields.String(required=True, validate=validate.OneOf(CONTACT_METHODS))
    value = TrimmedString(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "a phone number (phone, whatsapp), an email address, a phone "
            "number or username (signal), or free text (other)"
        },
    )
    best_time = TrimmedString(allow_none=True, load_default=None, validate=validate.Length(max=200))
    safe_to_leave_message = fields.Boolean(required=True)

    @validates_schema
    def _value_fits_method(self, data, **kwargs):
        method, value = data.get("method"), data.get("value")
        if not method or not value:
            return
        if method == "email" and not _EMAIL_SHAPE.match(value):
            raise ValidationError("this does not look like an email address", "value")
        if method in ("phone", "whatsapp") and not _is_phone(value):
            raise ValidationError(
                "this does not look like a phone number (digits, optional + and spaces)", "value"
            )
        if method == "signal" and not (_is_phone(value) or _SIGNAL_USERNAME_SHAPE.match(value)):
            raise ValidationError(
                "give a phone number or a Signal username such as name.01", "value"
            )


class ContactDeleteSchema(StrictSchema):
    consent_token = fields.String(required=True, validate=validate.Length(min=10, max=4096))


class ContactSavedSchema(Schema):
    method = fields.String()
    safe_to_leave_message = fields.Boolean()
    given_at = UTCDateTime()


class FollowUpContactSchema(Schema):
    pseudonym = fields.String()
    method = fields.String(metadata={"description": ", ".join(CONTACT_METHODS)})
    value = fields.String()
    best_time = fields.String(allow_none=True)
    safe_to_leave_message = fields.Boolean()
    given_at = UTCDateTime()


class FollowUpContactPageSchema(Schema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer(
        metadata={"description": "contact records of the consultation, on all pages"}
    )
    items = fields.List(fields.Nested(FollowUpContactSchema))
