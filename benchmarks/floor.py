"""The floor: the fewest vendor calls the final state needs under each vendor's published batch
sizes, and the time those calls take under the rate limits each connector declares it obeys
(`rate_limits`: the published figure, or a margin below it with its reason).

It assumes a perfect hub that knows the final state up front and pushes every contact once,
in full batches, with every bucket used at its published rate. The floor counts writes, and the
calls a write cannot go without (the OAuth/JWT login, Klaviyo's suppression read before
subscribing). Reads that other work adds are reported beside it, not counted in it: polling a
vendor job (Klaviyo's import-job status read, one a job at least, `POLLING`) and the anti-entropy
audit (off in the benchmark, measured by benchmarks/audit_cost.py). The rate-limit time still
counts the polls, since they spend the same bucket.
"""
from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass
from typing import Any

from connectors import CONNECTORS
from connectors.base import MARKETING, TRANSACTIONAL

from .expected import Expected

LATENCY = 0.03      # the sandbox answers each call after this long
# Published batch sizes (vendor-apis.md).
KLAVIYO_JOB_MAX, KLAVIYO_JOB_BYTES, KLAVIYO_SUBSCRIBE_MAX, KLAVIYO_LOOKUP_MAX = 10_000, 5_000_000, 1_000, 100
EMARSYS_CONTACTS_MAX, EMARSYS_LIST_MAX = 1_000, 1_000
SALESFORCE_COLLECTION_MAX = 200
OMETRIA_PUSH_MAX = 100
SPLIO_BULK_MAX = 1_000
# Vendor endpoints (as the sandbox counts them) that poll a job the hub's writes started: reads
# reported beside the calls and the floor, not in them.
POLLING = {"klaviyo": {"GET bulk-import"}}
KLAVIYO_STATUS = "GET bulk-import (job status)"


def limits(vendor: str, bucket: str) -> tuple[tuple[int, float], ...]:
    """The (calls, seconds) limits the connector obeys in `bucket`, from its one declaration
    (`rate_limits`: the published figure, or its own margin below it)."""
    return CONNECTORS[vendor].rate_limits[bucket].obeyed


def declared(vendor: str, buckets: list[str]) -> dict[str, Any]:
    """What the report shows of each bucket's declaration."""
    out = {}
    for bucket in buckets:
        budget = CONNECTORS[vendor].rate_limits[bucket]
        out[bucket] = {"published": budget.published, "obeyed": budget.obeyed, "source": budget.source,
                       **({"reason": budget.reason} if budget.margin is not None else {})}
    return out


def per_minute(vendor: str, bucket: str) -> str:
    """The obeyed limits in words, e.g. "190 calls per 60 s"."""
    return ", ".join(f"{count:,} calls per {period:g} s" for count, period in limits(vendor, bucket)) \
        or "no short-window limit"


def span(calls: int, limits: tuple[tuple[int, float], ...]) -> float:
    """Seconds from the first to the last of `calls` calls when no window ever holds more than
    its published count: (ceil(n / count) - 1) periods for the tightest limit."""
    if calls <= 0:
        return 0.0
    return max([(math.ceil(calls / count) - 1) * period for count, period in limits] or [0.0])


def kinds(rows: dict[str, dict[str, Any]], mapping_lists: dict[str, str]) -> tuple[int, int, int]:
    """(contacts, marketing members with consent, transactional members)."""
    contacts = len(rows)
    marketing = sum(1 for r in rows.values() if r["consent"] is True
                    and any(mapping_lists.get(i) == MARKETING for i in r["lists"]))
    transactional = sum(1 for r in rows.values() if any(mapping_lists.get(i) == TRANSACTIONAL for i in r["lists"]))
    return contacts, marketing, transactional


def klaviyo_jobs(rows: dict[str, dict[str, Any]], transactional_lists: set[str]) -> int:
    """Bulk import jobs: a job adds all its profiles to its lists, so customers and the others go
    in separate jobs; each job holds at most 10,000 profiles and 5 MB."""
    groups: dict[bool, list[int]] = {True: [], False: []}
    for email, row in rows.items():
        profile = {"type": "profile", "attributes": {"email": email, **row["fields"]}}
        groups[bool(row["lists"] & transactional_lists)].append(len(json.dumps(profile, default=str)) + 1)
    jobs = 0
    for sizes in groups.values():
        if sizes:
            jobs += max(math.ceil(len(sizes) / KLAVIYO_JOB_MAX), math.ceil((sum(sizes) + 200) / KLAVIYO_JOB_BYTES))
    return jobs


