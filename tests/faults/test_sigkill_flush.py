"""SIGKILLs while flushes are in flight, at all five vendors: every vendor ends exactly right,
and no contact's last write at a vendor is older than the hub's final state.

The first faults are the ones a pod or a terminal deals: SIGKILL of the worker pool's process
group. RQ's work horses run in process groups of their own, so a horse mid-flush survives and
goes on writing while the restarted pool starts flushing the same connectors. The last one kills
the whole tree, horses included, so their calls die mid-flight.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox import DEMO_SETTINGS
from tests.e2e.stack import Stack
from tests.faults.conftest import report

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

CONNECTORS = {vendor: {k.upper(): v for k, v in settings.items()} for vendor, settings in DEMO_SETTINGS.items()}
# Where each vendor's default mapping puts a referrer's invites.
INVITES = {"klaviyo": "referral_friends_invited", "emarsys": "12001", "salesforce": "Referral_Friends_Invited__c",
           "ometria": "friends_invited", "splio": "referral_nb_potential_referred"}
PEOPLE = [f"fault{i:02d}@example.com" for i in range(10)]
GROUP_KILLS = 3


def invites(tag: str) -> list[dict[str, Any]]:
    return [{"id": f"{tag}-{i}", "type": "referral.invited", "occurred_at": f"2026-11-21T10:{i:02d}:00Z",
             "referrer": {"email": email}} for i, email in enumerate(PEOPLE)]


def calls(stack: Stack) -> dict[str, int]:
    stats = stack.stats()
    return {vendor: stats.get(f"{vendor} total", 0) for vendor in CONNECTORS}


def held(stack: Stack, vendor: str, email: str) -> float | None:
    person = stack.holds(vendor, email)
    value = (person or {}).get("fields", {}).get(INVITES[vendor])
    return None if value in (None, "") else float(value)


def hub_invites(redis_client: Any, email: str) -> int:
    return int(redis_client.hget(f"hub:c:{email}", "invites_sent") or 0)


def settled(stack: Stack, redis_client: Any, expected: int) -> bool:
    """The hub holds `expected` invites per person, nothing is pending, every vendor agrees."""
    if any(hub_invites(redis_client, e) != expected for e in PEOPLE):
        return False
    if any(redis_client.zcard(f"hub:dirty:{v}") or redis_client.hlen(f"hub:suspect:{v}") for v in CONNECTORS):
        return False
    return all(held(stack, v, e) == expected for v in CONNECTORS for e in PEOPLE)


def figures(stack: Stack, redis_client: Any, sent: int, accepted: int) -> dict[str, Any]:
    """Per vendor: invites landed, lost, doubled; contacts whose last write is older than the
    hub's state (stale); and writes that went backwards on the way (stale writes later repaired)."""
    out: dict[str, Any] = {"sent": sent, "accepted": accepted}
    for vendor in CONNECTORS:
        log = stack.writes(vendor)
        landed = lost = doubled = stale = backwards = 0
        for email in PEOPLE:
            want, got = hub_invites(redis_client, email), held(stack, vendor, email) or 0
            landed += int(min(got, want))
            lost += int(max(want - got, 0))
            doubled += int(max(got - want, 0))
            values = [float(w["state"]["fields"].get(INVITES[vendor]) or 0)
                      for w in log.get(email, {}).get("writes", [])]
            stale += int(not values or values[-1] < want)
            backwards += sum(1 for i, v in enumerate(values) if i and v < max(values[:i]))
        out[vendor] = {"landed": landed, "lost": lost, "doubled": doubled, "stale": stale,
                       "stale_writes_repaired": backwards}
    return out


def in_flight_everywhere(stack: Stack, before: dict[str, int]) -> bool:
    """The sync point: every vendor has counted a new call (the sandbox counts a call when it
    arrives, then holds it for its latency), so a horse is waiting on it."""
    now = calls(stack)
    return all(now[v] > before[v] for v in CONNECTORS)


def test_sigkill_mid_flush_leaves_every_vendor_exact(stack_factory, redis_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(connectors=CONNECTORS, latency=0.4,
                          env={"HUB_FLUSH_BUDGET": "3", "HUB_SWEEP_INTERVAL": "2", "HUB_SWEEP_GRACE": "4"})
    sent = accepted = survivors = 0
    rounds = GROUP_KILLS + 1
    for n in range(rounds):
        before = calls(stack)
        batch = invites(f"round{n}")
        response = stack.post(batch, msg_id=f"round{n}")
        assert response.status_code == 202, response.text
        sent, accepted = sent + len(batch), accepted + response.json()["accepted"]
        stack.wait_for(lambda: in_flight_everywhere(stack, before), timeout=90, what="a call in flight at every vendor")
        if n < GROUP_KILLS:
            survivors += len(stack.kill_pool_group())
        else:
            stack.kill_worker()
        stack.start_worker()
    assert survivors, "no work horse outlived its pool's process group: the fault was not reproduced"

    try:
        stack.wait_for(lambda: settled(stack, redis_client, rounds), timeout=150, what="every vendor to settle")
    finally:
        numbers = figures(stack, redis_client, sent, accepted)
        numbers["horses_outliving_group_kills"] = survivors
        report(tmp_path, f"{GROUP_KILLS} pool process-group SIGKILLs then a whole-tree SIGKILL, mid-flush", numbers)
    assert accepted == sent
    for vendor in CONNECTORS:
        assert {k: numbers[vendor][k] for k in ("lost", "doubled", "stale")} == {"lost": 0, "doubled": 0, "stale": 0}
        assert numbers[vendor]["landed"] == accepted
