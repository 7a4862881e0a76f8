"""Releases and what policy users may read (service layer: models + domain, no Flask).

Release order: counted_contributions -> tabulate -> (DP: spend_privacy_budget,
add_laplace_noise) -> protect_tables -> build_snapshot. Only the snapshot
document ever leaves the service; the exact counts stay in memory.

Differential privacy is per consultation: its organisers set an epsilon budget
before it opened (consultation.published carries it); without one, releases
with noise are refused.
"""
from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

from mongoengine.errors import NotUniqueError

from services.aggregation import disclosure, projection, snapshots
from services.aggregation.handlers import stored_meta
from services.aggregation.models import ConsultationMeta, Contribution, PrivacyBudgetDocument, Quote, Release, Tombstone
from shared.auth import Principal
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import Envelope, isoformat

def current_tables(consultation_id: str) -> projection.Tables:
    """Exact contributor counts of a consultation now (never to be shown as they are).

    Raises NotFound before consultation.published has arrived.
    """
    meta = stored_meta(consultation_id)
    if meta is None:
        raise NotFound("No such resource.")
    contributions = (projection.contribution_from_document({**d, "response_id": d["_id"]})
                     for d in Contribution.objects(consultation_id=consultation_id).as_pymongo())
    tombstones = [projection.tombstone_from_document(d)
                  for d in Tombstone.objects(consultation_id=consultation_id).as_pymongo()]
    counted = projection.counted_contributions(contributions, tombstones)
    return projection.tabulate(counted, meta.questions, consultation_id=consultation_id)


def _budget(consultation_id: str, total: float) -> tuple[disclosure.PrivacyBudget, int]:
    """The consultation's budget `total` with what its snapshots spent so far, and the stored revision."""
    doc = PrivacyBudgetDocument.objects(consultation_id=consultation_id).first()
    if doc is None:
        try:
            PrivacyBudgetDocument(consultation_id=consultation_id, spent=[], revision=0).save(force_insert=True)
        except NotUniqueError:
            pass  # created concurrently
        doc = PrivacyBudgetDocument.objects(consultation_id=consultation_id).first()
    budget = disclosure.privacy_budget_from_document(
        {"consultation_id": consultation_id, "epsilon_total": total, "spent": doc.spent})
    return budget, doc.revision


def spend(consultation_id: str, epsilon: float, snapshot: int, total: float) -> disclosure.PrivacyBudget:
    """Spend `epsilon` of the consultation's budget `total` for `snapshot` (compare-and-set on the revision).

    Raises Conflict (409) when the budget would be exceeded or another release spent concurrently.
    """
    budget, revision = _budget(consultation_id, total)
    after = disclosure.spend_privacy_budget(budget, epsilon, snapshot)
    if after == budget:
        return after  # this snapshot already paid (a retried release)
    # $push keeps the earlier entries as stored, with their times.
    entry = {"snapshot": snapshot, "epsilon": float(epsilon), "at": isoformat(datetime.now(timezone.utc))}
    changed = PrivacyBudgetDocument.objects(consultation_id=consultation_id, revision=revision).update_one(
        push__spent=entry, inc__revision=1)
    if not changed:
        raise Conflict("another release spent privacy budget at the same time; try again",
                       consultation_id=consultation_id)
    return after


def privacy_budget(meta: ConsultationMeta) -> dict[str, Any]:
    """The consultation's epsilon budget, what each snapshot spent (oldest first, with when) and what is left.

    `epsilon_total` and `remaining` are None when differential privacy is not offered.
    """
    cid = meta.consultation_id
    doc = PrivacyBudgetDocument.objects(consultation_id=cid).first()
    entries = sorted(doc.spent if doc is not None else [], key=lambda e: int(e["snapshot"]))
    spent = [{"snapshot": int(e["snapshot"]), "epsilon": float(e["epsilon"]), "at": e["at"]} for e in entries]
    budget = disclosure.privacy_budget_from_document(
        {"consultation_id": cid, "epsilon_total": meta.epsilon_budget or 0.0, "spent": spent})
    offered = meta.epsilon_budget is not None
    return {"consultation_id": cid, "epsilon_total": meta.epsilon_budget, "epsilon_spent": budget.epsilon_spent,
            "remaining": budget.remaining if offered else None, "spent": spent}


