"""The ops scenario through real processes: three vendors break three different ways, ops put it
right with the real commands, and every vendor ends in exactly the expected state.

Klaviyo answers 500 (ends in failed syncs after a compressed schedule), Ometria answers 429 with
Retry-After (lands after the wait, no attempt used), Splio answers 401 (paused, says why).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT
from tests.e2e.stack import Stack
from tests.story import KLAVIYO, event, story

pytestmark = pytest.mark.e2e

OPS = {"Authorization": "Bearer ops-token"}
ADMIN = {"Authorization": "Bearer admin-token"}
CONNECTORS = {"klaviyo": {"API_KEY": "pk_sandbox_demo"}, "ometria": {"API_KEY": "om_sandbox_demo"},
              "splio": {"API_KEY": "splio_sandbox_demo"}}
PEOPLE = ["anna@example.com", "ben@example.com", "cleo@example.com", "dan@example.com", "eve@example.com"]

# The story plus one more invite from Anna posted while everything is broken: 3 invites, 2 friends
# registered, 1 converted, 59.90 GBP; Ben 1/1/1 and 120.00 EUR. Worked out by hand from the events.
COUNTS = {
    "klaviyo": {"anna@example.com": {"referral_friends_invited": 3, "referral_friends_signed_up": 2,
                                     "referral_friends_converted": 1, "referral_turnover": 59.9,
                                     "referral_rewards_earned": 1},
                "ben@example.com": {"referral_friends_invited": 1, "referral_friends_signed_up": 1,
                                    "referral_friends_converted": 1, "referral_turnover": 120.0}},
    "ometria": {"anna@example.com": {"friends_invited": 3, "friends_registered": 2, "friends_converted": 1,
                                     "referral_turnover": 59.9, "rewards_earned": 1},
                "ben@example.com": {"friends_invited": 1, "friends_registered": 1, "friends_converted": 1,
                                    "referral_turnover": 120.0}},
    "splio": {"anna@example.com": {"referral_nb_potential_referred": 3, "referral_nb_converted_prospects": 2,
                                   "referral_nb_converted_customers": 1, "referral_turnover_generated": 59.9},
              "ben@example.com": {"referral_nb_potential_referred": 1, "referral_nb_converted_prospects": 1,
                                  "referral_nb_converted_customers": 1, "referral_turnover_generated": 120.0}},
}
# Friends: marketing list for opted-in friends, transactional list once they bought.
LISTS = {"klaviyo": {"cleo@example.com": ["RfMkt1", "RfTxn1"], "dan@example.com": [], "eve@example.com": ["RfMkt1", "RfTxn1"]},
         "ometria": {"cleo@example.com": ["8400", "8401"], "dan@example.com": [], "eve@example.com": ["8400", "8401"]},
         "splio": {"cleo@example.com": ["25", "26"], "dan@example.com": [], "eve@example.com": ["25", "26"]}}


def lands(stack: Stack, vendor: str) -> bool:
    for email, want in COUNTS[vendor].items():
        held = stack.holds(vendor, email)
        if held is None or any(held["fields"].get(k) != v for k, v in want.items()):
            return False
    return all((stack.holds(vendor, e) or {}).get("lists") == want for e, want in LISTS[vendor].items())


def ops_get(stack: Stack, path: str) -> dict:  # type: ignore[type-arg]
    response = requests.get(f"{stack.hub}{path}", headers=OPS, timeout=5)
    assert response.ok, response.text
    return response.json()


def hub_command(stack: Stack, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hub", *args], env=stack.env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_three_vendors_break_ops_put_it_right_nothing_doubles(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(connectors=CONNECTORS, env={"HUB_RETRY_SCHEDULE": "1,2", "HUB_RETRY_JITTER": "0.2"})
    stack.fault("klaviyo", 500)
    stack.fault("ometria", 429, count=1, headers={"Retry-After": "6"})
    stack.fault("splio", 401)
    assert stack.post(story(), "story").status_code == 202
    assert stack.post([event(12, "referral.invited", referrer={"email": "anna@example.com"})], "invite").status_code == 202

    # Bulkhead: Ometria lands after its Retry-After while Klaviyo and Splio are still broken.
    stack.wait_for(lambda: lands(stack, "ometria"), timeout=60, what="Ometria after its Retry-After")
    assert stack.holds("klaviyo", "anna@example.com") is None and stack.holds("splio", "anna@example.com") is None

    # Splio: paused by the hub, saying why; its contacts wait, no failed sync.
    splio = stack.wait_for(lambda: ops_get(stack, "/v1/connectors/splio/pause")["paused"], what="Splio paused")
    assert splio["by"] == "hub" and splio["reason"].startswith("credentials rejected by the vendor: HTTP 401")
    listed = requests.get(f"{stack.hub}/v1/connectors", headers=ADMIN, timeout=5).json()["connectors"]
    assert {c["name"]: bool(c["paused"]) for c in listed if c["enabled"]} == {
        "klaviyo": False, "ometria": False, "splio": True}

    # Klaviyo: failed syncs once the schedule (1 s, 2 s, compressed for the test) is spent.
    failures = stack.wait_for(lambda: ops_get(stack, "/v1/failed?connector=klaviyo")["failed"], timeout=90,
                              what="Klaviyo's failed sync")
    assert ops_get(stack, "/v1/failed")["count"] == len(failures), "only Klaviyo failed"
    assert sorted(e for f in failures for e in f["contacts"]) == PEOPLE
    assert all(f["status"] == 500 and f["retriable"] and f["attempts"] == 3 for f in failures)
    assert ops_get(stack, "/v1/connectors/splio/pause")["dirty"] == 5
    assert ops_get(stack, "/v1/contacts/anna@example.com")["connectors"]["klaviyo"]["failed"]

    # Ops fix the vendors, retry every failed sync with the CLI, resume Splio.
    for vendor in ("klaviyo", "splio"):
        requests.delete(f"{stack.sandbox}/_sandbox/faults", params={"vendor": vendor}, timeout=5)
    retried = hub_command(stack, "failed", "retry", "--all")
    assert retried.startswith(f"retried {len(failures)} failed sync(s)")
    assert "splio: active" in hub_command(stack, "connectors", "resume", "splio")

    for vendor in ("klaviyo", "splio"):
        stack.wait_for(lambda: lands(stack, vendor), timeout=60, what=f"{vendor} after the fix")
    stack.wait_for(lambda: ops_get(stack, "/v1/failed")["count"] == 0, what="no failed syncs left")

    # Exact state everywhere; Klaviyo's full expected state from the story, with the extra invite.
    for email, want in KLAVIYO.items():
        held = stack.holds("klaviyo", email)
        expected = json.loads(json.dumps(want))
        if email == "anna@example.com":
            expected["fields"]["referral_friends_invited"] = 3
        assert {k: held[k] for k in ("fields", "lists", "marketing_consent")} == expected, email
    for vendor in ("ometria", "splio"):
        assert lands(stack, vendor)
        assert stack.holds(vendor, "cleo@example.com")["marketing_consent"] is True

    # The metrics saw it all: the vendor statuses, no failure or pause left behind.
    text = requests.get(f"{stack.hub}/metrics", timeout=5).text
    assert metric(text, "hub_vendor_calls_total", connector="klaviyo", status="500") >= 3
    assert metric(text, "hub_vendor_calls_total", connector="ometria", status="429") == 1
    assert metric(text, "hub_vendor_calls_total", connector="splio", status="401") >= 1
    assert metric(text, "hub_backoffs_total", connector="ometria", reason="rate_limited") == 1
    for vendor in CONNECTORS:
        assert metric(text, "hub_failed_syncs", connector=vendor) == 0
        assert metric(text, "hub_connector_paused", connector=vendor) == 0
        assert metric(text, "hub_dirty_contacts", connector=vendor) == 0
