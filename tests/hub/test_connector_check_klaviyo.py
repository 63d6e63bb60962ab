"""`hub connectors check klaviyo` names the scopes a private key lacks (the sandbox gives a key
only some scopes; Klaviyo cannot list them, so the check tries each endpoint the hub needs)."""
from __future__ import annotations

import json

import requests
from click.testing import CliRunner

from tests.conftest import TOKENS


def test_check_names_the_scopes_a_key_lacks(redis_url, redis_client, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    from hub.cli import main

    scopes = ["accounts:read", "lists:read", "lists:write", "profiles:read", "profiles:write", "data-privacy:write"]
    requests.post(f"{sandbox_server.url}/_sandbox/klaviyo/keys", json={"key": "pk_no_consent", "scopes": scopes},
                  timeout=5).raise_for_status()
    env = {"HUB_REDIS_URL": redis_url, "HUB_KLAVIYO_BASE_URL": f"{sandbox_server.url}/klaviyo",
           **{f"HUB_{k}": v for k, v in TOKENS.items()}}
    runner = CliRunner()
    limited = runner.invoke(main, ["connectors", "check", "klaviyo"], env={**env, "HUB_KLAVIYO_API_KEY": "pk_no_consent"})
    assert limited.exit_code == 1, limited.output
    report = json.loads(limited.output)
    assert report["ok"] is False and report["missing"] == ["subscriptions:write"]
    assert report["permissions"]["profiles:read"] == "granted" and "pk_no_consent" not in limited.output

    full = runner.invoke(main, ["connectors", "check", "klaviyo"], env={**env, "HUB_KLAVIYO_API_KEY": "pk_sandbox_demo"})
    assert full.exit_code == 0, full.output
    assert json.loads(full.output)["missing"] == []
