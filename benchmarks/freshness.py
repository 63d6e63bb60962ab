"""Freshness at several steady rates, and what each connector's declared limits allow at each.

For each rate (events/s) a fresh slice of the standard workload (its own id and email namespace,
so nothing is a duplicate of an earlier phase) is sent at that rate: every TICK seconds one
request carries the events due by then. Some of the events that move a referrer counter become
probes: seconds from the request's 202 until each vendor's mapped counter shows at least the
value the event implies (read from the sandbox every POLL seconds). Per rate the report gives
each connector's p50 / p95 and the p50 / p95 of "visible at every vendor".

Beside the measurement, `limit_verdicts` works out from the declarations alone (each connector's
`rate_limits` as it obeys them, its batch sizes and its coalescing window) whether any hub could
keep p95 under the 5 s target at that rate: how many contacts a second the rate dirties (from the
slice itself), how many calls a flush of them needs in each bucket, and whether some flush
interval keeps both the sustained call rate within every declared limit and the wait under 5 s.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

import requests

from connectors import CONNECTORS
from connectors.klaviyo import SUBSCRIBE_MAX as KLAVIYO_SUBSCRIBE_MAX
from connectors.salesforce import COLLECTION_MAX as SALESFORCE_COLLECTION_MAX

from . import expected as expected_mod
from .progress import Phases, step_to
from .workload import build

RATES = (20, 70, 200, 1000)
SECONDS, MIN_EVENTS = 12.0, 300       # per rate: 12 s of sending, at least 300 events
PROBES = 60                            # about this many probes per rate
TICK, POLL, PROBE_TIMEOUT = 0.05, 0.1, 60.0
MAX_REQUEST = 500                      # events a request may carry (HUB_MAX_EVENTS)
TARGET_P95_S = 5.0
LATENCY = 0.03                         # the sandbox's answer time a call
KLAVIYO_LOOKUP_MAX = 100               # emails per suppression read (profiles filter)
# The counter a probe watches at each vendor (mapping target per source field).
COUNTERS = {"referral.invited": "invites_sent", "friend.registered": "friends_registered",
            "friend.converted": "friends_converted"}


def parse_rates(text: str) -> tuple[int, ...]:
    """"20,70,200,1000" -> (20, 70, 200, 1000); a ValueError names the bad item."""
    rates = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or int(item) <= 0:
            raise ValueError(f"--freshness-rates: {item!r} is not a positive whole number of events a second")
        rates.append(int(item))
    if not rates:
        raise ValueError("--freshness-rates: no rate given (for example 20,70,200,1000)")
    return tuple(sorted(set(rates)))


def planned_events(rate: int, seconds: float = SECONDS) -> int:
    return max(MIN_EVENTS, round(rate * seconds))


def slice_for(rate: int, seed: int, seconds: float = SECONDS) -> list[dict[str, Any]]:
    """The events sent at `rate`: the start of a workload of their own (namespace f<rate>)."""
    events = planned_events(rate, seconds)
    return build(events // 9 + 20, seed, ns=f"f{rate}").stream[:events]


def targets_for(vendor: str) -> dict[str, str]:
    return {source: target for target, source, _ in expected_mod.DEFAULTS[vendor]["fields"]
            if source in COUNTERS.values()}


# -- the measurement ------------------------------------------------------------------------------
def measure(stack: Any, sender: Any, events: list[dict[str, Any]], rate: int, vendors: tuple[str, ...],
            phases: Phases, pct: Callable[[list[float], float], float | None]) -> dict[str, Any]:
    """Send `events` at `rate` events/s and time the probes; the figures of this rate."""
    model = expected_mod.Model()
    counter_targets = {v: targets_for(v) for v in vendors}
    moving = sum(1 for e in events if e["type"] in COUNTERS)
    every = max(1, moving // PROBES)
    probes: list[dict[str, Any]] = []
    lock = threading.Lock()
    done = threading.Event()

    def pending() -> list[dict[str, Any]]:
        now = time.perf_counter()
        with lock:
            return [p for p in probes if len(p["seen"]) < len(vendors) and now - p["at"] < PROBE_TIMEOUT]

    def poll() -> None:
        session = requests.Session()
        while True:
            waiting = pending()
            if done.is_set() and not waiting:
                return
            for probe in waiting:
                for vendor in vendors:
                    if vendor in probe["seen"]:
                        continue
                    held = stack.holds(session, vendor, probe["email"])
                    value = ((held or {}).get("fields") or {}).get(counter_targets[vendor][probe["counter"]])
                    try:
                        ok = value is not None and float(value) >= probe["value"]
                    except (TypeError, ValueError):
                        ok = False
                    if ok:
                        probe["seen"][vendor] = time.perf_counter() - probe["at"]
            time.sleep(POLL)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    count = 0
    sent = 0
    try:
        with phases.meter(f"freshness {rate}/s", len(events), "events") as progress:
            started = time.perf_counter()
            tick = 0
            while sent < len(events):
                tick += 1
                due_at = started + tick * TICK
                time.sleep(max(0.0, due_at - time.perf_counter()))
                due = min(len(events), math.floor((time.perf_counter() - started) * rate), sent + MAX_REQUEST)
                if due <= sent:
                    continue
                chunk = events[sent:due]
                new = [event for event in chunk if model.apply(event)]
                model.finish()
                sender.post({"events": chunk})
                acked = time.perf_counter()
                sent = due
                for event in new:
                    counter = COUNTERS.get(event["type"])
                    if counter is None:
                        continue
                    count += 1
                    if count % every:
                        continue
                    email = event["referrer"]["email"]
                    with lock:
                        probes.append({"email": email, "counter": counter, "value": model.state(email)[counter],
                                       "at": acked, "seen": {}})
                step_to(progress, sent)
            seconds = time.perf_counter() - started
        with phases.meter(f"freshness {rate}/s, seen at every vendor", len(probes), "probes") as progress:
            done.set()
            while poller.is_alive():
                poller.join(1.0)
                step_to(progress, sum(1 for p in probes if len(p["seen"]) == len(vendors)))
    finally:
        done.set()
    per_vendor = {}
    for vendor in vendors:
        values = [p["seen"][vendor] for p in probes if vendor in p["seen"]]
        per_vendor[vendor] = {"p50_s": rounded(pct(values, 50)), "p95_s": rounded(pct(values, 95)),
                              "unseen": sum(1 for p in probes if vendor not in p["seen"])}
    everywhere = [max(p["seen"].values()) if len(p["seen"]) == len(vendors) else float("inf") for p in probes]
    return {"rate": rate, "events": len(events), "seconds": round(seconds, 1),
            "achieved_rate": round(len(events) / seconds, 1), "probes": len(probes), "probe_every": every,
            "poll_s": POLL, "p50_s": rounded(pct(everywhere, 50)), "p95_s": rounded(pct(everywhere, 95)),
            "vendors": per_vendor}


def rounded(value: float | None) -> float | None:
    """Seconds to 2 places; None when nothing was measured or a probe never became visible."""
    return None if value is None or math.isinf(value) else round(value, 2)


# -- what the declarations allow ------------------------------------------------------------------
def shape(events: list[dict[str, Any]]) -> dict[str, float]:
    """Per event sent (duplicates included): contacts it changes, new marketing members (friends
    registering with opt-in) and new customers (conversions), as the hub would push them."""
    seen: set[str] = set()
    touches = marketing = customers = 0
    for event in events:
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        touches += sum(1 for role in ("referrer", "friend") if role in event)
        if event["type"] == "friend.registered" and event["friend"].get("marketing_opt_in") is True:
            marketing += 1
        elif event["type"] == "friend.converted":
            customers += 1
    n = max(len(events), 1)
    return {"contacts": touches / n, "marketing": marketing / n, "customers": customers / n}


def flush_calls(vendor: str, contacts: float, marketing: float, customers: float) -> dict[str, int]:
    """Calls per bucket for one flush of this many contacts, new marketing members and new
    customers, at the connector's batch sizes (the same calls benchmarks/floor.py counts)."""
    n, m, t = math.ceil(contacts), math.ceil(marketing), math.ceil(customers)
    batch = CONNECTORS[vendor].max_batch
    if vendor == "klaviyo":
        # customers go in import jobs of their own; each job is followed by one status read
        jobs = math.ceil(max(n - t, 0) / batch) + math.ceil(t / batch)
        return {"bulk-import": 2 * jobs, "profiles": math.ceil(m / KLAVIYO_LOOKUP_MAX),
                "subscriptions": math.ceil(m / KLAVIYO_SUBSCRIBE_MAX)}
    if vendor == "emarsys":
        return {"api": math.ceil(n / batch) + math.ceil(m / batch) + math.ceil(t / batch)}
    if vendor == "salesforce":
        return {"api": math.ceil(n / SALESFORCE_COLLECTION_MAX) + math.ceil((m + t) / SALESFORCE_COLLECTION_MAX)}
    if vendor == "ometria":
        return {"push": math.ceil(n / batch)}
    return {"contacts": math.ceil(n / batch)}


