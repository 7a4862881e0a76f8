"""Consent API: texts (organisers), grants, receipts, withdrawals and token re-issue (participants), ledger
(auditors)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from services.consent import consent_records as records
from services.consent import ledger_store, tokens
from services.consent.models import ConsultationPolicy
from services.consent.schemas import (
    CheckpointSchema,
    ConsentTextCreateSchema,
    ConsentTextSchema,
    ConsentTokenIssuedSchema,
    ConsistencyProofSchema,
    ConsistencyQuerySchema,
    ErasureReportQuerySchema,
    ErasureReportSchema,
    GrantCreatedSchema,
    GrantCreateSchema,
    InclusionProofSchema,
    InclusionQuerySchema,
    LedgerPageSchema,
    PublicKeySchema,
    RangeQuerySchema,
    ReceiptCodeSchema,
    ReceiptSchema,
    TextQuerySchema,
    WithdrawalResultSchema,
    WithdrawalSchema,
)
from shared.auth import require_staff, session_consultation
from shared.request_context import current_trace_id
from shared.runtime import events_stored, service_context

PEM_MEDIA_TYPE = "application/x-pem-file"
consent = Blueprint(
    "consent", __name__, url_prefix="/api/v1/consent", description="Consent texts, grants, receipts"
)
audit = Blueprint(
    "ledger", __name__, url_prefix="/api/v1/ledger", description="The consent ledger (auditors)"
)


def _ledger_scope() -> frozenset[str] | None:
    """The consultations whose ledger entries the caller may read: their organisation's for an
    auditor, None (every one) for a platform auditor. Raises Unauthorized or Forbidden."""
    principal = require_staff("auditor", "platform_auditor")
    return (
        None
        if principal.role == "platform_auditor"
        else records.consultations_of(principal.organisation_id)
    )


def _own_policy(consultation_id: str) -> ConsultationPolicy:
    principal = require_staff("organiser")
    # An organiser always belongs to an organisation; none would match no consultation (NotFound).
    return records.await_consultation(
        consultation_id, principal.organisation_id or "", service_context().consultation_wait_s
    )


@consent.route("/consultations/<consultation_id>/texts")
class Texts(MethodView):
    @consent.arguments(TextQuerySchema, location="query")
    @consent.response(200, ConsentTextSchema)
    def get(self, query, consultation_id):
        """The current published consent text in one language: exactly what a participant reads."""
        return records.current_text(consultation_id, query["language"])

    @consent.arguments(ConsentTextCreateSchema)
    @consent.response(201, ConsentTextSchema)
    def post(self, data, consultation_id):
        """Write one language of a consent text version (a draft until published)."""
        return records.save_text(_own_policy(consultation_id), data)


@consent.route("/consultations/<consultation_id>/texts/<int:version>")
class TextVersion(MethodView):
    @consent.arguments(TextQuerySchema, location="query")
    @consent.response(200, ConsentTextSchema)
    def get(self, query, consultation_id, version):
        """One published version of the consent text in one language (the version a grant names)."""
        return records.text_version(consultation_id, version, query["language"])


@consent.route("/consultations/<consultation_id>/texts/versions")
class AllTexts(MethodView):
    @consent.response(200, ConsentTextSchema(many=True))
    def get(self, consultation_id):
        """Every version and language of the consultation's consent text, drafts included (organisers)."""
        return records.all_texts(_own_policy(consultation_id))


@consent.route("/consultations/<consultation_id>/texts/<int:version>/publish")
class PublishTexts(MethodView):
    @consent.response(200, ConsentTextSchema(many=True))
    def post(self, consultation_id, version):
        """Publish every language of a version; published texts never change."""
        texts = records.publish_texts(
            _own_policy(consultation_id),
            version,
            service_context().settings.topics.consent,
            current_trace_id(),
        )
        events_stored()
        return texts


