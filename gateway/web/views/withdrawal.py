"""Checking and withdrawing consent with a receipt code, without a session or an account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from babel.dates import format_date
from flask import request
from flask.typing import ResponseReturnValue

from gateway.web.i18n import N_
from gateway.web.participant_api import ServiceRefused
from gateway.web.views.pages import (
    PURPOSE_NAMES,
    REQUIRED_PURPOSE,
    babel_locale,
    receipt_code_refused,
    render,
    spend_code,
    web,
    web_app,
)


def _receipt_view(receipt: dict[str, Any]) -> dict[str, Any]:
    """What the pages show of a consent receipt: each purpose's status, when, and what happened since."""
    order = list(PURPOSE_NAMES)
    status = dict(
        sorted(
            (receipt.get("purposeStatus") or {}).items(),
            key=lambda item: order.index(item[0]) if item[0] in order else len(order),
        )
    )
    events = receipt.get("events") or []
    history = [
        {
            "type": event.get("eventType"),
            "date": _date(event.get("eventTime")),
            "purposes": event.get("purposes") or [],
        }
        for event in events
    ]
    return {
        "given": [p for p, s in status.items() if s == "given"],
        "withdrawn": [p for p, s in status.items() if s == "withdrawn"],
        "status": receipt.get("consentStatus"),
        "history": history,
        "granted": _date(receipt.get("consentTimestamp")),
        "erasure": _erasure_view(events),
    }


def _erasure_view(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """After a full withdrawal, whether the answers are deleted yet: {"state": "pending"}, or
    {"state": "deleted", "count": responses erased} once the surveys service confirmed it; else None."""
    full = [e for e in events if e.get("eventType") == "withdrawn" and e.get("all")]
    if not full or full[-1].get("erasureStatus") not in ("pending_confirmation", "confirmed"):
        return None
    confirmations = [e for e in events if e.get("eventType") == "erasure_confirmed"]
    if full[-1]["erasureStatus"] == "pending_confirmation" or not confirmations:
        return {"state": "pending"}
    # Each confirmation counts every response erased so far, so the latest one is the total.
    return {"state": "deleted", "count": int(confirmations[-1].get("responsesErased") or 0)}


def _date(value: Any) -> str:
    """A date in the page's language, from epoch seconds or an ISO-8601 string ('' when unreadable)."""
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value, tz=UTC)
        else:
            moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return format_date(moment.date(), format="long", locale=babel_locale())


def _lookup_receipt(code: str) -> tuple[dict[str, Any] | None, str | None]:
    """(receipt, None) or (None, the problem to show) for a typed receipt code."""
    if not code:
        return None, N_("Please write your receipt code.")
    try:
        return web_app().api.receipt(code), None
    except ServiceRefused as exc:
        return None, receipt_code_refused(exc)


@web.get("/check")
def check_form() -> ResponseReturnValue:
    return render("check.html")


@web.post("/check")
def check() -> ResponseReturnValue:
    code = (request.form.get("receipt_code") or "").strip()
    spend_code(code)
    receipt, problem = _lookup_receipt(code)
    if receipt is None:
        return render("check.html", 422, problem=problem, code=code)
    return render("check.html", receipt=_receipt_view(receipt))


@web.get("/withdraw")
def withdraw_form() -> ResponseReturnValue:
    return render("withdraw.html", step="code")


@web.post("/withdraw")
def withdraw() -> ResponseReturnValue:
    code = (request.form.get("receipt_code") or "").strip()
    spend_code(code)
    receipt, problem = _lookup_receipt(code)
    if receipt is None:
        return render("withdraw.html", 422, step="code", problem=problem, code=code)
    view = _receipt_view(receipt)
    step = request.form.get("step")
    if step not in ("confirm", "confirmed"):
        return render("withdraw.html", step="choose", code=code, receipt=view)
    scope = request.form.get("scope")
    chosen = [p for p in request.form.getlist("purpose") if p in view["given"]]
    if scope not in ("all", "some") or (scope == "some" and not chosen):
        return render(
            "withdraw.html",
            422,
            step="choose",
            code=code,
            receipt=view,
            chosen=set(chosen),
            problem=N_("Please choose everything, or tick at least one use to withdraw."),
        )
    if step == "confirm" and (scope == "all" or REQUIRED_PURPOSE in chosen):
        # Deleting the answers cannot be undone: it takes a second, explicit yes.
        return render(
            "withdraw.html", step="confirm", code=code, receipt=view, scope=scope, chosen=chosen
        )
    try:
        result = web_app().api.withdraw(code, None if scope == "all" else chosen)
    except ServiceRefused:
        return render(
            "withdraw.html",
            422,
            step="code",
            code=code,
            problem=N_("No consent matches this code. Please check it and try again."),
        )
    return render(
        "withdraw.html",
        step="done",
        result=result,
        receipt=_receipt_view(result.get("receipt") or {}),
    )
