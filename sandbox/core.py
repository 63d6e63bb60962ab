"""The sandbox's shared parts: the in-memory vendor store, fixed-window rate limits, knobs, stats.

Every vendor emulation records what it holds in one `Store`, in the one shape DESIGN.md gives,
so a test can ask all five vendors the same question.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, g, has_request_context, jsonify, request

WRITES_KEPT = 50        # per contact: the newest writes (the count of all of them is kept too)


@dataclass
class Person:
    """What one vendor holds for one contact."""

    fields: dict[str, Any] = field(default_factory=dict)
    lists: set[str] = field(default_factory=set)
    marketing_consent: bool | None = None
    deleted: bool = False
    vendor_id: str = ""

    def view(self, email: str) -> dict[str, Any]:
        return {"email": email, "fields": dict(self.fields), "lists": sorted(self.lists),
                "marketing_consent": self.marketing_consent, "deleted": self.deleted}


@dataclass
class Fault:
    """A scripted failure: answer `status` (with `body`, `headers`) to the next `count` calls."""

    status: int
    count: int = 1_000_000
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""


class Store:
    """All vendors' state, guarded by one lock (the sandbox is one process, many threads)."""

    def __init__(self, latency: float = 0.0, fault_rate: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.people: dict[str, dict[str, Person]] = defaultdict(dict)
        self.stats: Counter[str] = Counter()
        self.windows: dict[str, tuple[int, int]] = {}
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.latency = latency
        self.fault_rate = fault_rate
        self.requests: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        # Per-vendor answer modes a test can switch on (e.g. Ometria's "counts_only").
        self.modes: dict[str, str] = {}
        self.vendor_state: dict[str, Any] = {}    # what one vendor models beyond people (keys, settings)
        self.seq = 0
        # vendor -> email -> {"count", "unchanged", "writes": [{"seq", "at", "state"}]}: each change a request
        # made to a contact, in the order the sandbox applied them (the fault tests read it).
        self.writes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.write_seq = 0
        # vendor -> {"at": when its last contact-changing write landed (unix time), "writes": how
        # many such writes}: the benchmark's drain is measured at the vendors from these.
        self.changes: dict[str, dict[str, float]] = {}

    def touch(self, vendor: str, email: str) -> None:
        """Note that the request in progress reached this contact (recorded when it ends)."""
        if has_request_context():
            g.setdefault("sandbox_touched", set()).add((vendor, email.strip().lower()))

    def record_writes(self, touched: set[tuple[str, str]]) -> None:
        """After a request: a write for each contact it reached whose view changed (or that is new)."""
        with self.lock:
            for vendor, email in sorted(touched):
                person = self.people[vendor].get(email)
                if person is None:
                    continue
                state = person.view(email)
                log = self.writes[vendor].setdefault(email, {"count": 0, "writes": []})
                if log["writes"] and log["writes"][-1]["state"] == state:
                    log["unchanged"] = log.get("unchanged", 0) + 1    # the same state written again
                    continue
                self.write_seq += 1
                log["count"] += 1
                at = time.time()
                log["writes"].append({"seq": self.write_seq, "at": at, "state": state})
                del log["writes"][:-WRITES_KEPT]
                change = self.changes.setdefault(vendor, {"at": at, "writes": 0})
                change["at"] = max(change["at"], at)
                change["writes"] += 1

    def person(self, vendor: str, email: str) -> Person:
        """The vendor's record for `email`, created (or revived after deletion) on write."""
        email = email.strip().lower()
        self.touch(vendor, email)
        with self.lock:
            p = self.people[vendor].get(email)
            if p is None or p.deleted:
                self.seq += 1
                p = Person(vendor_id=f"{vendor[:2].upper()}{self.seq:08d}")
                self.people[vendor][email] = p
            return p

    def find(self, vendor: str, email: str) -> Person | None:
        self.touch(vendor, email)
        return self.people[vendor].get(email.strip().lower())

    def delete(self, vendor: str, email: str) -> bool:
        self.touch(vendor, email)
        with self.lock:
            p = self.find(vendor, email)
            if p is None or p.deleted:
                return False
            self.people[vendor][email.strip().lower()] = Person(deleted=True, vendor_id=p.vendor_id)
            return True

    def next_id(self, prefix: str) -> str:
        with self.lock:
            self.seq += 1
            return f"{prefix}{self.seq:010d}"

    def over_limit(self, bucket: str, limits: tuple[tuple[int, float], ...]) -> float | None:
        """Count a call in fixed windows (as Klaviyo does); return seconds to wait if over."""
        now = time.time()
        with self.lock:
            for count, period in limits:
                key = f"{bucket}:{count}/{period}"
                window = int(now // period)
                start, used = self.windows.get(key, (window, 0))
                if start != window:
                    start, used = window, 0
                if used >= count:
                    return (window + 1) * period - now
                self.windows[key] = (start, used + 1)
        return None

    def take_fault(self, vendor: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults.get(vendor, []):
                if fault.count > 0 and (not fault.path or path.startswith(fault.path)):
                    fault.count -= 1
                    return fault
        if self.fault_rate and random.random() < self.fault_rate:
            return Fault(status=503, body={"error": "sandbox random fault"})
        return None


def store() -> Store:
    return current_app.extensions["sandbox"]


def count_call(vendor: str, endpoint: str) -> None:
    with store().lock:
        store().stats[f"{vendor} {endpoint}"] += 1
        store().stats[f"{vendor} total"] += 1


def fault_response(fault: Fault) -> Response:
    response = jsonify(fault.body if fault.body is not None else {"error": f"sandbox fault {fault.status}"})
    response.status_code = fault.status
    response.headers.update(fault.headers)
    return response


def pause() -> None:
    if store().latency:
        time.sleep(store().latency)


def admit(vendor: str, endpoint: str, path: str) -> Response | None:
    """What every emulated call goes through first: count it, wait the latency knob, and answer
    a scripted fault if one is due (None: go on to the vendor's own checks)."""
    count_call(vendor, f"{request.method} {endpoint}")
    pause()
    fault = store().take_fault(vendor, path)
    return fault_response(fault) if fault else None
