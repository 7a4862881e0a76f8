"""Request and response schemas of the consent API (also its OpenAPI document)."""

from marshmallow import Schema, fields, validate

from services.consent.ledger import KINDS
from shared.events import PURPOSES
from shared.schemas import StrictSchema, UTCDateTime

LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")  # the six UN languages


class ControllerSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(max=200))
    contact = fields.String(validate=validate.Length(max=200))
    address = fields.String(validate=validate.Length(max=500))
    email = fields.Email()


class ConsentTextCreateSchema(StrictSchema):
    version = fields.Integer(load_default=None, validate=validate.Range(min=1))
    language = fields.String(required=True, validate=validate.OneOf(LANGUAGES))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    purposes = fields.Dict(
        keys=fields.String(validate=validate.OneOf(PURPOSES)),
        values=fields.String(validate=validate.Length(min=1, max=2000)),
        required=True,
        metadata={"description": "plain-language explanation of each purpose offered"},
    )
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
    controller = fields.Dict()
    jurisdiction = fields.String(allow_none=True)
    sha256 = fields.String(
        metadata={"description": "SHA-256 (hex) of the body exactly as shown; a grant records it"}
    )
    published_at = UTCDateTime(allow_none=True, metadata={"description": "null while a draft"})


class TextQuerySchema(StrictSchema):
    language = fields.String(required=True, validate=validate.OneOf(LANGUAGES))


class GuardianSchema(StrictSchema):
    relationship = fields.String(required=True)
    attested = fields.Boolean(required=True)


class GrantCreateSchema(StrictSchema):
    pseudonym = fields.String(required=True, validate=validate.Length(min=3, max=64))
    consultation_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    purposes = fields.List(fields.String(validate=validate.OneOf(PURPOSES)), required=True)
    language = fields.String(required=True, validate=validate.OneOf(LANGUAGES))
    text_version = fields.Integer(required=True, validate=validate.Range(min=1))
    collection_method = fields.String(
        load_default="self", validate=validate.OneOf(["self", "guardian", "facilitator"])
    )
    age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=130))
    age_band = fields.String(load_default=None, validate=validate.Length(max=20))
    guardian = fields.Nested(GuardianSchema, load_default=None)
    participant_assent = fields.Boolean(load_default=None)


class ReceiptEventSchema(Schema):
    """One event of a receipt; which fields it has depends on eventType."""

    eventType = fields.String(
        metadata={"description": "granted, withdrawn, answers_erased or erasure_confirmed"}
    )
    eventTime = fields.String(metadata={"description": "ISO-8601"})
    eventBy = fields.String(
        metadata={
            "description": "participant, guardian with participant assent, participant "
            "with facilitator, receipt holder or service"
        }
    )
    purposes = fields.List(
        fields.String(), metadata={"description": "granted and withdrawn: the purposes"}
    )
    remaining = fields.List(
        fields.String(), metadata={"description": "withdrawn: the purposes still given"}
    )
    all = fields.Boolean(metadata={"description": "withdrawn: everything was withdrawn"})
    erasureStatus = fields.String(
        validate=validate.OneOf(["pending_confirmation", "confirmed"]),
        metadata={
            "description": "withdrawn with all: pending_confirmation until the surveys service confirms "
            "the answers are erased (an erasure_confirmed event), then confirmed"
        },
    )
    responseId = fields.String(metadata={"description": "answers_erased: the erased response"})
    reason = fields.String(metadata={"description": "answers_erased: withdrawal or retention"})
    responsesErased = fields.Integer(
        metadata={
            "description": "erasure_confirmed: responses erased because of the withdrawal so far (0: none were held)"
        }
    )
    keyShredded = fields.Boolean(
        metadata={"description": "erasure_confirmed: the participant's key is destroyed"}
    )


class ReceiptSchema(Schema):
    """A consent receipt: the Kantara Consent Receipt v1.1 fields, then what Kantara has no field for
    (the consent text's hash, the later events: withdrawals, erasures and their confirmation, ISO/IEC TS 27560
    style)."""

    version = fields.String(metadata={"description": "KI-CR-v1.1.0"})
    jurisdiction = fields.String()
    consentTimestamp = fields.Integer(metadata={"description": "seconds since the epoch"})
    collectionMethod = fields.String()
    consentReceiptID = fields.String()
    language = fields.String()
    piiPrincipalId = fields.String(
        metadata={"description": "the participant's pseudonym, never a name"}
    )
    piiControllers = fields.List(fields.Dict())
    policyUrl = fields.String()
    services = fields.List(
        fields.Dict(), metadata={"description": "purposes, each as the consent text explains it"}
    )
    sensitive = fields.Boolean()
    spiCat = fields.List(fields.String())
    grantId = fields.String()
    consultationId = fields.String()
    collectionMethodCode = fields.String()
    guardian = fields.Boolean()
    guardianAttestation = fields.Dict(
        metadata={"description": "relationship and the participant's assent"}
    )
    consentText = fields.Dict(
        metadata={"description": "version, language and SHA-256 of the text shown"}
    )
    events = fields.List(
        fields.Nested(ReceiptEventSchema),
        metadata={
            "description": "granted, withdrawals in order, answers_erased, then erasure_confirmed"
        },
    )
    purposeStatus = fields.Dict()
    consentStatus = fields.String()
    publicKey = fields.String()


