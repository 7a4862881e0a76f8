"""Insights API: thin views over the aggregation service layer (`releases`) and domain."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from services.aggregation import releases as svc
from services.aggregation import repository
from services.aggregation.models import ContributionDocument, Release
from services.aggregation.repository import ConsultationRecord
from services.aggregation.schemas import (
    CrosstabQuerySchema,
    ExportQuerySchema,
    FreshnessSchema,
    PrivacyBudgetSchema,
    ProgressSchema,
    QuotesSchema,
    ReleaseCreatedSchema,
    ReleasedListSchema,
    ReleaseHistorySchema,
    ReleaseRequestSchema,
    ResultSchema,
    SnapshotSchema,
)
from services.aggregation.snapshots import snapshot_csv, snapshot_json
from shared.auth import require_same_organisation, require_staff
from shared.errors import NotFound
from shared.events import isoformat, utcnow
from shared.runtime import current_runtime

insights = Blueprint(
    "insights", __name__, url_prefix="/api/v1/insights", description="Aggregated insights"
)
releases_blp = Blueprint(
    "releases",
    __name__,
    url_prefix="/api/v1/releases",
    description="Releasing a consultation's next snapshot",
)

READERS = ("policy", "organiser", "admin")


def _own_consultation(consultation_id: str) -> ConsultationRecord:
    principal = require_staff("organiser")
    meta = repository.consultation_record(consultation_id)
    if meta is None:
        raise NotFound("No such resource.")
    require_same_organisation(principal, meta.organisation_id)
    return meta


@insights.route("/consultations/<consultation_id>/progress")
class Progress(MethodView):
    @insights.response(200, ProgressSchema)
    def get(self, consultation_id: str) -> Any:
        """Live count of counted responses (organisers watch progress; no cells, no answers)."""
        _own_consultation(consultation_id)
        counted = ContributionDocument.objects(consultation_id=consultation_id)
        latest = counted.order_by("-counted_at").only("counted_at").first()
        return {
            "consultation_id": consultation_id,
            "responses_counted": counted.count(),
            # The store hands back naive datetimes; they are UTC.
            "last_counted_at": isoformat(latest.counted_at.replace(tzinfo=UTC)) if latest else None,
            "as_of": isoformat(utcnow()),
        }


@insights.route("/consultations/<consultation_id>/privacy-budget")
class PrivacyBudget(MethodView):
    @insights.response(200, PrivacyBudgetSchema)
    def get(self, consultation_id: str) -> Any:
        """The consultation's differential-privacy budget: its total, what each released snapshot spent, what is left.

        `epsilon_total` and `remaining` are null when the consultation offers no differential privacy.
        """
        return svc.privacy_budget(_own_consultation(consultation_id))


@insights.route("/consultations/<consultation_id>/releases")
class ReleaseHistory(MethodView):
    @insights.response(200, ReleaseHistorySchema)
    def get(self, consultation_id: str) -> Any:
        """Every released snapshot of the consultation, newest first, with who signed it off, k and
        what remains of the privacy budget (organisers of its organisation)."""
        return svc.release_history(_own_consultation(consultation_id))


@insights.route("/consultations/<consultation_id>/freshness")
class Freshness(MethodView):
    @insights.response(200, FreshnessSchema)
    def get(self, consultation_id: str) -> Any:
        """How long answers take to be counted: p50/p95 of submitted -> counted, in seconds."""
        _own_consultation(consultation_id)
        return svc.freshness(consultation_id)


@releases_blp.route("")
class Releases(MethodView):
    @releases_blp.arguments(ReleaseRequestSchema)
    @releases_blp.response(201, ReleaseCreatedSchema)
    def post(self, body):
        """Release the next snapshot (organisers of the owning organisation): suppressed, optionally noisy.

        409 when `epsilon` is given and the consultation offers no differential privacy (it opened
        without an epsilon budget), when it is missing and the consultation has a budget (every
        release spends from it), or when the budget cannot pay the requested epsilon (`remaining`
        says what is left).
        """
        principal = require_staff("organiser")
        runtime = current_runtime(current_app)
        record = svc.release(
            body["consultation_id"],
            principal,
            epsilon=body["epsilon"],
            topic=runtime.settings.topics.releases,
        )
        runtime.after_commit()
        out = svc.summary(record)
        out["contributors"] = record.content["contributors"]
        out["privacy"] = record.content["disclosure"]["differential_privacy"]
        meta = repository.consultation_record(record.consultation_id)
        out["epsilon_remaining"] = None if meta is None else svc.remaining_epsilon(meta)
        return out


@insights.route("/consultations")
class Released(MethodView):
    @insights.response(200, ReleasedListSchema)
    def get(self):
        """Released consultations this caller may read (own organisation and partner organisations)."""
        principal = require_staff(*READERS)
        return {"releases": svc.released_consultations(principal)}


def _latest(consultation_id: str) -> Release:
    principal = require_staff(*READERS)
    return svc.latest_release(consultation_id, principal)


@insights.route("/consultations/<consultation_id>")
class LatestSnapshot(MethodView):
    @insights.response(200, SnapshotSchema)
    def get(self, consultation_id: str) -> Any:
        """The latest released snapshot with its release date; never unreleased figures."""
        r = _latest(consultation_id)
        return {"release": svc.summary(r), "snapshot": r.content}


@insights.route("/consultations/<consultation_id>/questions/<question_id>")
class QuestionResult(MethodView):
    @insights.response(200, ResultSchema)
    def get(self, consultation_id: str, question_id: str) -> dict[str, Any]:
        """One question of the latest release: each category's count and percentage, or why it is suppressed."""
        r = _latest(consultation_id)
        return {
            "release": svc.summary(r),
            "k": r.content["k"],
            "result": svc.question_result(r.content, question_id),
            "wording": svc.wording_of(r.content, [question_id]),
        }