def compute(expected: Expected, list_kinds: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Per vendor: {"calls": {endpoint: n}, "total", "seconds", "how"}; plus the overall floor."""
    out: dict[str, Any] = {}
    for vendor, rows in expected.vendors.items():
        lists = list_kinds[vendor]
        n, m, t = kinds(rows, lists)
        reads: dict[str, int] = {}
        if vendor == "klaviyo":
            jobs = klaviyo_jobs(rows, {i for i, k in lists.items() if k == TRANSACTIONAL})
            calls = {"POST bulk-import": jobs, "GET profiles (suppressions)": math.ceil(m / KLAVIYO_LOOKUP_MAX),
                     "POST subscribe": math.ceil(m / KLAVIYO_SUBSCRIBE_MAX)}
            reads = {KLAVIYO_STATUS: jobs}
            buckets = {"bulk-import": 2 * jobs, "subscriptions": calls["POST subscribe"],
                       "profiles": calls["GET profiles (suppressions)"]}
            how = (f"{n} profiles in {jobs} import jobs (<= 10,000 profiles and 5 MB each; customers apart, "
                   f"since a job adds all its profiles to its lists; + 1 status read each, beside the floor, "
                   f"in the bucket's time); {m} consents: "
                   f"their suppressions read 100 at a time (a subscription would lift one), then "
                   f"subscription jobs of 1,000")
        elif vendor == "emarsys":
            calls = {"POST oauth2/token": 1, "PUT contact": math.ceil(n / EMARSYS_CONTACTS_MAX),
                     "POST contactlist add": math.ceil(m / EMARSYS_LIST_MAX) + math.ceil(t / EMARSYS_LIST_MAX)}
            buckets = {"api": sum(calls.values()) - 1}
            how = (f"1 OAuth2 token (the benchmark's Emarsys credentials are OAuth2); {n} contacts by 1,000 "
                   f"(opt-in field 31 inline); {m} + {t} list members by 1,000; "
                   f"{per_minute(vendor, 'api')}")
        elif vendor == "salesforce":
            calls = {"POST oauth2/token": 1, "PATCH composite/sobjects (upsert)": math.ceil(n / SALESFORCE_COLLECTION_MAX),
                     "POST composite/sobjects (CampaignMember)": math.ceil((m + t) / SALESFORCE_COLLECTION_MAX)}
            buckets = {"api": sum(calls.values())}
            how = f"1 login; {n} contacts by 200; {m + t} campaign members by 200; no per-second limit"
        elif vendor == "ometria":
            calls = {"POST push": math.ceil(n / OMETRIA_PUSH_MAX)}
            buckets = {"push": calls["POST push"]}
            how = f"{n} contact records (lists and consent on the record) by 100; push {per_minute(vendor, 'push')}"
        else:
            calls = {"POST authenticate": 1, "POST contacts/bulk": math.ceil(n / SPLIO_BULK_MAX)}
            buckets = {"default": 1, "contacts": calls["POST contacts/bulk"]}
            how = (f"1 login; {n} contacts created by 1,000 with their lists (no PATCH needed); contacts "
                   f"{per_minute(vendor, 'contacts')}")
        seconds = max(span(count, limits(vendor, bucket)) for bucket, count in buckets.items()) + LATENCY
        out[vendor] = {"calls": calls, "total": sum(calls.values()), "seconds": round(seconds, 2), "how": how,
                       "limits": declared(vendor, list(buckets)), "reads_beside": reads}
    slowest = max(out, key=lambda v: out[v]["seconds"])
    return {"vendors": out, "seconds": out[slowest]["seconds"], "bound_by": slowest,
            "rule": "max over vendors of (ceil(calls / count) - 1) x period for the tightest limit the "
                    "connector obeys in each bucket (its declared rate_limits), + one call's latency (0.03 s)"}


# -- the floor under the freshness deadline ----------------------------------------------------
# The plain floor pushes every contact once, with its final state. A hub that promises each
# contact's change reaches the vendor within D seconds of its event cannot wait for a burst
# longer than D to end: the deadline floor is the cost of the cheapest schedule that keeps that
# promise for the workload as it arrived (each event's arrival time at the hub).
MARKETING_JOIN, TRANSACTIONAL_JOIN = "marketing", "transactional"


@dataclass
class Change:
    """One event's effect on one contact, at its arrival (seconds from the first event sent):
    the lists it makes the contact join ("marketing" with consent granted, "transactional")."""

    email: str
    at: float
    joins: frozenset[str] = frozenset()


def changes(stream: list[dict[str, Any]], arrivals: list[float]) -> list[Change]:
    """Per event as it arrived, the contacts it changes. A duplicate (same id) changes nothing,
    and neither does an order reported again (same order id: counted once); a friend joins the
    marketing list when it opts in, the transactional list with its first conversion."""
    seen: set[str] = set()
    orders: set[str] = set()
    opted: set[str] = set()
    converted: set[str] = set()
    out: list[Change] = []
    for event, at in zip(stream, arrivals):
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        kind = event["type"]
        if kind == "friend.converted" and event["order"]["id"] in orders:
            continue
        friend = (event.get("friend") or {})
        referrer = (event.get("referrer") or {})
        joins: set[str] = set()
        email = str(friend.get("email") or "").strip().lower()
        if email and friend.get("marketing_opt_in") is True and email not in opted:
            opted.add(email)
            joins.add(MARKETING_JOIN)
        if kind == "friend.converted":
            orders.add(event["order"]["id"])
            if email not in converted:
                converted.add(email)
                joins.add(TRANSACTIONAL_JOIN)
        if email:
            out.append(Change(email, at, frozenset(joins)))
        if referrer.get("email"):
            out.append(Change(str(referrer["email"]).strip().lower(), at))
    return out


def groups(times: list[float], deadline: float) -> list[tuple[float, float]]:
    """The fewest pushes that send every change within `deadline` of its arrival: push as late
    as the first unsent change allows, which sends everything that arrived by then (the classic
    greedy, optimal for covering points with intervals of one length). [(first, pushed at)]."""
    out: list[tuple[float, float]] = []
    for at in sorted(times):
        if not out or at > out[-1][1]:
            out.append((at, at + deadline))
    return out


def windows(found: list[Change], deadline: float) -> list[dict[str, Any]]:
    """The fewest flushes across all contacts (bulk vendors send every contact dirty at a
    flush in one set of calls): per flush, the contacts changed since the last one, those who
    join each kind of list, and when it goes."""
    flushes = groups([c.at for c in found], deadline)
    out: list[dict[str, Any]] = [{"at": at, "contacts": set(), MARKETING_JOIN: set(), TRANSACTIONAL_JOIN: set()}
                                 for _, at in flushes]
    index = 0
    for change in sorted(found, key=lambda c: c.at):
        while change.at > flushes[index][1]:
            index += 1
        out[index]["contacts"].add(change.email)
        for kind in change.joins:
            out[index][kind].add(change.email)
    return out


def bulk_calls(vendor: str, flush: dict[str, Any]) -> dict[str, int]:
    """One flush's calls at a bulk vendor, by the plain floor's rules."""
    n = len(flush["contacts"])
    m, t = len(flush[MARKETING_JOIN]), len(flush[TRANSACTIONAL_JOIN])
    if vendor == "klaviyo":
        jobs = math.ceil(t / KLAVIYO_JOB_MAX) + math.ceil((n - t) / KLAVIYO_JOB_MAX)
        return {"POST bulk-import": jobs, "GET profiles (suppressions)": math.ceil(m / KLAVIYO_LOOKUP_MAX),
                "POST subscribe": math.ceil(m / KLAVIYO_SUBSCRIBE_MAX)}
    if vendor == "emarsys":
        return {"PUT contact": math.ceil(n / EMARSYS_CONTACTS_MAX),
                "POST contactlist add": math.ceil(m / EMARSYS_LIST_MAX) + math.ceil(t / EMARSYS_LIST_MAX)}
    if vendor == "salesforce":
        return {"PATCH composite/sobjects (upsert)": math.ceil(n / SALESFORCE_COLLECTION_MAX),
                "POST composite/sobjects (CampaignMember)": math.ceil((m + t) / SALESFORCE_COLLECTION_MAX)}
    return {"POST push": math.ceil(n / OMETRIA_PUSH_MAX)}


def splio_calls(found: list[Change], deadline: float) -> dict[str, int]:
    """Splio creates in bulk but updates one contact a call. Each contact's first push creates it
    with its lists (bulk, 1,000 a call, at least as many calls as the fewest create times need);
    every later push is a PATCH, plus a subscribe call when it joins a list. The pushes: each
    contact as late as its deadline allows (its oldest unsent change + the deadline), the
    earliest due first, every update spaced by the contacts budget Splio's connector obeys. When
    the budget keeps up this is the fewest pushes per contact (the greedy of `groups`); when it
    cannot, pushes slip past the deadline and each carries every change arrived by then, as a
    hub bound by the vendor's rate limit must."""
    per: dict[str, list[Change]] = {}
    for change in found:
        per.setdefault(change.email, []).append(change)
    slot = min((period / count for count, period in limits("splio", "contacts")), default=0.0)
    due: list[tuple[float, str, int]] = []      # (when the push is due, email, index of its first unsent change)
    for email, items in per.items():
        items.sort(key=lambda c: c.at)
        heapq.heappush(due, (items[0].at + deadline, email, 0))
    free = 0.0                                  # when the budget allows the next update call
    patches = subscribes = 0
    while due:
        at, email, first = heapq.heappop(due)
        items = per[email]
        sent = max(at, free) if first else at
        joins: set[str] = set()
        index = first
        while index < len(items) and items[index].at <= sent:
            joins |= items[index].joins
            index += 1
        if first:
            patches += 1
            subscribes += 1 if joins else 0
            free = sent + slot * (2 if joins else 1)
        if index < len(items):
            heapq.heappush(due, (items[index].at + deadline, email, index))
    creates = max(math.ceil(len(per) / SPLIO_BULK_MAX),
                  len(groups([items[0].at for items in per.values()], deadline)))
    return {"POST authenticate": 1, "POST contacts/bulk": creates, "PATCH contacts": patches,
            "POST contacts/lists/subscribe": subscribes}


def deadlines(env: dict[str, str]) -> dict[str, float]:
    """Each connector's freshness deadline as the benchmark's hub runs it (hub/core/coalesce.py):
    HUB_FRESHNESS_DEADLINE_<CONNECTOR>, else the connector's own, else HUB_FRESHNESS_DEADLINE."""
    from hub.core.coalesce import DEFAULT_DEADLINE

    out = {}
    for vendor, cls in CONNECTORS.items():
        value = env.get(f"HUB_FRESHNESS_DEADLINE_{vendor.upper()}") or getattr(cls, "freshness_deadline", None) \
            or env.get("HUB_FRESHNESS_DEADLINE") or DEFAULT_DEADLINE
        out[vendor] = float(value)
    return out


def deadline_floor(plain: dict[str, Any], stream: list[dict[str, Any]], arrivals: list[float],
                   deadlines: dict[str, float]) -> dict[str, Any]:
    """Per vendor, the calls the freshness deadline forces for the workload as it arrived:
    {"deadline_s", "total", "calls", "flushes", "how"}; never below the plain floor."""
    found = changes(stream, arrivals)
    out: dict[str, Any] = {}
    for vendor, floor in plain["vendors"].items():
        d = deadlines[vendor]
        if vendor == "splio":
            calls = splio_calls(found, d)
            how = (f"each contact pushed as late as a {d:g} s deadline allows (its own changes), updates no "
                   f"faster than {per_minute(vendor, 'contacts')}: the first push a bulk create with its "
                   f"lists, each later one a PATCH (+ a subscribe when it joins a list)")
            flushes = None
        else:
            flushes_ = windows(found, d)
            calls = {}
            for flush in flushes_:
                for endpoint, count in bulk_calls(vendor, flush).items():
                    calls[endpoint] = calls.get(endpoint, 0) + count
            calls = {**{k: v for k, v in floor["calls"].items() if k not in calls}, **calls}
            flushes = len(flushes_)
            how = (f"{flushes} flushes, the fewest that send every change within {d:g} s of its arrival "
                   f"(greedy, each as late as the oldest unsent change allows); each flush's contacts by the "
                   f"plain floor's rules")
        total = sum(calls.values())
        out[vendor] = {"deadline_s": d, "total": max(total, floor["total"]), "calls": calls, "flushes": flushes,
                       "how": how}
    return out
