"""The gateway's client towards a service: what it takes from the process environment."""

import requests

from gateway.proxy import ServiceClient


def test_calls_to_services_take_no_proxy_or_netrc_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine surveys.internal login someone password secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    client = ServiceClient("surveys", "http://surveys.internal")
    settings = client.session.merge_environment_settings(
        "http://surveys.internal/api/v1/responses", {}, None, None, None
    )
    assert settings["proxies"] == {}
    prepared = client.session.prepare_request(
        requests.Request("POST", "http://surveys.internal/api/v1/responses")
    )
    assert "Authorization" not in prepared.headers
