"""Consultation lifecycle and survey versions (service layer: models, no Flask). Invitations are in
`invitations`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mongoengine.errors import SaveConditionError

from services.surveys import progress, questionnaire, tallies, xlsform
from services.surveys.models import Consultation
from shared.errors import Conflict, Gone, NotFound, ValidationFailed
from shared.events import Envelope, isoformat, utcnow

# Allowed lifecycle moves; anything else is a conflict.
TRANSITIONS = {
    "draft": {"open"},
    "open": {"closed"},
    "closed": {"archived", "open"},
    "archived": set(),
}

# Settings other services learn when a version is published (consent texts and tokens, disclosure
# control): they may change while the consultation is a draft, and are fixed once it has opened.
# The privacy budget too: raised after snapshots spent it, it would no longer bound what they reveal.
FIXED_ONCE_OPEN = ("languages", "purposes", "min_age", "min_cell_size", "epsilon_budget")
# What the consent service needs to know of a consultation: sent when created, changed or published.
CONSENT_SETTINGS = ("languages", "purposes", "min_age")
EDITABLE_SETTINGS = (
    "title",
    "titles",
    "description",
    "descriptions",
    "opens_at",
    "closes_at",
    "retention_days",
    *FIXED_ONCE_OPEN,
)
REQUIRED_PURPOSE = "participate"
# Why publishing waits: a language of the consultation has no published consent text yet.
CONSENT_TEXT_MISSING = "consent_text_missing"
# Texts participants read, given per language ({language: text}) next to the organisers' own.
TRANSLATED = ("titles", "descriptions")


@dataclass(frozen=True)
class SurveysKeys:
    code_pepper: bytes
    key_wrapping_key: bytes
    consent_public_key_pem: bytes


def participant_context(consultation_id: str) -> bytes:
    """Binds a wrapped data key to its consultation, so keys cannot be swapped between records."""
    return f"participant-key:{consultation_id}".encode()


def as_utc(moment: datetime | None) -> datetime | None:
    """MongoDB hands datetimes back without a zone; they were stored as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def get_consultation(consultation_id: str, organisation_id: str | None = None) -> Consultation:
    """The consultation, scoped to an organisation when one is given. Raises NotFound (also for another
    organisation's consultation, so ids cannot be probed)."""
    consultation = Consultation.objects(consultation_id=consultation_id).first()
    if consultation is None or (
        organisation_id is not None and consultation.organisation_id != organisation_id
    ):
        raise NotFound("No such consultation.")
    return consultation


def list_consultations(organisation_id: str | None) -> Any:
    """Consultations of one organisation (all of them for None), newest first, as a query to page through."""
    query = {} if organisation_id is None else {"organisation_id": organisation_id}
    return Consultation.objects(**query).order_by("-created_at", "consultation_id")


def _check_settings(settings: dict[str, Any]) -> None:
    """Rules across settings that a field-by-field schema cannot see. Raises ValidationFailed."""
    errors: dict[str, list[str]] = {}
    languages = settings.get("languages") or []
    if len(set(languages)) != len(languages):
        errors["languages"] = ["each language may appear once"]
    purposes = settings.get("purposes") or []
    if REQUIRED_PURPOSE not in purposes:
        errors["purposes"] = [
            f"must include {REQUIRED_PURPOSE!r}: nothing can be stored without it"
        ]
    elif len(set(purposes)) != len(purposes):
        errors["purposes"] = ["each purpose may appear once"]
    for field in TRANSLATED:
        others = sorted(set(settings.get(field) or {}) - set(languages))
        if others:
            errors[field] = [f"not a language of the consultation: {', '.join(others)}"]
    opens_at, closes_at = as_utc(settings.get("opens_at")), as_utc(settings.get("closes_at"))
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        errors["closes_at"] = ["must be later than opens_at"]
    if errors:
        raise ValidationFailed("The consultation settings are not consistent.", errors=errors)


