"""The floor: the fewest vendor calls the final state needs under each vendor's published batch
sizes, and the time those calls take under the rate limits each connector declares it obeys
(`rate_limits`: the published figure, or a margin below it with its reason).

It assumes a perfect hub that knows the final state up front and pushes every contact once,
in full batches, with every bucket used at its published rate. Calls that a correct hub cannot
skip are counted (the OAuth/JWT login, one status read per Klaviyo import job to learn which
profiles failed, Klaviyo's suppression read before subscribing); reads for inspection are not.
"""
from __future__ import annotations

import json
import math
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
        if vendor == "klaviyo":
            jobs = klaviyo_jobs(rows, {i for i, k in lists.items() if k == TRANSACTIONAL})
            calls = {"POST bulk-import": jobs, "GET bulk-import (job status)": jobs,
                     "GET profiles (suppressions)": math.ceil(m / KLAVIYO_LOOKUP_MAX),
                     "POST subscribe": math.ceil(m / KLAVIYO_SUBSCRIBE_MAX)}
            buckets = {"bulk-import": 2 * jobs, "subscriptions": calls["POST subscribe"],
                       "profiles": calls["GET profiles (suppressions)"]}
            how = (f"{n} profiles in {jobs} import jobs (<= 10,000 profiles and 5 MB each; customers apart, "
                   f"since a job adds all its profiles to its lists) + 1 status read each; {m} consents: "
                   f"their suppressions read 100 at a time (a subscription would lift one), then "
                   f"subscription jobs of 1,000")
        elif vendor == "emarsys":
            calls = {"PUT contact": math.ceil(n / EMARSYS_CONTACTS_MAX),
                     "POST contactlist add": math.ceil(m / EMARSYS_LIST_MAX) + math.ceil(t / EMARSYS_LIST_MAX)}
            buckets = {"api": sum(calls.values())}
            how = (f"{n} contacts by 1,000 (opt-in field 31 inline); {m} + {t} list members by 1,000; "
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
                       "limits": declared(vendor, list(buckets))}
    slowest = max(out, key=lambda v: out[v]["seconds"])
    return {"vendors": out, "seconds": out[slowest]["seconds"], "bound_by": slowest,
            "rule": "max over vendors of (ceil(calls / count) - 1) x period for the tightest limit the "
                    "connector obeys in each bucket (its declared rate_limits), + one call's latency (0.03 s)"}
