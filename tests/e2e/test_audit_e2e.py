"""The anti-entropy audit on the real stack: the story lands at every vendor, someone changes
contacts inside the vendors behind the hub's back, ops run `hub audit run`, and the workers'
normal flush puts every vendor right again, counted in /metrics. Contacts in step are left alone."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT
from tests.e2e.test_all_vendors_e2e import connectors, lands
from tests.story import story

pytestmark = pytest.mark.e2e

READABLE = ("klaviyo", "emarsys", "salesforce", "splio")
TURNOVER = {"klaviyo": "referral_turnover", "emarsys": "12005", "salesforce": "Referral_Turnover__c",
            "splio": "referral_turnover_generated"}
CUSTOMERS = {"klaviyo": "RfTxn1", "salesforce": "701Rf000000Txn1AAA", "splio": "26"}


def hub_cli(stack, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "hub", *args], env=stack.env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def metric(stack, connector: str, outcome: str) -> float:  # type: ignore[no-untyped-def]
    text = requests.get(f"{stack.hub}/metrics", timeout=5).text
    found = re.search(rf'^hub_audit_contacts_total{{connector="{connector}",outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_drift_made_inside_the_vendors_is_found_and_repaired(stack_factory) -> None:  # type: ignore[no-untyped-def]
    # A generous budget and the whole rate limit: on a loaded machine the audit must not stop early.
    stack = stack_factory(connectors=connectors(), env={"HUB_AUDIT_SHARE": "1", "HUB_AUDIT_BUDGET": "120",
                                                        "HUB_AUDIT_INTERVAL": "0"})
    assert stack.post(story(), msg_id="story").status_code == 202
    for vendor in READABLE:
        stack.wait_for(lambda v=vendor: lands(stack, v), what=f"{vendor} to hold the story")

    for vendor in READABLE:
        patch = requests.patch(f"{stack.sandbox}/_sandbox/{vendor}/contacts/anna@example.com",
                               json={"fields": {TURNOVER[vendor]: 0.5}}, timeout=5)
        assert patch.status_code == 200
        if vendor in CUSTOMERS:
            lists = [i for i in stack.holds(vendor, "cleo@example.com")["lists"] if i != CUSTOMERS[vendor]]
            requests.patch(f"{stack.sandbox}/_sandbox/{vendor}/contacts/cleo@example.com", json={"lists": lists},
                           timeout=5).raise_for_status()
        assert not lands(stack, vendor)

    for vendor in READABLE:
        done = hub_cli(stack, "audit", "run", vendor, "--sample", "50")
        assert done.returncode == 0, done.stderr
        drifted = 2 if vendor in CUSTOMERS else 1
        assert f"{vendor}: checked 5, in step {5 - drifted}, out of step {drifted}, repairs queued {drifted}" \
            in done.stdout, done.stdout
        assert f"anna@example.com: fields differ: {TURNOVER[vendor]}; repair queued" in done.stdout
        if vendor in CUSTOMERS:
            assert f"cleo@example.com: lists lost: {CUSTOMERS[vendor]}; repair queued" in done.stdout

    for vendor in READABLE:
        stack.wait_for(lambda v=vendor: lands(stack, v), what=f"the flush to repair {vendor}")
        drifted = 2.0 if vendor in CUSTOMERS else 1.0
        stack.wait_for(lambda v=vendor, n=drifted: metric(stack, v, "repaired") == n, what=f"{vendor} repairs counted")
        assert metric(stack, vendor, "out_of_step") == drifted
        assert metric(stack, vendor, "in_step") == 5 - drifted

    again = hub_cli(stack, "audit", "run", "splio", "--sample", "50")
    assert "splio: checked 5, in step 5, out of step 0, repairs queued 0" in again.stdout, again.stdout
    ometria = hub_cli(stack, "audit", "run", "ometria")
    assert ometria.returncode == 0 and "ometria: not audited: Ometria has no read API the hub uses" in ometria.stdout

    view = requests.get(f"{stack.hub}/v1/contacts/anna@example.com", headers={"Authorization": "Bearer ops-token"},
                        timeout=5).json()
    events = {(h["connector"], h["event"]) for h in view["audit"]}
    assert events == {(v, e) for v in READABLE for e in ("mismatch", "repaired")}


def test_the_scheduled_audit_repairs_drift_on_its_own(stack_factory) -> None:  # type: ignore[no-untyped-def]
    """No one runs anything: the hub's scheduler queues an audit every 2 s, and the drift made
    inside Splio is gone by itself, the contact's history saying how."""
    splio = {"splio": {k.upper(): v for k, v in connectors()["splio"].items()}}
    stack = stack_factory(connectors=splio, env={"HUB_AUDIT_INTERVAL": "2", "HUB_AUDIT_BUDGET": "120"})
    assert stack.post(story(), msg_id="story").status_code == 202
    stack.wait_for(lambda: lands(stack, "splio"), what="Splio to hold the story")
    requests.patch(f"{stack.sandbox}/_sandbox/splio/contacts/ben@example.com",
                   json={"fields": {TURNOVER["splio"]: 0.5}}, timeout=5).raise_for_status()
    stack.wait_for(lambda: metric(stack, "splio", "repaired") >= 1, timeout=120, what="a scheduled audit's repair")
    stack.wait_for(lambda: lands(stack, "splio"), what="Splio to hold the story again")
    view = requests.get(f"{stack.hub}/v1/contacts/ben@example.com", headers={"Authorization": "Bearer ops-token"},
                        timeout=5).json()
    assert [h["event"] for h in view["audit"]][:2] == ["repaired", "mismatch"]