def create_consultation(data: dict[str, Any], topic: str, trace_id: str) -> Consultation:
    """A draft consultation; `data["survey"]` (optional) is validated as a survey definition.

    Raises ValidationFailed for inconsistent settings or an invalid survey.
    """
    _check_settings(data)
    # A survey sent with the consultation is validated whole; none means "write it later".
    if data.get("survey") is None:
        survey = {"languages": data["languages"], "sections": []}
    else:
        survey = questionnaire.validate_definition(data["survey"])
    consultation = Consultation(
        consultation_id=f"c_{uuid.uuid4().hex[:20]}",
        organisation_id=data["organisation_id"],
        title=data["title"],
        titles=data.get("titles") or {},
        description=data.get("description"),
        descriptions=data.get("descriptions") or {},
        languages=data["languages"],
        purposes=data["purposes"],
        min_cell_size=data.get("min_cell_size", 10),
        min_age=data.get("min_age"),
        retention_days=data.get("retention_days", 365),
        created_at=utcnow(),
        opens_at=data.get("opens_at"),
        closes_at=data.get("closes_at"),
        epsilon_budget=data.get("epsilon_budget"),
        draft=survey,
    )
    consultation.stage(
        topic,
        Envelope(
            type="consultation.created",
            key=consultation.consultation_id,
            producer="surveys",
            trace_id=trace_id,
            payload={
                "consultation_id": consultation.consultation_id,
                "organisation_id": consultation.organisation_id,
                "languages": list(consultation.languages),
                "min_age": consultation.min_age,
                "purposes": list(consultation.purposes),
                "created_at": isoformat(consultation.created_at),
            },
        ),
    )
    consultation.save(force_insert=True)
    tallies.start(consultation.consultation_id)
    return consultation


def _save_guarded(consultation: Consultation) -> None:
    """Save only if nobody else saved since we read it (compare-and-set on `revision`)."""
    seen = consultation.revision
    consultation.revision = seen + 1
    try:
        consultation.save(save_condition={"revision": seen})
    except SaveConditionError:
        consultation.revision = seen
        raise Conflict(
            "The consultation was changed by someone else; reload and try again."
        ) from None


def update_settings(
    consultation: Consultation, changes: dict[str, Any], topic: str, trace_id: str
) -> Consultation:
    """Change settings of a consultation (PATCH semantics: only the given fields).

    Languages, purposes, minimum age, minimum cell size and privacy budget
    can change only while the consultation is a draft; a change of the first
    three is announced (consultation.settings_changed) so the consent service
    takes texts and grants for them. Raises Conflict for those later, or for
    an archived consultation; ValidationFailed for inconsistent settings.
    """
    if consultation.status == "archived":
        raise Conflict("An archived consultation cannot be changed.")
    unknown = sorted(set(changes) - set(EDITABLE_SETTINGS))
    if unknown:  # the schema already refuses these; a second guard for other callers
        raise ValidationFailed(
            "These settings cannot be changed.", errors={k: ["not a setting"] for k in unknown}
        )
    if consultation.status != "draft":
        fixed = sorted(
            k for k in changes if k in FIXED_ONCE_OPEN and changes[k] != getattr(consultation, k)
        )
        if fixed:
            why = []
            if any(k != "epsilon_budget" for k in fixed):
                why.append("participants consented under them")
            if "epsilon_budget" in fixed:
                why.append("released snapshots spend the privacy budget, so it must bound them all")
            raise Conflict(
                f"{', '.join(fixed)} cannot change once the consultation has opened: {'; '.join(why)}.",
                fields=fixed,
            )
    merged = {key: getattr(consultation, key) for key in EDITABLE_SETTINGS}
    merged.update(changes)
    _check_settings(merged)
    announced = [
        key
        for key in CONSENT_SETTINGS
        if key in changes and changes[key] != getattr(consultation, key)
    ]
    for key, value in changes.items():
        setattr(consultation, key, value)
    if announced:
        consultation.stage(
            topic,
            Envelope(
                type="consultation.settings_changed",
                key=consultation.consultation_id,
                producer="surveys",
                trace_id=trace_id,
                payload={
                    "consultation_id": consultation.consultation_id,
                    "organisation_id": consultation.organisation_id,
                    **{key: _plain(getattr(consultation, key)) for key in CONSENT_SETTINGS},
                    "changed_at": isoformat(utcnow()),
                },
            ),
        )
    _save_guarded(consultation)
    return consultation


def _plain(value: Any) -> Any:
    # mongoengine hands lists back as its own BaseList; events carry plain JSON.
    return list(value) if isinstance(value, list) else value


def update_draft(consultation: Consultation, survey: dict[str, Any]) -> Consultation:
    """Replace the draft definition (the next version). Published versions are never touched.

    Stores the normalised definition. Raises ValidationFailed for an invalid
    definition (translations may still be missing), Conflict when archived.
    """
    if consultation.status == "archived":
        raise Conflict("An archived consultation cannot be edited.")
    consultation.draft = questionnaire.validate_definition(survey)
    _save_guarded(consultation)
    return consultation


