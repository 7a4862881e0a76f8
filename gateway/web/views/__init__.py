"""The participant pages: invitation, welcome, consent, survey, save and resume, renewing an expired
consent, receipt, check, withdraw.

Every page works without JavaScript: plain links and POST forms, answered with a redirect on
success (so reloading never sends a form twice) or with the same page and its problems marked.
Views are thin: they read the form, call the services through `ParticipantApi`, keep the
participant's state (`ParticipantState`) in the sealed server-side session and render a template.

One module per part of the visit; each attaches its routes to the one blueprint, `web`, that
`pages` defines with what they share.
"""

from gateway.web.views import (  # noqa: F401 (each module registers its routes on `web`)
    consent,
    contact,
    errors,
    invitation,
    renewal,
    resume,
    survey,
    withdrawal,
)
from gateway.web.views.pages import web

__all__ = ["web"]
