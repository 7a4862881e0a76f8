"""The event envelope and the versioned payload contracts every service shares.

A consumer validates the envelope and then the payload for its (type, version);
anything that does not validate goes to the dead-letter topic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from shared.schemas import StrictSchema

PURPOSES = (
    "participate",
    "aggregate_reporting",
    "quote_anonymised",
    "follow_up_contact",
    "share_with_partners",
)
QUESTION_TYPES = ("single_choice", "multiple_choice", "rating", "number", "date", "free_text")


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Patterns end in \Z, not $: "$" also matches before a final newline.
# What an identifier in an event looks like: the services mint them from uuids and url-safe
# tokens (c_..., r_..., p_..., rel_...), question ids come from survey definitions and account
# ids from the gateway. Never empty, no spaces or control characters, bounded: a consumer's
# domain refuses anything else, so the contract refuses it first and the bus dead-letters it.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,199}\Z"


def Identifier(**kwargs: Any) -> fields.String:  # noqa: N802 - used like a field class
    """A required identifier field (see IDENTIFIER_PATTERN)."""
    return fields.String(
        required=True,
        validate=validate.Regexp(
            IDENTIFIER_PATTERN, error="must be a non-empty identifier (letters, digits, _.:@+-)"
        ),
        **kwargs,
    )


# Times in payloads are what `isoformat` writes (UTC, "Z") or another ISO-8601 offset.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z"
# A language tag as the surveys and consent services store it ("en", "zh", "pt-BR").
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}\Z"
# An option's code as survey definitions allow it.
OPTION_CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}\Z"


def Timestamp() -> fields.String:  # noqa: N802 - used like a field class
    """A required ISO-8601 time with its offset."""
    return fields.String(
        required=True,
        validate=validate.Regexp(TIMESTAMP_PATTERN, error="must be an ISO-8601 time with offset"),
    )


def Language() -> fields.String:  # noqa: N802 - used like a field class
    return fields.String(
        required=True, validate=validate.Regexp(LANGUAGE_PATTERN, error="must be a language tag")
    )


def _identifier_list() -> fields.List:
    return fields.List(Identifier(), required=True)


class EnvelopeSchema(StrictSchema):
    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(r"^[a-z_]+(\.[a-z_]+)+$"))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True, format="iso")
    producer = fields.String(required=True, validate=validate.Length(min=1, max=64))
    key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    trace_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    payload = fields.Dict(required=True)


# One schema instance each, reused for every event: building a marshmallow schema (binding and
# copying its fields) cost far more than validating with it. A load keeps its state in locals,
# so a reused instance validates exactly like a fresh one.
_ENVELOPE_SCHEMA = EnvelopeSchema()
_CONTRACT_INSTANCES: dict[type[Schema], Schema] = {}


def _contract_schema(type_: str, version: int) -> Schema | None:
    """The shared instance of the contract for (type, version), looked up in CONTRACTS each time."""
    contract = CONTRACTS.get((type_, version))
    if contract is None:
        return None
    schema = _CONTRACT_INSTANCES.get(contract)
    if schema is None:
        schema = _CONTRACT_INSTANCES.setdefault(contract, contract())
    return schema


@dataclass(frozen=True)
class Envelope:
    type: str
    key: str
    payload: dict[str, Any]
    producer: str
    version: int = 1
    trace_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: str = field(default_factory=lambda: isoformat(utcnow()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at,
            "producer": self.producer,
            "key": self.key,
            "trace_id": self.trace_id,
            "payload": self.payload,
        }

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Envelope:
        """Validate an envelope and its payload contract; raises marshmallow ValidationError."""
        if not isinstance(raw, dict):
            raise ValidationError({"_schema": ["an event must be a JSON object"]})
        _ENVELOPE_SCHEMA.load(raw)
        contract = _contract_schema(raw["type"], raw["version"])
        if contract is None:
            raise ValidationError({"type": [f"no contract for {raw['type']} v{raw['version']}"]})
        errors = contract.validate(raw["payload"])
        if errors:
            raise ValidationError({"payload": errors})
        return cls(
            **{
                k: raw[k]
                for k in (
                    "id",
                    "type",
                    "version",
                    "occurred_at",
                    "producer",
                    "key",
                    "trace_id",
                    "payload",
                )
            }
        )


# ---- payload contracts, version 1 -------------------------------------------


class QuestionSummarySchema(StrictSchema):
    id = Identifier()
    type = fields.String(required=True, validate=validate.OneOf(QUESTION_TYPES))
    options = fields.List(fields.String(), required=True)
    dimension = fields.Boolean(required=True)
    min = fields.Float(allow_none=True, load_default=None)
    max = fields.Float(allow_none=True, load_default=None)
    # The question's wording per language and each option's label per language, so that released
    # figures can be read as words. Optional: events published before they were carried still parse.
    # Keys are language tags and option codes: they become field names in the stores, so nothing
    # else (a NULL byte, a dot, a leading $) may reach them.
    label = fields.Dict(keys=Language(), values=fields.String(), load_default=dict)
    option_labels = fields.Dict(
        keys=fields.String(validate=validate.Regexp(OPTION_CODE_PATTERN)),
        values=fields.Dict(keys=Language(), values=fields.String()),
        load_default=dict,
    )


class ConsultationPublished(StrictSchema):
    consultation_id = Identifier()
    organisation_id = Identifier()
    survey_version = fields.Integer(required=True, strict=True)
    title = fields.String(required=True)
    # The title in each language of the consultation (optional, as `label` above).
    titles = fields.Dict(keys=Language(), values=fields.String(), load_default=dict)
    languages = fields.List(Language(), required=True)
    min_cell_size = fields.Integer(required=True, strict=True, validate=validate.Range(min=5))
    min_age = fields.Integer(allow_none=True, required=True)
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True)
    questions = fields.List(fields.Nested(QuestionSummarySchema), required=True)
    published_at = Timestamp()
    # Differential-privacy epsilon its released snapshots may spend in total; None: not offered.
    # Optional so that events published before the setting existed still parse.
    epsilon_budget = fields.Float(
        allow_none=True,
        load_default=None,
        allow_nan=False,
        validate=validate.Range(min=0, min_inclusive=False, max=10),
    )


class _ConsultationConsentSettings(StrictSchema):
    """What the consent service takes texts and grants by."""

    consultation_id = Identifier()
    organisation_id = Identifier()
    languages = fields.List(Language(), required=True)
    min_age = fields.Integer(allow_none=True, required=True)
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True)


class ConsultationCreated(_ConsultationConsentSettings):
    created_at = Timestamp()


class ConsultationSettingsChanged(_ConsultationConsentSettings):
    """A draft's languages, purposes or minimum age changed (they are fixed once it opens)."""

    changed_at = Timestamp()


