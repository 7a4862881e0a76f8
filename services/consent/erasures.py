"""Did erasures follow withdrawals? An auditor's report computed from ledger entries alone.

A full withdrawal (``consent.withdrawn`` with ``all`` true) must lead the
surveys service to erase the participant's responses and shred their key.
It confirms that with a ``withdrawal.processed`` entry (pseudonym, how many
responses were erased, whether the key is shredded), also when the
participant had stored nothing; each erased response also comes back as a
``response.erased`` entry. This module pairs these entries with the
withdrawal by (consultation, pseudonym), so the report can be recomputed by
anyone holding an export.

Pure module: plain entries in, plain data out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

WITHDRAWN, ERASED, PROCESSED = "consent.withdrawn", "response.erased", "withdrawal.processed"
KINDS = (WITHDRAWN, ERASED, PROCESSED)


def erasure_report(
    entries: Iterable[Mapping[str, Any]], consultation_id: str | None = None
) -> dict[str, Any]:
    """Every full withdrawal in ``entries`` (ledger entries in seq order) and the entries confirming it.

    A ``withdrawal.processed`` of the same participant in the same
    consultation confirms a withdrawal whether the ledger records it after
    or before the withdrawal: the ledger's consumer reads the consent and
    responses topics independently, so the confirmation an earlier
    withdrawal caused may be appended first. The same holds for an erasure
    with reason "withdrawal"; an erasure "for retention" recorded before the
    withdrawal confirms nothing about it. Ledgers written before
    ``withdrawal.processed`` existed are confirmed by erasures alone.

    Returns {"withdrawals": [{seq, at, grant_id, pseudonym, consultation_id,
    withdrawn_at, confirmed, responses_erased, key_shredded, processing:
    [{seq, responses_erased, key_shredded, processed_at, after_withdrawal}],
    erasures: [{seq, response_id, reason, erased_at, after_withdrawal}]}],
    "confirmed": n, "unconfirmed": n}, withdrawals in ledger order.
    ``responses_erased`` and ``key_shredded`` are those of the latest
    confirming ``withdrawal.processed``; without one, ``responses_erased``
    is the number of confirming erasures and ``key_shredded`` is None.
    ``consultation_id`` limits the report to one consultation. An
    unconfirmed withdrawal has not been carried out yet.
    """
    withdrawals: list[dict[str, Any]] = []
    erasures: dict[tuple[str, str], list[dict[str, Any]]] = {}
    processing: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in entries:
        kind, data = entry["kind"], entry["data"]
        if kind not in KINDS:
            continue
        if consultation_id is not None and data.get("consultation_id") != consultation_id:
            continue
        key = (data["consultation_id"], data["pseudonym"])
        if kind == WITHDRAWN and data.get("all"):
            withdrawals.append(
                {
                    "seq": entry["seq"],
                    "at": entry["at"],
                    "grant_id": data["grant_id"],
                    "pseudonym": data["pseudonym"],
                    "consultation_id": data["consultation_id"],
                    "withdrawn_at": data["withdrawn_at"],
                    "key": key,
                }
            )
        elif kind == ERASED:
            erasures.setdefault(key, []).append(
                {
                    "seq": entry["seq"],
                    "response_id": data["response_id"],
                    "reason": data["reason"],
                    "erased_at": data["erased_at"],
                }
            )
        elif kind == PROCESSED:
            processing.setdefault(key, []).append(
                {
                    "seq": entry["seq"],
                    "responses_erased": data["responses_erased"],
                    "key_shredded": data["key_shredded"],
                    "processed_at": data["processed_at"],
                }
            )
    confirmed = 0
    for item in withdrawals:
        key = item.pop("key")
        found = [
            {**e, "after_withdrawal": e["seq"] > item["seq"]}
            for e in erasures.get(key, ())
            if e["seq"] > item["seq"] or e["reason"] == "withdrawal"
        ]
        processed = [
            {**p, "after_withdrawal": p["seq"] > item["seq"]} for p in processing.get(key, ())
        ]
        latest = processed[-1] if processed else None
        item["erasures"], item["processing"] = found, processed
        item["confirmed"] = bool(processed or found)
        item["responses_erased"] = latest["responses_erased"] if latest else len(found)
        item["key_shredded"] = latest["key_shredded"] if latest else None
        confirmed += item["confirmed"]
    return {
        "withdrawals": withdrawals,
        "confirmed": confirmed,
        "unconfirmed": len(withdrawals) - confirmed,
    }