@consent.route("/grants")
class Grants(MethodView):
    @consent.arguments(GrantCreateSchema)
    @consent.response(201, GrantCreatedSchema)
    def post(self, data):
        """Give consent for chosen purposes. Returns a consent token and a receipt code shown only once."""
        ctx = service_context()
        grant, token, code = records.record_grant(
            data,
            ctx.signing_key,
            ctx.code_pepper,
            ctx.token_ttl_s,
            ctx.settings.topics.consent,
            current_trace_id(),
        )
        events_stored()
        return {
            "grant_id": grant.grant_id,
            "consent_token": token,
            "receipt_code": code,
            "expires_in": ctx.token_ttl_s,
            "receipt": records.receipt(grant),
        }


@consent.route("/receipts/lookup")
class ReceiptLookup(MethodView):
    @consent.arguments(ReceiptCodeSchema)
    @consent.response(200, ReceiptSchema)
    def post(self, data):
        """Your consent receipt and its history, by receipt code (sent in the body, never in a URL)."""
        return records.receipt(
            records.find_by_receipt(
                data["receipt_code"], service_context().code_pepper, session_consultation()
            )
        )


@consent.route("/tokens")
class ConsentTokens(MethodView):
    @consent.arguments(ReceiptCodeSchema)
    @consent.response(201, ConsentTokenIssuedSchema)
    @consent.alt_response(404, description="no consent matches this receipt code")
    @consent.alt_response(
        409, description="consent to take part was withdrawn, or the consultation is not open"
    )
    def post(self, data):
        """A fresh consent token for your grant, by receipt code, when the first one expired.

        It carries only the purposes still given. 404 for a code that matches nothing (the same
        answer a lookup or withdrawal gets), 409 when consent to take part was withdrawn or the
        consultation is no longer open. Not a ledger entry: a token records nothing new.
        """
        ctx = service_context()
        grant, token, purposes = records.reissue_token(
            data["receipt_code"],
            ctx.signing_key,
            ctx.code_pepper,
            ctx.token_ttl_s,
            session_consultation(),
        )
        return {
            "consent_token": token,
            "expires_in": ctx.token_ttl_s,
            "purposes": purposes,
            "consultation_id": grant.consultation_id,
            "pseudonym": grant.pseudonym,
        }


@consent.route("/withdrawals")
class Withdrawals(MethodView):
    @consent.arguments(WithdrawalSchema)
    @consent.response(200, WithdrawalResultSchema)
    def post(self, data):
        """Withdraw some purposes, or everything, with the receipt code. Asking twice changes nothing."""
        ctx = service_context()
        grant, decision = records.withdraw(
            data["receipt_code"],
            data["purposes"],
            ctx.code_pepper,
            ctx.settings.topics.consent,
            current_trace_id(),
        )
        events_stored()
        return {
            "withdrawn": decision.withdrawn,
            "remaining": decision.remaining,
            "all": decision.all,
            "changed": decision.payload is not None,
            "receipt": records.receipt(grant),
        }


@consent.route("/public-key")
class PublicKey(MethodView):
    @consent.response(200, PublicKeySchema)
    def get(self):
        """The Ed25519 key that signs consent tokens and ledger checkpoints."""
        key = service_context().signing_key.public_key()
        return {
            "key_id": tokens.key_id(key),
            "algorithm": "Ed25519",
            "public_key_pem": tokens.public_key_to_pem(key).decode(),
        }


@consent.route("/public-key.pem")
class PublicKeyPem(MethodView):
    @consent.doc(
        responses={
            "200": {
                "description": "the same key as a PEM file (SubjectPublicKeyInfo)",
                "content": {PEM_MEDIA_TYPE: {"schema": {"type": "string"}}},
            }
        }
    )
    def get(self):
        """The public key as a download for `voices-verify-ledger`, which takes it as a .pem file."""
        pem = tokens.public_key_to_pem(service_context().signing_key.public_key())
        return Response(
            pem,
            mimetype=PEM_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="consent.pub.pem"'},
        )


