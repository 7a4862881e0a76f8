"""docker-compose.yml cannot run here; check that it is wired the way the code needs it."""

import importlib
import re
from pathlib import Path

import pytest
import yaml

from deploy.secrets import generate_secrets
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APPS = {
    "surveys": "services.surveys.app",
    "consent": "services.consent.app",
    "aggregation": "services.aggregation.app",
    "gateway": "gateway.app",
}
VARIABLE = re.compile(r"\$\{([A-Z_]+)(:[?-][^}]*)?\}")


def resolved_env(service: str) -> dict[str, str]:
    """The service's environment with ${VAR:?...} filled from a fresh secret set, as an operator's .env would."""
    secrets = generate_secrets()
    env = {}
    for name, value in COMPOSE["services"][service]["environment"].items():
        value = str(value)
        env[name] = VARIABLE.sub(lambda m: secrets.get(m.group(1), ""), value)
    return env


def test_every_depends_on_target_exists():
    services = COMPOSE["services"]
    for name, spec in services.items():
        for target in spec.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown service {target}"


def test_the_platform_is_all_there():
    assert set(APPS) | {"kafka", "mongodb"} == set(COMPOSE["services"])
    assert "--replSet" in COMPOSE["services"]["mongodb"]["command"]
    assert COMPOSE["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.parametrize("service", sorted(APPS))
def test_each_service_gets_every_setting_its_app_requires(service, monkeypatch):
    env = resolved_env(service)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["MONGODB_URI"].startswith("mongodb://mongodb:27017")
    raw = COMPOSE["services"][service]["environment"]
    for name, value in env.items():
        optional = ":-" in str(raw[name])
        assert optional or value != "", f"{service}: {name} is empty"
    # Build the real app from exactly this environment (store swapped for the in-process one).
    settings = Settings.from_env(service, {**env, "MONGODB_URI": "mongomock://localhost/x"})
    module = importlib.import_module(APPS[service])
    if service == "gateway":
        app = module.create_app(settings)
    else:
        from shared.in_process_bus import InProcessBus

        app = module.create_app(settings, bus=InProcessBus())
    assert app.name.endswith(service)


@pytest.mark.parametrize("service", sorted(APPS))
def test_each_service_runs_its_own_app_under_gunicorn(service):
    command = COMPOSE["services"][service]["command"]
    assert command[:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    assert command[-1] == f"{APPS[service]}:create_app()"


def test_gateway_knows_where_each_service_is():
    env = COMPOSE["services"]["gateway"]["environment"]
    for name in ("surveys", "consent", "aggregation"):
        assert env[f"VOICES_{name.upper()}_URL"] == f"http://{name}:8000"
