"""Emarsys, Salesforce, Ometria and Splio as a real account would answer, through real processes:
a record the vendor refuses fails alone (Ometria answering counts only), a friend who withdraws
consent leaves every marketing list and keeps the customers list, and Emarsys runs on OAuth2 while
the retiring WSSE credentials are named in the start-up logs."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import requests

from sandbox import DEMO_SETTINGS
from sandbox import emarsys as emarsys_emulation
from tests.conftest import ROOT
from tests.story import event, story

pytestmark = pytest.mark.e2e

OPS = {"Authorization": "Bearer ops-token"}
VENDORS = ("emarsys", "salesforce", "ometria", "splio")
# (marketing list, customers list) in each default mapping.
LISTS = {"emarsys": ("740001", "740002"), "salesforce": ("701Rf000000Mkt1AAA", "701Rf000000Txn1AAA"),
         "ometria": ("8400", "8401"), "splio": ("25", "26")}
FRIENDS = ("cleo@example.com", "dan@example.com", "eve@example.com")


def connectors() -> dict[str, dict[str, str]]:
    settings = {v: {k.upper(): s for k, s in DEMO_SETTINGS[v].items()} for v in VENDORS}
    # Both Emarsys credential sets: OAuth2 must be the one used, WSSE named as retiring.
    settings["emarsys"].update({"USERNAME": emarsys_emulation.USERNAME, "SECRET": emarsys_emulation.SECRET})
    return settings


def failed_contacts(stack: Any, vendor: str) -> set[str]:
    answer = requests.get(f"{stack.hub}/v1/failed", params={"connector": vendor}, headers=OPS, timeout=10).json()
    return {email for item in answer["failed"] for email in item["contacts"]}


def memberships(stack: Any, vendor: str, email: str) -> tuple[bool, bool, Any] | None:
    held = stack.holds(vendor, email)
    if held is None or held["deleted"]:
        return None
    marketing, customers = LISTS[vendor]
    return marketing in held["lists"], customers in held["lists"], held["marketing_consent"]


def test_rejections_fail_alone_and_withdrawn_consent_leaves_marketing_lists(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(connectors=connectors())
    knob = requests.post(f"{stack.sandbox}/_sandbox/knobs", json={"modes": {"ometria": "counts_only"}}, timeout=5)
    assert knob.json()["modes"] == {"ometria": "counts_only"}
    zoe = {"email": "zoe@example.com", "first_name": "Zoe", "referrer_id": "ref-zoe"}
    extra = [event(60, "referrer.enrolled", referrer=zoe),
             event(61, "friend.registered", referrer={"email": zoe["email"]},
                   friend={"email": "reject-zed@example.com", "first_name": "Zed", "marketing_opt_in": True})]
    assert stack.post(story() + extra, msg_id="story").status_code == 202

    # Every vendor refuses reject-zed; each files exactly that contact, the rest land.
    for vendor in VENDORS:
        stack.wait_for(lambda v=vendor: failed_contacts(stack, v) == {"reject-zed@example.com"},
                       what=f"{vendor}'s failed sync for reject-zed only")
        stack.wait_for(lambda v=vendor: all(memberships(stack, v, f) == want for f, want in zip(
            FRIENDS, ((True, True, True), (False, False, None), (True, True, True)))),
            what=f"{vendor} to hold the friends' lists and consent")
        assert stack.holds(vendor, "zoe@example.com") is not None

    # Cleo withdraws consent: she leaves each marketing list and stays a customer.
    withdraw = event(62, "contact.updated", contact={"email": "cleo@example.com", "marketing_opt_in": False})
    assert stack.post([withdraw], msg_id="withdraw").status_code == 202
    for vendor in VENDORS:
        stack.wait_for(lambda v=vendor: memberships(stack, v, "cleo@example.com") == (False, True, False),
                       what=f"{vendor} to drop Cleo from its marketing list only")
    assert memberships(stack, "salesforce", "eve@example.com") == (True, True, True)

    # Emarsys ran on OAuth2 (v3); hub and worker both said WSSE is retiring.
    paths = [r["path"] for r in requests.get(f"{stack.sandbox}/_sandbox/requests", params={"vendor": "emarsys"},
                                             timeout=5).json()["requests"]]
    assert paths and not [p for p in paths if "/api/v2/" in p]
    for log in ("hub.log", "worker.log"):
        text = (stack.logs / log).read_text()
        assert "WSSE" in text and "2026-12-31" in text, f"no WSSE warning in {log}"
        assert emarsys_emulation.SECRET not in text


def check(stack: Any, vendor: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "hub", "connectors", "check", vendor], env=stack.env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)


def test_connectors_check_names_missing_permissions(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(connectors=connectors())
    for vendor in VENDORS:
        code, report = check(stack, vendor)
        assert code == 0 and report["ok"] is True and report["missing"] == [], report
    # A Splio key forbidden the bulk endpoints (403, as Splio answers a forbidden call).
    stack.fault("splio", 403, path="/splio/data/contacts/bulk", count=2, body={"status": 403, "errors": []})
    code, report = check(stack, "splio")
    assert code == 1 and report["missing"] == ["DELETE /data/contacts/bulk", "POST /data/contacts/bulk"]
    assert report["permissions"]["PATCH /data/contacts/{key}"] == "granted"
