"""`hub endpoints`: the same operations as the API, readable errors, the secret shown once."""
from __future__ import annotations

import json

from click.testing import CliRunner

from hub.cli import main
from tests.feed.conftest import FAST


def run(monkeypatch, redis_url, *args: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HUB_REDIS_URL", redis_url)
    for name, value in FAST.items():
        monkeypatch.setenv(f"HUB_{name}", str(value))
    return CliRunner().invoke(main, ["endpoints", *args])


def test_create_list_show_disable_enable_delete(monkeypatch, redis_url, redis_client, receivers) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    created = run(monkeypatch, redis_url, "create", receiver.url, "--types", "friend.converted,sync.failed",
                  "--description", "BI")
    assert created.exit_code == 0, created.output
    made = json.loads(created.output)
    assert made["secret"].startswith("whsec_") and made["event_types"] == ["friend.converted", "sync.failed"]
    listed = run(monkeypatch, redis_url, "list")
    assert made["id"] in listed.output and made["secret"] not in listed.output
    shown = run(monkeypatch, redis_url, "show", made["id"])
    assert json.loads(shown.output)["description"] == "BI" and made["secret"] not in shown.output
    receiver.secrets = [made["secret"]]
    tested = run(monkeypatch, redis_url, "send-test", made["id"])
    assert tested.exit_code == 0 and receiver.requests[-1]["verified"] == [0]
    attempts = json.loads(run(monkeypatch, redis_url, "attempts", made["id"]).output)
    assert attempts[0]["status"] == 200 and attempts[0]["test"] is True
    off = json.loads(run(monkeypatch, redis_url, "disable", made["id"], "--reason", "moving").output)
    assert off["disabled"] is True and off["disabled_reason"] == "moving"
    assert json.loads(run(monkeypatch, redis_url, "enable", made["id"]).output)["disabled"] is False
    rotated = json.loads(run(monkeypatch, redis_url, "rotate-secret", made["id"], "--overlap", "60").output)
    assert rotated["secret"] != made["secret"]
    changed = json.loads(run(monkeypatch, redis_url, "update", made["id"], "--batch-events", "20").output)
    assert changed["batch"] == {"max_events": 20, "max_seconds": 5.0}
    assert json.loads(run(monkeypatch, redis_url, "delete", made["id"]).output)["deleted"] is True


def test_mistakes_are_one_readable_line(monkeypatch, redis_url, redis_client, receivers) -> None:  # type: ignore[no-untyped-def]
    private = run(monkeypatch, redis_url, "create", "http://10.0.0.9/hook")
    assert private.exit_code in (1, 2) and "private" in private.output and "Traceback" not in private.output
    missing = run(monkeypatch, redis_url, "show", "ep_nope")
    assert missing.exit_code in (1, 2) and "no endpoint 'ep_nope'" in missing.output
    receiver = receivers()
    receiver.answer = 500
    made = json.loads(run(monkeypatch, redis_url, "create", receiver.url).output)
    failed = run(monkeypatch, redis_url, "send-test", made["id"])
    assert failed.exit_code in (1, 2) and '"status": 500' in failed.output and "did not accept" in failed.output
