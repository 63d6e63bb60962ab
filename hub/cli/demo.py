"""`hub demo`: an embedded Redis, the sandbox, the hub and a worker pool, a referral story posted
over signed HTTP, and what every platform now holds."""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import requests

from hub.core.auth import sign
from hub.cli import feeds_demo as feed_demo
from hub.core.processes import free_port, start, stop, wait_http
from hub.core import keys

SECRET = "whsec_ZGVtby1zZWNyZXQtZm9yLXJlZmVycmFsLXN5bmMtaHVi"
ANNA = {"email": "anna@example.com", "first_name": "Anna", "referrer_id": "ref-anna",
        "share_url": "https://shop.example/r/anna"}
BEN = {"email": "ben@example.com", "first_name": "Ben", "referrer_id": "ref-ben",
       "share_url": "https://shop.example/r/ben"}


def event(n: int, kind: str, **parts: Any) -> dict[str, Any]:
    return {"id": f"evt_{n:03d}", "type": kind, "occurred_at": f"2026-11-21T10:{n // 60:02d}:{n % 60:02d}Z", **parts}


def story() -> list[dict[str, Any]]:
    """Two referrers; Anna's friend Cleo opts in and buys, Dan does not opt in; Ben's friend Eve
    opts in and buys in EUR; Anna earns a reward. In time order."""
    anna, ben = {"email": ANNA["email"]}, {"email": BEN["email"]}
    return [
        event(1, "referrer.enrolled", referrer=ANNA),
        event(2, "referrer.enrolled", referrer=BEN),
        event(3, "referral.invited", referrer=anna),
        event(4, "referral.invited", referrer=anna),
        event(5, "referral.invited", referrer=ben),
        event(6, "friend.registered", referrer=anna,
              friend={"email": "cleo@example.com", "first_name": "Cleo", "marketing_opt_in": True, "promo_code": "ANNA-20"}),
        event(7, "friend.registered", referrer=anna,
              friend={"email": "dan@example.com", "first_name": "Dan", "marketing_opt_in": False, "promo_code": "ANNA-21"}),
        event(8, "friend.converted", referrer=anna, friend={"email": "cleo@example.com"},
              order={"id": "ord_1", "total": "59.90", "currency": "GBP", "coupon_code": "ANNA-20"}),
        event(9, "friend.registered", referrer=ben,
              friend={"email": "eve@example.com", "first_name": "Eve", "marketing_opt_in": True, "promo_code": "BEN-10"}),
        event(10, "friend.converted", referrer=ben, friend={"email": "eve@example.com"},
              order={"id": "ord_2", "total": "120.00", "currency": "EUR"}),
        event(11, "reward.granted", referrer=anna,
              reward={"recipient": "referrer", "kind": "coupon", "value": "10.00", "currency": "GBP", "code": "THANKS-10"}),
    ]


def as_delivered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The story as a sender really delivers it: Cleo's conversion before her registration, a
    client retry of the first event (same id), and the conversion sent again with a new id."""
    out = list(events)
    i, j = next(k for k, e in enumerate(out) if e["id"] == "evt_006"), next(k for k, e in enumerate(out) if e["id"] == "evt_008")
    out[i], out[j] = out[j], out[i]
    return out + [dict(out[0]), {**events[j], "id": "evt_108"}]


def post(hub: str, events: list[dict[str, Any]], msg_id: str) -> dict[str, Any]:
    body = json.dumps({"events": events}).encode()
    stamp = int(time.time())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": sign(SECRET, msg_id, stamp, body),
               "Content-Type": "application/json"}
    response = requests.post(f"{hub}/v1/events", data=body, headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()


def settled(redis: Any, connectors: list[str]) -> bool:
    pending = [keys.dirty(c) for c in connectors] + [keys.erase(c) for c in connectors]
    return not any(redis.zcard(k) for k in pending)


VENDORS = ("klaviyo", "emarsys", "salesforce", "ometria", "splio")


def field_label(vendor: str, key: str) -> str:
    """Emarsys names fields by number: show the sandbox account's name beside the id."""
    if vendor == "emarsys" and key.isdigit():
        from sandbox.emarsys import FIELDS

        known = FIELDS.get(int(key))
        if known:
            return f"{known[2]} ({key})"
    return key


