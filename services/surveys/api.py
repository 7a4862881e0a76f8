"""Surveys API: parse, call the service layer, serialise."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.surveys import consultations as cons
from services.surveys import contact, intake, invitations, quotes, resume
from services.surveys.models import Consultation
from services.surveys.schemas import (
    ConsultationCreateSchema,
    ConsultationSchema,
    ConsultationUpdateSchema,
    ContactDeleteSchema,
    ContactSavedSchema,
    ContactSaveSchema,
    FollowUpContactPageSchema,
    InvitationBatchCreatedSchema,
    InvitationBatchCreateSchema,
    InvitationCreatedSchema,
    InvitationCreateSchema,
    InvitationSchema,
    OpenedInvitationSchema,
    ProgressReportSchema,
    QuotablePageSchema,
    QuotableQuerySchema,
    QuoteApproveSchema,
    QuoteRevokeSchema,
    QuoteSchema,
    ResponseCreateSchema,
    ResponseReceiptSchema,
    ResumedSchema,
    ResumeLookupSchema,
    ResumeSavedSchema,
    ResumeSaveSchema,
    StatusChangeSchema,
    SurveyDraftSchema,
    VersionSchema,
    XLSFormImportedSchema,
    XLSFormQuerySchema,
    XLSFormUploadSchema,
)
from shared.auth import Principal, require_staff, session_consultation
from shared.errors import ValidationFailed
from shared.request_context import current_trace_id
from shared.runtime import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    QueryPage,
    events_stored,
    service_context,
)

consultations = Blueprint(
    "consultations",
    __name__,
    url_prefix="/api/v1/consultations",
    description="Consultations, survey versions and invitations (organisers)",
)
participation = Blueprint(
    "participation",
    __name__,
    url_prefix="/api/v1",
    description="Invitations, saved progress and responses (participants)",
)


def _scoped_consultation(principal: Principal, consultation_id: str) -> Consultation:
    # One lookup with the tenant in the query: another organisation's consultation gets the very
    # answer a missing one gets, so ids cannot be probed.
    return cons.get_consultation(
        consultation_id, None if principal.role == "admin" else principal.organisation_id
    )


def _own_consultation(consultation_id: str) -> Consultation:
    return _scoped_consultation(require_staff("organiser", "admin"), consultation_id)


def _organiser_consultation(consultation_id: str) -> Consultation:
    """For changes: organisers only (admins can look, not edit), in their own organisation."""
    return _scoped_consultation(require_staff("organiser"), consultation_id)


@consultations.route("")
class Consultations(MethodView):
    @consultations.response(200, ConsultationSchema(many=True))
    @consultations.paginate(QueryPage, page_size=PAGE_SIZE, max_page_size=MAX_PAGE_SIZE)
    def get(self):
        """Consultations of the caller's organisation, newest first, a page at a time (X-Pagination header)."""
        principal = require_staff("organiser", "admin")
        return cons.list_consultations(
            None if principal.role == "admin" else principal.organisation_id
        )

    @consultations.arguments(ConsultationCreateSchema)
    @consultations.response(201, ConsultationSchema)
    def post(self, data):
        """Create a draft consultation in the caller's organisation."""
        principal = require_staff("organiser")
        consultation = cons.create_consultation(
            {**data, "organisation_id": principal.organisation_id},
            service_context().settings.topics.surveys,
            current_trace_id(),
        )
        events_stored()
        return consultation


@consultations.route("/<consultation_id>")
class ConsultationItem(MethodView):
    @consultations.response(200, ConsultationSchema)
    def get(self, consultation_id):
        return _own_consultation(consultation_id)

    @consultations.arguments(ConsultationUpdateSchema)
    @consultations.response(200, ConsultationSchema)
    def patch(self, data, consultation_id):
        """Change settings; languages, purposes, min_age, min_cell_size and epsilon_budget only while a draft."""
        consultation = cons.update_settings(
            _organiser_consultation(consultation_id),
            data,
            service_context().settings.topics.surveys,
            current_trace_id(),
        )
        events_stored()
        return consultation


