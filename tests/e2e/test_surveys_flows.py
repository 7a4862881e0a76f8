"""Surveys through the gateway: XLSForm upload, immutable versions, save and resume, withdrawal."""

from __future__ import annotations

import io

import openpyxl

from tests.e2e.conftest import (
    _grant,
    eventually,
    open_consultation,
    participate,
    publish_consent_then_consultation,
)

EN, AR = "label::English (en)", "label::Arabic (ar)"


def xlsform() -> bytes:
    book = openpyxl.Workbook()
    survey = book.active
    survey.title = "survey"
    for row in [
        ["type", "name", EN, AR, "relevant"],
        ["select_one yn", "got_help", "Did you get help?", "هل حصلت على مساعدة؟", None],
        ["text", "what_helped", "What helped most?", "ما الذي ساعد أكثر؟", "${got_help} = 'yes'"],
    ]:
        survey.append(row)
    choices = book.create_sheet("choices")
    for row in [
        ["list_name", "name", EN, AR],
        ["yn", "yes", "Yes", "نعم"],
        ["yn", "no", "No", "لا"],
    ]:
        choices.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsform_upload_becomes_an_immutable_version(api, organiser):
    token = organiser["token"]
    cid = api.call(
        "POST",
        "/api/v1/consultations",
        token,
        json={
            "title": "Imported",
            "languages": ["en", "ar"],
            "purposes": ["participate", "aggregate_reporting"],
        },
        expect=201,
    )["consultation_id"]
    api.call(
        "PATCH",
        f"/api/v1/consultations/{cid}",
        token,
        json={"min_cell_size": 8, "retention_days": 90},
    )
    imported = api.call(
        "POST",
        f"/api/v1/consultations/{cid}/survey/xlsform",
        token,
        files={
            "file": (
                "form.xlsx",
                xlsform(),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        },
    )
    question = imported["draft"]["sections"][0]["questions"][0]
    assert question["label"] == {"en": "Did you get help?", "ar": "هل حصلت على مساعدة؟"}
    published = publish_consent_then_consultation(
        api, token, cid, ["en", "ar"], ["participate", "aggregate_reporting"]
    )
    assert published["status"] == "open" and published["min_cell_size"] == 8

    refused = api.session.put(
        f"{api.base}/api/v1/consultations/{cid}/versions/1",
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
        json={"definition": {}},
    )
    assert refused.status_code == 409
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    locked = api.session.patch(
        f"{api.base}/api/v1/consultations/{cid}",
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
        json={"languages": ["en"]},
    )
    assert locked.status_code == 409
    [version] = api.call("GET", f"/api/v1/consultations/{cid}/versions", token)
    assert version["definition"] == imported["draft"]

    broken = api.session.post(
        f"{api.base}/api/v1/consultations/{cid}/survey/xlsform",
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
        files={"file": ("form.xlsx", b"not a workbook")},
    )
    assert broken.status_code == 422 and broken.json()["errors"]["form"][0]["reason"]


def test_progress_saved_then_withdrawn_leaves_nothing(api, organiser):
    cid, code = open_consultation(api, organiser["token"])
    opened = api.call("POST", f"/api/v1/invitations/{code}/open")
    text = eventually(
        lambda: (lambda r: r.json() if r.status_code == 200 else None)(
            api.session.get(
                f"{api.base}/api/v1/consent/consultations/{cid}/texts",
                params={"language": "en"},
                timeout=10,
            )
        )
    )
    grant = eventually(
        lambda: _grant(api, opened, cid, text["version"], ("participate", "aggregate_reporting"))
    )
    saved = api.call(
        "POST",
        "/api/v1/resume",
        json={"consent_token": grant["consent_token"], "answers": {"got_help": "no"}},
        expect=201,
    )
    resumed = api.call("POST", "/api/v1/resume/lookup", json={"resume_code": saved["resume_code"]})
    assert resumed["answers"] == {"got_help": "no"} and resumed["pseudonym"] == opened["pseudonym"]
    assert resumed["consent_token"] == grant["consent_token"]

    api.call("POST", "/api/v1/consent/withdrawals", json={"receipt_code": grant["receipt_code"]})

    def draft_gone():
        r = api.session.post(
            f"{api.base}/api/v1/resume/lookup",
            json={"resume_code": saved["resume_code"]},
            timeout=10,
        )
        return r.status_code == 404

    eventually(draft_gone)
    api.call(
        "POST",
        "/api/v1/responses",
        json={"consent_token": grant["consent_token"], "answers": {"got_help": "no"}},
        expect=403,
    )


def test_a_submitted_response_is_erased_after_withdrawal(api, organiser):
    cid, code = open_consultation(api, organiser["token"])
    done = participate(api, code, {"got_help": "yes"})

    def counted():
        r = api.session.get(
            f"{api.base}/api/v1/insights/consultations/{cid}/progress",
            timeout=10,
            headers={"Authorization": f"Bearer {organiser['token']}"},
        )
        return r.json()["responses_counted"] if r.status_code == 200 else None

    assert eventually(lambda: counted() == 1)
    api.call(
        "POST", "/api/v1/consent/withdrawals", json={"receipt_code": done["grant"]["receipt_code"]}
    )
    assert eventually(lambda: counted() == 0)
    again = api.session.post(
        f"{api.base}/api/v1/responses",
        timeout=10,
        json={"consent_token": done["grant"]["consent_token"], "answers": {"got_help": "yes"}},
    )
    assert again.status_code == 403