class GrantCreatedSchema(Schema):
    grant_id = fields.String()
    consent_token = fields.String(
        metadata={"description": "Ed25519-signed; present it when submitting answers"}
    )
    receipt_code = fields.String(
        metadata={"description": "shown once: keep it to check or withdraw consent"}
    )
    expires_in = fields.Integer()
    receipt = fields.Nested(ReceiptSchema)


class ReceiptCodeSchema(StrictSchema):
    # No format rule here: a malformed code gets exactly the answer an unknown one gets.
    receipt_code = fields.String(required=True, validate=validate.Length(max=200))


class ConsentTokenIssuedSchema(Schema):
    consent_token = fields.String(
        metadata={"description": "Ed25519-signed; present it when submitting answers"}
    )
    expires_in = fields.Integer(metadata={"description": "seconds until the token expires"})
    purposes = fields.List(
        fields.String(), metadata={"description": "the purposes still given (none withdrawn)"}
    )
    consultation_id = fields.String()
    pseudonym = fields.String(
        metadata={
            "description": "whose consent this is (as the receipt names it), so a "
            "client can check the code belongs to the answers at hand"
        }
    )


class WithdrawalSchema(ReceiptCodeSchema):
    purposes = fields.List(
        fields.String(validate=validate.OneOf(PURPOSES)),
        load_default=None,
        metadata={"description": "omit to withdraw everything"},
    )


class WithdrawalResultSchema(Schema):
    withdrawn = fields.List(fields.String())
    remaining = fields.List(fields.String())
    all = fields.Boolean()
    changed = fields.Boolean(
        metadata={"description": "false when everything asked for was already withdrawn"}
    )
    receipt = fields.Nested(ReceiptSchema)


class PublicKeySchema(Schema):
    key_id = fields.String()
    algorithm = fields.String()
    public_key_pem = fields.String()


class RangeQuerySchema(StrictSchema):
    start = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))
    kind = fields.String(validate=validate.OneOf(KINDS))


class LedgerPageSchema(Schema):
    start = fields.Integer()
    size = fields.Integer()
    entries = fields.List(fields.Dict())
    next_start = fields.Integer(allow_none=True)


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


class ErasureReportQuerySchema(StrictSchema):
    consultation_id = fields.String(validate=validate.Length(min=1, max=64))
    tree_size = fields.Integer(
        validate=validate.Range(min=1),
        metadata={
            "description": "report on the first tree_size entries (default: all), "
            "e.g. a checkpoint's"
        },
    )
    status = fields.String(
        validate=validate.OneOf(["confirmed", "unconfirmed"]),
        metadata={"description": "list only these (the counts stay totals)"},
    )


class ConfirmingErasureSchema(Schema):
    seq = fields.Integer()
    response_id = fields.String()
    reason = fields.String()
    erased_at = fields.String()
    after_withdrawal = fields.Boolean(
        metadata={
            "description": "false: a withdrawal erasure the ledger recorded "
            "before the withdrawal itself (topics are read "
            "independently)"
        }
    )


class ConfirmingProcessingSchema(Schema):
    seq = fields.Integer(metadata={"description": "the withdrawal.processed entry"})
    responses_erased = fields.Integer()
    key_shredded = fields.Boolean()
    processed_at = fields.String()
    after_withdrawal = fields.Boolean()


class WithdrawalErasuresSchema(Schema):
    seq = fields.Integer(metadata={"description": "the consent.withdrawn entry"})
    at = fields.String()
    grant_id = fields.String()
    pseudonym = fields.String()
    consultation_id = fields.String()
    withdrawn_at = fields.String()
    confirmed = fields.Boolean(
        metadata={
            "description": "a withdrawal.processed (or an erasure) of this participant confirms it"
        }
    )
    responses_erased = fields.Integer(
        metadata={
            "description": "as the latest withdrawal.processed states it (0: nothing was stored); without one, the "
            "number of confirming erasures"
        }
    )
    key_shredded = fields.Boolean(
        allow_none=True, metadata={"description": "null until withdrawal.processed"}
    )
    processing = fields.List(fields.Nested(ConfirmingProcessingSchema))
    erasures = fields.List(fields.Nested(ConfirmingErasureSchema))


class ErasureReportSchema(Schema):
    tree_size = fields.Integer(metadata={"description": "entries 0..tree_size-1 were read"})
    confirmed = fields.Integer()
    unconfirmed = fields.Integer()
    withdrawals = fields.List(fields.Nested(WithdrawalErasuresSchema))