@consultations.route("/<consultation_id>/survey")
class SurveyDraft(MethodView):
    @consultations.arguments(SurveyDraftSchema)
    @consultations.response(200, ConsultationSchema)
    def put(self, data, consultation_id):
        """Replace the draft survey (becomes the next version when published)."""
        return cons.update_draft(_organiser_consultation(consultation_id), data["survey"])


@consultations.route("/<consultation_id>/survey/xlsform")
class SurveyXLSForm(MethodView):
    @consultations.arguments(XLSFormQuerySchema, location="query")
    @consultations.arguments(XLSFormUploadSchema, location="files")
    @consultations.response(200, XLSFormImportedSchema)
    @consultations.alt_response(
        422,
        description="the form cannot be imported: `errors` by sheet and `warnings`, "
        "each {sheet, row, name, reason}; nothing is stored",
    )
    def post(self, query, files, consultation_id):
        """Replace the draft survey with an uploaded .xlsx or .xls XLSForm (multipart field `file`).

        Rows that cannot be imported are refused all together (422, `errors` by sheet), each with its
        sheet and row number; the 422 also lists `warnings`, the rows that would be skipped or ignored.
        """
        consultation = _organiser_consultation(consultation_id)
        workbook = files["file"].read()
        if not workbook:
            raise ValidationFailed(
                "The uploaded file is empty.", errors={"file": ["upload an .xlsx or .xls workbook"]}
            )
        consultation, imported = cons.import_xlsform_draft(
            consultation, workbook, query["default_language"]
        )
        return {
            "consultation_id": consultation.consultation_id,
            "form_title": imported.title,
            "draft": consultation.draft,
            "warnings": imported.warnings,
            "revision": consultation.revision,
        }


@consultations.route("/<consultation_id>/versions")
class Versions(MethodView):
    @consultations.response(200, VersionSchema(many=True))
    def get(self, consultation_id):
        """Published survey versions, oldest first; each is immutable."""
        return list(_own_consultation(consultation_id).versions)


@consultations.route("/<consultation_id>/versions/<int:number>")
class VersionItem(MethodView):
    @consultations.response(200, VersionSchema)
    def get(self, consultation_id, number):
        return cons.get_version(_own_consultation(consultation_id), number)

    @consultations.alt_response(409, description="always: a published version never changes")
    def put(self, consultation_id, number):
        """Always refused: a published version never changes. Edit the draft and publish a new version."""
        cons.refuse_version_edit(_organiser_consultation(consultation_id), number)


@consultations.route("/<consultation_id>/publish")
class Publish(MethodView):
    @consultations.response(200, ConsultationSchema)
    def post(self, consultation_id):
        """Freeze the draft as a new immutable version and open the consultation."""
        consultation = cons.publish_version(
            _organiser_consultation(consultation_id),
            service_context().settings.topics.surveys,
            current_trace_id(),
        )
        events_stored()
        return consultation


@consultations.route("/<consultation_id>/status")
class Status(MethodView):
    @consultations.arguments(StatusChangeSchema)
    @consultations.response(200, ConsultationSchema)
    def post(self, data, consultation_id):
        consultation = cons.change_status(
            _organiser_consultation(consultation_id),
            data["status"],
            service_context().settings.topics.surveys,
            current_trace_id(),
        )
        events_stored()
        return consultation


@consultations.route("/<consultation_id>/invitations")
class Invitations(MethodView):
    @consultations.response(200, InvitationSchema(many=True))
    def get(self, consultation_id):
        return invitations.list_invitations(_own_consultation(consultation_id))

    @consultations.arguments(InvitationCreateSchema)
    @consultations.response(201, InvitationCreatedSchema)
    def post(self, data, consultation_id):
        """A single-use code or a multi-use anonymous link; the code is shown only in this answer."""
        consultation = _organiser_consultation(consultation_id)
        invitation, code = invitations.create_invitation(
            consultation, data["kind"], data["label"], service_context().keys.code_pepper
        )
        return {
            **invitation.to_mongo().to_dict(),
            "invitation_id": invitation.invitation_id,
            "code": code,
            **_usable_now(consultation),
        }