def obeyed(vendor: str, bucket: str) -> tuple[tuple[int, float], ...]:
    return tuple(CONNECTORS[vendor].rate_limits[bucket].obeyed)


def span(calls: int, limits: tuple[tuple[int, float], ...]) -> float:
    """Seconds from the first to the last of `calls` calls under `limits`."""
    return max([(math.ceil(calls / count) - 1) * period for count, period in limits] or [0.0]) if calls > 0 else 0.0


def limit_words(limits: tuple[tuple[int, float], ...]) -> str:
    return ", ".join(f"{count:,} calls per {period:g} s" for count, period in limits) or "no short-window limit"


def as_sent(events: list[dict[str, Any]], rate: float) -> Callable[[float], dict[str, float]]:
    """Per flush interval T: the distinct contacts (and new marketing members and customers) in
    windows of rate x T consecutive events of the slice, on average. The benchmark's slices
    replay whole stories within seconds, so a contact often has several events in one window."""
    cache: dict[int, dict[str, float]] = {}

    def per_flush(interval: float) -> dict[str, float]:
        size = max(1, min(len(events), round(rate * interval)))
        if size not in cache:
            windows = [events[i:i + size] for i in range(0, len(events) - size + 1, size)] or [events]
            totals = {"contacts": 0.0, "marketing": 0.0, "customers": 0.0}
            for window in windows:
                totals["contacts"] += len({e[r]["email"] for e in window for r in ("referrer", "friend") if r in e})
                counted = shape(window)
                totals["marketing"] += counted["marketing"] * len(window)
                totals["customers"] += counted["customers"] * len(window)
            scale = rate * interval / size          # a window shorter than the flush (a short slice)
            cache[size] = {k: v / len(windows) * scale for k, v in totals.items()}
        return cache[size]
    return per_flush


