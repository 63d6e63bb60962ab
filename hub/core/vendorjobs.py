"""Vendor jobs still running after a push (Klaviyo's bulk imports): seen through, never assumed.

Their contacts wait here, neither landed nor failed, and leave the dirty set so no flush pushes
them again meanwhile. A follow-up check is scheduled on the connector's queue with RQ's
`enqueue_in` (the worker pool runs RQ's scheduler), so no worker sits waiting; each check
(hub/core/vendorchecks.py) reads the job once and, while it still runs, schedules the next with
a longer wait. This module is what a push needs (hold the contacts, schedule the check, say who
waits), below hub.core.sync; the check, which pushes through hub.core.sync, sits above it.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from hub.core.queue import get_queues
from hub.core import keys
from hub.core import jobnames, services

JOBS = keys.VENDOR_JOBS            # zset: job reference -> when its next check is due
JOB = keys.VENDOR_JOB           # hash: data (JSON: emails in the order sent, versions, fingerprints,
                                 # since) and checks (how many reads said "running")
WAITING = keys.VENDOR_WAITING      # hash: email -> the job reference it waits on
# Seconds before each successive check, then the last step again; a job still running after
# GIVE_UP seconds becomes a (retriable) failed sync so ops can see it.
STEPS = (2, 5, 15, 30, 60, 120, 300)
GIVE_UP = 24 * 3600
LOST = 120                       # a check this late was lost (e.g. Redis restored): re-arm it


def redis() -> Any:
    return services.current().redis


def delay(checks: int) -> float:
    return float(STEPS[min(checks, len(STEPS) - 1)])


def hold(connector: str, pending: dict[str, list[str]], versions: dict[str, int], prints: dict[str, str]) -> set[str]:
    """Keep the contacts of each still-running job and schedule its first check."""
    held: set[str] = set()
    if not pending:
        return held
    r, now = redis(), time.time()
    for ref, emails in pending.items():
        record = {"emails": emails, "versions": {e: versions[e] for e in emails},
                  "prints": {e: prints[e] for e in emails}, "since": now}
        pipe = r.pipeline(transaction=True)
        pipe.hset(JOB.format(connector, ref), mapping={"data": json.dumps(record), "checks": 0})
        pipe.zadd(JOBS.format(connector), {ref: now + delay(0)})
        pipe.hset(WAITING.format(connector), mapping={e: ref for e in emails})
        pipe.execute()
        schedule(connector, ref, delay(0))
        held.update(emails)
    sweep(connector)
    return held


def schedule(connector: str, ref: str, seconds: float) -> None:
    # RQ keeps whole seconds: round up so the check never comes before it is due.
    get_queues().get(connector).enqueue_in(timedelta(seconds=int(seconds + 0.999)), jobnames.VENDOR_JOB_CHECK,
                                           connector, ref, job_timeout=300, result_ttl=60,
                                           description=f"check {connector} job {ref}")


def sweep_all() -> dict[str, int]:
    """The hub scheduler's entry: re-arm lost checks for every enabled connector."""
    return {c: n for c in get_queues().connectors if (n := sweep(c))}


def sweep(connector: str) -> int:
    """Re-arm checks that are long overdue (their scheduled job was lost)."""
    r = redis()
    late = r.zrangebyscore(JOBS.format(connector), "-inf", time.time() - LOST)
    for ref in late:
        ref = ref.decode()
        r.zadd(JOBS.format(connector), {ref: time.time() + delay(0)})
        schedule(connector, ref, delay(0))
    return len(late)


def waiting(connector: str, email: str) -> bool:
    """The contact waits on a vendor job (the contact view shows it as pending)."""
    return bool(redis().hexists(WAITING.format(connector), email))


def waiting_among(connector: str, emails: list[str]) -> set[str]:
    """Which of these contacts wait on a vendor job. Erasure waits for the job too: deleted
    before the job completes, the person could be created again by it."""
    if not emails:
        return set()
    return {e for e, ref in zip(emails, redis().hmget(WAITING.format(connector), emails)) if ref is not None}