def import_xlsform_draft(
    consultation: Consultation, workbook: bytes, default_language: str | None = None
) -> tuple[Consultation, xlsform.XLSFormImport]:
    """Replace the draft with the survey of an .xlsx or .xls XLSForm; returns it with the import's title and warnings.

    Columns without a language are taken to be in the consultation's language (see
    `xlsform.read_xlsform`). Raises ValidationFailed listing each row that cannot be
    imported (by sheet and row number) with the warnings, Conflict when archived.
    Nothing is stored on failure.
    """
    if consultation.status == "archived":
        raise Conflict("An archived consultation cannot be edited.")
    imported = xlsform.read_xlsform(
        workbook, default_language=default_language, languages=list(consultation.languages)
    )
    consultation = update_draft(consultation, imported.definition)
    found, wanted = imported.definition["languages"], list(consultation.languages)
    if set(found) != set(wanted):
        # Saved anyway (a draft may be half translated); publishing will insist on the same languages.
        imported.warnings.append(
            {
                "sheet": xlsform.SURVEY,
                "row": 1,
                "name": None,
                "reason": (
                    f"the form's languages ({', '.join(found)}) differ from the consultation's ({', '.join(wanted)}): "
                    "add label columns, or change the consultation's languages, before publishing"
                ),
            }
        )
    return consultation, imported


def get_version(consultation: Consultation, number: int) -> dict[str, Any]:
    """One published version {number, definition, published_at}. Raises NotFound."""
    for version in consultation.versions:
        if version["number"] == number:
            return version
    raise NotFound(f"Survey version {number} does not exist for this consultation.")


def refuse_version_edit(consultation: Consultation, number: int) -> None:
    """A published version never changes: always raises Conflict (NotFound for an unknown version)."""
    get_version(consultation, number)
    raise Conflict(
        f"Survey version {number} is published and cannot be changed. Edit the draft "
        "(PUT .../survey) and publish it as a new version.",
        version=number,
        next_version=len(consultation.versions) + 1,
    )


def publish_version(consultation: Consultation, topic: str, trace_id: str) -> Consultation:
    """Freeze the draft as the next immutable version and open the consultation.

    Raises ValidationFailed for an invalid or incompletely translated survey,
    Conflict when the consultation is archived or closed, when the draft is
    the same as the latest version, or (first publication) when a language
    has no published consent text (reason "consent_text_missing", `languages`).
    """
    if consultation.status in ("archived", "closed"):
        raise Conflict(f"A {consultation.status} consultation cannot be published.")
    if not consultation.draft.get("sections"):
        raise ValidationFailed(
            "The survey has no questions yet.", errors={"survey": ["add at least one question"]}
        )
    definition = questionnaire.publishable(consultation.draft)
    if set(definition.get("languages", [])) != set(consultation.languages):
        raise ValidationFailed(
            "The survey's languages differ from the consultation's.",
            errors={
                "languages": [
                    (
                        f"consultation: {sorted(consultation.languages)}, "
                        f"survey: {sorted(definition.get('languages', []))}"
                    )
                ]
            },
        )
    if consultation.status == "draft":
        # Participants of an open consultation must be able to read what they consent to.
        missing = [
            lang for lang in consultation.languages if lang not in consultation.consent_languages
        ]
        if missing:
            raise Conflict(
                f"No published consent text yet in: {', '.join(missing)}. Publish the consent text in "
                "each language first (it is seen here a moment after it is published).",
                reason=CONSENT_TEXT_MISSING,
                languages=missing,
            )
    untranslated = {
        field: [
            f"missing translation for {lang!r}"
            for lang in consultation.languages
            if lang not in (getattr(consultation, field) or {})
        ]
        for field in TRANSLATED
        if getattr(consultation, field)
    }
    untranslated = {field: problems for field, problems in untranslated.items() if problems}
    if untranslated:
        raise ValidationFailed(
            "The consultation's title or description is not in every language.", errors=untranslated
        )
    latest = consultation.current_version
    if latest is not None and latest["definition"] == definition:
        raise Conflict(
            f"The draft is the same as version {latest['number']}; edit it before publishing again."
        )
    now = utcnow()
    number = len(consultation.versions) + 1
    consultation.versions = [
        *consultation.versions,
        {"number": number, "definition": definition, "published_at": isoformat(now)},
    ]
    if consultation.status == "draft":
        consultation.status = "open"
        consultation.opened_at = now
    consultation.stage(
        topic,
        Envelope(
            type="consultation.published",
            key=consultation.consultation_id,
            producer="surveys",
            trace_id=trace_id,
            payload={
                "consultation_id": consultation.consultation_id,
                "organisation_id": consultation.organisation_id,
                "survey_version": number,
                "title": consultation.title,
                "titles": dict(consultation.titles or {}),
                "languages": list(consultation.languages),
                "min_cell_size": consultation.min_cell_size,
                "min_age": consultation.min_age,
                "purposes": list(consultation.purposes),
                "questions": questionnaire.published_questions(definition),
                "published_at": isoformat(now),
                "epsilon_budget": consultation.epsilon_budget,
            },
        ),
    )
    _save_guarded(consultation)
    return consultation