def steady(per_event: dict[str, float], rate: float) -> Callable[[float], dict[str, float]]:
    """Per flush interval T with steady traffic of many people: no two events of one flush touch
    the same contact (a real story lasts hours), so every touch is a contact to push."""
    return lambda interval: {k: rate * v * interval for k, v in per_event.items()}


def verdict(vendor: str, rate: float, per_event: dict[str, float], target: float = TARGET_P95_S,
            per_flush: Callable[[float], dict[str, float]] | None = None) -> dict[str, Any]:
    """Whether the declared limits let `vendor` keep p95 under `target` at `rate` events/s.

    A contact waits the connector's coalescing window, then for the next flush (flushes every T
    seconds: p95 0.95 T), then for the flush's calls (their span under the limits, plus one
    answer time each, in turn). Some T must keep that under the target while the calls a second,
    calls(T) / T in each bucket, stay within count / period of every declared limit. The best T
    found is reported; when none exists, why."""
    window = float(CONNECTORS[vendor].coalesce_seconds)
    flush = per_flush or steady(per_event, rate)
    best: dict[str, Any] | None = None
    blocked_by: dict[str, Any] | None = None
    grid = [round(0.05 * i, 2) for i in range(1, int(target / 0.05) + 1)]
    for interval in grid:
        carried = flush(interval)
        calls = flush_calls(vendor, carried["contacts"], carried["marketing"], carried["customers"])
        over = None
        send = LATENCY * sum(calls.values())
        for bucket, n in calls.items():
            limits = obeyed(vendor, bucket)
            send += span(n, limits)
            for count, period in limits:
                if n / interval > count / period + 1e-9:
                    need = n / interval
                    if over is None or need / (count / period) > over["need_per_s"] / over["allowed_per_s"]:
                        over = {"bucket": bucket, "need_per_s": round(need, 2), "allowed_per_s": round(count / period, 2),
                                "limit": (count, period), "calls_per_flush": n}
        wait = window + 0.95 * interval + send
        if over is not None:
            if blocked_by is None or over["need_per_s"] / over["allowed_per_s"] < \
                    blocked_by["need_per_s"] / blocked_by["allowed_per_s"]:
                blocked_by = {**over, "interval_s": interval}
            continue
        if best is None or wait < best["p95_lower_bound_s"]:
            best = {"interval_s": interval, "p95_lower_bound_s": round(wait, 2), "calls_per_flush": calls}
    limits_text = {b: limit_words(obeyed(vendor, b)) for b in CONNECTORS[vendor].rate_limits}
    contacts_per_s = flush(1.0)["contacts"]
    out: dict[str, Any] = {"contacts_per_s": round(contacts_per_s, 1), "coalesce_s": window}
    if best is not None and best["p95_lower_bound_s"] < target:
        return {**out, "can_meet": True, **best,
                "why": f"flushes every {best['interval_s']:g} s keep every declared limit and a p95 of at "
                       f"least {best['p95_lower_bound_s']:g} s"}
    if blocked_by is None and best is not None:
        return {**out, "can_meet": False, **best,
                "why": f"even the best flush interval ({best['interval_s']:g} s) leaves {best['p95_lower_bound_s']:g} s: "
                       f"the {window:g} s coalescing window, the wait for the flush and its calls' spacing under "
                       + "; ".join(f"{b}: {limits_text[b]}" for b in best["calls_per_flush"])}
    assert blocked_by is not None
    count, period = blocked_by["limit"]
    batch_note = (f"{contacts_per_s:,.0f} contacts/s changed at {rate:g} events/s, "
                  f"{blocked_by['calls_per_flush']} '{blocked_by['bucket']}' calls a flush at the connector's batch sizes")
    return {**out, "can_meet": False, "bucket": blocked_by["bucket"], "need_per_s": blocked_by["need_per_s"],
            "allowed_per_s": blocked_by["allowed_per_s"],
            "why": f"{batch_note}: at least {blocked_by['need_per_s']:g} calls/s whatever the flush interval (fewest "
                   f"with flushes every {blocked_by['interval_s']:g} s), and the declared limit is {count:,} calls per {period:g} s "
                   f"({blocked_by['allowed_per_s']:g}/s): the backlog grows for as long as the rate lasts"}


