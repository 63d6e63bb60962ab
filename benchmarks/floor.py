"""The floor: the fewest vendor calls the final state needs under each vendor's published batch
sizes, and the time those calls take under its published rate limits (vendor-apis.md).

It assumes a perfect hub that knows the final state up front and pushes every contact once,
in full batches, with every bucket used at its published rate. Calls that a correct hub cannot
skip are counted (the OAuth/JWT login, one status read per Klaviyo import job to learn which
profiles failed, Klaviyo's suppression read before subscribing); reads for inspection are not.
"""
from __future__ import annotations

import json
import math
from typing import Any

from connectors.base import MARKETING, TRANSACTIONAL

from .expected import Expected

LATENCY = 0.03      # the sandbox answers each call after this long
# Published figures, as the sandbox enforces them: (calls, seconds) per bucket.
LIMITS: dict[str, dict[str, tuple[tuple[int, float], ...]]] = {
    "klaviyo": {"bulk-import": ((10, 1.0), (150, 60.0)), "subscribe": ((75, 1.0), (750, 60.0)),
                "profiles": ((75, 1.0), (750, 60.0))},
    "emarsys": {"api": ((1000, 60.0),)},
    "salesforce": {"api": ()},                    # no per-second limit; a 24 h allocation
    "ometria": {"push": ((8, 1.0),)},
    "splio": {"contacts": ((20, 1.0),), "default": ((10, 1.0),)},
}
KLAVIYO_JOB_MAX, KLAVIYO_JOB_BYTES, KLAVIYO_SUBSCRIBE_MAX, KLAVIYO_LOOKUP_MAX = 10_000, 5_000_000, 1_000, 100
EMARSYS_CONTACTS_MAX, EMARSYS_LIST_MAX = 1_000, 1_000
SALESFORCE_COLLECTION_MAX = 200
OMETRIA_PUSH_MAX = 100
SPLIO_BULK_MAX = 1_000


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
            buckets = {"bulk-import": 2 * jobs, "subscribe": calls["POST subscribe"],
                       "profiles": calls["GET profiles (suppressions)"]}
            how = (f"{n} profiles in {jobs} import jobs (<= 10,000 profiles and 5 MB each; customers apart, "
                   f"since a job adds all its profiles to its lists) + 1 status read each; {m} consents: "
                   f"their suppressions read 100 at a time (a subscription would lift one), then "
                   f"subscription jobs of 1,000")
        elif vendor == "emarsys":
            calls = {"PUT contact": math.ceil(n / EMARSYS_CONTACTS_MAX),
                     "POST contactlist add": math.ceil(m / EMARSYS_LIST_MAX) + math.ceil(t / EMARSYS_LIST_MAX)}
            buckets = {"api": sum(calls.values())}
            how = f"{n} contacts by 1,000 (opt-in field 31 inline); {m} + {t} list members by 1,000; 1,000 calls/min"
        elif vendor == "salesforce":
            calls = {"POST oauth2/token": 1, "PATCH composite/sobjects (upsert)": math.ceil(n / SALESFORCE_COLLECTION_MAX),
                     "POST composite/sobjects (CampaignMember)": math.ceil((m + t) / SALESFORCE_COLLECTION_MAX)}
            buckets = {"api": sum(calls.values())}
            how = f"1 login; {n} contacts by 200; {m + t} campaign members by 200; no per-second limit"
        elif vendor == "ometria":
            calls = {"POST push": math.ceil(n / OMETRIA_PUSH_MAX)}
            buckets = {"push": calls["POST push"]}
            how = f"{n} contact records (lists and consent on the record) by 100; push 8/s"
        else:
            calls = {"POST authenticate": 1, "POST contacts/bulk": math.ceil(n / SPLIO_BULK_MAX)}
            buckets = {"default": 1, "contacts": calls["POST contacts/bulk"]}
            how = f"1 login; {n} contacts created by 1,000 with their lists (no PATCH needed); contacts 20/s"
        seconds = max(span(count, LIMITS[vendor][bucket]) for bucket, count in buckets.items()) + LATENCY
        out[vendor] = {"calls": calls, "total": sum(calls.values()), "seconds": round(seconds, 2), "how": how}
    slowest = max(out, key=lambda v: out[v]["seconds"])
    return {"vendors": out, "seconds": out[slowest]["seconds"], "bound_by": slowest,
            "rule": "max over vendors of (ceil(calls / count) - 1) x period for the tightest published "
                    "limit of each bucket, + one call's latency (0.03 s)"}