class ConsultationStatusChanged(StrictSchema):
    consultation_id = Identifier()
    organisation_id = Identifier()
    status = fields.String(
        required=True, validate=validate.OneOf(["draft", "open", "closed", "archived"])
    )
    changed_at = Timestamp()


class ResponseSubmitted(StrictSchema):
    response_id = Identifier()
    consultation_id = Identifier()
    survey_version = fields.Integer(required=True, strict=True)
    pseudonym = Identifier()
    grant_id = Identifier()
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True)
    submitted_at = Timestamp()
    answers = fields.Dict(
        keys=fields.String(validate=validate.Regexp(IDENTIFIER_PATTERN)), required=True
    )
    declined = _identifier_list()
    free_text_questions = _identifier_list()


class ResponseErased(StrictSchema):
    response_id = Identifier()
    consultation_id = Identifier()
    pseudonym = Identifier()
    reason = fields.String(required=True, validate=validate.OneOf(["withdrawal", "retention"]))
    erased_at = Timestamp()


class ConsentGranted(StrictSchema):
    grant_id = Identifier()
    pseudonym = Identifier()
    consultation_id = Identifier()
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True)
    text_version = fields.Integer(required=True, strict=True)
    language = Language()
    text_sha256 = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    collection_method = fields.String(
        required=True, validate=validate.OneOf(["self", "guardian", "facilitator"])
    )
    guardian = fields.Boolean(required=True)
    granted_at = Timestamp()


