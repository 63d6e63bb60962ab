"""Past one machine: two HTTP servers and several worker pools, each pool with a folder of its
own (standing in for separate hosts), on one Redis made highly available by a replica and three
Sentinels, all real processes on loopback (tests/e2e/stack.py).

- The benchmark workload goes to both HTTP servers while the primary is SIGKILLed; Sentinel
  promotes the replica; senders retry on 503 as docs/deployment.md says. With durable ingest on,
  every event that got a 202 is in the final state and every vendor ends exactly right; with it
  off, the count lost is reported as a figure. In the same run one worker pool is SIGKILLed
  mid-flush while the other goes on: nothing lost, nothing doubled.
- Four worker pools flush one connector at once: no contact's last write at the vendor is older
  than the hub's final state, and no contact is written twice with the same state.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from benchmarks.expected import compare, expected_for
from benchmarks.workload import build
from hub.core.store import connect
from sandbox import DEMO_SETTINGS
from tests.conftest import signed_headers
from tests.e2e.stack import RedisSet, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.scale]

VENDORS = ("klaviyo", "emarsys", "salesforce", "ometria", "splio")
CONNECTORS = {v: {k.upper(): s for k, s in DEMO_SETTINGS[v].items()} for v in VENDORS}
REFERRERS = 300
BATCH = 50
FAST = {"HUB_FLUSH_WINDOW": "0.05", "HUB_FLUSH_LEASE": "5", "HUB_SWEEP_INTERVAL": "2", "HUB_SWEEP_GRACE": "3",
        "HUB_INGEST_RETRY_AFTER": "1", "HUB_LOG_LEVEL": "WARNING"}


def report(tmp_path: Path, what: str, figures: dict[str, Any]) -> None:
    line = json.dumps({"scale": what, **figures}, sort_keys=True)
    (tmp_path / "figures.json").write_text(line + "\n")
    print(f"\nSCALE FIGURES {line}")


class Sender(threading.Thread):
    """One sender posting its share of the batches to one HTTP server, retrying each batch (same
    message id, same events) on a 503 or a dropped connection after the Retry-After it was given,
    as docs/deployment.md asks of senders."""

    def __init__(self, hub: str, batches: list[tuple[str, list[dict[str, Any]]]],
                 gate: threading.Event | None = None, hold_from: int = 0) -> None:
        super().__init__(daemon=True)
        self.hub, self.batches = hub, batches
        self.gate, self.hold_from = gate, hold_from       # batches from hold_from on wait for the gate
        self.acked: list[str] = []          # event ids answered 202
        self.retries = 0
        self.error: str | None = None

    def run(self) -> None:
        session = requests.Session()
        try:
            for number, (msg_id, events) in enumerate(self.batches):
                if self.gate is not None and number >= self.hold_from:
                    self.gate.wait()
                body = json.dumps({"events": events}).encode()
                while True:
                    try:
                        answer = session.post(f"{self.hub}/v1/events", data=body, timeout=10,
                                              headers=signed_headers(body, msg_id=msg_id))
                    except requests.RequestException:
                        self.retries += 1
                        time.sleep(0.2)
                        continue
                    if answer.status_code == 202:
                        self.acked += [e["id"] for e in events]
                        break
                    if answer.status_code != 503:
                        raise AssertionError(f"{answer.status_code} {answer.text[:300]}")
                    self.retries += 1
                    time.sleep(float(answer.headers.get("Retry-After", "1")))
        except BaseException as exc:  # noqa: BLE001 - the test thread reports it
            self.error = repr(exc)


def vendor_calls(stack: Stack) -> int:
    stats = stack.stats()
    return sum(stats.get(f"{v} total", 0) for v in VENDORS)


def drained(stack: Stack, client: Any) -> bool:
    return not any(client.zcard(f"hub:dirty:{v}") or client.hlen(f"hub:suspect:{v}") for v in VENDORS)


def held(stack: Stack) -> dict[str, dict[str, Any]]:
    return {v: requests.get(f"{stack.sandbox}/_sandbox/{v}/contacts", timeout=60).json() for v in VENDORS}


def calls_429(client: Any) -> dict[str, int]:
    counts = {k.decode(): int(v) for k, v in client.hgetall("hub:m:calls").items()}
    return {v: counts.get(f"{v}\t429", 0) for v in VENDORS}


@pytest.mark.parametrize("durable", ["1", "0"], ids=["durable-on", "durable-off"])
def test_failover_and_a_pool_killed_mid_flush(tmp_path: Path, durable: str) -> None:
    workload = build(REFERRERS, seed=17, ns=f"s{durable}")
    stream = workload.stream
    batches = [(f"b{i}", stream[i:i + BATCH]) for i in range(0, len(stream), BATCH)]
    redis_set = RedisSet(tmp_path / "redis")
    stack = None
    try:
        stack = Stack(redis_set.url, tmp_path, connectors=CONNECTORS, latency=0.02,
                      env={**FAST, "HUB_INGEST_MIN_REPLICAS": durable})
        hubs = [stack.hub, stack.start_hub("hub-b")]
        stack.start_worker("worker-b", folder=tmp_path / "host-b")
        # Two senders per HTTP server, each with every fourth batch; the last fifth of each share
        # waits until after the failover, so there is work to flush when host b's pool is killed.
        after_failover = threading.Event()
        senders = [Sender(hubs[i % 2], batches[i::4], after_failover, len(batches[i::4]) * 4 // 5) for i in range(4)]
        for sender in senders:
            sender.start()
        stack.wait_for(lambda: sum(len(s.acked) for s in senders) >= len(stream) // 2, timeout=120,
                       what="half of the workload acknowledged")
        redis_set.kill_primary()
        acked_at_kill = sum(len(s.acked) for s in senders)
        promoted_in = redis_set.wait_promoted()
        # The promoted replica has no replica of its own: with durable ingest every 202 waits
        # (503s meanwhile) until the old primary is back as one, which ops do next.
        redis_set.restart_old_primary()
        before = vendor_calls(stack)
        after_failover.set()
        stack.wait_for(lambda: vendor_calls(stack) > before, timeout=60, what="a flush in flight after the failover")
        stack.kill_worker("worker-b")          # host b's pool dies mid-flush; the first pool goes on
        for sender in senders:
            sender.join(120)
        assert [s.error for s in senders] == [None] * 4
        assert not any(s.is_alive() for s in senders)
        acked = [i for s in senders for i in s.acked]
        assert len(acked) == len(stream)       # every batch got its 202 in the end

        client = connect(redis_set.url)        # follows the primary, as every hub process does
        stack.wait_for(lambda: drained(stack, client), timeout=150, what="every connector to drain")
        # Lost: events answered 202 that the final state does not have. Sent again now, such an
        # event is applied afresh ("accepted") instead of being a duplicate.
        again = sorted({e["id"]: e for e in stream if not e["id"].endswith("-again")}.values(),
                       key=lambda e: e["occurred_at"])
        lost = 0
        for i in range(0, len(again), 500):
            answer = stack.post(again[i:i + 500], msg_id=f"check{i}", hub=hubs[0])
            assert answer.status_code == 202, answer.text
            lost += answer.json()["accepted"]
        stack.wait_for(lambda: drained(stack, client), timeout=150, what="every connector to drain again")
        result = compare(expected_for(stream, VENDORS), held(stack))
        figures = {"durable_ingest": durable == "1", "events_sent": len(stream), "acked_before_kill": acked_at_kill,
                   "lost_after_202": lost, "promoted_in_s": round(promoted_in, 2),
                   "sender_retries": sum(s.retries for s in senders), "vendor_429s": calls_429(client),
                   "mismatched": {v: result[v]["mismatched"] for v in VENDORS}}
        report(tmp_path, "primary SIGKILLed mid-workload, host b's pool SIGKILLed mid-flush", figures)
        # Whatever was lost has been sent again by now, so every vendor must be exact either way;
        # only with durable ingest must nothing acknowledged have been lost.
        assert {v: result[v]["mismatched"] for v in VENDORS} == {v: 0 for v in VENDORS}, result
        if durable == "1":
            assert lost == 0
    finally:
        if stack:
            stack.stop()
        redis_set.stop()


PEOPLE = [f"order{i:02d}@example.com" for i in range(20)]
ROUNDS = 30


def test_four_pools_on_one_connector_never_leave_a_stale_write(tmp_path: Path) -> None:
    redis_set = RedisSet(tmp_path / "redis")
    stack = None
    try:
        stack = Stack(redis_set.url, tmp_path, connectors={"klaviyo": CONNECTORS["klaviyo"]}, latency=0.3,
                      env={**FAST, "HUB_FLUSH_WINDOW": "0", "HUB_FLUSH_BUDGET": "1"})
        hubs = [stack.hub, stack.start_hub("hub-b")]
        for name in ("b", "c", "d"):
            stack.start_worker(f"worker-{name}", folder=tmp_path / f"host-{name}")
        primary = connect(redis_set.url)
        stack.wait_for(lambda: workers_on(primary, "sync-klaviyo") >= 4, timeout=90, what="four klaviyo workers")
        started = time.monotonic()
        for n in range(ROUNDS):     # each round: one more invite for everyone, half via each server
            if n:   # the sync point: the round goes in while a push of the previous one is in flight
                calls = stack.stats().get("klaviyo total", 0)
                stack.wait_for(lambda: stack.stats().get("klaviyo total", 0) > calls, timeout=60,
                               what="a klaviyo call in flight")
            events = [{"id": f"r{n}-{i}", "type": "referral.invited", "occurred_at": f"2026-11-21T10:{n:02d}:{i:02d}Z",
                       "referrer": {"email": email}} for i, email in enumerate(PEOPLE)]
            for part, hub in enumerate(hubs):
                answer = stack.post(events[part::2], msg_id=f"r{n}-{part}", hub=hub)
                assert answer.status_code == 202, answer.text
        stack.wait_for(lambda: not primary.zcard("hub:dirty:klaviyo") and not primary.hlen("hub:suspect:klaviyo"),
                       timeout=120, what="klaviyo to drain")
        drain = time.monotonic() - started
        log = stack.writes("klaviyo")
        stale, same_state_twice, backwards = [], 0, 0
        for email in PEOPLE:
            hub_value = int(primary.hget(f"hub:c:{email}", "invites_sent") or 0)
            assert hub_value == ROUNDS
            values = [int(float(w["state"]["fields"].get("referral_friends_invited") or 0))
                      for w in log.get(email, {}).get("writes", [])]
            if not values or values[-1] != hub_value:
                stale.append((email, values[-3:]))
            backwards += sum(1 for i, v in enumerate(values) if i and v < max(values[:i]))
            # Every version here has its own invite count, so a request that left the record as
            # it was is a version pushed again.
            same_state_twice += log.get(email, {}).get("unchanged", 0)
        stats = stack.stats()
        workers = sorted({j for j in jobs_by_worker(primary)})
        report(tmp_path, "four pools on one connector", {
            "contacts": len(PEOPLE), "versions_each": ROUNDS, "drain_s": round(drain, 2),
            "klaviyo_calls": stats.get("klaviyo total", 0), "klaviyo_429s": calls_429(primary)["klaviyo"],
            "writes_going_backwards": backwards, "same_version_pushed_again": same_state_twice,
            "flushing_workers": len(workers)})
        assert stale == []
        assert same_state_twice == 0
        assert calls_429(primary)["klaviyo"] == 0      # the limiter lives in Redis: shared by every host
    finally:
        if stack:
            stack.stop()
        redis_set.stop()


def workers_on(client: Any, queue: str) -> int:
    names = [n.decode() for n in client.smembers("rq:workers")]
    return sum(1 for n in names if queue in (client.hget(n, "queues") or b"").decode().split(","))


def jobs_by_worker(client: Any) -> list[str]:
    """Workers on sync-klaviyo that finished at least one job."""
    names = [n.decode() for n in client.smembers("rq:workers")]
    return [n for n in names if int(client.hget(n, "successful_job_count") or 0) > 0
            and "sync-klaviyo" in (client.hget(n, "queues") or b"").decode()]
