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
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from mongoengine.errors import NotUniqueError

from services.aggregation import disclosure, projection, repository, snapshots, tabulation
from services.aggregation.models import ContributionDocument, Quote, Release
from services.aggregation.repository import ConsultationRecord
from services.aggregation.tables import CellKey, Tables
from shared.auth import Principal
from shared.dead_letters import MongoDeadLetters
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import Envelope, isoformat


def current_tables(consultation_id: str) -> Tables:
    """Exact contributor counts of a consultation now (never to be shown as they are).

    Raises NotFound before consultation.published has arrived.
    """
    meta = repository.consultation_meta(consultation_id)
    if meta is None:
        raise NotFound("No such resource.")
    counted = projection.counted_contributions(
        repository.contributions_of(consultation_id), repository.tombstones_of(consultation_id)
    )
    return tabulation.tabulate(counted, meta.questions, consultation_id=consultation_id)


# Concurrent releases retry their compare-and-set; each attempt is one read and one conditional write.
_SPEND_ATTEMPTS = 50


def _append_spend(
    consultation_id: str,
    entry_of: Callable[
        [disclosure.PrivacyBudget, int], tuple[disclosure.PrivacyBudget, dict[str, Any]]
    ],
    total: float,
) -> tuple[disclosure.PrivacyBudget, int]:
    """Append one entry to the budget with a compare-and-set on its revision, retrying when another
    release wrote first. `entry_of(budget, next_snapshot)` checks and returns (budget after, entry).
    Returns (budget after, snapshot number of the entry). Raises what `entry_of` raises, or Conflict."""
    for _ in range(_SPEND_ATTEMPTS):
        budget, revision = repository.privacy_budget(consultation_id, total)
        taken = max([repository.last_snapshot(consultation_id), *(s for s, _ in budget.spent)])
        after, entry = entry_of(budget, taken + 1)
        entry = {**entry, "at": isoformat(datetime.now(UTC))}
        if repository.append_budget_entry(consultation_id, revision, entry):
            return after, entry["snapshot"]
    raise Conflict(
        "too many releases spent privacy budget at the same time; try again",
        consultation_id=consultation_id,
    )


def spend(
    consultation_id: str, epsilon: float, total: float
) -> tuple[disclosure.PrivacyBudget, int]:
    """Charge `epsilon` to the consultation's budget `total` for the next snapshot number.

    Concurrent releases are serialized by the budget document's revision: each
    is charged exactly its own epsilon and gets its own snapshot number (the
    number is reserved by the charge, so two noisy releases never share one).
    Returns (budget after, snapshot number). Raises Conflict (409) when the
    budget cannot pay, ValidationFailed for a bad epsilon.
    """

    def charge(budget, number):
        after = disclosure.spend_privacy_budget(budget, epsilon, number)
        return after, {"snapshot": number, "epsilon": float(epsilon)}

    return _append_spend(consultation_id, charge, total)


def refund(consultation_id: str, epsilon: float, snapshot: int, total: float) -> None:
    """Record that `snapshot` was not stored after all: a negative entry, so the ledger keeps both
    and what is spent equals what was published (entries are only ever appended)."""

    def give_back(budget, _next):
        entry = {"snapshot": snapshot, "epsilon": -float(epsilon), "refund": True}
        return budget, entry

    _append_spend(consultation_id, give_back, total)


def privacy_budget(meta: ConsultationRecord) -> dict[str, Any]:
    """The consultation's epsilon budget, what each snapshot spent (oldest first, with when) and what is left.

    `epsilon_total` and `remaining` are None when differential privacy is not offered.
    """
    cid = meta.consultation_id
    entries = repository.budget_entries(cid)
    net = disclosure.net_spent((int(e["snapshot"]), float(e["epsilon"])) for e in entries)
    when = {int(e["snapshot"]): e["at"] for e in entries if float(e["epsilon"]) > 0}
    spent = [{"snapshot": s, "epsilon": net[s], "at": when[s]} for s in sorted(net)]
    budget = disclosure.privacy_budget_from_document(
        {"consultation_id": cid, "epsilon_total": meta.epsilon_budget or 0.0, "spent": spent}
    )
    offered = meta.epsilon_budget is not None
    return {
        "consultation_id": cid,
        "epsilon_total": meta.epsilon_budget,
        "epsilon_spent": budget.epsilon_spent,
        "remaining": budget.remaining if offered else None,
        "spent": spent,
    }


def remaining_epsilon(meta: ConsultationRecord) -> float | None:
    """What is left of the consultation's privacy budget; None when differential privacy is not offered."""
    return privacy_budget(meta)["remaining"]


def earlier_figures(consultation_id: str) -> list[dict[CellKey, int]]:
    """What every earlier snapshot of the consultation published, by cell key (oldest first)."""
    return [
        snapshots.published_figures(content)
        for content in repository.snapshot_contents(consultation_id)
    ]


