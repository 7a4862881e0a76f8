"""What a participant's page session remembers, as typed objects.

The sealed session store (`sessions.WebSession.state`) keeps plain JSON; the pages read and change
a `ParticipantState` instead, built from that JSON with `from_dict` and written back with
`to_dict`. Keys a session does not hold read as their defaults, so a session saved before a field
existed still opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What the session keeps of an opened invitation or of resumed answers (the services' names).
CONSULTATION_KEYS = (
    "pseudonym",
    "consultation_id",
    "title",
    "titles",
    "descriptions",
    "languages",
    "purposes",
    "min_age",
    "survey_version",
    "survey",
)


@dataclass
class Consent:
    """The participant's consent: the token that lets the services store answers (None once it
    expired: the receipt code brings a fresh one), the receipt code and the purposes granted."""

    token: str | None = None
    receipt_code: str | None = None
    purposes: list[str] = field(default_factory=list)
    text_version: int | None = None
    text_language: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Consent:
        return cls(
            token=raw.get("token"),
            receipt_code=raw.get("receipt_code"),
            purposes=list(raw.get("purposes") or []),
            text_version=raw.get("text_version"),
            text_language=raw.get("text_language"),
        )


@dataclass(frozen=True)
class ShownText:
    """Which consent text the consent page showed: the one a grant must name."""

    version: int | None
    language: str | None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ShownText:
        return cls(version=raw.get("version"), language=raw.get("language"))


@dataclass(frozen=True)
class SavedProgress:
    """The resume code of the answers saved last, and until when it works (ISO-8601)."""

    code: str
    expires_at: str

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SavedProgress:
        return cls(code=raw["code"], expires_at=raw["expires_at"])


@dataclass(frozen=True)
class Submitted:
    """The response the surveys service took."""

    response_id: str | None
    submitted_at: str | None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Submitted:
        return cls(response_id=raw.get("response_id"), submitted_at=raw.get("submitted_at"))


@dataclass
class ParticipantState:
    """One participant's visit: the consultation they opened, their consent, their answers so far."""

    lang: str | None = None
    # The consultation, as the invitation (or the saved answers) described it.
    pseudonym: str | None = None
    consultation_id: str | None = None
    title: str | None = None
    titles: dict[str, str] | None = None
    descriptions: dict[str, str] | None = None
    languages: list[str] = field(default_factory=list)
    purposes: list[str] = field(default_factory=list)
    min_age: int | None = None
    survey_version: int | None = None
    survey: dict[str, Any] | None = None
    # Consent.
    shown_text: ShownText | None = None
    consent: Consent | None = None
    after_renewal: str | None = None  # where to go once an expired consent is renewed
    # Answering.
    answers: dict[str, Any] = field(default_factory=dict)
    declined: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # content warnings read
    section: str | None = None
    resume: SavedProgress | None = None
    # After sending.
    submitted: Submitted | None = None
    contact_given: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ParticipantState:
        """The state held in a session's JSON (missing keys take their defaults)."""
        consent, shown = raw.get("consent"), raw.get("shown_text")
        resume, submitted = raw.get("resume"), raw.get("submitted")
        return cls(
            lang=raw.get("lang"),
            pseudonym=raw.get("pseudonym"),
            consultation_id=raw.get("consultation_id"),
            title=raw.get("title"),
            titles=raw.get("titles"),
            descriptions=raw.get("descriptions"),
            languages=list(raw.get("languages") or []),
            purposes=list(raw.get("purposes") or []),
            min_age=raw.get("min_age"),
            survey_version=raw.get("survey_version"),
            survey=raw.get("survey"),
            shown_text=ShownText.from_dict(shown) if shown else None,
            consent=Consent.from_dict(consent) if consent else None,
            after_renewal=raw.get("after_renewal"),
            answers=dict(raw.get("answers") or {}),
            declined=list(raw.get("declined") or []),
            acknowledged=list(raw.get("acknowledged") or []),
            section=raw.get("section"),
            resume=SavedProgress.from_dict(resume) if resume else None,
            submitted=Submitted.from_dict(submitted) if submitted else None,
            contact_given=bool(raw.get("contact_given")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON the session store seals."""
        return {
            "lang": self.lang,
            "pseudonym": self.pseudonym,
            "consultation_id": self.consultation_id,
            "title": self.title,
            "titles": self.titles,
            "descriptions": self.descriptions,
            "languages": self.languages,
            "purposes": self.purposes,
            "min_age": self.min_age,
            "survey_version": self.survey_version,
            "survey": self.survey,
            "shown_text": _plain(self.shown_text),
            "consent": _plain(self.consent),
            "after_renewal": self.after_renewal,
            "answers": self.answers,
            "declined": self.declined,
            "acknowledged": self.acknowledged,
            "section": self.section,
            "resume": _plain(self.resume),
            "submitted": _plain(self.submitted),
            "contact_given": self.contact_given,
        }

    @property
    def survey_languages(self) -> list[str]:
        """The languages to fall back on for survey texts: the survey's own, else the consultation's."""
        return list((self.survey or {}).get("languages") or self.languages)

    def forget_answers(self) -> None:
        """Sent: the answers leave the session; what remains is what the receipt page shows."""
        self.answers, self.declined, self.acknowledged = {}, [], []
        self.resume, self.section, self.survey = None, None, None


def _plain(value: Consent | ShownText | SavedProgress | Submitted | None) -> dict[str, Any] | None:
    return None if value is None else dict(vars(value))