def remaining_epsilon(meta: ConsultationMeta) -> float | None:
    """What is left of the consultation's privacy budget; None when differential privacy is not offered."""
    return privacy_budget(meta)["remaining"]


def release(consultation_id: str, principal: Principal, *, epsilon: float | None, topic: str) -> Release:
    """Build, store and announce the next snapshot of a consultation (organiser of its organisation).

    With `epsilon`, the snapshot carries noise and spends that much of the consultation's budget.
    Returns the stored Release, whose release.published event the outbox relay sends.
    Raises NotFound (unknown or another organisation's consultation), Conflict (differential privacy
    not offered for the consultation, privacy budget exhausted, or a concurrent release took the
    snapshot number), ValidationFailed (bad epsilon).
    """
    doc = ConsultationMeta.objects(consultation_id=consultation_id).first()
    if doc is None or (principal.role != "admin" and principal.organisation_id != doc.organisation_id):
        raise NotFound("No such resource.")
    last = Release.objects(consultation_id=consultation_id).order_by("-snapshot").only("snapshot").first()
    number = 1 if last is None else last.snapshot + 1
    tables = current_tables(consultation_id)
    if epsilon is not None:
        if doc.epsilon_budget is None:
            raise Conflict("differential privacy is not offered for this consultation: it opened without an epsilon "
                           "budget; release without epsilon", consultation_id=consultation_id, remaining=0.0,
                           requested=epsilon)
        spend(consultation_id, epsilon, number, doc.epsilon_budget)
        tables = disclosure.add_laplace_noise(tables, epsilon)
    protection = disclosure.protect_tables(tables, doc.min_cell_size)
    now = datetime.now(timezone.utc)
    released_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what MongoDB keeps
    content = snapshots.build_snapshot(tables, protection, consultation_id=consultation_id, snapshot=number,
                                       created_at=isoformat(released_at))
    record = Release(release_id=f"rel_{uuid.uuid4().hex}", consultation_id=consultation_id,
                     organisation_id=doc.organisation_id, title=doc.title, snapshot=number,
                     signed_off_by=principal.subject or "unknown", released_at=released_at,
                     digest=content["digest"], epsilon=epsilon, content=content)
    record.stage(topic, Envelope(type="release.published", key=consultation_id, producer="aggregation", payload={
        "release_id": record.release_id, "consultation_id": consultation_id, "snapshot": number,
        "signed_off_by": record.signed_off_by, "released_at": isoformat(released_at), "digest": record.digest}))
    try:
        record.save(force_insert=True)
    except NotUniqueError as exc:
        raise Conflict("another release of this consultation was made at the same time; try again",
                       consultation_id=consultation_id) from exc
    return record


def readable_organisations(principal: Principal) -> set[str] | None:
    """Organisations whose releases `principal` may read; None means every one (admin)."""
    if principal.role == "admin":
        return None
    return {o for o in (principal.organisation_id, *principal.readable_organisations) if o}


def released_consultations(principal: Principal) -> list[dict[str, Any]]:
    """The latest release of every consultation the principal may read, newest first."""
    orgs = readable_organisations(principal)
    query = Release.objects if orgs is None else Release.objects(organisation_id__in=sorted(orgs))
    latest: dict[str, Release] = {}
    for r in query.only("release_id", "consultation_id", "organisation_id", "title", "snapshot", "released_at",
                        "digest", "signed_off_by"):
        if r.consultation_id not in latest or r.snapshot > latest[r.consultation_id].snapshot:
            latest[r.consultation_id] = r
    return sorted((summary(r) for r in latest.values()), key=lambda s: s["released_at"], reverse=True)


