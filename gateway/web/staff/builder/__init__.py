"""The organiser's consultation builder: home, settings, sections and questions, translations,
XLSForm upload, versions, preview, consent texts and publishing.

Every change goes to the services as the signed-in organiser: the survey draft is changed as
plain data (staff/drafts.py) and sent back whole with PUT .../survey, so the surveys service
validates it; a refusal is shown next to the field it names, with everything typed kept in the
form. The pages are split by what they edit: consultation.py (home, survey page, settings),
questions.py (questions, sections, translations, XLSForm), consent.py (preview, consent texts),
publishing.py (the checklist).
"""

from __future__ import annotations

from gateway.web.i18n import N_
from gateway.web.staff.builder import consent, consultation, publishing, questions
from gateway.web.staff.builder.common import builder
from gateway.web.staff.pages import add_nav
from gateway.web.staff.shell import HOME_BY_ROLE

__all__ = ["builder", "consent", "consultation", "publishing", "questions"]

add_nav("builder.consultations", N_("Consultations"), {"organiser"}, order=10)
HOME_BY_ROLE["organiser"].append("builder.consultations")