def describe(vendor: str, held: dict[str, Any] | None) -> str:
    """What one vendor holds for a contact, as a person reads it."""
    if held is None:
        return f"  {vendor:<11} not held"
    consent = {True: "opted in", False: "opted out", None: "not given"}.get(held["marketing_consent"], "?")
    lists = ", ".join(str(x) for x in held["lists"]) or "none"
    head = f"  {vendor:<11} marketing consent {consent}; lists {lists}{'; DELETED' if held['deleted'] else ''}"
    fields = [f"{field_label(vendor, str(k))} = {v}" for k, v in sorted(held["fields"].items(), key=lambda kv: str(kv[0]))]
    return "\n".join([head, *(f"{'':<15}{line}" for line in fields)] or [head])


def show(sandbox: str, vendors: list[str], emails: list[str]) -> None:
    for email in emails:
        print(f"\n{email}")
        for vendor in vendors:
            response = requests.get(f"{sandbox}/_sandbox/{vendor}/contacts/{email}", timeout=5)
            print(describe(vendor, response.json() if response.ok else None))


def answer_line(answer: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in answer.items())


def run(keep: bool = False) -> None:
    from sandbox import DEMO_SETTINGS

    from hub.core.store import Embedded, connect, start_embedded

    data = Path("var/demo")
    Embedded.of(data).stop()       # an earlier demo that was killed may have left its server
    shutil.rmtree(data, ignore_errors=True)
    server = start_embedded(data)
    sandbox_port, hub_port = free_port(), free_port()
    sandbox, hub = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{hub_port}"
    env = {**os.environ, "HUB_REDIS_URL": server.url, "HUB_INGEST_SECRETS": SECRET, "HUB_FLUSH_WINDOW": "0.2"}
    sftp_args, feed_env = feed_demo.prepare(data)
    env.update(feed_env)
    for vendor, settings in DEMO_SETTINGS.items():
        env.update({f"HUB_{vendor.upper()}_{k.upper()}": v for k, v in settings.items()})
        env[f"HUB_{vendor.upper()}_BASE_URL"] = f"{sandbox}/{vendor}"
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = [start(name, args, env, logs) for name, args in (
        ("sandbox", ["sandbox", "--port", str(sandbox_port), *sftp_args]),
        ("hub", ["serve", "--port", str(hub_port)]), ("worker", ["worker"]))]
    try:
        wait_http(f"{sandbox}/_sandbox/stats")
        wait_http(f"{hub}/readyz")
        print(f"Hub {hub}  sandbox {sandbox}  Redis {server.url} (embedded, AOF)\nLogs in {logs}/")
        delivered = as_delivered(story())
        print(f"\nPosting {len(delivered)} signed events in 3 batches (one out of order, one retried, one order sent twice):")
        for n, first in enumerate(range(0, len(delivered), 5)):
            print(f"  batch {n + 1}: {answer_line(post(hub, delivered[first:first + 5], f'demo-{n}'))}")
        feed_demo.run_import(env, data)
        redis = connect(server.url)
        vendors = list(DEMO_SETTINGS)
        deadline = time.monotonic() + 60
        time.sleep(0.5)
        while not settled(redis, vendors) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        print("\nWhat each platform now holds:")
        show(sandbox, vendors, ["anna@example.com", "ben@example.com", "cleo@example.com", "dan@example.com",
                                "eve@example.com", "fay@example.com"])
        calls = requests.get(f"{sandbox}/_sandbox/stats", timeout=5).json()
        print("\nVendor calls: " + ", ".join(f"{v} {calls.get(f'{v} total', 0)}" for v in vendors))
        if keep:
            print("\nEverything keeps running; Ctrl-C to stop.")
            signal.pause()
    finally:
        stop(procs)
        server.stop()
