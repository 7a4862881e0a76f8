"""`make run`'s data folder: keys made once and kept, a wipe only after a typed confirmation."""

import stat

import pytest

from deploy import run
from deploy.secrets import generate_secrets
from shared.settings import Settings


def test_keys_are_made_once_private_and_reused(tmp_path):
    first = run.load_or_create_secrets(tmp_path)
    path = tmp_path / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(generate_secrets()) <= set(first) and first["VOICES_ADMIN_TOKEN"].startswith(
        "vt_admin_"
    )
    assert run.load_or_create_secrets(tmp_path) == first  # the stored data stays readable


def test_a_keys_file_missing_a_key_is_not_silently_completed(tmp_path):
    run.load_or_create_secrets(tmp_path)
    path = tmp_path / "secrets.env"
    path.write_text(
        "\n".join(
            line
            for line in path.read_text().splitlines()
            if not line.startswith("VOICES_CODE_PEPPER")
        )
    )
    with pytest.raises(SystemExit, match="VOICES_CODE_PEPPER"):
        run.load_or_create_secrets(tmp_path)


def test_wipe_deletes_only_after_the_word_delete(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "var"
    folder.mkdir()
    (folder / "secrets.env").write_text("x")
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert run.wipe(folder) == 1 and folder.exists()
    monkeypatch.setattr("builtins.input", lambda prompt: "delete")
    assert run.wipe(folder) == 0 and not folder.exists()
    assert run.wipe(folder) == 0  # nothing left: says so


def test_a_namespace_prefixes_databases_topics_and_groups():
    plain = Settings.from_env("consent", {})
    assert (plain.database, plain.consumer_group, plain.topics.consent) == (
        "voices_consent",
        "voices-consent",
        "consent.events",
    )
    spaced = Settings.from_env(
        "consent", {"VOICES_NAMESPACE": "staging", "TOPIC_RELEASES": "shared.releases"}
    )
    assert (
        spaced.database,
        spaced.consumer_group,
        spaced.topics.consent,
        spaced.topics.releases,
    ) == (
        "staging_voices_consent",
        "staging.voices-consent",
        "staging.consent.events",
        "shared.releases",
    )
    with pytest.raises(ValueError, match="VOICES_NAMESPACE"):
        Settings.from_env("consent", {"VOICES_NAMESPACE": "Bad-Name"})


def test_the_banner_names_the_staff_sign_in_page_and_the_demo_accounts(tmp_path):
    from types import SimpleNamespace

    from deploy.run import banner

    launcher = SimpleNamespace(
        gateway_url="http://127.0.0.1:8080",
        folder=tmp_path,
        logs=tmp_path / "logs",
    )
    demo = {
        "invitation_code": "code",
        "consultation_id": "c_1",
        **{f"{role}_token": f"vt_{role}" for role in ("organiser", "policy", "auditor")},
        "staff_accounts": {
            "organiser": {"email": "organiser@demo.invalid", "password": "pw-organiser"},
            "admin": {"email": "admin@localhost", "password": "pw-admin"},
        },
    }
    text = banner(launcher, demo, "vt_admin", first_start=True)
    assert "http://127.0.0.1:8080/staff/sign-in" in text
    for line in ("organiser@demo.invalid", "pw-organiser", "admin@localhost", "pw-admin"):
        assert line in text
