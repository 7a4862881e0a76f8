"""Response intake: a participant's answers stored with their event (service layer: models, no
Flask). Erasure on withdrawal and retention live in `erasure`; admission in `participants`."""

from __future__ import annotations

import uuid
from typing import Any

from mongoengine.errors import NotUniqueError

from services.surveys import erasure, field_crypto, participants, tallies
from services.surveys.consultations import SurveysKeys
from services.surveys.invitations import spend_invitation
from services.surveys.models import Consultation, Response, ResumeDraft, Withdrawal
from shared.errors import Conflict, Forbidden, ValidationFailed
from shared.events import Envelope, isoformat, utcnow
from shared.questionnaire import answers as answer_rules


def find_version(consultation: Consultation, number: int | None) -> dict[str, Any]:
    """The published version `number`, or the latest for None. Raises ValidationFailed for an unknown number."""
    if number is None:
        current = consultation.current_version
        if current is None:
            raise ValidationFailed("This consultation has no published survey yet.")
        return current
    for version in consultation.versions:
        if version["number"] == number:
            return version
    raise ValidationFailed(
        f"Survey version {number} does not exist for this consultation.",
        errors={
            "survey_version": [
                f"published versions: {[v['number'] for v in consultation.versions]}"
            ]
        },
    )


def submit_response(
    token: str,
    body: dict[str, Any],
    keys: SurveysKeys,
    topic: str,
    trace_id: str,
    session_consultation: str | None = None,
) -> Response:
    """Store one response with its response.submitted event.

    Requires a consent token for this consultation with the participate
    purpose. Free text is stored only encrypted with the participant's key
    and never enters the event. Raises Unauthorized (token), Forbidden
    (consent withdrawn), Gone (consultation not open or past its closing
    time, or the participant's data erased), Conflict (already submitted,
    or before the opening time), ValidationFailed (answers, survey version).
    """
    admission = participants.admit(token, keys, session_consultation=session_consultation)
    pseudonym, consultation_id = admission.pseudonym, admission.consultation_id
    version = find_version(admission.consultation, body.get("survey_version"))
    definition = version["definition"]
    structured = answer_rules.validate_answers(
        definition, body.get("answers") or {}, body.get("declined") or []
    )
    declined = answer_rules.declined_questions(definition, body.get("declined") or [])
    structured, free_text = answer_rules.split_free_text(definition, structured)
    spend_invitation(admission.participant)
    key = participants.participant_key(admission.participant, keys)
    response_id = f"r_{uuid.uuid4().hex}"
    encrypted = {
        qid: field_crypto.encrypt_field(key, text, participants.free_text_aad(response_id, qid))
        for qid, text in free_text.items()
    }
    purposes = admission.purposes
    now = utcnow()
    response = Response(
        response_id=response_id,
        consultation_id=consultation_id,
        pseudonym=pseudonym,
        survey_version=version["number"],
        grant_id=admission.claims["gid"],
        purposes=purposes,
        answers=structured,
        declined=declined,
        free_text=encrypted,
        quotable=participants.QUOTE_PURPOSE in purposes,
        submitted_at=now,
    )
    response.stage(
        topic,
        Envelope(
            type="response.submitted",
            key=consultation_id,
            producer="surveys",
            trace_id=trace_id,
            payload={
                "response_id": response_id,
                "consultation_id": consultation_id,
                "survey_version": version["number"],
                "pseudonym": pseudonym,
                "grant_id": admission.claims["gid"],
                "purposes": purposes,
                "submitted_at": isoformat(now),
                "answers": structured,
                "declined": declined,
                "free_text_questions": sorted(free_text),
            },
        ),
    )
    tallies.expect_response(consultation_id, response_id)
    try:
        response.save(force_insert=True)
    except NotUniqueError:
        tallies.forget_response(consultation_id, response_id)
        raise Conflict("A response from this participant has already been received.") from None
    tallies.count_response(admission.consultation, response)
    _settle_late_withdrawal(response, topic, trace_id)
    # Submitted: the in-progress copy has done its job. Most participants never saved one (their
    # record says so), and a read by key costs less than a delete, which waits its turn behind
    # every other write.
    if (
        admission.participant.has_draft is not False
        and ResumeDraft.objects(pseudonym=pseudonym).only("pseudonym").first() is not None
    ):
        ResumeDraft.objects(pseudonym=pseudonym).delete()
    return response


def _settle_late_withdrawal(response: Response, topic: str, trace_id: str) -> None:
    """A withdrawal handled between our check and our insert found no response to act on.

    The handler writes its tombstone before looking for responses and we
    look for tombstones after inserting, so one of the two always sees the
    other; here we finish what the handler could not.
    """
    withdrawal = participants.by_key(Withdrawal, response.pseudonym)
    if withdrawal is None:
        return
    if participants.fully_withdrawn(withdrawal):
        erasure.erase_participant(
            response.pseudonym, response.consultation_id, "withdrawal", topic, trace_id
        )
        # The withdrawal was confirmed with nothing erased; say again what was erased in the end.
        erasure.confirm_withdrawal(
            f"late-response:{response.response_id}",
            response.pseudonym,
            response.consultation_id,
            topic,
            trace_id,
        )
        raise Forbidden("Consent for this participant was withdrawn; nothing was stored.")
    erasure.restrict(
        response.pseudonym, response.consultation_id, list(withdrawal.purposes), topic, trace_id
    )