@consultations.route("/<consultation_id>/invitations/batch")
class InvitationBatch(MethodView):
    @consultations.arguments(InvitationBatchCreateSchema)
    @consultations.response(201, InvitationBatchCreatedSchema)
    def post(self, data, consultation_id):
        """Several invitations of one kind at once (to print or hand out); codes shown only in this answer."""
        consultation = _organiser_consultation(consultation_id)
        created = invitations.create_invitations(
            consultation,
            data["kind"],
            data["label"],
            data["count"],
            service_context().keys.code_pepper,
        )
        return {
            "invitations": [
                {
                    **invitation.to_mongo().to_dict(),
                    "invitation_id": invitation.invitation_id,
                    "code": code,
                }
                for invitation, code in created
            ],
            **_usable_now(consultation),
        }


def _usable_now(consultation: Consultation) -> dict[str, object]:
    """`usable_now`, and a `warning` when participants cannot use new invitations yet."""
    notice = cons.not_open_yet_notice(consultation)
    return {"usable_now": notice is None, "warning": notice}


@consultations.route("/<consultation_id>/progress")
class ConsultationProgress(MethodView):
    @consultations.response(200, ProgressReportSchema)
    def get(self, consultation_id):
        """How the consultation is going, in counts only: responses over time, completion and
        drop-off per section of the current version, participants admitted, responses erased."""
        return cons.progress_report(_own_consultation(consultation_id))


@consultations.route("/<consultation_id>/invitations/<invitation_id>/revoke")
class RevokeInvitation(MethodView):
    @consultations.response(200, InvitationSchema)
    def post(self, consultation_id, invitation_id):
        return invitations.revoke_invitation(
            _organiser_consultation(consultation_id), invitation_id
        )


@consultations.route("/<consultation_id>/quotable-answers")
class QuotableAnswers(MethodView):
    @consultations.arguments(QuotableQuerySchema, location="query")
    @consultations.response(200, QuotablePageSchema)
    def get(self, query, consultation_id):
        """Free-text answers of participants who consent to anonymised quotes (and did not withdraw it), paged.

        Organisers only: this is the one place where answers are read in full, to choose an excerpt.
        """
        return quotes.quotable_answers(
            _organiser_consultation(consultation_id),
            service_context().keys,
            query["page"],
            query["per_page"],
        )


@consultations.route("/<consultation_id>/quotes")
class Quotes(MethodView):
    @consultations.response(200, QuoteSchema(many=True))
    def get(self, consultation_id):
        """Approved quotes, oldest first; revoked ones are listed without their text."""
        return quotes.list_quotes(_organiser_consultation(consultation_id), service_context().keys)

    @consultations.arguments(QuoteApproveSchema)
    @consultations.response(201, QuoteSchema)
    @consultations.alt_response(
        200, schema=QuoteSchema, description="this excerpt was approved before"
    )
    def post(self, data, consultation_id):
        """Approve an excerpt of one free-text answer for publication (quote.approved).

        The excerpt must be a contiguous part of the answer (422 otherwise): shorten, never rewrite.
        Approving the same excerpt again answers 200 with the same quote. 409 when the participant
        has not consented to quotes or withdrew, or when this quote was revoked.
        """
        principal = require_staff("organiser")
        consultation = _organiser_consultation(consultation_id)
        quote, created = quotes.approve_quote(
            consultation,
            data["response_id"],
            data["question_id"],
            data["excerpt"],
            principal.subject,
            service_context().keys,
            service_context().settings.topics.responses,
            current_trace_id(),
        )
        if created:
            events_stored()
        return quotes.quote_view(quote, service_context().keys), 201 if created else 200


@consultations.route("/<consultation_id>/quotes/revocations")
class QuoteRevocations(MethodView):
    @consultations.arguments(QuoteRevokeSchema)
    @consultations.response(200, QuoteSchema)
    def post(self, data, consultation_id):
        """Revoke an approved quote (quote.revoked): its text is removed here and from the insights."""
        principal = require_staff("organiser")
        quote = quotes.revoke_quote(
            _organiser_consultation(consultation_id),
            data["quote_id"],
            principal.subject,
            service_context().settings.topics.responses,
            current_trace_id(),
        )
        events_stored()
        return quotes.quote_view(quote, service_context().keys)


