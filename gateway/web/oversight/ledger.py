"""The consent ledger for auditors: entries paged and filtered by kind (each with its hash and its
inclusion proof), signed checkpoints, the erasure report, the export and the public key as
downloads, and how to verify them with `voices-verify-ledger`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from gateway.web.i18n import N_
from gateway.web.oversight.downloads import download
from gateway.web.staff.pages import _, add_nav, call, render, signed_in, staff_blueprint

ledger = staff_blueprint("ledger", __name__)
AUDITORS = ("auditor", "platform_auditor")
add_nav("ledger.index", N_("Consent ledger"), set(AUDITORS), order=20)
add_nav("ledger.checkpoints", N_("Checkpoints"), set(AUDITORS), order=21)
add_nav("ledger.erasures", N_("Erasure report"), set(AUDITORS), order=22)
add_nav("ledger.verify", N_("Verify an export"), set(AUDITORS), order=23)

PAGE = 25
KINDS = {
    "consent.granted": N_("Consent given"),
    "consent.withdrawn": N_("Consent withdrawn"),
    "consent_text.published": N_("Consent text published"),
    "release.signed_off": N_("Release signed off"),
    "response.erased": N_("Answers erased"),
    "withdrawal.processed": N_("Withdrawal processed"),
    "contacts.accessed": N_("Contact details read"),
}
EXPORT_NAME = "consent-ledger.jsonl"
KEY_NAME = "voices-ledger-key.pem"


def _int_arg(name: str, default: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    return int(raw) if raw.isdigit() else None


@ledger.route("/ledger")
@signed_in(*AUDITORS)
def index() -> Response:
    kind = request.args.get("kind") or ""
    start = _int_arg("start", 0)
    problems = {}
    if kind and kind not in KINDS:
        problems["kind"] = _("Choose one of the kinds listed.")
    if start is None:
        problems["start"] = _("Give a whole number from 0.")
    if problems or start is None:
        return render(
            "oversight/ledger.html",
            400,
            entries=[],
            kinds=KINDS,
            kind=kind,
            start=request.args.get("start", ""),
            problems=problems,
            size=None,
            later=None,
            earlier=None,
        )
    params: dict[str, Any] = {"start": start, "limit": PAGE}
    if kind:
        params["kind"] = kind
    page = call("GET", "/api/v1/ledger/entries", params=params)
    entries = page["entries"]
    if kind:
        later = page.get("next_start")
    else:
        later = start + PAGE if start + PAGE < page["size"] else None
    earlier = max(0, start - PAGE) if start > 0 and not kind else None
    return render(
        "oversight/ledger.html",
        entries=entries,
        kinds=KINDS,
        kind=kind,
        start=start,
        size=page["size"],
        later=later,
        earlier=earlier,
        problems={},
    )


@ledger.route("/ledger/entries/<int:seq>")
@signed_in(*AUDITORS)
def entry(seq: int) -> Response:
    proof = call("GET", f"/api/v1/ledger/proofs/inclusion/{seq}")
    return render("oversight/ledger_entry.html", proof=proof, kinds=KINDS)


@ledger.route("/ledger/checkpoints")
@signed_in(*AUDITORS)
def checkpoints() -> Response:
    signed = call("GET", "/api/v1/ledger/checkpoints")
    return render("oversight/checkpoints.html", checkpoints=list(reversed(signed)))


@ledger.route("/ledger/checkpoints/<int:tree_size>.json")
@signed_in(*AUDITORS)
def checkpoint_file(tree_size: int) -> Response:
    """One signed checkpoint as a file to keep, for `voices-verify-ledger --since` later."""
    for checkpoint in call("GET", "/api/v1/ledger/checkpoints"):
        if checkpoint.get("tree_size") == tree_size:
            response = Response(
                json.dumps(checkpoint, sort_keys=True, indent=2), mimetype="application/json"
            )
            response.headers["Content-Disposition"] = (
                f'attachment; filename="checkpoint-{tree_size}.json"'
            )
            return response
    return render(
        "staff/problem.html",
        404,
        heading=_("Not found"),
        message=_("There is no checkpoint of that size."),
    )


@ledger.route("/ledger/erasures")
@signed_in(*AUDITORS)
def erasures() -> Response:
    report = call("GET", "/api/v1/ledger/erasure-report")
    return render("oversight/erasures.html", report=report)


@ledger.route("/ledger/verify")
@signed_in(*AUDITORS)
def verify() -> Response:
    return render("oversight/verify.html", export_name=EXPORT_NAME, key_name=KEY_NAME)


@ledger.route("/ledger/" + EXPORT_NAME)
@signed_in(*AUDITORS)
def export() -> Response:
    return download("/api/v1/ledger/export", EXPORT_NAME)


@ledger.route("/ledger/" + KEY_NAME)
@signed_in(*AUDITORS)
def public_key() -> Response:
    return download("/api/v1/consent/public-key.pem", KEY_NAME)