@insights.route("/consultations/<consultation_id>/questions/<question_id>/crosstab")
class CrosstabResult(MethodView):
    @insights.arguments(CrosstabQuerySchema, location="query")
    @insights.response(200, ResultSchema)
    def get(self, query: dict[str, Any], consultation_id: str, question_id: str) -> dict[str, Any]:
        """A question by one or two breakdown dimensions (`by=region` or `by=region,age`)."""
        r = _latest(consultation_id)
        result = svc.crosstab_result(r.content, question_id, query["by"].split(","))
        return {
            "release": svc.summary(r),
            "k": r.content["k"],
            "result": result,
            "wording": svc.wording_of(r.content, [question_id, *result["dimensions"]]),
        }


_CSV_DOC = {
    "responses": {
        "200": {
            "description": "The latest release as CSV (suppressed values are empty)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
}
_JSON_DOC = {
    "responses": {
        "200": {
            "description": "The latest release as canonical JSON (its digest covers it)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
}


def _download(body: str, mimetype: str, r: Release, extension: str) -> Response:
    name = f"{r.consultation_id}-snapshot-{r.snapshot}.{extension}"
    return Response(
        body,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Snapshot-Digest": r.digest,
        },
    )


@insights.route("/consultations/<consultation_id>/export.csv")
class ExportCsv(MethodView):
    @insights.doc(**_CSV_DOC)
    @insights.arguments(ExportQuerySchema, location="query")
    def get(self, query: dict[str, Any], consultation_id: str) -> Any:
        """CSV export of the latest release: every figure with its words (in `lang` when the
        release has it), its percentage base, the meaning of its mark, k, the release date and
        whether noise was added (with epsilon)."""
        r = _latest(consultation_id)
        return _download(snapshot_csv(r.content, query["lang"]), "text/csv", r, "csv")


@insights.route("/consultations/<consultation_id>/export.json")
class ExportJson(MethodView):
    @insights.doc(**_JSON_DOC)
    def get(self, consultation_id: str) -> Any:
        """JSON export of the latest release (canonical JSON: recompute the SHA-256 digest to verify)."""
        r = _latest(consultation_id)
        return _download(snapshot_json(r.content), "application/json", r, "json")


@insights.route("/consultations/<consultation_id>/quotes")
class Quotes(MethodView):
    @insights.response(200, QuotesSchema)
    def get(self, consultation_id: str) -> Any:
        """Approved anonymised quotes of a released consultation (quote consent, organiser approval)."""
        r = _latest(consultation_id)
        return {"release": svc.summary(r), "quotes": svc.approved_quotes(consultation_id)}
