"""Invitations: single-use codes and anonymous links, opening one (a participant with their own data
key), and spending it once answers are kept (service layer: models, no Flask)."""

from __future__ import annotations

import uuid

from mongoengine.errors import NotUniqueError

from services.surveys import codes, field_crypto, tallies
from services.surveys.consultations import (
    SurveysKeys,
    ensure_accepting,
    get_consultation,
    participant_context,
)
from services.surveys.models import Consultation, Invitation, Participant
from shared.errors import Conflict, Gone, NotFound, ValidationFailed


def create_invitation(
    consultation: Consultation, kind: str, label: str | None, pepper: bytes
) -> tuple[Invitation, str]:
    """A new invitation and its code, which is returned once and stored only as a hash."""
    if consultation.status in ("closed", "archived"):
        raise Conflict("Invitations cannot be created for a closed consultation.")
    code_kind = codes.CodeKind.INVITATION if kind == "single" else codes.CodeKind.LINK
    code = codes.new_invitation_code() if kind == "single" else codes.new_link_token()
    invitation = Invitation(
        code_hash=codes.hash_code(code_kind, code, pepper),
        invitation_id=f"i_{uuid.uuid4().hex[:16]}",
        consultation_id=consultation.consultation_id,
        kind=kind,
        label=label,
    )
    invitation.save(force_insert=True)
    return invitation, code


def create_invitations(
    consultation: Consultation, kind: str, label: str | None, count: int, pepper: bytes
) -> list[tuple[Invitation, str]]:
    """`count` new invitations of one kind, each with its code (returned once, stored as a hash).

    Raises Conflict for a closed or archived consultation, before anything is stored.
    """
    if consultation.status in ("closed", "archived"):
        raise Conflict("Invitations cannot be created for a closed consultation.")
    return [create_invitation(consultation, kind, label, pepper) for _ in range(count)]


def list_invitations(consultation: Consultation) -> list[Invitation]:
    """The consultation's invitations (never their codes)."""
    return list(
        Invitation.objects(consultation_id=consultation.consultation_id).order_by("created_at")
    )


def revoke_invitation(consultation: Consultation, invitation_id: str) -> Invitation:
    """Revoke an invitation (idempotent); opening it afterwards is Gone. Raises NotFound."""
    invitation = Invitation.objects(
        invitation_id=invitation_id, consultation_id=consultation.consultation_id
    ).first()
    if invitation is None:
        raise NotFound("No such invitation.")
    Invitation.objects(invitation_id=invitation_id).update_one(set__revoked=True)
    invitation.reload()
    return invitation


def _find_invitation(code: str, pepper: bytes) -> Invitation | None:
    """A typed single-use code or a link token: the same field, so try each kind's digest."""
    for kind in (codes.CodeKind.LINK, codes.CodeKind.INVITATION):
        try:
            digest = codes.hash_code(kind, code, pepper)
        except ValidationFailed:
            continue
        invitation = Invitation.objects(code_hash=digest).first()
        if invitation is not None:
            return invitation
    return None


INVITATION_USED = "invitation_used"


def note_consent_text(consultation_id: str, language: str) -> None:
    """A consent text was published in `language`: publishing the consultation no longer waits for it."""
    # $addToSet: idempotent for a replayed event, and never touches what an organiser's save changes.
    Consultation.objects(consultation_id=consultation_id).update_one(
        add_to_set__consent_languages=language
    )


def open_invitation(code: str, keys: SurveysKeys) -> tuple[Participant, Consultation]:
    """Issue a fresh pseudonym (and its data key) for an invitation code.

    Opening spends nothing: a single-use code opens again and again until answers from one of
    its pseudonyms are stored (`spend_invitation`), so someone who had to leave, or said no at
    first, can come back with it. After that it is Gone, like revoked codes and closed
    consultations; a consultation whose opening time has not come is a Conflict.
    Unknown codes are NotFound, with no hint whether they ever existed.
    """
    invitation = _find_invitation(code, keys.code_pepper)
    if invitation is None:
        raise NotFound("This invitation code is not valid.")
    if invitation.revoked:
        raise Gone("This invitation is no longer valid.")
    if invitation.kind == "single" and invitation.uses:
        raise Gone("This invitation has already been used.", reason=INVITATION_USED)
    consultation = get_consultation(invitation.consultation_id)
    ensure_accepting(consultation)
    if invitation.kind == "link":
        Invitation.objects(code_hash=invitation.code_hash).update_one(inc__uses=1)
    key = field_crypto.new_participant_key()
    for _attempt in range(3):
        participant = Participant(
            pseudonym=codes.new_pseudonym(),
            consultation_id=consultation.consultation_id,
            invitation_id=invitation.invitation_id,
            invitation_kind=invitation.kind,
            has_draft=False,
            wrapped_key=field_crypto.wrap_key(
                keys.key_wrapping_key, key, participant_context(consultation.consultation_id)
            ),
        )
        try:
            participant.save(force_insert=True)
        except NotUniqueError:
            continue
        tallies.count_opened(consultation.consultation_id)
        return participant, consultation
    raise Conflict("Could not issue a pseudonym; please try again.")


def spend_invitation(participant: Participant) -> None:
    """Before a participant's first answers are stored: their single-use invitation becomes theirs alone.

    Idempotent for the participant who spent it. Raises Gone (reason "invitation_used") when
    answers of another pseudonym from the same code were stored first, or it was revoked.
    """
    if not participant.invitation_id or participant.invitation_kind == "link":
        return  # a link is never spent
    # Atomic compare-and-set: of two pseudonyms from one code, only one can spend it.
    if Invitation.objects(
        invitation_id=participant.invitation_id, kind="single", uses=0, revoked=False
    ).update_one(set__uses=1, set__spent_by=participant.pseudonym):
        return
    invitation = Invitation.objects(invitation_id=participant.invitation_id).first()
    if (
        invitation is None
        or invitation.kind != "single"
        or invitation.spent_by == participant.pseudonym
    ):
        return
    raise Gone(
        "Answers from this invitation were already kept in another visit.", reason=INVITATION_USED
    )