def summary(r: Release) -> dict[str, Any]:
    released_at = r.released_at if r.released_at.tzinfo else r.released_at.replace(tzinfo=timezone.utc)
    return {"release_id": r.release_id, "consultation_id": r.consultation_id, "title": r.title,
            "snapshot": r.snapshot, "released_at": isoformat(released_at), "digest": r.digest,
            "signed_off_by": r.signed_off_by}


def latest_release(consultation_id: str, principal: Principal) -> Release:
    """The latest released snapshot the principal may read.

    Raises NotFound when the consultation is unknown, of an organisation the principal may not
    read, or (for anyone but its own organisers) not yet released; Conflict for its organisers
    when nothing has been released yet.
    """
    orgs = readable_organisations(principal)
    latest = Release.objects(consultation_id=consultation_id).order_by("-snapshot").first()
    if latest is not None:
        if orgs is not None and latest.organisation_id not in orgs:
            raise NotFound("No such resource.")
        return latest
    meta = ConsultationMeta.objects(consultation_id=consultation_id).first()
    if meta is not None and principal.role in ("organiser", "admin") and (orgs is None or meta.organisation_id in orgs):
        raise Conflict("nothing released yet: an organiser must release a snapshot first",
                       consultation_id=consultation_id)
    raise NotFound("No such resource.")


def question_result(snapshot: dict[str, Any], question_id: str) -> dict[str, Any]:
    """One question's published result from a snapshot. Raises NotFound."""
    for q in snapshot["questions"]:
        if q["question_id"] == question_id:
            return q
    withheld = {w["question_id"]: w["reason"] for w in snapshot.get("withheld_questions", [])}
    if question_id in withheld:
        raise NotFound(f"question {question_id} is withheld: {withheld[question_id]}")
    raise NotFound("No such question in this release.")


def crosstab_result(snapshot: dict[str, Any], question_id: str, dimensions: Iterable[str]) -> dict[str, Any]:
    """The cross-tab of a question by one or two dimensions from a snapshot.

    Raises ValidationFailed without a dimension or with more than two, NotFound when the
    snapshot has no such table.
    """
    dims = [d for d in dimensions if d]
    if not 1 <= len(dims) <= 2:
        raise ValidationFailed("give one or two breakdown dimensions", errors={"by": ["one or two dimensions"]})
    kind = "crosstabs" if len(dims) == 1 else "crosstabs2"
    wanted = sorted(dims)
    for t in snapshot[kind]:
        if t["question_id"] == question_id and sorted(t["dimensions"]) == wanted:
            return t
    raise NotFound("No such cross-tab in this release: dimensions are the questions flagged as breakdowns.")


def approved_quotes(consultation_id: str) -> list[dict[str, Any]]:
    """Approved, unrevoked quotes of a consultation, without pseudonyms, oldest approval first."""
    quotes = Quote.objects(consultation_id=consultation_id, revoked=False, text__ne=None).order_by("approved_at")
    return [{"quote_id": q.quote_id, "question_id": q.question_id, "text": q.text, "approved_at": q.approved_at}
            for q in quotes]


def freshness(consultation_id: str) -> dict[str, Any]:
    """p50 and p95 of submitted_at -> counted_at over the consultation's counted contributions (seconds)."""
    delays = []
    for d in Contribution.objects(consultation_id=consultation_id).only("submitted_at", "counted_at").as_pymongo():
        try:
            submitted = datetime.fromisoformat(str(d.get("submitted_at")).replace("Z", "+00:00"))
        except ValueError:
            continue
        counted = d.get("counted_at")
        if counted is None:
            continue
        if counted.tzinfo is None:
            counted = counted.replace(tzinfo=timezone.utc)
        if submitted.tzinfo is None:
            submitted = submitted.replace(tzinfo=timezone.utc)
        delays.append(max(0.0, (counted - submitted).total_seconds()))
    delays.sort()

    def pct(q: float) -> float | None:
        if not delays:
            return None
        return round(delays[max(0, math.ceil(q * len(delays)) - 1)], 3)  # nearest rank
    return {"consultation_id": consultation_id, "responses": len(delays), "p50_seconds": pct(0.5),
            "p95_seconds": pct(0.95)}