def release(
    consultation_id: str, principal: Principal, *, epsilon: float | None, topic: str
) -> Release:
    """Build, store and announce the next snapshot of a consultation (organiser of its organisation).

    On a consultation with a privacy budget every release carries noise and
    spends `epsilon` from it (charged before the snapshot is built, given back
    if it is not stored). Without a budget, the snapshot is exact and is
    protected jointly with what earlier snapshots published, so that no
    difference between two of them shows a change below k.
    Returns the stored Release, whose release.published event the outbox relay sends.
    Raises NotFound (unknown or another organisation's consultation), Conflict (differential privacy
    not offered for the consultation, an exact release asked of a consultation with a budget, privacy
    budget exhausted, a concurrent release took the snapshot number, or a withdrawal of the
    consultation is dead-lettered), ValidationFailed (bad epsilon).
    """
    doc = repository.consultation_record(consultation_id)
    if doc is None or (
        principal.role != "admin" and principal.organisation_id != doc.organisation_id
    ):
        raise NotFound("No such resource.")
    held = MongoDeadLetters(Release._get_db()).blocking(consultation_id)
    if held:
        # A withdrawal this service could not apply: releasing now could count a withdrawn person.
        raise Conflict(
            "a withdrawal or erasure for this consultation could not be applied yet; releases wait "
            "until an operator re-drives it (`dlq list`, `dlq redrive`)",
            consultation_id=consultation_id,
            dead_letters=held,
        )
    if epsilon is not None and doc.epsilon_budget is None:
        raise Conflict(
            "differential privacy is not offered for this consultation: it opened without an epsilon "
            "budget; release without epsilon",
            consultation_id=consultation_id,
            remaining=0.0,
            requested=epsilon,
        )
    if epsilon is None and doc.epsilon_budget is not None:
        raise Conflict(
            "this consultation has a privacy budget: every release spends from it; give epsilon",
            consultation_id=consultation_id,
            remaining=remaining_epsilon(doc),
            requested=None,
        )
    budget_total = doc.epsilon_budget or 0.0  # set whenever epsilon is (checked above)
    tables = current_tables(consultation_id)
    if epsilon is None:
        number = repository.last_snapshot(consultation_id) + 1
        protection = disclosure.protect_tables(
            tables, doc.min_cell_size, earlier=earlier_figures(consultation_id)
        )
    else:
        # Noisy snapshots are protected by the noise across releases; the budget bounds what they add up to.
        _, number = spend(consultation_id, epsilon, budget_total)
    try:
        if epsilon is not None:
            protection = disclosure.protect_tables(
                disclosure.add_laplace_noise(tables, epsilon), doc.min_cell_size
            )
        return _store_release(doc, principal, protection, number, epsilon, topic)
    except Exception:
        if epsilon is not None:
            refund(consultation_id, epsilon, number, budget_total)
        raise


def _store_release(
    doc: ConsultationRecord,
    principal: Principal,
    protection: disclosure.Protection,
    number: int,
    epsilon: float | None,
    topic: str,
) -> Release:
    consultation_id = doc.consultation_id
    now = datetime.now(UTC)
    released_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what MongoDB keeps
    content = snapshots.build_snapshot(
        protection.tables,
        protection,
        consultation_id=consultation_id,
        snapshot=number,
        created_at=isoformat(released_at),
        wording=doc.wording,
    )
    record = Release(
        release_id=f"rel_{uuid.uuid4().hex}",
        consultation_id=consultation_id,
        organisation_id=doc.organisation_id,
        title=doc.title,
        snapshot=number,
        signed_off_by=principal.subject or "unknown",
        released_at=released_at,
        digest=content["digest"],
        epsilon=epsilon,
        content=content,
    )
    record.stage(
        topic,
        Envelope(
            type="release.published",
            key=consultation_id,
            producer="aggregation",
            payload={
                "release_id": record.release_id,
                "consultation_id": consultation_id,
                "snapshot": number,
                "signed_off_by": record.signed_off_by,
                "released_at": isoformat(released_at),
                "digest": record.digest,
            },
        ),
    )
    try:
        record.save(force_insert=True)
    except NotUniqueError as exc:
        raise Conflict(
            "another release of this consultation was made at the same time; try again",
            consultation_id=consultation_id,
        ) from exc
    return record


def release_history(meta: ConsultationRecord) -> dict[str, Any]:
    """Every snapshot released of a consultation, newest first, with k and the privacy budget left."""
    budget = privacy_budget(meta)
    records = (
        Release.objects(consultation_id=meta.consultation_id)
        .order_by("-snapshot")
        .only(
            "release_id",
            "consultation_id",
            "title",
            "snapshot",
            "released_at",
            "digest",
            "signed_off_by",
            "epsilon",
            "content.contributors",
        )
    )
    return {
        "consultation_id": meta.consultation_id,
        "k": meta.min_cell_size,
        "epsilon_total": meta.epsilon_budget,
        "epsilon_remaining": budget["remaining"],
        "releases": [
            {
                **summary(r),
                "epsilon": r.epsilon,
                "contributors": (r.content or {}).get("contributors") or {},
            }
            for r in records
        ],
    }


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
    for r in query.only(
        "release_id",
        "consultation_id",
        "organisation_id",
        "title",
        "snapshot",
        "released_at",
        "digest",
        "signed_off_by",
    ):
        if r.consultation_id not in latest or r.snapshot > latest[r.consultation_id].snapshot:
            latest[r.consultation_id] = r
    return sorted(
        (summary(r) for r in latest.values()), key=lambda s: s["released_at"], reverse=True
    )


