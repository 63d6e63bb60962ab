"""A CRM admin renames a Klaviyo property: preview, apply with re-sync, the sandbox catches up for
existing contacts, then rollback. The hub, a worker and the sandbox as real processes."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT
from tests.story import KLAVIYO, event, story

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": "Bearer admin-token"}
OLD, NEW = "referral_friends_invited", "referral_invites_sent"


def admin(stack, method: str, path: str, body=None, headers=None) -> requests.Response:  # type: ignore[no-untyped-def]
    return requests.request(method, f"{stack.hub}{path}", json=body, headers={**ADMIN, **(headers or {})}, timeout=30)


def recorded_writes(stack) -> list[tuple[str, str, object]]:  # type: ignore[no-untyped-def]
    rows = requests.get(f"{stack.sandbox}/_sandbox/requests", params={"vendor": "klaviyo"}, timeout=5).json()["requests"]
    return [(r["method"], r["path"], r["body"]) for r in rows if r["method"] != "GET"]


def fields(stack, email: str) -> dict:  # type: ignore[no-untyped-def]
    return (stack.holds("klaviyo", email) or {}).get("fields", {})


def test_rename_preview_apply_resync_rollback(stack_factory, redis_client) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory()
    assert stack.post(story(), "story").status_code == 202
    stack.wait_for(lambda: all(fields(stack, e) == w["fields"] for e, w in KLAVIYO.items()), what="the story")
    stack.wait_for(lambda: redis_client.zcard("hub:dirty:klaviyo") == 0, what="the flush to finish")

    # 1. Read the mapping and its ETag; a non-admin token is refused.
    assert requests.get(f"{stack.hub}/v1/mappings/klaviyo", headers={"Authorization": "Bearer ops-token"},
                        timeout=10).status_code == 403
    current = admin(stack, "GET", "/v1/mappings/klaviyo")
    etag = current.headers["ETag"]
    draft = copy.deepcopy(current.json()["document"])
    for rule in draft["fields"]:
        if rule["target"] == OLD:
            rule["target"] = NEW

    # 2. Preview the draft for every contact: the exact requests, nothing sent, nothing saved.
    emails = sorted(KLAVIYO)
    preview = admin(stack, "POST", "/v1/mappings/klaviyo/preview", {"emails": emails, "document": draft}).json()
    assert {c["email"]: c["status"] for c in preview["contacts"]} == {
        "anna@example.com": "would_push", "ben@example.com": "would_push", "cleo@example.com": "unchanged",
        "dan@example.com": "unchanged", "eve@example.com": "unchanged"}
    assert "pk_sandbox_demo" not in json.dumps(preview)
    assert NEW not in fields(stack, "anna@example.com")

    # 3. Validate: the dry-run count of contacts the change would re-sync.
    check = admin(stack, "POST", "/v1/mappings/klaviyo/validate", {"document": draft}).json()
    assert check["valid"] and check["resync"] == {"contacts": 5, "dry_run": True}

    # 4. Apply with If-Match; the hub marks the contacts dirty and the worker pushes them.
    requests.delete(f"{stack.sandbox}/_sandbox/requests", timeout=5)
    applied = admin(stack, "PUT", "/v1/mappings/klaviyo", {"document": draft, "comment": "rename invites"},
                    {"If-Match": etag, "X-Hub-Author": "carla@shop.example"})
    assert applied.status_code == 200, applied.text
    assert applied.json()["resync"] == {"contacts": 5, "marked": True, "dry_run": False}
    stack.wait_for(lambda: fields(stack, "anna@example.com").get(NEW) == 2 and fields(stack, "ben@example.com").get(NEW) == 1,
                   what="the renamed property at Klaviyo for existing contacts")
    assert recorded_writes(stack) == [(c["method"], c["path"], c["body"]) for c in preview["requests"]
                                      if c["method"] != "GET"], "the preview is what the sync sent"
    stale = admin(stack, "PUT", "/v1/mappings/klaviyo", {"document": draft}, {"If-Match": etag})
    assert stale.status_code == 412

    # New activity lands under the new name only.
    stack.post([event(50, "referral.invited", referrer={"email": "anna@example.com"})], "more")
    stack.wait_for(lambda: fields(stack, "anna@example.com").get(NEW) == 3, what="the next invite")
    assert fields(stack, "anna@example.com")[OLD] == 2

    # 5. Roll back to the shipped default (version 0); the old property catches up.
    history = admin(stack, "GET", "/v1/mappings/klaviyo/history").json()["versions"]
    assert [(v["version"], v["author"]) for v in history] == [(1, "carla@shop.example"), (0, "hub")]
    back = admin(stack, "POST", "/v1/mappings/klaviyo/rollback", {"version": 0, "comment": "back to default"},
                 {"If-Match": applied.headers["ETag"]})
    assert back.status_code == 200, back.text
    assert back.json()["version"] == 2
    stack.wait_for(lambda: fields(stack, "anna@example.com").get(OLD) == 3, what="the rollback to land")
    assert admin(stack, "GET", "/v1/mappings/klaviyo").json()["document"] == current.json()["document"]

    # The CLI sees the same history.
    cli = subprocess.run([sys.executable, "-m", "hub", "mappings", "history", "klaviyo"], env=stack.env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines()[0].startswith("* v2") and "back to default" in cli.stdout
