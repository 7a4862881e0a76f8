"""The thin vertical slice through the gateway, with every service a real gunicorn process."""

from tests.e2e.conftest import eventually, open_consultation, participate


def counted(api, token, cid):
    def probe():
        r = api.session.get(
            f"{api.base}/api/v1/insights/consultations/{cid}/progress",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        return r.json()["responses_counted"] if r.status_code == 200 else None

    return probe


def test_gateway_health_reports_every_service_ready(api):
    health = api.call("GET", "/healthz")
    assert health["status"] == "ready"
    assert set(health["services"]) == {"surveys", "consent", "aggregation"}
    assert all(s["ready"] for s in health["services"].values())


def test_an_answer_given_with_consent_is_counted(api, organiser):
    cid, code = open_consultation(api, organiser["token"])
    first = participate(api, code, {"got_help": "yes"})
    assert first["grant"]["receipt_code"] and first["grant"]["consent_token"].count(".") == 2
    assert eventually(lambda: counted(api, organiser["token"], cid)() == 1)
    participate(api, code, {"got_help": "no"})
    assert eventually(lambda: counted(api, organiser["token"], cid)() == 2)


def test_an_answer_without_aggregate_consent_is_stored_but_not_counted(api, organiser):
    cid, code = open_consultation(api, organiser["token"])
    participate(api, code, {"got_help": "yes"}, purposes=("participate", "aggregate_reporting"))
    participate(api, code, {"got_help": "yes"}, purposes=("participate",))
    participate(api, code, {"got_help": "no"}, purposes=("participate", "aggregate_reporting"))
    assert eventually(lambda: counted(api, organiser["token"], cid)() == 2)


def test_killing_aggregation_mid_stream_loses_and_doubles_nothing(api, organiser, stack):
    cid, code = open_consultation(api, organiser["token"])
    total = 24
    for i in range(total):
        if i == 8:
            stack.kill("aggregation")  # SIGKILL: no clean shutdown, no final commit
        participate(api, code, {"got_help": "yes" if i % 2 else "no"})
    stack.start_process("aggregation")
    stack.wait_ready(60, names=("aggregation",))
    assert eventually(lambda: counted(api, organiser["token"], cid)() == total, timeout=60)
    # Stays exact once caught up: a replay after restart must not count anything twice.
    import time

    time.sleep(2)
    assert counted(api, organiser["token"], cid)() == total