@consultations.route("/<consultation_id>/follow-up-contacts")
class FollowUpContacts(MethodView):
    @consultations.arguments(QuotableQuerySchema, location="query")
    @consultations.response(200, FollowUpContactPageSchema)
    def get(self, query, consultation_id):
        """Contact details of participants who consented to be contacted again (and did not withdraw), paged.

        Organisers only. Every read is recorded (contacts.accessed: who, how many, when) on the consent ledger.
        """
        principal = require_staff("organiser")
        page = contact.read_contacts(
            _organiser_consultation(consultation_id),
            principal.subject,
            service_context().keys,
            query["page"],
            query["per_page"],
            service_context().settings.topics.surveys,
            current_trace_id(),
        )
        events_stored()
        return page


@participation.route("/contact")
class Contact(MethodView):
    @participation.arguments(ContactSaveSchema)
    @participation.response(200, ContactSavedSchema)
    def put(self, data):
        """Leave (or replace) contact details for follow-up; needs the follow_up_contact consent (403 without).

        Kept encrypted with the participant's key and deleted when that consent is withdrawn.
        """
        record = contact.save_contact(
            data.pop("consent_token"), data, service_context().keys, session_consultation()
        )
        return {
            "method": data["method"],
            "safe_to_leave_message": data["safe_to_leave_message"],
            "given_at": record.given_at,
        }

    @participation.arguments(ContactDeleteSchema)
    @participation.response(204)
    def delete(self, data):
        """Remove the contact details; nothing stored is fine."""
        contact.delete_contact(
            data["consent_token"], service_context().keys, session_consultation()
        )


@participation.route("/invitations/<code>/open")
class OpenInvitation(MethodView):
    @participation.response(201, OpenedInvitationSchema)
    def post(self, code):
        """Open an invitation: a fresh pseudonym and the current survey; nothing about the person."""
        participant, consultation = invitations.open_invitation(code, service_context().keys)
        version = intake.find_version(consultation, None)
        return {
            "pseudonym": participant.pseudonym,
            "consultation_id": consultation.consultation_id,
            "title": consultation.title,
            "titles": consultation.titles,
            "descriptions": consultation.descriptions,
            "languages": consultation.languages,
            "purposes": consultation.purposes,
            "min_age": consultation.min_age,
            "survey_version": version["number"],
            "survey": version["definition"],
        }


@participation.route("/resume")
class SaveProgress(MethodView):
    @participation.arguments(ResumeSaveSchema)
    @participation.response(201, ResumeSavedSchema)
    def post(self, data):
        """Keep partial answers on the server; the resume code is shown once. Saving again replaces them."""
        saved = resume.save_progress(
            data.pop("consent_token"),
            data,
            service_context().keys,
            service_context().resume_ttl,
            session_consultation=session_consultation(),
        )
        return {"resume_code": saved.resume_code, "expires_at": saved.expires_at}


@participation.route("/resume/lookup")
class ResumeLookup(MethodView):
    @participation.arguments(ResumeLookupSchema)
    @participation.response(200, ResumedSchema)
    def post(self, data):
        """Continue with a resume code (sent in the body, never in a URL): answers so far and consent context."""
        return resume.resume_progress(
            data["resume_code"], service_context().keys, session_consultation=session_consultation()
        )


@participation.route("/responses")
class Responses(MethodView):
    @participation.arguments(ResponseCreateSchema)
    @participation.response(201, ResponseReceiptSchema)
    def post(self, data):
        """Submit answers with a consent token; every question may be skipped or declined."""
        response = intake.submit_response(
            data.pop("consent_token"),
            data,
            service_context().keys,
            service_context().settings.topics.responses,
            current_trace_id(),
            session_consultation(),
        )
        events_stored()
        return response