class ConsentWithdrawn(StrictSchema):
    grant_id = Identifier()
    pseudonym = Identifier()
    consultation_id = Identifier()
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True)
    remaining = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True)
    all = fields.Boolean(required=True)
    withdrawn_at = Timestamp()


class ConsentTextPublished(StrictSchema):
    consultation_id = Identifier()
    organisation_id = Identifier()
    text_version = fields.Integer(required=True, strict=True)
    language = Language()
    text_sha256 = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    published_at = Timestamp()


class ReleasePublished(StrictSchema):
    release_id = Identifier()
    consultation_id = Identifier()
    snapshot = fields.Integer(required=True, strict=True)
    signed_off_by = Identifier()
    released_at = Timestamp()
    digest = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))


class QuoteApproved(StrictSchema):
    """An organiser approved an anonymised quote of a participant who granted quote_anonymised.

    `text` is the approved, anonymised excerpt only (never the raw answer),
    and the one place where words of an answer travel in plain text: it was
    approved for publication and the aggregation service must show it. The
    surveys service checks that it is a contiguous part of the answer and
    keeps its own copy encrypted under the participant's key. A revocation
    (quote.revoked, also sent when the participant withdraws quote consent
    or everything) removes it from every store; the topic's retention bounds
    how long this event itself remains on the bus.
    """

    quote_id = Identifier()
    consultation_id = Identifier()
    pseudonym = Identifier()
    question_id = Identifier()
    text = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    approved_by = Identifier()
    approved_at = Timestamp()


class QuoteRevoked(StrictSchema):
    quote_id = Identifier()
    consultation_id = Identifier()
    revoked_by = Identifier()
    revoked_at = Timestamp()


class WithdrawalProcessed(StrictSchema):
    """The surveys service carried out a full withdrawal: responses erased, key shredded.

    Sent also when there was nothing to erase, once per consent.withdrawn
    event (and again if a response arriving late was erased), so the consent
    ledger can confirm every full withdrawal. `responses_erased` counts all of
    the participant's responses erased because of withdrawal so far.
    """

    consultation_id = Identifier()
    pseudonym = Identifier()
    responses_erased = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    key_shredded = fields.Boolean(required=True)
    processed_at = Timestamp()


class ContactsAccessed(StrictSchema):
    """An organiser read a consultation's follow-up contact details: who, when and how many; never the details."""

    consultation_id = Identifier()
    organisation_id = Identifier()
    accessed_by = Identifier()
    count = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    accessed_at = Timestamp()


CONTRACTS: dict[tuple[str, int], type[Schema]] = {
    ("consultation.published", 1): ConsultationPublished,
    ("consultation.created", 1): ConsultationCreated,
    ("consultation.settings_changed", 1): ConsultationSettingsChanged,
    ("consultation.status_changed", 1): ConsultationStatusChanged,
    ("consent_text.published", 1): ConsentTextPublished,
    ("response.submitted", 1): ResponseSubmitted,
    ("response.erased", 1): ResponseErased,
    ("consent.granted", 1): ConsentGranted,
    ("consent.withdrawn", 1): ConsentWithdrawn,
    ("release.published", 1): ReleasePublished,
    ("quote.approved", 1): QuoteApproved,
    ("quote.revoked", 1): QuoteRevoked,
    ("withdrawal.processed", 1): WithdrawalProcessed,
    ("contacts.accessed", 1): ContactsAccessed,
}
