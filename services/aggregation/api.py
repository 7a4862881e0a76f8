"""Insights API: thin views over the aggregation domain."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.aggregation.models import ConsultationMeta, Contribution
from services.aggregation.schemas import ProgressSchema
from shared.auth import require_same_organisation, require_staff
from shared.errors import NotFound
from shared.events import isoformat, utcnow

insights = Blueprint("insights", __name__, url_prefix="/api/v1/insights", description="Aggregated insights")


@insights.route("/consultations/<consultation_id>/progress")
class Progress(MethodView):
    @insights.response(200, ProgressSchema)
    def get(self, consultation_id: str):
        """Live count of counted responses (organisers watch progress; no cells, no answers)."""
        principal = require_staff("organiser")
        meta = ConsultationMeta.objects(consultation_id=consultation_id).first()
        if meta is None:
            raise NotFound("No such resource.")
        require_same_organisation(principal, meta.organisation_id)
        return {"consultation_id": consultation_id,
                "responses_counted": Contribution.objects(consultation_id=consultation_id).count(),
                "as_of": isoformat(utcnow())}
