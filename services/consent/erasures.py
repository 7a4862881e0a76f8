"""Did erasures follow withdrawals? An auditor's report computed from ledger entries alone.

A full withdrawal (``consent.withdrawn`` with ``all`` true) must lead the
surveys service to erase the participant's responses and shred their key;
each erased response comes back as a ``response.erased`` ledger entry. This
module pairs the two kinds of entry by (consultation, pseudonym), so the
report can be recomputed by anyone holding an export.

Pure module: plain entries in, plain data out.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

WITHDRAWN, ERASED = "consent.withdrawn", "response.erased"


def erasure_report(entries: Iterable[Mapping[str, Any]], consultation_id: str | None = None) -> dict[str, Any]:
    """Every full withdrawal in ``entries`` (ledger entries in seq order) and the erasures confirming it.

    An erasure of the same participant in the same consultation confirms a
    withdrawal when the ledger records it after the withdrawal, or records
    it with reason "withdrawal" before it: the ledger's consumer reads the
    consent and responses topics independently, so the erasure an earlier
    withdrawal caused may be appended first. An erasure "for retention"
    recorded before the withdrawal confirms nothing about it.

    Returns {"withdrawals": [{seq, at, grant_id, pseudonym, consultation_id,
    withdrawn_at, confirmed, erasures: [{seq, response_id, reason,
    erased_at, after_withdrawal}]}], "confirmed": n, "unconfirmed": n},
    withdrawals in ledger order. ``consultation_id`` limits the report to
    one consultation. A withdrawal without confirmation is either not yet
    carried out or concerns a participant who had stored no response: the
    ledger alone cannot tell these apart (see the API documentation).
    """
    withdrawals: list[dict[str, Any]] = []
    erasures: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in entries:
        kind, data = entry["kind"], entry["data"]
        if kind not in (WITHDRAWN, ERASED):
            continue
        if consultation_id is not None and data.get("consultation_id") != consultation_id:
            continue
        key = (data["consultation_id"], data["pseudonym"])
        if kind == WITHDRAWN and data.get("all"):
            withdrawals.append({"seq": entry["seq"], "at": entry["at"], "grant_id": data["grant_id"],
                                "pseudonym": data["pseudonym"], "consultation_id": data["consultation_id"],
                                "withdrawn_at": data["withdrawn_at"], "key": key})
        elif kind == ERASED:
            erasures.setdefault(key, []).append({"seq": entry["seq"], "response_id": data["response_id"],
                                                 "reason": data["reason"], "erased_at": data["erased_at"]})
    confirmed = 0
    for item in withdrawals:
        found = [{**e, "after_withdrawal": e["seq"] > item["seq"]}
                 for e in erasures.get(item.pop("key"), ())
                 if e["seq"] > item["seq"] or e["reason"] == "withdrawal"]
        item["erasures"], item["confirmed"] = found, bool(found)
        confirmed += bool(found)
    return {"withdrawals": withdrawals, "confirmed": confirmed, "unconfirmed": len(withdrawals) - confirmed}
