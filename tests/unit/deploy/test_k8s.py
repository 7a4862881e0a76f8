"""The Kubernetes manifests give each process the settings its app requires."""

import importlib
from pathlib import Path

import pytest
import yaml

from deploy.secrets import generate_secrets
from shared.in_process_bus import InProcessBus
from shared.settings import Settings

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
DOCS = [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
CONFIG = next(d for d in DOCS if d["kind"] == "ConfigMap")["data"]
DEPLOYMENTS = {
    d["metadata"]["name"].removeprefix("voices-"): d for d in DOCS if d["kind"] == "Deployment"
}


def test_every_process_has_a_deployment_and_a_service():
    assert set(DEPLOYMENTS) == {"surveys", "consent", "aggregation", "gateway"}
    services = {d["metadata"]["name"] for d in DOCS if d["kind"] == "Service"}
    assert services == {f"voices-{name}" for name in DEPLOYMENTS}


@pytest.mark.parametrize("name", ["surveys", "consent", "aggregation", "gateway"])
def test_deployment_env_builds_the_app(name):
    container = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"][0]
    module, _, call = container["command"][-1].partition(":")
    assert call == "create_app()"
    env = {**CONFIG, **generate_secrets(), "MONGODB_URI": "mongomock://localhost/x"}
    settings = Settings.from_env(name, env)
    app_module = importlib.import_module(module)
    app = (
        app_module.create_app(settings)
        if name == "gateway"
        else app_module.create_app(settings, bus=InProcessBus())
    )
    assert app.name.endswith(name)
    probes = (
        container["readinessProbe"]["httpGet"]["path"],
        container["livenessProbe"]["httpGet"]["path"],
    )
    # The gateway's own health gathers the services' readiness; its probes ask only whether it
    # answers, and a service's readiness probe only whether it can answer requests (its store), so
    # a paused broker neither restarts a process nor takes it out of its load balancer.
    assert probes == (
        ("/livez", "/livez") if name == "gateway" else ("/readyz/requests", "/healthz")
    )
    client = app.test_client()
    for path in set(probes):
        assert client.get(path).status_code in (200, 503), path