def summary(r: Release) -> dict[str, Any]:
    released_at = r.released_at if r.released_at.tzinfo else r.released_at.replace(tzinfo=UTC)
    return {
        "release_id": r.release_id,
        "consultation_id": r.consultation_id,
        "title": r.title,
        "snapshot": r.snapshot,
        "released_at": isoformat(released_at),
        "digest": r.digest,
        "signed_off_by": r.signed_off_by,
    }


def latest_release(consultation_id: str, principal: Principal) -> Release:
    """The latest released snapshot the principal may read.

    Raises NotFound when the consultation is unknown or of an organisation the principal may not
    read; Conflict ("not released yet", `release_state` "not_released") when it is one the principal
    may read but nothing has been released yet.
    """
    orgs = readable_organisations(principal)
    latest = Release.objects(consultation_id=consultation_id).order_by("-snapshot").first()
    if latest is not None:
        if orgs is not None and latest.organisation_id not in orgs:
            raise NotFound("No such resource.")
        return latest
    meta = repository.consultation_record(consultation_id)
    if meta is not None and (orgs is None or meta.organisation_id in orgs):
        raise Conflict(
            "not released yet: its organisers have not released any figures of this "
            "consultation so far",
            consultation_id=consultation_id,
            release_state="not_released",
        )
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


def crosstab_result(
    snapshot: dict[str, Any], question_id: str, dimensions: Iterable[str]
) -> dict[str, Any]:
    """The cross-tab of a question by one or two dimensions from a snapshot.

    Raises ValidationFailed without a dimension or with more than two, NotFound when the
    snapshot has no such table.
    """
    dims = [d for d in dimensions if d]
    if not 1 <= len(dims) <= 2:
        raise ValidationFailed(
            "give one or two breakdown dimensions", errors={"by": ["one or two dimensions"]}
        )
    kind = "crosstabs" if len(dims) == 1 else "crosstabs2"
    wanted = sorted(dims)
    for t in snapshot[kind]:
        if t["question_id"] == question_id and sorted(t["dimensions"]) == wanted:
            return t
    raise NotFound(
        "No such cross-tab in this release: dimensions are the questions flagged as breakdowns."
    )


def wording_of(snapshot: dict[str, Any], question_ids: Iterable[str]) -> dict[str, Any]:
    """The frozen words of some questions of a snapshot (empty for snapshots made without)."""
    questions = (snapshot.get("wording") or {}).get("questions") or {}
    return {qid: questions[qid] for qid in question_ids if qid in questions}


def approved_quotes(consultation_id: str) -> list[dict[str, Any]]:
    """Approved, unrevoked quotes of a consultation, without pseudonyms, oldest approval first."""
    quotes = Quote.objects(consultation_id=consultation_id, revoked=False, text__ne=None).order_by(
        "approved_at"
    )
    return [
        {
            "quote_id": q.quote_id,
            "question_id": q.question_id,
            "text": q.text,
            "approved_at": q.approved_at,
        }
        for q in quotes
    ]


def freshness(consultation_id: str) -> dict[str, Any]:
    """p50 and p95 of submitted_at -> counted_at over the consultation's contributions counted live
    (seconds); those counted by a replay are only counted in `replayed`."""
    delays = []
    replayed = 0
    for d in (
        ContributionDocument.objects(consultation_id=consultation_id)
        .only("submitted_at", "counted_at", "replayed")
        .as_pymongo()
    ):
        if d.get("replayed"):
            replayed += 1
            continue
        try:
            submitted = datetime.fromisoformat(str(d.get("submitted_at")))
        except ValueError:
            continue
        counted = d.get("counted_at")
        if counted is None:
            continue
        if counted.tzinfo is None:
            counted = counted.replace(tzinfo=UTC)
        if submitted.tzinfo is None:
            submitted = submitted.replace(tzinfo=UTC)
        delays.append(max(0.0, (counted - submitted).total_seconds()))
    delays.sort()

    def pct(q: float) -> float | None:
        if not delays:
            return None
        return round(delays[max(0, math.ceil(q * len(delays)) - 1)], 3)  # nearest rank

    return {
        "consultation_id": consultation_id,
        "responses": len(delays),
        "replayed": replayed,
        "p50_seconds": pct(0.5),
        "p95_seconds": pct(0.95),
    }
