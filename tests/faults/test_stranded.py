"""No stranded contacts: a flush leaves a job on every exit path, and the periodic sweep queues a
flush for contacts that were stranded anyway."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.stack import Stack
from tests.faults.conftest import report

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

OPS = {"Authorization": "Bearer ops-token"}
KLAVIYO = {"klaviyo": {"API_KEY": "pk_sandbox_demo"}}
FIRST = "first@example.com"
OTHERS = [f"other{i:02d}@example.com" for i in range(8)]


def invite(n: int, email: str) -> dict[str, Any]:
    return {"id": f"inv-{n}-{email}", "type": "referral.invited", "occurred_at": "2026-11-21T10:00:00Z",
            "referrer": {"email": email}}


def ops(stack: Stack, method: str, path: str) -> Any:
    response = requests.request(method, f"{stack.hub}{path}", headers=OPS, json={}, timeout=10)
    assert response.ok, response.text
    return response.json()


def invited(stack: Stack, email: str) -> int | None:
    person = stack.holds("klaviyo", email)
    return (person or {}).get("fields", {}).get("referral_friends_invited")


def flush_gone(redis_client: Any) -> bool:
    """No flush queued (flag, queue, RQ's intermediate list empty) and none running."""
    return not (redis_client.exists("hub:flushq:klaviyo") or redis_client.llen("rq:queue:sync-klaviyo")
                or redis_client.llen("rq:queue:sync-klaviyo:intermediate") or redis_client.zcard("rq:wip:sync-klaviyo"))


def sweeps(stack: Stack) -> float:
    text = requests.get(f"{stack.hub}/metrics", timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith('hub_sweep_flushes_total{connector="klaviyo"}')]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_fatal_answer_strands_no_other_contact(stack_factory, redis_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Klaviyo refuses the first call (400) while other contacts are dirty but not yet due; once
    due they land, with no restart and no new event. The sweep is off, so the flush alone must
    have left the job."""
    stack = stack_factory(connectors=KLAVIYO, env={"HUB_SWEEP_INTERVAL": "3600"})
    ops(stack, "POST", "/v1/connectors/klaviyo/pause")
    events = [invite(1, FIRST)] + [invite(1, e) for e in OTHERS]
    response = stack.post(events, "all")
    assert response.status_code == 202 and response.json()["accepted"] == len(events)
    # Sync point: the flush the events queued has run and found the connector paused, so the
    # flush `resume` queues is the only job (the one the fatal answer must not end with).
    stack.wait_for(lambda: flush_gone(redis_client), what="the flush to find the connector paused and stop")
    # The others wait in a later coalescing window: they are dirty, due an hour from now (the
    # test moves that clock forward below, rather than waiting on it).
    redis_client.zadd("hub:dirty:klaviyo", {e: time.time() + 3600 for e in OTHERS}, xx=True)
    stack.fault("klaviyo", 400, count=1, body={"errors": [{"status": "400", "code": "invalid", "detail": "refused"}]})
    ops(stack, "POST", "/v1/connectors/klaviyo/resume")

    failed = stack.wait_for(lambda: ops(stack, "GET", "/v1/failed?connector=klaviyo")["failed"], what="the failed sync")
    assert [item["contacts"] for item in failed] == [[FIRST]]
    assert redis_client.zcard("hub:dirty:klaviyo") == len(OTHERS)      # still pending, not failed

    redis_client.zadd("hub:dirty:klaviyo", {e: time.time() for e in OTHERS}, xx=True)   # now due
    stack.wait_for(lambda: all(invited(stack, e) == 1 for e in OTHERS) and not redis_client.zcard("hub:dirty:klaviyo"),
                   timeout=60, what="the others to land and the hub to record it")
    assert invited(stack, FIRST) is None
    assert sweeps(stack) == 0
    landed = sum(invited(stack, e) or 0 for e in OTHERS)
    report(tmp_path, "fatal 400 for one contact while 8 others pending",
           {"sent": len(events), "accepted": response.json()["accepted"], "landed": landed,
            "failed_sync": 1, "lost": len(OTHERS) - landed, "doubled": 0,
            "stale": sum(1 for e in OTHERS if invited(stack, e) != 1)})


def test_sweep_queues_a_flush_for_stranded_contacts(stack_factory, redis_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Contacts left dirty with no job (here: a pause lifted behind the hub's back, so no resume
    queued the flush) are found by the periodic sweep and land."""
    stack = stack_factory(connectors=KLAVIYO, env={"HUB_SWEEP_INTERVAL": "1", "HUB_SWEEP_GRACE": "1"})
    ops(stack, "POST", "/v1/connectors/klaviyo/pause")
    events = [invite(2, e) for e in OTHERS]
    response = stack.post(events, "stranded")
    assert response.status_code == 202
    stack.wait_for(lambda: flush_gone(redis_client), what="the flush to find the connector paused and stop")
    redis_client.delete("hub:paused:klaviyo")
    stack.wait_for(lambda: all(invited(stack, e) == 1 for e in OTHERS), timeout=60, what="the sweep to rescue them")
    assert sweeps(stack) >= 1
    report(tmp_path, "contacts stranded with no job, found by the sweep",
           {"sent": len(events), "accepted": response.json()["accepted"],
            "landed": sum(invited(stack, e) or 0 for e in OTHERS), "sweep_flushes": sweeps(stack)})
