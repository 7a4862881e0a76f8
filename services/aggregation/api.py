"""Insights API: thin views over the aggregation domain."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.aggregation.models import ConsultationMeta, Contribution
from services.aggregation.schemas import ProgressSchema
from shared.errors import NotFound
from shared.events import isoformat, utcnow

insights = Blueprint("insights", __name__, url_prefix="/api/v1/insights", description="Aggregated insights")


@insights.route("/consultations/<consultation_id>/progress")
class Progress(MethodView):
    @insights.response(200, ProgressSchema)
    def get(self, consultation_id: str):
        """Live count of counted responses (organisers watch progress; no cells, no answers)."""
        if ConsultationMeta.objects(consultation_id=consultation_id).first() is None:
            raise NotFound("No such consultation is known to the insights service yet.")
        return {"consultation_id": consultation_id,
                "responses_counted": Contribution.objects(consultation_id=consultation_id).count(),
                "as_of": isoformat(utcnow())}
