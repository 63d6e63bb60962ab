"""Signing the hub's own API: `hub send`, and the curl + openssl recipe of docs/event-api.md run as written."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import INGEST_SECRET, ROOT, TOKENS
from tests.docs import sh_blocks

TOOLS = all(shutil.which(tool) for tool in ("bash", "curl", "openssl", "base64", "od"))


def no_hub_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "REFERRAL_HUB_HOME"}


@pytest.mark.skipif(not TOOLS, reason="needs bash, curl, openssl, base64 and od")
def test_the_curl_recipe_is_accepted_and_its_retry_is_a_duplicate(stack_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    [recipe] = sh_blocks("docs/event-api.md", "## Signing a request with curl and openssl")
    stack = stack_factory()
    env = {**no_hub_env(), "HUB": stack.hub, "HUB_INGEST_SECRETS": f"{INGEST_SECRET},whsec_b2xkLXNlY3JldA=="}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"accepted": 1, "duplicates": 0}
    stack.wait_for(lambda: (stack.holds("klaviyo", "rita@example.com") or {}).get("fields", {}).get("first_name")
                   == "Rita", what="Rita at Klaviyo")

    # The same secret used as text (the mistake the recipe warns about) is refused.
    wrong = recipe.replace('base64 -d | od', 'od')
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", wrong], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert json.loads(done.stdout)["error"]["code"] == "unauthorized"


def test_hub_send_signs_posts_and_waits_until_synced(stack_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory()
    events = [{"id": "evt_send_1", "type": "referrer.enrolled", "occurred_at": "2026-11-21T10:00:00Z",
               "referrer": {"email": "Sara@Example.com", "first_name": "Sara"}}]
    (tmp_path / "events.json").write_text(json.dumps({"events": events}))
    env = {**no_hub_env(), "PYTHONPATH": str(ROOT), "HUB_URL": stack.hub, "HUB_INGEST_SECRETS": INGEST_SECRET,
           "HUB_OPS_TOKENS": TOKENS["OPS_TOKENS"]}
    done = subprocess.run([sys.executable, "-m", "hub", "send", "events.json", "--wait", "120"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    status, answer = done.stdout.splitlines()[0].split(" ", 1)
    assert status == "202" and json.loads(answer) == {"accepted": 1, "duplicates": 0}
    assert "synced to every enabled connector: sara@example.com" in done.stdout
    assert stack.holds("klaviyo", "sara@example.com")["fields"]["first_name"] == "Sara"   # landed before it said so

    again = subprocess.run([sys.executable, "-m", "hub", "send", "-"], cwd=tmp_path, env=env, input=json.dumps(events),
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and json.loads(again.stdout.split(" ", 1)[1]) == {"accepted": 0, "duplicates": 1}

    refused = subprocess.run([sys.executable, "-m", "hub", "send", "events.json"], cwd=tmp_path,
                             env={**env, "HUB_INGEST_SECRETS": "whsec_d3Jvbmc="}, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 1 and refused.stdout.startswith("401 ")
    assert "Traceback" not in refused.stderr