def change_status(
    consultation: Consultation, status: str, topic: str, trace_id: str
) -> Consultation:
    """Move along draft -> open -> closed -> archived (a closed one may reopen). Raises Conflict."""
    if status not in TRANSITIONS.get(consultation.status, set()):
        raise Conflict(f"A consultation cannot go from {consultation.status} to {status}.")
    if status == "open" and not consultation.versions:
        raise Conflict("Publish a survey version to open the consultation.")
    now = utcnow()
    consultation.status = status
    if status == "closed":
        consultation.closed_at = now
    consultation.stage(
        topic,
        Envelope(
            type="consultation.status_changed",
            key=consultation.consultation_id,
            producer="surveys",
            trace_id=trace_id,
            payload={
                "consultation_id": consultation.consultation_id,
                "organisation_id": consultation.organisation_id,
                "status": status,
                "changed_at": isoformat(now),
            },
        ),
    )
    _save_guarded(consultation)
    return consultation


def ensure_accepting(consultation: Consultation, now: datetime | None = None) -> None:
    """Check that the consultation takes participants and answers now.

    Raises Conflict (reason "not_open_yet") while it is a draft or its opening time (`opens_at`)
    has not come: invitations may be handed out ahead, and work once it opens. Raises Gone when it
    is closed, archived or past its closing time.
    """
    now = now or utcnow()
    if consultation.status == "draft":
        raise Conflict("This consultation has not opened yet.", reason=NOT_OPEN_YET)
    if consultation.status != "open":
        raise Gone("This consultation is not accepting responses.")
    closes_at = as_utc(consultation.closes_at)
    if closes_at is not None and now >= closes_at:
        raise Gone("This consultation closed for responses.", closed_at=isoformat(closes_at))
    opens_at = as_utc(consultation.opens_at)
    if opens_at is not None and now < opens_at:
        raise Conflict(
            "This consultation does not take responses yet.",
            opens_at=isoformat(opens_at),
            reason=NOT_OPEN_YET,
        )


NOT_OPEN_YET = "not_open_yet"


def not_open_yet_notice(consultation: Consultation, now: datetime | None = None) -> str | None:
    """What organisers creating invitations should know when participants cannot use them yet:
    the consultation is a draft, or its opening time has not come. None once it takes answers
    (or never will again: closed consultations take no new invitations)."""
    now = now or utcnow()
    if consultation.status == "draft":
        return (
            "This consultation is still a draft: its invitations open nothing until it is "
            "published. Anyone who uses one before then is told it has not opened yet."
        )
    opens_at = as_utc(consultation.opens_at)
    if consultation.status == "open" and opens_at is not None and now < opens_at:
        return (
            f"This consultation opens at {isoformat(opens_at)}: its invitations open nothing "
            "before then. Anyone who uses one earlier is told when it opens."
        )
    return None


def progress_report(consultation: Consultation, now: datetime | None = None) -> dict[str, Any]:
    """Counts only, for organisers following a consultation: participants admitted, responses
    kept (over time, and per section of the current version), erased. Read from the
    consultation's running tally, so its cost does not grow with the number of responses."""
    now = now or utcnow()
    counted = tallies.tally(consultation)
    version = consultation.current_version
    report = progress.report(version["definition"] if version else None, counted, now)
    return {
        "consultation_id": consultation.consultation_id,
        "status": consultation.status,
        "survey_version": version["number"] if version else None,
        "as_of": now,
        "opened": max(0, int(counted.get("opened", 0))),
        "submitted": max(0, int(counted.get("submitted", 0))),
        "erased": max(0, int(counted.get("erased", 0))),
        "last_submitted_at": counted.get("last_submitted_at"),
        "unit": report.unit,
        "over_time": report.over_time,
        "sections": report.sections,
    }
