"""The CLI as a person meets it: .env settings, one-line errors with exit codes, paths from their folder."""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hub.core.store import Embedded
from tests.conftest import ROOT


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a shell with no HUB_ variables (and no project .env fallback)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "REFERRAL_HUB_HOME"}
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **extra}


def hub(*args: str, cwd: Path, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=cwd, env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_a_missing_file_or_bad_json_is_one_line_and_exit_2(tmp_path: Path, redis_url: str) -> None:
    env = clean_env(HUB_REDIS_URL=redis_url)
    one_line_error(hub("mappings", "validate", "klaviyo", "nosuch.json", cwd=tmp_path, env=env), 2,
                   "nosuch.json", "No such file")
    (tmp_path / "bad.json").write_text("{not json")
    one_line_error(hub("mappings", "validate", "klaviyo", "bad.json", cwd=tmp_path, env=env), 2,
                   "bad.json is not valid JSON")
    one_line_error(hub("mappings", "apply", "klaviyo", str(tmp_path), cwd=tmp_path, env=env), 2, "is a folder")
    one_line_error(hub("send", "nosuch.json", cwd=tmp_path, env=env), 2, "nosuch.json")
    one_line_error(hub("send", "-", cwd=tmp_path, env=env, stdin="[1, 2"), 2, "stdin is not valid JSON")


def test_an_unknown_connector_is_exit_2(tmp_path: Path, redis_url: str, redis_client) -> None:  # type: ignore[no-untyped-def]
    done = hub("mappings", "show", "mailchimp", cwd=tmp_path, env=clean_env(HUB_REDIS_URL=redis_url))
    one_line_error(done, 2, "no connector 'mailchimp'", "klaviyo")


def test_an_unreachable_redis_is_one_line_naming_it(tmp_path: Path) -> None:
    env = clean_env(HUB_REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    done = hub("contacts", "show", "anna@example.com", cwd=tmp_path, env=env)
    one_line_error(done, 2, "127.0.0.1:1", "cannot be reached")
    assert "hunter2" not in done.stderr


def test_a_relative_path_is_the_callers_even_through_dev(tmp_path: Path, redis_url: str) -> None:
    document = json.loads((ROOT / "mappings/defaults/klaviyo.json").read_text())
    (tmp_path / "mine.json").write_text(json.dumps(document))
    done = subprocess.run([str(ROOT / "dev"), "hub", "mappings", "validate", "klaviyo", "mine.json", "--no-live"],
                          cwd=tmp_path, env=clean_env(HUB_REDIS_URL=redis_url), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] is True


def test_dev_help_installs_nothing(tmp_path: Path) -> None:
    copy = tmp_path / "dev"
    copy.write_text((ROOT / "dev").read_text())
    copy.chmod(0o755)
    done = subprocess.run([str(copy), "help"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "./dev demo" in done.stdout
    assert not (tmp_path / ".venv").exists()


def test_init_writes_fresh_secrets_and_config_check_masks_them(tmp_path: Path) -> None:
    env = clean_env()
    assert hub("init", "--sandbox", cwd=tmp_path, env=env).returncode == 0
    dotenv = tmp_path / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in dotenv.read_text().splitlines() if line and not line.startswith("#"))
    secret = values["HUB_INGEST_SECRETS"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    for vendor in ("KLAVIYO", "EMARSYS", "SALESFORCE", "OMETRIA", "SPLIO"):
        assert values[f"HUB_{vendor}_BASE_URL"].startswith("http://127.0.0.1:")
    (tmp_path / "second").mkdir()
    assert hub("init", cwd=tmp_path / "second", env=env).returncode == 0
    other = (tmp_path / "second" / ".env").read_text()
    assert secret not in other and values["HUB_ADMIN_TOKENS"] not in other     # fresh each time
    one_line_error(hub("init", cwd=tmp_path, env=env), 2, ".env exists")

    done = hub("config", "check", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("klaviyo", "emarsys", "salesforce", "ometria", "splio"):
        assert any(line.split()[:2] == [name, "enabled"] for line in done.stdout.splitlines()), name
    for key in ("HUB_INGEST_SECRETS", "HUB_ADMIN_TOKENS", "HUB_OPS_TOKENS", "HUB_KLAVIYO_API_KEY",
                "HUB_EMARSYS_CLIENT_SECRET", "HUB_SALESFORCE_CLIENT_SECRET", "HUB_SALESFORCE_REFRESH_TOKEN"):
        assert values[key] not in done.stdout, key
    assert not Embedded.of(tmp_path / "var").running()    # checking starts nothing


def test_the_environment_wins_over_the_file_and_what_is_missing_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HUB_KLAVIYO_API_KEY=from-file\nHUB_KLAVIYO_BASE_URL=http://file.invalid\n")
    (tmp_path / "sub").mkdir()
    done = hub("config", "check", cwd=tmp_path / "sub", env=clean_env(HUB_KLAVIYO_BASE_URL="http://env.invalid"))
    assert "base_url=http://env.invalid" in done.stdout and "file.invalid" not in done.stdout
    assert "from-file" not in done.stdout
    assert done.returncode == 1
    assert "HUB_INGEST_SECRETS" in done.stdout                        # named as missing


def test_a_one_shot_command_leaves_no_server_behind(tmp_path: Path) -> None:
    env = clean_env(HUB_DATA_DIR=str(tmp_path / "var"))
    done = hub("failed", "list", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "no failed syncs" in done.stdout, done.stderr
    assert not Embedded.of(tmp_path / "var").running()


def test_redis_start_status_stop(tmp_path: Path) -> None:
    env = clean_env(HUB_DATA_DIR=str(tmp_path / "var"))
    try:
        assert "started" in hub("redis", "start", cwd=tmp_path, env=env).stdout
        assert "running (pid" in hub("redis", "status", cwd=tmp_path, env=env).stdout
        done = hub("failed", "list", cwd=tmp_path, env=env)
        assert done.returncode == 0
        assert Embedded.of(tmp_path / "var").running()     # started on purpose: a command leaves it
        assert "stopped" in hub("redis", "stop", cwd=tmp_path, env=env).stdout
        assert "not running" in hub("redis", "status", cwd=tmp_path, env=env).stdout
    finally:
        Embedded.of(tmp_path / "var").stop()
    one_line_error(hub("redis", "stop", cwd=tmp_path, env={**env, "HUB_REDIS_URL": "redis://127.0.0.1:1/0"}), 2,
                   "HUB_REDIS_URL is set")


@pytest.mark.parametrize("args", [["worker"], ["up"]])
def test_nothing_enabled_is_said_before_anything_starts(tmp_path: Path, args: list[str]) -> None:
    done = hub(*args, cwd=tmp_path, env=clean_env(HUB_DATA_DIR=str(tmp_path / "var")))
    one_line_error(done, 2, "no connector is enabled")
    assert not Embedded.of(tmp_path / "var").running()


def test_a_setting_of_the_wrong_kind_or_a_missing_env_file_is_one_line(tmp_path: Path) -> None:
    one_line_error(hub("config", "check", cwd=tmp_path, env=clean_env(HUB_MAX_EVENTS="lots")), 2,
                   "HUB_MAX_EVENTS must be a whole number")
    one_line_error(hub("config", "check", cwd=tmp_path, env=clean_env(HUB_ENV_FILE=str(tmp_path / "nope.env"))), 2,
                   "nope.env")