def limit_verdicts(rate: float, events: list[dict[str, Any]], vendors: tuple[str, ...]) -> dict[str, Any]:
    """Per vendor: the verdict for steady traffic of many people (the headline), and `as_sent`,
    the same for the slice the benchmark sent (its stories compressed into seconds, so fewer
    distinct contacts a flush)."""
    per_event = shape(events)
    sent = as_sent(events, rate)
    return {vendor: {**verdict(vendor, rate, per_event),
                     "as_sent": verdict(vendor, rate, per_event, per_flush=sent)} for vendor in vendors}


# -- the phase --------------------------------------------------------------------------------------
def run_rates(stack: Any, sender: Any, rates: tuple[int, ...], seed: int, vendors: tuple[str, ...],
              phases: Phases, pct: Callable[[list[float], float], float | None],
              settle: Callable[[], None], log: Callable[[str], None], seconds: float = SECONDS) -> dict[str, Any]:
    """Every rate in turn, the hub drained (`settle`) before each; the report's `freshness`."""
    measured = []
    for rate in rates:
        events = slice_for(rate, seed, seconds)
        settle()
        log(f"freshness at {rate} events/s: {len(events)} events")
        figures = measure(stack, sender, events, rate, vendors, phases, pct)
        figures["limits"] = limit_verdicts(rate, events, vendors)
        cannot = [v for v, f in figures["limits"].items() if not f["can_meet"]]
        measured.append(figures)
        log(f"  sent at {figures['achieved_rate']} events/s; p50 {figures['p50_s']} s, p95 {figures['p95_s']} s; "
            f"declared limits rule out p95 < {TARGET_P95_S:g} s for: {', '.join(cannot) or 'none'}")
    return {"rates": measured, "target_p95_s": TARGET_P95_S, "poll_s": POLL, "tick_s": TICK,
            "rule": "per connector: some flush interval T must keep calls(T) / T within count / period of every "
                    "declared limit (rate_limits, as obeyed) while coalescing window + 0.95 T + the flush's calls "
                    "(spacing under the limits + 0.03 s each) stays under the target"}