@audit.route("/entries")
class Entries(MethodView):
    @audit.arguments(RangeQuerySchema, location="query")
    @audit.response(200, LedgerPageSchema)
    def get(self, query):
        """Entries with start <= seq < start + limit that the caller may read (auditors: their organisation's
        consultations', so seq numbers may skip); `size` is the whole ledger's, as checkpoints sign it.

        With `kind`, the first `limit` entries of that kind from `start` on instead, and
        `next_start` (where the next page of that kind begins, null after the last)."""
        if query.get("kind"):
            found = ledger_store.entries_of_kind(
                query["kind"], query["start"], query["limit"] + 1, _ledger_scope()
            )
            page = found[: query["limit"]]
            return {
                "start": query["start"],
                "size": ledger_store.size(),
                "entries": page,
                "next_start": found[-1]["seq"] if len(found) > query["limit"] else None,
            }
        return {
            "start": query["start"],
            "size": ledger_store.size(),
            "entries": ledger_store.entries(
                query["start"], query["start"] + query["limit"], _ledger_scope()
            ),
        }


def _tree():
    return service_context().ledger_tree


@audit.route("/checkpoints")
class Checkpoints(MethodView):
    @audit.response(200, CheckpointSchema(many=True))
    def get(self):
        """Signed tree heads of the whole ledger: every auditor checks their entries against them."""
        require_staff("auditor", "platform_auditor")
        return ledger_store.checkpoints()

    @audit.response(201, CheckpointSchema)
    def post(self):
        """Sign a checkpoint over the ledger as it is now (or get the latest, when it already covers it)."""
        require_staff("auditor", "platform_auditor", "admin")
        return ledger_store.checkpoint(service_context().signing_key, _tree())


@audit.route("/proofs/inclusion/<int:seq>")
class Inclusion(MethodView):
    @audit.arguments(InclusionQuerySchema, location="query")
    @audit.response(200, InclusionProofSchema)
    def get(self, query, seq):
        """Audit path of one entry in the tree of tree_size entries (default: the latest checkpoint).

        Auditors get it for their organisation's entries; another organisation's answers like a missing one."""
        return ledger_store.inclusion(_tree(), seq, query["tree_size"], _ledger_scope())


@audit.route("/proofs/consistency")
class Consistency(MethodView):
    @audit.arguments(ConsistencyQuerySchema, location="query")
    @audit.response(200, ConsistencyProofSchema)
    def get(self, query):
        """Proof that the tree of `second` entries extends the tree of `first` entries (RFC 6962)."""
        require_staff("auditor", "platform_auditor")
        return ledger_store.consistency(_tree(), query["first"], query["second"])


@audit.route("/export")
class Export(MethodView):
    @audit.response(200, content_type="application/x-ndjson")
    def get(self):
        """Every entry and checkpoint as JSON lines, for the offline verifier.

        A checkpoint over the whole ledger is signed first when the latest one
        does not cover every entry, so the export ends on a signed tree head.
        Auditors get the partial export of their organisation's entries: the
        signed tree head, then each entry with its inclusion proof under it
        (the same verifier checks both kinds).
        """
        lines = ledger_store.export(service_context().signing_key, _tree(), _ledger_scope())
        return Response(
            lines,
            mimetype="application/x-ndjson",
            headers={"Content-Disposition": "attachment; filename=consent-ledger.jsonl"},
        )


@audit.route("/erasure-report")
class ErasureReport(MethodView):
    @audit.arguments(ErasureReportQuerySchema, location="query")
    @audit.response(200, ErasureReportSchema)
    def get(self, query):
        """Every full withdrawal in the ledger and the entries confirming it.

        The surveys service confirms each full withdrawal it carried out with a
        withdrawal.processed entry (responses erased, key shredded), also when
        the participant had stored no answer, and each erased response with a
        response.erased entry. Computed from ledger entries alone, so it can be
        recomputed from an export. An unconfirmed withdrawal is not carried
        out yet. Auditors get their organisation's consultations only.
        """
        return ledger_store.erasure_report(
            query.get("consultation_id"),
            query.get("tree_size"),
            query.get("status"),
            _ledger_scope(),
        )
