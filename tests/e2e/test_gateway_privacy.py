"""What the logs of the running platform keep, and how a trace id follows a request.

A whole participant path runs through the gateway with a distinctive user agent; afterwards no
log line of any process holds the client address, that user agent, the invitation code, the
participant session, the consent token, the receipt code or the resume code.
"""

from __future__ import annotations

import json
import re
import secrets
import socket

import requests

from tests.e2e.conftest import eventually, open_consultation, publish_consent_text, staff_token

USER_AGENT = f"PrivacyProbe/{secrets.token_hex(4)} (distinctive)"


def _log_lines(stack) -> list[str]:
    lines = []
    for path in sorted(stack.log_dir.glob("*.log")):
        lines.extend(path.read_text(errors="replace").splitlines())
    return lines


def _json_lines(stack, service: str) -> list[dict]:
    out = []
    for line in (stack.log_dir / f"{service}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def _own_ports(stack) -> set[str]:
    servers = stack.kafka_bootstrap.split(",") + [stack.mongodb_uri]
    server_ports = {value.rstrip("/").rsplit(":", 1)[-1] for value in servers}
    return {str(stack.gateway_port), *server_ports, *(str(p) for p in stack.service_ports.values())}


def test_a_participant_path_leaves_no_address_agent_code_or_token_in_any_log(api, organiser, stack):
    cid, code = open_consultation(
        api,
        organiser["token"],
        purposes=("participate", "aggregate_reporting", "follow_up_contact"),
    )
    client = requests.Session()
    client.headers["User-Agent"] = USER_AGENT
    base = stack.gateway_url

    def post(path, body=None, session=None, expect=(200, 201)):
        headers = {"Authorization": f"Bearer {session}"} if session else {}
        r = client.post(base + path, json=body, headers=headers, timeout=20)
        assert r.status_code in ((expect,) if isinstance(expect, int) else expect), (
            f"{path}: {r.status_code} {r.text}"
        )
        return r.json()

    opened = post(f"/api/v1/invitations/{code}/open")
    session = opened["participant_session"]
    text = eventually(
        lambda: (lambda r: r.json() if r.status_code == 200 else None)(
            client.get(
                f"{base}/api/v1/consent/consultations/{cid}/texts",
                params={"language": "en"},
                headers={"Authorization": f"Bearer {session}"},
                timeout=10,
            )
        )
    )

    def grant():
        r = client.post(
            f"{base}/api/v1/consent/grants",
            timeout=10,
            headers={"Authorization": f"Bearer {session}"},
            json={
                "pseudonym": opened["pseudonym"],
                "consultation_id": cid,
                "language": "en",
                "purposes": ["participate", "aggregate_reporting", "follow_up_contact"],
                "text_version": text["version"],
            },
        )
        return r.json() if r.status_code == 201 else None

    granted = eventually(grant)
    saved = post(
        "/api/v1/resume", {"consent_token": granted["consent_token"], "answers": {}}, session
    )
    post("/api/v1/resume/lookup", {"resume_code": saved["resume_code"]}, session)
    post(
        "/api/v1/responses",
        {"consent_token": granted["consent_token"], "answers": {"got_help": "yes"}},
        session,
    )
    contact_value = f"+44 7700 {secrets.randbelow(10**6):06d}"
    assert (
        client.put(
            f"{base}/api/v1/contact",
            timeout=10,
            headers={"Authorization": f"Bearer {session}"},
            json={
                "consent_token": granted["consent_token"],
                "method": "phone",
                "value": contact_value,
                "safe_to_leave_message": True,
            },
        ).status_code
        == 200
    )
    # The organiser reads it back (decrypted for them only); the read itself reaches the consent ledger.
    contacts = api.call(
        "GET", f"/api/v1/consultations/{cid}/follow-up-contacts", organiser["token"]
    )
    assert [c["value"] for c in contacts["items"]] == [contact_value]
    auditor = staff_token(api, stack.admin_token, "auditor", organiser["organisation_id"])["token"]

    def read_is_on_the_ledger():
        entries = api.call("GET", "/api/v1/ledger/entries?start=0&limit=1000", auditor)["entries"]
        return [
            e
            for e in entries
            if e["kind"] == "contacts.accessed" and e["data"]["consultation_id"] == cid
        ]

    assert eventually(read_is_on_the_ledger)[0]["data"]["count"] == 1
    post("/api/v1/consent/receipts/lookup", {"receipt_code": granted["receipt_code"]}, session)
    reissued = post("/api/v1/consent/tokens", {"receipt_code": granted["receipt_code"]}, session)
    post(
        "/api/v1/consent/withdrawals",
        {"receipt_code": granted["receipt_code"], "purposes": []},
        session,
        expect=(200, 422),
    )
    post(
        "/api/v1/consent/withdrawals",
        {"receipt_code": granted["receipt_code"], "purposes": ["participate"]},
        session,
    )
    # A malformed request makes gunicorn itself log about the client ("Invalid request from ip=...").
    with socket.create_connection(("127.0.0.1", stack.gateway_port), timeout=5) as raw:
        raw.sendall(
            f"GARBAGE /api/v1/invitations/{code}/open\r\nUser-Agent: {USER_AGENT}\r\n\r\n".encode()
        )
        raw.recv(1024)

    def withdrawal_handled():
        # The erasure that follows the withdrawal is logged (as an event type) by the services.
        return any(
            line.get("event_type") == "consent.withdrawn" for line in _json_lines(stack, "surveys")
        )

    eventually(withdrawal_handled)
    secrets_sent = {
        "user agent": USER_AGENT,
        "invitation code": code,
        "participant session": session,
        "consent token": granted["consent_token"],
        "re-issued consent token": reissued["consent_token"],
        "receipt code": granted["receipt_code"],
        "resume code": saved["resume_code"],
        "pseudonym token part": session.split(".")[1],
        "contact value": contact_value,
    }
    own_ports = _own_ports(stack)
    lines = _log_lines(stack)
    assert len(lines) > 20
    for line in lines:
        for what, value in secrets_sent.items():
            assert value not in line, f"{what} logged: {line[:300]}"
        for match in re.finditer(r"127\.0\.0\.1(?::(\d+))?", line):
            assert match.group(1) in own_ports, f"a client address is logged: {line[:300]}"


def test_a_trace_id_follows_a_request_through_the_gateway_services_and_events(
    api, organiser, stack
):
    trace = f"trace-{secrets.token_hex(8)}"
    headers = {"Authorization": f"Bearer {organiser['token']}", "X-Trace-ID": trace}
    created = requests.post(
        f"{stack.gateway_url}/api/v1/consultations",
        headers=headers,
        timeout=20,
        json={
            "title": "Traced",
            "languages": ["en"],
            "purposes": ["participate"],
            "min_cell_size": 5,
            "survey": {
                "languages": ["en"],
                "sections": [
                    {
                        "id": "s1",
                        "title": {"en": "S"},
                        "questions": [
                            {
                                "id": "q",
                                "type": "single_choice",
                                "label": {"en": "Q?"},
                                "options": [
                                    {"code": "a", "label": {"en": "A"}},
                                    {"code": "b", "label": {"en": "B"}},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
    )
    assert created.status_code == 201 and created.headers["X-Trace-ID"] == trace
    cid = created.json()["consultation_id"]
    publish_consent_text(
        api, organiser["token"], cid, ["en"], ["participate"]
    )  # without the trace id
    published = requests.post(
        f"{stack.gateway_url}/api/v1/consultations/{cid}/publish", headers=headers, timeout=20
    )
    assert published.status_code == 200

    def traced(service: str, **fields) -> bool:
        return any(
            line.get("trace_id") == trace and all(line.get(k) == v for k, v in fields.items())
            for line in _json_lines(stack, service)
        )

    assert eventually(lambda: traced("gateway", route="/api/v1/consultations/<cid>/publish"))
    assert traced("surveys", route="/api/v1/consultations/<consultation_id>/publish")
    # The events the request caused carry its trace id into the consumers' log lines.
    assert eventually(lambda: traced("aggregation", event_type="consultation.published"))
    assert eventually(lambda: traced("consent", event_type="consultation.published"))
